//! Image transfers (section 7 of the API page): downloads and uploads of whole disks, and
//! downloads of a backup's disks. Each is a `qemu-nbd` export of the disk's qcow2 file behind a
//! ticket of the real `ovirt-imageio` daemon; a backup's incremental disk is exported with the
//! `from_checkpoint_id` bitmap, so imageio serves its dirty extents. Phases move as the engine's
//! do, each taking at least one poll: `initializing` -> `transferring` -> (`finalize`)
//! `finalizing_success` -> `finished_success`, or (`cancel`) `cancelled_user` ->
//! `finished_cleanup`. A watcher plays the engine's monitor: a client idle longer than
//! `inactivity_timeout` gets the transfer cancelled (`cancelled_system` -> `finished_failure`)
//! or paused per `timeout_policy`, and an injected cut kills the export mid-transfer. The ticket
//! is removed and the export stopped whenever a transfer ends; cancelling an upload removes its
//! disk. The disk is `locked` while a transfer (or its backup) holds it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{Body, Flag, Number, Reference};
use super::disk::DiskImage;
use super::imageio::Ticket;
use super::inventory::{Backup, Disk, Inventory};
use super::login::User;
use super::reply::{Refusal, action_complete, action_fault, created, fault, not_found, represent};
use super::state::data_plane::{DataPlane, Transfer};
use super::state::events::Audit;
use super::state::{API, Engine};
use super::volumes;
use crate::qemu::QemuError;
use crate::qemu::nbd::{ExportOptions, NbdExport};

/// The routes of image transfers.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/imagetransfers", post(create).get(list))
        .route("/ovirt-engine/api/imagetransfers/{id}", get(poll))
        .route(
            "/ovirt-engine/api/imagetransfers/{id}/finalize",
            post(finalize),
        )
        .route("/ovirt-engine/api/imagetransfers/{id}/cancel", post(cancel))
        .route("/ovirt-engine/api/imagetransfers/{id}/extend", post(extend))
}

#[derive(Deserialize)]
struct CreateRequest {
    disk: Option<Reference>,
    image: Option<Reference>,
    backup: Option<Reference>,
    snapshot: Option<Reference>,
    shallow: Option<Flag>,
    direction: Option<String>,
    format: Option<String>,
    inactivity_timeout: Option<Number>,
    timeout_policy: Option<String>,
}

fn transfer_json(id: &str, t: &Transfer) -> Value {
    let actions: Vec<Value> = ["cancel", "extend", "finalize", "pause", "resume"]
        .map(|rel| json!({"href": format!("{API}/imagetransfers/{id}/{rel}"), "rel": rel}))
        .into();
    let mut body = json!({
        "id": id, "href": format!("{API}/imagetransfers/{id}"),
        "actions": {"link": actions},
        "active": if t.phase == "transferring" { "true" } else { "false" },
        "direction": t.direction, "format": "raw",
        "inactivity_timeout": t.inactivity_timeout.to_string(),
        "phase": t.phase, "shallow": if t.shallow { "true" } else { "false" },
        "timeout_policy": t.timeout_policy,
        "transferred": "0",
        "image": {"id": t.disk},
        "host": {"href": format!("{API}/hosts/{}", t.host), "id": t.host},
        "transfer_url": t.url, "proxy_url": t.url,
    });
    if let Some(backup) = &t.backup {
        body["backup"] = json!({"id": backup});
    }
    if let Some(volume) = &t.volume {
        body["snapshot"] = json!({"id": volume});
    }
    body
}

async fn list(State(engine): State<Arc<Engine>>, headers: HeaderMap) -> Response {
    let found: Vec<Value> = engine.data_plane.as_ref().map_or_else(Vec::new, |plane| {
        let transfers = plane.transfers.lock().expect("transfers lock");
        transfers
            .iter()
            .map(|(id, t)| transfer_json(id, t))
            .collect()
    });
    represent(
        &headers,
        "image_transfers",
        &json!({ "image_transfer": found }),
    )
}

/// What a transfer exports: the disk's image, with a bitmap for an incremental backup disk,
/// or one of its volumes (a disk snapshot), whole or alone (`shallow`).
struct Plan {
    disk: String,
    size: u64,
    bitmap: Option<String>,
    backup: Option<String>,
    volume: Option<VolumeView>,
}

/// A disk snapshot a transfer reads.
struct VolumeView {
    /// The disk snapshot's id.
    id: String,
    /// The snapshot whose layer it is; `None`: the active volume.
    layer: Option<String>,
    /// Only this volume, without its backing chain.
    shallow: bool,
}

/// Checks a request against the inventory and locks what the transfer holds.
fn admit(inventory: &mut Inventory, request: &CreateRequest) -> Result<(Plan, String), Refusal> {
    let host = inventory
        .hosts
        .first()
        .map(|h| h.id.clone())
        .unwrap_or_default();
    admit_disk(inventory, request).map(|plan| (plan, host))
}

/// Checks the disk a transfer names: a backup's disk is exported as the backup froze it, any
/// other disk must be free and is locked here.
fn admit_disk(inventory: &mut Inventory, request: &CreateRequest) -> Result<Plan, Refusal> {
    if let Some(volume) = request.snapshot.as_ref().and_then(|s| s.id.clone()) {
        return admit_volume(inventory, request, &volume);
    }
    let disk_id = requested_disk_id(request)?;
    let Some(disk) = inventory.disks.iter().find(|d| d.id == disk_id) else {
        return Err(Refusal::NotFound);
    };
    if let Some(backup_id) = request.backup.as_ref().and_then(|b| b.id.clone()) {
        return backup_disk_plan(inventory, request, backup_id, disk);
    }
    check_disk_free(inventory, disk)?;
    let size = disk.provisioned_size;
    inventory.set_disk_status(std::slice::from_ref(&disk_id), "locked");
    Ok(Plan {
        disk: disk_id,
        size,
        bitmap: None,
        backup: None,
        volume: None,
    })
}

/// Checks a disk snapshot's download: its disk must be `ok` (it may be plugged to a running
/// VM: its snapshot's layers hold still), and is locked here.
fn admit_volume(
    inventory: &mut Inventory,
    request: &CreateRequest,
    id: &str,
) -> Result<Plan, Refusal> {
    let Some(volume) = volumes::find(inventory, id) else {
        return Err(Refusal::NotFound);
    };
    if request.direction.as_deref() != Some("download") {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot transfer Virtual Disk. A disk snapshot can only be downloaded.",
        ));
    }
    let disk = inventory.disks.iter().find(|d| d.id == volume.disk);
    let disk = disk.ok_or(Refusal::NotFound)?;
    if disk.status != "ok" {
        return Err(locked_disk(&disk.alias));
    }
    let size = disk.provisioned_size;
    inventory.set_disk_status(std::slice::from_ref(&volume.disk), "locked");
    Ok(Plan {
        disk: volume.disk,
        size,
        bitmap: None,
        backup: None,
        volume: Some(VolumeView {
            id: volume.id,
            layer: volume.snapshot,
            shallow: request.shallow.as_ref().is_some_and(Flag::value),
        }),
    })
}

fn locked_disk(alias: &str) -> Refusal {
    Refusal::fault(
        StatusCode::CONFLICT,
        &format!(
            "Cannot transfer Virtual Disk: The following disks are locked: {alias}. Please try again in a few minutes."
        ),
    )
}

/// The id of the disk (or image) a transfer request names.
fn requested_disk_id(request: &CreateRequest) -> Result<String, Refusal> {
    request
        .disk
        .as_ref()
        .or(request.image.as_ref())
        .and_then(|r| r.id.clone())
        .ok_or_else(|| {
            Refusal::incomplete("ImageTransfer [disk.id|image.id|snapshot.id] required for add")
        })
}

/// The export of one disk of a `ready` backup, raw, with the backup's starting bitmap for an
/// incremental disk.
fn backup_disk_plan(
    inventory: &Inventory,
    request: &CreateRequest,
    backup_id: String,
    disk: &Disk,
) -> Result<Plan, Refusal> {
    if request.format.as_deref().unwrap_or(&disk.format) != "raw" {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot transfer Virtual Disk. The specified format is not applicable for VM backup.",
        ));
    }
    let backup = ready_backup(inventory, &backup_id)?;
    let Some(member) = backup.disks.iter().find(|d| d.id == disk.id) else {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            &format!(
                "Cannot transfer Virtual Disk. Disk {} is not part of the backup.",
                disk.alias
            ),
        ));
    };
    let bitmap = (member.mode == "incremental")
        .then(|| backup.from_checkpoint_id.clone())
        .flatten();
    Ok(Plan {
        disk: disk.id.clone(),
        size: disk.provisioned_size,
        bitmap,
        backup: Some(backup_id),
        volume: None,
    })
}

/// The backup `backup_id`, which must be `ready` (its disks frozen, its checkpoint made).
fn ready_backup<'a>(inventory: &'a Inventory, backup_id: &str) -> Result<&'a Backup, Refusal> {
    let Some(backup) = inventory.backups.iter().find(|b| b.id == backup_id) else {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot transfer Virtual Disk. The specified VM backup does not exist.",
        ));
    };
    if backup.phase != "ready" {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot transfer Virtual Disk. The VM backup is not in READY phase, backup phase is {}.",
                backup.phase.to_uppercase()
            ),
        ));
    }
    Ok(backup)
}

/// A whole disk transfers only while it is `ok` and plugged to no VM that is not down.
fn check_disk_free(inventory: &Inventory, disk: &Disk) -> Result<(), Refusal> {
    let alias = &disk.alias;
    if disk.status != "ok" {
        return Err(locked_disk(alias));
    }
    let running: Vec<&str> = inventory
        .vms
        .iter()
        .filter(|vm| vm.status != "down" && vm.owns(&disk.id))
        .map(|vm| vm.name.as_str())
        .collect();
    if !running.is_empty() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot transfer Virtual Disk. Disk {alias} is plugged to non-Down VMs: {}.",
                running.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Seconds a client may stay idle when the request names no `inactivity_timeout`.
const DEFAULT_INACTIVITY_TIMEOUT: u64 = 60;

/// `POST /imagetransfers`: admits the request, then opens the transfer.
async fn create(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
    Body(request): Body<CreateRequest>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return fault(
            StatusCode::CONFLICT,
            "Cannot transfer Virtual Disk: no host is up",
        );
    };
    let admitted = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        admit(&mut inventory, &request)
    };
    match admitted {
        Ok(admitted) => {
            let by = (request, user.as_str());
            open_transfer(&engine, plane, admitted, by, &headers).await
        }
        Err(refused) => refused.into_response(),
    }
}

/// Opens an admitted transfer: exports the disk with `qemu-nbd`, adds the imageio ticket, and
/// starts the watcher that plays the engine's monitor.
async fn open_transfer(
    engine: &Arc<Engine>,
    plane: &DataPlane,
    (plan, host): (Plan, String),
    (request, user): (CreateRequest, &str),
    headers: &HeaderMap,
) -> Response {
    let direction = request.direction.unwrap_or_else(|| "upload".into());
    let id = uuid::Uuid::new_v4().to_string();
    let read_only = direction == "download";
    let export = match start_export(plane, &plan, &id, read_only).await {
        Ok(export) => export,
        Err(e) => return refuse_transfer(engine, &plan, &e),
    };
    let inactivity_timeout = request.inactivity_timeout.as_ref().and_then(Number::value);
    let inactivity_timeout = inactivity_timeout.unwrap_or(DEFAULT_INACTIVITY_TIMEOUT);
    let ticket = ticket_for(&id, &plan, &export, read_only, inactivity_timeout);
    if let Err(e) = plane.imageio.add_ticket(&ticket).await {
        return refuse_transfer(engine, &plan, &e);
    }
    let transfer = Transfer {
        disk: plan.disk,
        direction,
        phase: "initializing",
        export: Some(export),
        url: plane.imageio.transfer_url(&id),
        backup: plan.backup,
        volume: plan.volume.as_ref().map(|v| v.id.clone()),
        shallow: plan.volume.as_ref().is_some_and(|v| v.shallow),
        inactivity_timeout,
        timeout_policy: request.timeout_policy.unwrap_or_else(|| "legacy".into()),
        host,
    };
    let body = transfer_json(&id, &transfer);
    let started = Audit::TransferStarted(&transfer.direction);
    engine.record_disk(started, &transfer.disk, Some(user));
    // A snapshot's download may make one more VM backed up at once: counted under the
    // inventory's lock, taken before the transfers' (`state::load`).
    let counted = super::state::load::reads_a_snapshot(&transfer);
    let inventory = counted.then(|| engine.inventory.lock().expect("inventory lock"));
    let mut transfers = plane.transfers.lock().expect("transfers lock");
    transfers.insert(id.clone(), transfer);
    if let Some(inventory) = &inventory {
        engine
            .load
            .observe(super::state::load::running(inventory, &transfers));
    }
    drop(transfers);
    drop(inventory);
    tokio::spawn(watch(Arc::downgrade(engine), id));
    created(headers, "image_transfer", &body)
}

/// Starts the `qemu-nbd` export of the planned disk (read-only for a download), off the
/// async runtime: it waits for the export to listen.
async fn start_export(
    plane: &DataPlane,
    plan: &Plan,
    id: &str,
    read_only: bool,
) -> Result<NbdExport, QemuError> {
    let (image, socket, log) = (
        exported_image(plane, plan)?,
        plane.run.join(format!("{id}.sock")),
        plane.run.join(format!("{id}.qemu-nbd.log")),
    );
    let options = ExportOptions {
        read_only,
        bitmap: plan.bitmap.clone(),
        detect_zeroes: false,
        exit_with_last_client: false,
        die_with_owner: false,
        direct_io: false,
        allocation_depth: true,
    };
    tokio::task::spawn_blocking(move || NbdExport::start(&image, &socket, &log, &options))
        .await
        .expect("the export task does not panic")
}

/// What `qemu-nbd` opens for a planned transfer: the disk's active volume, or a disk
/// snapshot's volume with its backing chain or (`shallow`) alone.
fn exported_image(plane: &DataPlane, plan: &Plan) -> Result<std::path::PathBuf, QemuError> {
    let image = plane.image(&plan.disk);
    let Some(volume) = &plan.volume else {
        return Ok(image.path().to_owned());
    };
    let path = match &volume.layer {
        Some(snapshot) => image.layer_path(snapshot),
        None => image.path().to_owned(),
    };
    if !volume.shallow {
        return Ok(path);
    }
    DiskImage::shallow_view(&path).map_err(|e| QemuError::Start {
        program: "qemu-nbd".into(),
        why: e.to_string(),
    })
}

/// The imageio ticket of transfer `id` over its export.
fn ticket_for(
    id: &str,
    plan: &Plan,
    export: &NbdExport,
    read_only: bool,
    inactivity_timeout: u64,
) -> Ticket {
    Ticket {
        uuid: id.to_owned(),
        size: plan.size,
        url: export.url(),
        ops: vec![if read_only { "read" } else { "write" }],
        timeout: 3600,
        inactivity_timeout,
        dirty: plan.bitmap.is_some(),
        sparse: true,
        transfer_id: id.to_owned(),
    }
}

/// A transfer that could not start: the disk it locked is freed (a backup's disk stays with
/// its backup) and the client gets the engine's fault.
fn refuse_transfer(engine: &Engine, plan: &Plan, error: &dyn std::fmt::Display) -> Response {
    if plan.backup.is_none() {
        unlock(engine, &plan.disk);
    }
    fault(
        StatusCode::CONFLICT,
        &format!("Cannot transfer Virtual Disk: {error}"),
    )
}

fn unlock(engine: &Engine, disk_id: &str) {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    inventory.set_disk_status(&[disk_id.to_owned()], "ok");
}

/// The next phase after a poll: every transient phase takes at least one poll.
fn advance(phase: &'static str) -> &'static str {
    advance_from(phase).unwrap_or(phase)
}

/// The phase a transient `phase` moves on to (`None`: it stays until a client acts).
fn advance_from(phase: &str) -> Option<&'static str> {
    match phase {
        "initializing" | "resuming" => Some("transferring"),
        "finalizing_success" => Some("finished_success"),
        "cancelled_user" => Some("finished_cleanup"),
        "cancelled_system" | "finalizing_failure" => Some("finished_failure"),
        _ => None,
    }
}

async fn poll(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return not_found();
    };
    let body = {
        let transfers = plane.transfers.lock().expect("transfers lock");
        let Some(transfer) = transfers.get(&id) else {
            return not_found();
        };
        transfer_json(&id, transfer)
    };
    move_on(&engine, &id, None);
    represent(&headers, "image_transfer", &body)
}

/// Whether a transfer in `phase` moves on by itself (at its next poll, or by the clock).
pub(crate) fn is_transient(phase: &str) -> bool {
    advance_from(phase).is_some()
}

/// Moves transfer `id` one phase on: after a poll, or by the engine's clock
/// (`crate::sim::clock`) when nobody polled it (the clock passes the phase it saw, `expected`:
/// a transfer that moved on meanwhile is left). A transfer that ends writes its event and
/// unlocks its disk (a backup's disks stay locked until the backup is finalized).
pub(crate) fn move_on(engine: &Engine, id: &str, expected: Option<&str>) {
    let Some(plane) = engine.data_plane.as_ref() else {
        return;
    };
    let ended = {
        let mut transfers = plane.transfers.lock().expect("transfers lock");
        let Some(transfer) = transfers.get_mut(id) else {
            return;
        };
        let before = transfer.phase;
        if expected.is_some_and(|phase| phase != before) {
            return;
        }
        transfer.phase = advance(before);
        let finished = transfer.phase != before && transfer.phase.starts_with("finished");
        let t = &*transfer;
        finished.then(|| {
            (
                t.phase,
                t.disk.clone(),
                t.direction.clone(),
                t.backup.is_none(),
            )
        })
    };
    if let Some((phase, disk, direction, holds_disk)) = ended {
        record_end(engine, phase, &disk, &direction);
        if holds_disk {
            unlock(engine, &disk);
        }
    }
}

/// Writes how a transfer ended (a user's cancel was written when it was asked for).
fn record_end(engine: &Engine, phase: &str, disk: &str, direction: &str) {
    let what = match phase {
        "finished_success" => Audit::TransferSucceeded(direction),
        "finished_failure" => Audit::TransferFailed(direction),
        _ => return,
    };
    engine.record_disk(what, disk, None);
}

async fn finalize(state: State<Arc<Engine>>, headers: HeaderMap, id: Path<String>) -> Response {
    end(state, headers, id, "finalizing_success").await
}

async fn cancel(state: State<Arc<Engine>>, headers: HeaderMap, id: Path<String>) -> Response {
    end(state, headers, id, "cancelled_user").await
}

/// `extend`: the client is alive (imageio sees its requests; nothing to change here).
async fn extend(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let known = engine.data_plane.as_ref().is_some_and(|p| {
        p.transfers
            .lock()
            .expect("transfers lock")
            .contains_key(&id)
    });
    if known {
        action_complete(&headers)
    } else {
        not_found()
    }
}

/// Finalize or cancel: the ticket removed, the export stopped, the phase moved on; a cancelled
/// upload's disk is removed, as the engine does.
async fn end(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    phase: &'static str,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return not_found();
    };
    let (disk, direction) = {
        let transfers = plane.transfers.lock().expect("transfers lock");
        let Some(transfer) = transfers.get(&id) else {
            return not_found();
        };
        if let Some(refused) = ending_refused(transfer, phase) {
            return refused;
        }
        (transfer.disk.clone(), transfer.direction.clone())
    };
    if phase == "cancelled_user" {
        engine.record_disk(Audit::TransferCancelled(&direction), &disk, None);
    }
    let upload_disk = (direction == "upload").then_some(disk);
    plane.stop(&id, phase).await;
    if phase == "cancelled_user"
        && let Some(disk) = upload_disk
    {
        remove_disk(&engine, plane, &disk).await;
    }
    action_complete(&headers)
}

/// The action fault for finalizing or cancelling (`phase`) a transfer that already ends.
fn ending_refused(transfer: &Transfer, phase: &str) -> Option<Response> {
    let ending = ["finished", "finalizing", "cancelled"];
    if !ending.iter().any(|p| transfer.phase.starts_with(p)) {
        return None;
    }
    let action = if phase == "cancelled_user" {
        "cancel"
    } else {
        "finalize"
    };
    Some(action_fault(
        StatusCode::CONFLICT,
        &format!(
            "Cannot {action} Image Transfer: the transfer is {}",
            transfer.phase
        ),
    ))
}

/// Removes a disk (a cancelled or timed-out upload's) from the inventory and the storage.
async fn remove_disk(engine: &Engine, plane: &DataPlane, disk: &str) {
    let path = plane.image(disk).path().to_owned();
    let _ = tokio::task::spawn_blocking(move || fs_err::remove_file(path)).await;
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    inventory.disks.retain(|d| d.id != disk);
    for vm in &mut inventory.vms {
        vm.attachments.retain(|a| a.disk != disk);
    }
    engine.save(&inventory);
}

/// The engine's monitor of one transfer, until it ends: applies `inactivity_timeout` and armed
/// cuts, reading the daemon's ticket (`idle_time`, `transferred`).
///
/// It holds the engine weakly, so a stopped engine is dropped (and its processes stopped)
/// without waiting for its watchers.
async fn watch(engine: std::sync::Weak<Engine>, id: String) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let Some(plane) = engine.data_plane.as_ref() else {
            return;
        };
        let Some(watched) = watched(plane, &id) else {
            return;
        };
        let Ok(Some(info)) = plane.imageio.ticket_info(&id).await else {
            continue;
        };
        let number = |key: &str| info[key].as_f64().unwrap_or(0.0);
        cut_if_armed(plane, &id, number("transferred") as u64).await;
        let idle = number("idle_time");
        let limit = watched.idle_limit;
        if watched.phase == "transferring" && limit > 0 && idle >= limit as f64 {
            time_out(&engine, plane, &id, &watched, idle).await;
            return;
        }
    }
}

/// What the monitor reads of the transfer it watches.
struct Watched {
    phase: &'static str,
    idle_limit: u64,
    upload: bool,
    policy: String,
}

/// The watched transfer, while it exports (`None` once it ended: the watch ends too).
fn watched(plane: &DataPlane, id: &str) -> Option<Watched> {
    let transfers = plane.transfers.lock().expect("transfers lock");
    let t = transfers.get(id)?;
    t.export.as_ref()?;
    Some(Watched {
        phase: t.phase,
        idle_limit: t.inactivity_timeout,
        upload: t.direction == "upload",
        policy: t.timeout_policy.clone(),
    })
}

/// A client idle past `inactivity_timeout`: the transfer is paused or cancelled per its
/// `timeout_policy` (`legacy` pauses an upload); a cancelled upload's disk is removed.
async fn time_out(engine: &Engine, plane: &DataPlane, id: &str, watched: &Watched, idle: f64) {
    let (policy, upload) = (&watched.policy, watched.upload);
    tracing::warn!(transfer = %id, "client idle for {idle} s: timing out ({policy})");
    let pause = policy == "pause" || (policy == "legacy" && upload);
    if pause {
        plane.stop(id, "paused_system").await;
    } else {
        plane.stop(id, "cancelled_system").await;
        if upload && let Some(disk) = disk_of(plane, id) {
            remove_disk(engine, plane, &disk).await;
        }
    }
}

fn disk_of(plane: &DataPlane, id: &str) -> Option<String> {
    let transfers = plane.transfers.lock().expect("transfers lock");
    transfers.get(id).map(|t| t.disk.clone())
}

/// Kills the export of transfer `id` when an armed cut matches it and enough has moved; the
/// ticket stays, so the client's next requests fail as a cut connection does.
async fn cut_if_armed(plane: &DataPlane, id: &str, transferred: u64) {
    let fired = {
        let mut cuts = plane.cuts.lock().expect("cuts lock");
        let index = cuts.iter().position(|c| {
            c.transfer.as_deref().is_none_or(|t| t == id) && transferred >= c.after_bytes
        });
        index.map(|i| cuts.remove(i)).is_some()
    };
    if !fired {
        return;
    }
    tracing::warn!(transfer = %id, "cutting the data connection after {transferred} bytes");
    let export = {
        let mut transfers = plane.transfers.lock().expect("transfers lock");
        transfers.get_mut(id).and_then(|t| t.export.take())
    };
    if let Some(export) = export {
        let _ = tokio::task::spawn_blocking(move || export.stop()).await;
    }
}
