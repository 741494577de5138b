//! VM backups and checkpoints (section 6 of the API page), the engine's snapshot-based
//! ("hybrid") incremental backup on real qcow2 bitmaps.
//!
//! Starting a backup adds the new checkpoint's bitmap to each disk and freezes the disk (guest
//! writes go to an overlay, see `disk.rs`); the backup's image transfers export the frozen disk,
//! with the `from_checkpoint_id` bitmap for incremental disks. Phases move one per poll:
//! `initializing` -> `starting` -> `ready` (the checkpoint now exists) -> (finalize)
//! `finalizing` -> `succeeded`. A disk whose `from_checkpoint_id` bitmap is gone (an unclean
//! shutdown) makes the backup go `failed`, and the engine forgets all the VM's checkpoints, so
//! the client must take a full backup.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::SimError;
use super::body::{Body, Reference};
use super::disk::DiskImage;
use super::inventory::{Backup, BackupDisk, Checkpoint, Inventory, Vm};
use super::login::User;
use super::reply::{Refusal, action_complete, action_fault, created, fault, not_found, represent};
use super::state::data_plane::DataPlane;
use super::state::events::Audit;
use super::state::{API, Engine};

/// The routes of backups and checkpoints.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/vms/{vm}/backups", get(list).post(start))
        .route("/ovirt-engine/api/vms/{vm}/backups/{id}", get(poll))
        .route("/ovirt-engine/api/vms/{vm}/backups/{id}/disks", get(disks))
        .route(
            "/ovirt-engine/api/vms/{vm}/backups/{id}/finalize",
            post(finalize),
        )
        .route("/ovirt-engine/api/vms/{vm}/checkpoints", get(checkpoints))
        .route(
            "/ovirt-engine/api/vms/{vm}/checkpoints/{id}",
            get(checkpoint).delete(remove_checkpoint),
        )
        .route(
            "/ovirt-engine/api/vms/{vm}/checkpoints/{id}/disks",
            get(checkpoint_disks),
        )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn backup_href(backup: &Backup) -> String {
    format!("{API}/vms/{}/backups/{}", backup.vm, backup.id)
}

fn backup_json(backup: &Backup) -> Value {
    let href = backup_href(backup);
    let mut body = json!({
        "id": backup.id, "href": href,
        "actions": {"link": [{"href": format!("{href}/finalize"), "rel": "finalize"}]},
        "link": [{"href": format!("{href}/disks"), "rel": "disks"}],
        "creation_date": backup.creation_date,
        "modification_date": backup.modification_date,
        "phase": backup.phase,
        "snapshot": {"id": backup.snapshot},
        "vm": {"href": format!("{API}/vms/{}", backup.vm), "id": backup.vm},
    });
    if let Some(from) = &backup.from_checkpoint_id {
        body["from_checkpoint_id"] = json!(from);
    }
    if !backup.description.is_empty() {
        body["description"] = json!(backup.description);
    }
    // The engine stores the new checkpoint only once the host made it.
    if matches!(backup.phase.as_str(), "ready" | "finalizing" | "succeeded") {
        body["to_checkpoint_id"] = json!(backup.to_checkpoint_id);
    }
    body
}

fn checkpoint_json(checkpoint: &Checkpoint) -> Value {
    let href = format!("{API}/vms/{}/checkpoints/{}", checkpoint.vm, checkpoint.id);
    let mut body = json!({
        "id": checkpoint.id, "href": href,
        "link": [{"href": format!("{href}/disks"), "rel": "disks"}],
        "creation_date": checkpoint.creation_date,
        "description": "",
        "state": checkpoint.state,
        "vm": {"href": format!("{API}/vms/{}", checkpoint.vm), "id": checkpoint.vm},
    });
    if let Some(parent) = &checkpoint.parent_id {
        body["parent_id"] = json!(parent);
    }
    body
}

/// The disks of `ids`, as the backup and checkpoint `disks` sub-collections show them.
fn disks_json(inventory: &Inventory, ids: &[(String, Option<&str>)]) -> Value {
    let disks: Vec<Value> = ids
        .iter()
        .filter_map(|(id, mode)| {
            let disk = inventory.disks.iter().find(|d| &d.id == id)?;
            let mut body = json!({
                "id": disk.id, "href": format!("{API}/disks/{}", disk.id),
                "alias": disk.alias, "name": disk.alias, "format": disk.format,
                "provisioned_size": disk.provisioned_size.to_string(), "status": disk.status,
                "backup": "incremental",
            });
            if let Some(mode) = mode {
                body["backup_mode"] = json!(mode);
            }
            Some(body)
        })
        .collect();
    json!({ "disk": disks })
}

/// A VM's sub-collection (`backups`, `checkpoints`): 404 for an unknown VM.
fn vm_collection(
    engine: &Engine,
    headers: &HeaderMap,
    vm: &str,
    (plural, singular): (&str, &str),
    items: impl FnOnce(&Inventory) -> Vec<Value>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    if inventory.vm(vm).is_none() {
        return not_found();
    }
    represent(headers, plural, &json!({ singular: items(&inventory) }))
}

async fn list(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    vm_collection(&engine, &headers, &vm, ("backups", "backup"), |inv| {
        let mine = inv.backups.iter().filter(|b| b.vm == vm);
        mine.map(backup_json).collect()
    })
}

#[derive(Debug, Deserialize)]
struct StartRequest {
    id: Option<String>,
    from_checkpoint_id: Option<String>,
    description: Option<String>,
    disks: Option<DiskList>,
}

#[derive(Debug, Deserialize)]
struct DiskList {
    #[serde(default)]
    disk: Vec<Reference>,
}

/// Checks a backup request against the inventory; on success the backup to start.
fn admit(inventory: &Inventory, vm_id: &str, request: StartRequest) -> Result<Backup, Refusal> {
    let Some(vm) = inventory.vm(vm_id) else {
        return Err(Refusal::NotFound);
    };
    let wanted = requested_disks(request.disks)?;
    check_vm_can_back_up(inventory, vm, request.id.as_deref())?;
    check_disks_ready(inventory, vm, &wanted)?;
    let from = starting_checkpoint(inventory, vm_id, request.from_checkpoint_id.as_deref())?;
    let disks = backup_disks(inventory, &wanted, from);
    let now = now_ms();
    Ok(Backup {
        id: request
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        vm: vm_id.to_owned(),
        phase: "initializing".into(),
        from_checkpoint_id: request.from_checkpoint_id,
        to_checkpoint_id: uuid::Uuid::new_v4().to_string(),
        disks,
        description: request.description.unwrap_or_default(),
        creation_date: now,
        modification_date: now,
        snapshot: uuid::Uuid::new_v4().to_string(),
        failure: None,
        busy: true,
    })
}

/// The ids of the disks a backup request names; the engine refuses a request without any.
fn requested_disks(disks: Option<DiskList>) -> Result<Vec<String>, Refusal> {
    let wanted: Vec<String> = disks
        .map(|d| d.disk.into_iter().filter_map(|r| r.id).collect())
        .unwrap_or_default();
    if wanted.is_empty() {
        return Err(Refusal::incomplete("VmBackup [disks] required for add"));
    }
    Ok(wanted)
}

/// The VM-wide conditions of a backup: the VM is up or down, runs no other backup, and the
/// requested backup id (if any) is new.
fn check_vm_can_back_up(
    inventory: &Inventory,
    vm: &Vm,
    backup_id: Option<&str>,
) -> Result<(), Refusal> {
    if !matches!(vm.status.as_str(), "up" | "down") {
        let status = if vm.status == "image_locked" {
            "VM is locked. Please try again in a few minutes"
        } else {
            "The Virtual Machine should be in Up or Down status"
        };
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            &format!("Cannot backup VM: {status}."),
        ));
    }
    if inventory.running_backup(&vm.id).is_some() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot backup VM. The VM is during a backup operation.",
        ));
    }
    if let Some(id) = backup_id
        && inventory.backups.iter().any(|b| b.id == id)
    {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            &format!("Cannot backup VM. The specified VM backup ID {id} already exists."),
        ));
    }
    Ok(())
}

/// Every wanted disk is attached (active) to the VM and `ok`. An unattached disk is refused
/// at once; locked disks are all named together, as the engine does.
fn check_disks_ready(inventory: &Inventory, vm: &Vm, wanted: &[String]) -> Result<(), Refusal> {
    let mut locked = Vec::new();
    for id in wanted {
        let disk = inventory.disks.iter().find(|d| &d.id == id);
        let attached = (vm.attachments.iter()).any(|a| &a.disk == id && a.is_own() && a.active);
        match disk {
            Some(disk) if attached && disk.status == "ok" => {}
            Some(disk) if attached => locked.push(disk.alias.clone()),
            _ => {
                return Err(Refusal::fault(
                    StatusCode::BAD_REQUEST,
                    &format!("Cannot backup VM. Disk {id} is not attached to the VM."),
                ));
            }
        }
    }
    if !locked.is_empty() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot backup VM: The following disks are locked: {}. Please try again in a few minutes.",
                locked.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The checkpoint an incremental backup starts from: it must exist on this VM and be valid.
fn starting_checkpoint<'a>(
    inventory: &'a Inventory,
    vm_id: &str,
    from_checkpoint_id: Option<&str>,
) -> Result<Option<&'a Checkpoint>, Refusal> {
    let Some(id) = from_checkpoint_id else {
        return Ok(None);
    };
    let found = inventory
        .checkpoints
        .iter()
        .find(|c| c.id == id && c.vm == vm_id);
    match found {
        None => Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            &format!("Cannot backup VM. Checkpoint ID {id} doesn't exist."),
        )),
        Some(c) if c.state == "invalid" => Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            &format!("Cannot backup VM. Checkpoint ID {id} is invalid and should be removed."),
        )),
        Some(c) => Ok(Some(c)),
    }
}

/// The backup's disks: incremental where the starting checkpoint covers the disk (only a disk
/// that tracks its changes can be covered), else full.
fn backup_disks(
    inventory: &Inventory,
    wanted: &[String],
    from: Option<&Checkpoint>,
) -> Vec<BackupDisk> {
    wanted
        .iter()
        .map(|id| BackupDisk {
            id: id.clone(),
            mode: if from.is_some_and(|c| c.disks.contains(id)) && inventory.tracks_changes(id) {
                "incremental"
            } else {
                "full"
            }
            .into(),
        })
        .collect()
}

/// `POST /vms/{vm}/backups`: the disks are locked and frozen at this moment.
async fn start(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
    Path(vm): Path<String>,
    Body(request): Body<StartRequest>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return fault(StatusCode::CONFLICT, "Cannot backup VM: no host is up.");
    };
    let backup = match register(&engine, &vm, request, &user) {
        Ok(backup) => backup,
        Err(refused) => return refused.into_response(),
    };
    let images: Vec<Frozen> = {
        let inventory = engine.inventory.lock().expect("inventory lock");
        let frozen = |d: &BackupDisk| Frozen {
            image: plane.image(&d.id),
            incremental: d.mode == "incremental",
            tracked: inventory.tracks_changes(&d.id),
        };
        backup.disks.iter().map(frozen).collect()
    };
    let (from, to) = (
        backup.from_checkpoint_id.clone(),
        backup.to_checkpoint_id.clone(),
    );
    let failure = tokio::task::spawn_blocking(move || freeze_disks(&images, from.as_deref(), &to))
        .await
        .expect("the backup start task does not panic");
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(stored) = inventory.backups.iter_mut().find(|b| b.id == backup.id) else {
        return not_found();
    };
    stored.failure = failure;
    stored.busy = false;
    let body = backup_json(stored);
    engine.save(&inventory);
    created(&headers, "backup", &body)
}

/// Admits a backup of VM `vm` and registers it: its disks locked, `VM_BACKUP_STARTED` written.
fn register(
    engine: &Engine,
    vm: &str,
    request: StartRequest,
    user: &str,
) -> Result<Backup, Refusal> {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let backup = admit(&inventory, vm, request)?;
    inventory.set_disk_status(&backup.disk_ids(), "locked");
    inventory.backups.push(backup.clone());
    engine.load.observe(engine.running_backups(&inventory));
    engine.audit_vm(&inventory, Audit::BackupStarted(&backup.id), vm, Some(user));
    Ok(backup)
}

/// A disk of a starting backup: its image, whether it is backed up incrementally, and whether
/// it tracks its changes (gets the new checkpoint's bitmap).
struct Frozen {
    image: DiskImage,
    incremental: bool,
    tracked: bool,
}

/// Adds checkpoint `to`'s bitmap to each image and freezes it; an incremental disk needs the
/// bitmap of checkpoint `from`, present and not in use. On failure why, which fails the
/// backup at its next poll (the last failure found is the one told).
fn freeze_disks(images: &[Frozen], from: Option<&str>, to: &str) -> Option<String> {
    let mut failure = None;
    for Frozen {
        image,
        incremental,
        tracked,
    } in images
    {
        if *incremental && let Some(from) = from {
            let usable = image.checkpoints().is_ok_and(|bitmaps| {
                bitmaps
                    .iter()
                    .any(|b| b.name == from && !b.flags.iter().any(|f| f == "in-use"))
            });
            if !usable {
                failure = Some(format!(
                    "the bitmap of checkpoint {from} is missing in {}",
                    image.path().display()
                ));
            }
        }
        let begun = if *tracked {
            image.begin_backup(to)
        } else {
            image.begin_untracked_backup()
        };
        if let Err(e) = begun {
            failure = Some(e.to_string());
        }
    }
    failure
}

/// What a poll must do after answering.
enum Next {
    Nothing,
    /// The backup failed: thaw the disks, drop the new bitmap, and (a lost bitmap) forget the
    /// VM's checkpoints.
    Fail(Box<Backup>),
}

/// `GET /vms/{vm}/backups/{id}`: answers the current phase, then moves one phase on.
async fn poll(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let body = {
        let inventory = engine.inventory.lock().expect("inventory lock");
        let Some(index) = inventory.backup_index(&vm, &id) else {
            return not_found();
        };
        backup_json(&inventory.backups[index])
    };
    move_on(&engine, &vm, &id, None).await;
    represent(&headers, "backup", &body)
}

/// Moves VM `vm`'s backup `id` one phase on: after a poll, or by the engine's clock
/// (`crate::sim::clock`) when nobody polled it.
///
/// The clock passes the phase it saw (`expected`): a backup a poll moved on meanwhile is left.
pub(crate) async fn move_on(engine: &Engine, vm: &str, id: &str, expected: Option<&str>) {
    let next = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let Some(index) = inventory.backup_index(vm, id) else {
            return;
        };
        let before = inventory.backups[index].phase.clone();
        if expected.is_some_and(|phase| phase != before) {
            return;
        }
        let next = advance(&mut inventory, index);
        if before != "succeeded" && inventory.backups[index].phase == "succeeded" {
            engine.audit_vm(&inventory, Audit::BackupSucceeded(id), vm, None);
        }
        if let Next::Fail(backup) = &next {
            engine.audit_vm(&inventory, failed_event(backup), vm, None);
        }
        engine.save(&inventory);
        next
    };
    if let Next::Fail(backup) = next {
        fail(engine, &backup).await;
    }
}

/// Moves a backup one phase on.
fn advance(inventory: &mut Inventory, index: usize) -> Next {
    let backup = &mut inventory.backups[index];
    backup.modification_date = now_ms();
    if backup.busy {
        return Next::Nothing;
    }
    match (backup.phase.as_str(), backup.failure.is_some()) {
        ("initializing" | "starting", true) => {
            backup.phase = "failed".into();
            return Next::Fail(Box::new(backup.clone()));
        }
        ("initializing", false) => backup.phase = "starting".into(),
        ("starting", false) => {
            backup.phase = "ready".into();
            let checkpoint = Checkpoint {
                id: backup.to_checkpoint_id.clone(),
                vm: backup.vm.clone(),
                parent_id: None,
                creation_date: now_ms(),
                state: "created".into(),
                disks: backup.disk_ids(),
            };
            add_checkpoint(inventory, checkpoint);
        }
        ("finalizing", _) => backup.phase = "succeeded".into(),
        _ => {}
    }
    Next::Nothing
}

/// Records a checkpoint as the newest of its VM's chain; it covers the disks that track their
/// changes.
fn add_checkpoint(inventory: &mut Inventory, mut checkpoint: Checkpoint) {
    checkpoint.disks.retain(|id| inventory.tracks_changes(id));
    checkpoint.parent_id = inventory
        .checkpoints
        .iter()
        .filter(|c| c.vm == checkpoint.vm)
        .max_by_key(|c| c.creation_date)
        .map(|c| c.id.clone());
    inventory.checkpoints.push(checkpoint);
}

/// The event of a failed backup: an incremental one now needs a full.
fn failed_event(backup: &Backup) -> Audit<'_> {
    if backup.from_checkpoint_id.is_some() {
        Audit::IncrementalNeedsFull(&backup.id)
    } else {
        Audit::BackupFailed(&backup.id)
    }
}

/// A failed backup: the guest's writes are committed back, the new bitmap dropped; a lost
/// bitmap makes the engine forget every checkpoint of the VM (the next backup must be full).
async fn fail(engine: &Engine, backup: &Backup) {
    let Some(plane) = engine.data_plane.as_ref() else {
        return;
    };
    plane.end_backup_transfers(&backup.id).await;
    let forgotten: Vec<String> = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let ids = inventory
            .checkpoints
            .iter()
            .filter(|c| c.vm == backup.vm)
            .map(|c| c.id.clone())
            .collect();
        inventory.checkpoints.retain(|c| c.vm != backup.vm);
        ids
    };
    tracing::warn!(
        backup = %backup.id,
        "VM_INCREMENTAL_BACKUP_FAILED_FULL_VM_BACKUP_NEEDED: {}",
        backup.failure.as_deref().unwrap_or("the backup failed")
    );
    let mut bitmaps = forgotten;
    bitmaps.push(backup.to_checkpoint_id.clone());
    thaw(engine, backup, bitmaps).await;
}

/// Ends the disks' frozen view (committing the guest's writes) and removes `bitmaps` from them,
/// then unlocks the disks.
async fn thaw(engine: &Engine, backup: &Backup, bitmaps: Vec<String>) {
    let Some(plane) = engine.data_plane.as_ref() else {
        return;
    };
    let images: Vec<_> = backup.disks.iter().map(|d| plane.image(&d.id)).collect();
    let ended = tokio::task::spawn_blocking(move || {
        for image in &images {
            if let Err(e) = image.end_backup() {
                tracing::warn!("ending the backup of {}: {e}", image.path().display());
            }
            let present: Vec<String> = image
                .checkpoints()
                .map(|b| b.into_iter().map(|b| b.name).collect())
                .unwrap_or_default();
            for bitmap in bitmaps.iter().filter(|b| present.contains(b)) {
                if let Err(e) = image.remove_checkpoint(bitmap) {
                    tracing::warn!("removing bitmap {bitmap}: {e}");
                }
            }
        }
    });
    let _ = ended.await;
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    inventory.set_disk_status(&backup.disk_ids(), "ok");
    engine.save(&inventory);
}

/// `POST …/finalize`: the backup's transfers end, the disks are thawed and unlocked.
async fn finalize(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let (backup, was_ready) = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let Some(index) = inventory.backup_index(&vm, &id) else {
            return not_found();
        };
        let backup = &mut inventory.backups[index];
        if !backup.is_running() || backup.phase == "finalizing" {
            return action_fault(
                StatusCode::CONFLICT,
                &format!(
                    "Cannot finalize VM backup. The VM backup is not in READY phase, backup phase is {}.",
                    backup.phase.to_uppercase()
                ),
            );
        }
        let was_ready = backup.phase == "ready";
        backup.phase = "finalizing".into();
        backup.busy = true;
        backup.modification_date = now_ms();
        (backup.clone(), was_ready)
    };
    if let Some(plane) = engine.data_plane.as_ref() {
        plane.end_backup_transfers(&backup.id).await;
    }
    // A backup finalized before `ready` made no checkpoint: its bitmap goes too.
    let bitmaps = if was_ready {
        Vec::new()
    } else {
        vec![backup.to_checkpoint_id.clone()]
    };
    thaw(&engine, &backup, bitmaps).await;
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    engine.audit_vm(&inventory, Audit::BackupFinalized(&id), &vm, Some(&user));
    if let Some(index) = inventory.backup_index(&vm, &id) {
        inventory.backups[index].busy = false;
    }
    engine.save(&inventory);
    drop(inventory);
    action_complete(&headers)
}

async fn disks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let Some(backup) = inventory.backups.iter().find(|b| b.id == id && b.vm == vm) else {
        return not_found();
    };
    let ids: Vec<(String, Option<&str>)> = backup
        .disks
        .iter()
        .map(|d| (d.id.clone(), Some(d.mode.as_str())))
        .collect();
    represent(&headers, "disks", &disks_json(&inventory, &ids))
}

async fn checkpoints(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    vm_collection(
        &engine,
        &headers,
        &vm,
        ("checkpoints", "checkpoint"),
        |inv| {
            let mine = inv.checkpoints.iter().filter(|c| c.vm == vm);
            mine.map(checkpoint_json).collect()
        },
    )
}

async fn checkpoint(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    match inventory
        .checkpoints
        .iter()
        .find(|c| c.id == id && c.vm == vm)
    {
        Some(c) => represent(&headers, "checkpoint", &checkpoint_json(c)),
        None => not_found(),
    }
}

async fn checkpoint_disks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let Some(c) = inventory
        .checkpoints
        .iter()
        .find(|c| c.id == id && c.vm == vm)
    else {
        return not_found();
    };
    let ids: Vec<(String, Option<&str>)> = c.disks.iter().map(|d| (d.clone(), None)).collect();
    represent(&headers, "disks", &disks_json(&inventory, &ids))
}

/// `DELETE /vms/{vm}/checkpoints/{id}`: the bitmap leaves every disk; refused during a backup.
async fn remove_checkpoint(
    State(engine): State<Arc<Engine>>,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let checkpoint = {
        let inventory = engine.inventory.lock().expect("inventory lock");
        match removable_checkpoint(&inventory, &vm, &id) {
            Ok(checkpoint) => checkpoint.clone(),
            Err(refused) => return refused.into_response(),
        }
    };
    if let Some(plane) = engine.data_plane.as_ref()
        && let Err(e) = remove_bitmaps(plane, &checkpoint).await
    {
        return fault(
            StatusCode::CONFLICT,
            &format!("Cannot remove Checkpoint: {e}"),
        );
    }
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    inventory.checkpoints.retain(|c| c.id != checkpoint.id);
    for child in inventory
        .checkpoints
        .iter_mut()
        .filter(|c| c.parent_id.as_deref() == Some(&checkpoint.id))
    {
        child.parent_id.clone_from(&checkpoint.parent_id);
    }
    engine.save(&inventory);
    StatusCode::OK.into_response()
}

/// The checkpoint `id` of VM `vm`, which may go only while the VM runs no backup.
fn removable_checkpoint<'a>(
    inventory: &'a Inventory,
    vm: &str,
    id: &str,
) -> Result<&'a Checkpoint, Refusal> {
    let Some(checkpoint) = inventory
        .checkpoints
        .iter()
        .find(|c| c.id == id && c.vm == vm)
    else {
        return Err(Refusal::NotFound);
    };
    if inventory.running_backup(vm).is_some() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot remove Checkpoint. The VM is during a backup operation.",
        ));
    }
    Ok(checkpoint)
}

/// Removes the checkpoint's bitmap from each of its disks that still has it.
async fn remove_bitmaps(plane: &DataPlane, checkpoint: &Checkpoint) -> Result<(), SimError> {
    let images: Vec<_> = checkpoint.disks.iter().map(|d| plane.image(d)).collect();
    let bitmap = checkpoint.id.clone();
    tokio::task::spawn_blocking(move || {
        images.iter().try_for_each(|image| {
            let present = image.checkpoints()?.iter().any(|b| b.name == bitmap);
            if present {
                image.remove_checkpoint(&bitmap)?;
            }
            Ok::<(), SimError>(())
        })
    })
    .await
    .expect("the bitmap task does not panic")
}
