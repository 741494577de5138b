//! VM snapshots (section 5 of the API page), with real volumes: creating one turns each covered
//! disk's active volume into a read-only layer under a new active volume (`disk/layers.rs`);
//! removing one merges its layers in the background, and it stays `locked` until they are
//! merged. The list always holds the "Active VM" snapshot. A new snapshot is `locked` (its disks
//! too) for one poll, then `ok`; a deleted one stays `locked` for a poll after its merge, then
//! is gone (404). Unpolled, each moves on after the engine's pace (`crate::sim::clock`).
//! Snapshots conflict with backups, transfers and each other (409).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SimError;
use super::body::{Body, Flag, Reference};
use super::inventory::{Disk, Inventory, Snapshot, Vm, id_of};
use super::login::User;
use super::reply::{Refusal, created, fault, incomplete, not_found, represent};
use super::state::events::Audit;
use super::state::{API, Engine};
use super::volumes;

/// The routes of snapshots.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route(
            "/ovirt-engine/api/vms/{vm}/snapshots",
            get(list).post(create),
        )
        .route(
            "/ovirt-engine/api/vms/{vm}/snapshots/{id}",
            get(poll).delete(remove),
        )
        .route(
            "/ovirt-engine/api/vms/{vm}/snapshots/{id}/disks",
            get(disks),
        )
}

fn snapshot_json(snapshot: &Snapshot, kind: &str) -> Value {
    let href = format!("{API}/vms/{}/snapshots/{}", snapshot.vm, snapshot.id);
    json!({
        "id": snapshot.id, "href": href,
        "link": [{"href": format!("{href}/disks"), "rel": "disks"}],
        "date": snapshot.date,
        "description": snapshot.description,
        "persist_memorystate": if snapshot.persist_memorystate { "true" } else { "false" },
        "snapshot_status": snapshot.status,
        "snapshot_type": kind,
        "vm": {"href": format!("{API}/vms/{}", snapshot.vm), "id": snapshot.vm},
    })
}

/// The "Active VM" snapshot every VM has.
fn active(vm: &Vm) -> Snapshot {
    Snapshot {
        id: id_of("active-snapshot", &vm.id),
        vm: vm.id.clone(),
        description: "Active VM".into(),
        date: chrono::Utc::now().timestamp_millis(),
        status: "ok".into(),
        persist_memorystate: false,
        disks: vm.own_disks().map(str::to_owned).collect(),
        settle_polls: 0,
        removing: false,
        merging: false,
    }
}

async fn list(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm(&vm) else {
        return not_found();
    };
    let mut found = vec![snapshot_json(&active(vm), "active")];
    found.extend(
        inventory
            .snapshots
            .iter()
            .filter(|s| s.vm == vm.id)
            .map(|s| snapshot_json(s, "regular")),
    );
    represent(&headers, "snapshots", &json!({ "snapshot": found }))
}

#[derive(Debug, Deserialize)]
struct SnapshotRequest {
    description: Option<String>,
    persist_memorystate: Option<Flag>,
    disk_attachments: Option<AttachmentList>,
}

#[derive(Debug, Deserialize)]
struct AttachmentList {
    #[serde(default)]
    disk_attachment: Vec<AttachmentRef>,
}

#[derive(Debug, Deserialize)]
struct AttachmentRef {
    disk: Option<Reference>,
}

/// Why a VM's snapshots cannot change now, if they cannot.
fn conflict(inventory: &Inventory, vm: &Vm) -> Option<Response> {
    if inventory.running_backup(&vm.id).is_some() {
        return Some(fault(
            StatusCode::CONFLICT,
            "Cannot create Snapshot. The VM is during a backup operation.",
        ));
    }
    if inventory
        .snapshots
        .iter()
        .any(|s| s.vm == vm.id && s.status == "locked")
    {
        return Some(fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot create Snapshot. Snapshot is currently being created for VM {}.",
                vm.name
            ),
        ));
    }
    let locked: Vec<&str> = inventory
        .disks
        .iter()
        .filter(|d| d.status == "locked" && vm.owns(&d.id))
        .map(|d| d.alias.as_str())
        .collect();
    (!locked.is_empty()).then(|| {
        fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot create Snapshot: The following disks are locked: {}. Please try again in a few minutes.",
                locked.join(", ")
            ),
        )
    })
}

/// `POST …/snapshots`: a `locked` snapshot of the VM's disks (or those the request names),
/// whose layers are made before the answer; `ok` after one poll.
async fn create(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
    Path(vm_id): Path<String>,
    Body(request): Body<SnapshotRequest>,
) -> Response {
    let snapshot = match begin_snapshot(&engine, &vm_id, request, &user) {
        Ok(snapshot) => snapshot,
        Err(refused) => return *refused,
    };
    if let Err(e) = make_layers(&engine, &snapshot).await {
        roll_back(&engine, &snapshot);
        return fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Failed to create snapshot {}: {e}", snapshot.description),
        );
    }
    created(&headers, "snapshot", &snapshot_json(&snapshot, "regular"))
}

/// Records a new `locked` snapshot and locks its disks, unless the VM's state refuses it.
fn begin_snapshot(
    engine: &Engine,
    vm_id: &str,
    request: SnapshotRequest,
    user: &str,
) -> Result<Snapshot, Box<Response>> {
    let Some(description) = request.description.filter(|d| !d.is_empty()) else {
        return Err(Box::new(incomplete(
            "Snapshot [description] required for add",
        )));
    };
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm(vm_id) else {
        return Err(Box::new(not_found()));
    };
    if let Some(refused) = conflict(&inventory, vm) {
        return Err(Box::new(refused));
    }
    let disks = snapshot_disks(vm, request.disk_attachments);
    let snapshot = Snapshot {
        id: uuid::Uuid::new_v4().to_string(),
        vm: vm_id.to_owned(),
        description,
        date: chrono::Utc::now().timestamp_millis(),
        status: "locked".into(),
        // The engine's default saves memory; a backup tool must ask for false.
        persist_memorystate: request.persist_memorystate.as_ref().is_none_or(Flag::value),
        disks,
        settle_polls: 1,
        removing: false,
        merging: false,
    };
    inventory.set_disk_status(&snapshot.disks, "locked");
    let creating = Audit::SnapshotCreating(&snapshot.description);
    engine.audit_vm(&inventory, creating, &snapshot.vm, Some(user));
    inventory.snapshots.push(snapshot.clone());
    engine.save(&inventory);
    Ok(snapshot)
}

/// Makes the snapshot's layer of each of its disks (with the guest held off each disk); a
/// failure merges back the layers already made.
async fn make_layers(engine: &Engine, snapshot: &Snapshot) -> Result<(), SimError> {
    let Some(plane) = engine.data_plane.as_ref() else {
        return Ok(());
    };
    for (done, disk) in snapshot.disks.iter().enumerate() {
        let (image, id) = (plane.image(disk), snapshot.id.clone());
        let made = plane
            .with_guest_held(disk, move || image.take_snapshot(&id))
            .await;
        if let Err(e) = made {
            for disk in &snapshot.disks[..done] {
                let (image, id) = (plane.image(disk), snapshot.id.clone());
                let undone = plane.with_guest_held(disk, move || image.merge_layer(&id, None));
                if let Err(e) = undone.await {
                    tracing::warn!(disk = %disk, "merging back a failed snapshot's layer: {e}");
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// A snapshot whose layers could not be made is gone again, its disks unlocked.
fn roll_back(engine: &Engine, snapshot: &Snapshot) {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    inventory.snapshots.retain(|s| s.id != snapshot.id);
    inventory.set_disk_status(&snapshot.disks, "ok");
    let failed = Audit::SnapshotFailed(&snapshot.description);
    engine.audit_vm(&inventory, failed, &snapshot.vm, None);
    engine.save(&inventory);
}

/// The disks a new snapshot covers: those of the request's attachments that the VM has, or
/// all the VM's disks when the request names none.
fn snapshot_disks(vm: &Vm, wanted: Option<AttachmentList>) -> Vec<String> {
    let Some(list) = wanted else {
        return vm.own_disks().map(str::to_owned).collect();
    };
    let named = list.disk_attachment.into_iter().filter_map(|a| a.disk?.id);
    named.filter(|d| vm.owns(d)).collect()
}

/// `GET …/snapshots/{id}`: answers, then moves on (`locked` -> `ok`, or a removal completes).
async fn poll(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    if let Some(vm) = inventory.vm(&vm)
        && id == id_of("active-snapshot", &vm.id)
    {
        return represent(&headers, "snapshot", &snapshot_json(&active(vm), "active"));
    }
    let Some(index) = inventory
        .snapshots
        .iter()
        .position(|s| s.id == id && s.vm == vm)
    else {
        return not_found();
    };
    let snapshot = &mut inventory.snapshots[index];
    let body = snapshot_json(snapshot, "regular");
    snapshot.settle_polls = snapshot.settle_polls.saturating_sub(1);
    if snapshot.settle_polls == 0 {
        settle(&engine, &mut inventory, index);
    }
    engine.save(&inventory);
    represent(&headers, "snapshot", &body)
}

/// A snapshot being created becomes `ok`, one being removed is gone; its disks are unlocked.
fn settle(engine: &Engine, inventory: &mut Inventory, index: usize) {
    let snapshot = &mut inventory.snapshots[index];
    let held = !snapshot.removing && engine.faults.snapshots_held();
    if snapshot.status != "locked" || snapshot.merging || held {
        return;
    }
    snapshot.settle_polls = 0;
    let (disks, removing) = (snapshot.disks.clone(), snapshot.removing);
    let (vm, description) = (snapshot.vm.clone(), snapshot.description.clone());
    if removing {
        inventory.snapshots.remove(index);
    } else {
        inventory.snapshots[index].status = "ok".into();
    }
    inventory.set_disk_status(&disks, "ok");
    let done = if removing {
        Audit::SnapshotRemoved(&description)
    } else {
        Audit::SnapshotCreated(&description)
    };
    engine.audit_vm(inventory, done, &vm, None);
}

/// The engine's clock (`crate::sim::clock`): snapshot `id` of VM `vm`, which nobody polled,
/// settles, if it is still being created (`removing` false) or removed as it was seen.
pub(crate) fn move_on(engine: &Engine, vm: &str, id: &str, removing: bool) {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let seen = |s: &Snapshot| s.id == id && s.vm == vm && s.removing == removing;
    if let Some(index) = inventory.snapshots.iter().position(seen) {
        settle(engine, &mut inventory, index);
        engine.save(&inventory);
    }
}

/// `DELETE …/snapshots/{id}`: the layers are merged in the background; the snapshot stays
/// `locked` until they are and one poll (or the engine's pace) has seen it, then is gone.
async fn remove(
    State(engine): State<Arc<Engine>>,
    axum::Extension(User(user)): axum::Extension<User>,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let index = match removable_snapshot(&inventory, &vm, &id) {
        Ok(index) => index,
        Err(refused) => return refused.into_response(),
    };
    let merges: Vec<(String, Option<String>)> = inventory.snapshots[index]
        .disks
        .iter()
        .map(|d| (d.clone(), volumes::child_of(&inventory, &id, d)))
        .collect();
    let snapshot = &mut inventory.snapshots[index];
    snapshot.status = "locked".into();
    snapshot.removing = true;
    snapshot.merging = true;
    snapshot.settle_polls = 1;
    let (disks, description) = (snapshot.disks.clone(), snapshot.description.clone());
    inventory.set_disk_status(&disks, "locked");
    let removing = Audit::SnapshotRemoving(&description);
    engine.audit_vm(&inventory, removing, &vm, Some(&user));
    engine.save(&inventory);
    drop(inventory);
    tokio::spawn(merge_layers(engine, id, merges));
    StatusCode::OK.into_response()
}

/// Merges a removed snapshot's layer of each disk into the volume above it; then the snapshot
/// may go. A failed merge leaves the snapshot `ok` (the engine's "failed to delete").
async fn merge_layers(engine: Arc<Engine>, id: String, merges: Vec<(String, Option<String>)>) {
    let mut failure = None;
    if let Some(plane) = engine.data_plane.as_ref() {
        for (disk, child) in merges {
            let (image, snapshot) = (plane.image(&disk), id.clone());
            let merge = move || image.merge_layer(&snapshot, child.as_deref());
            if let Err(e) = plane.with_guest_held(&disk, merge).await {
                tracing::warn!(snapshot = %id, disk = %disk, "merging a layer: {e}");
                failure = Some(e);
                break;
            }
        }
    }
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(snapshot) = inventory.snapshots.iter_mut().find(|s| s.id == id) else {
        return;
    };
    snapshot.merging = false;
    if failure.is_some() {
        snapshot.status = "ok".into();
        snapshot.removing = false;
        let (disks, vm, description) = (
            snapshot.disks.clone(),
            snapshot.vm.clone(),
            snapshot.description.clone(),
        );
        inventory.set_disk_status(&disks, "ok");
        engine.audit_vm(
            &inventory,
            Audit::SnapshotRemovalFailed(&description),
            &vm,
            None,
        );
    }
    engine.save(&inventory);
}

/// Where in the inventory the snapshot `id` of VM `vm` is, when it may be removed: not the
/// active one, not during a backup, not while it is being created or removed, and no other VM
/// sees one of the VM's disks at a snapshot.
fn removable_snapshot(inventory: &Inventory, vm: &str, id: &str) -> Result<usize, Refusal> {
    let Some(owner) = inventory.vm(vm) else {
        return Err(Refusal::NotFound);
    };
    if id == id_of("active-snapshot", &owner.id) {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot remove Snapshot. The active snapshot cannot be removed.",
        ));
    }
    if inventory.running_backup(vm).is_some() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot remove Snapshot. The VM is during a backup operation.",
        ));
    }
    let Some(index) = inventory
        .snapshots
        .iter()
        .position(|s| s.id == id && s.vm == vm)
    else {
        return Err(Refusal::NotFound);
    };
    check_settled(inventory, &inventory.snapshots[index])?;
    check_no_views_elsewhere(inventory, owner)?;
    Ok(index)
}

/// The snapshot is neither being created nor removed, and none of its disks is locked.
fn check_settled(inventory: &Inventory, snapshot: &Snapshot) -> Result<(), Refusal> {
    if snapshot.status == "locked" {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot remove Snapshot. Snapshot is currently being created or removed.",
        ));
    }
    let locked = inventory.locked_disk_aliases(&snapshot.disks);
    if !locked.is_empty() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot remove Snapshot: The following disks are locked: {}. Please try again in a few minutes.",
                locked.join(", ")
            ),
        ));
    }
    Ok(())
}

/// No other VM has one of `owner`'s disks attached at a snapshot: the engine refuses to remove
/// any snapshot of the VM until they are detached (its words, with each disk, snapshot and VM).
fn check_no_views_elsewhere(inventory: &Inventory, owner: &Vm) -> Result<(), Refusal> {
    let views: Vec<String> = (inventory.vms.iter())
        .flat_map(|vm| vm.attachments.iter().map(move |a| (vm, a)))
        .filter(|(_, a)| owner.owns(&a.disk))
        .filter_map(|(vm, a)| Some(view_of(inventory, &a.disk, a.snapshot.as_ref()?, vm)))
        .collect();
    if views.is_empty() {
        return Ok(());
    }
    Err(Refusal::fault(
        StatusCode::CONFLICT,
        &format!(
            "Cannot remove Snapshot. The following VM's disks snapshots are attached to other VMs (Disk Alias/Snapshot Description/VM attached to):\n\n {} \n\nPlease detach them from those VMs and try again.",
            views.join("\n")
        ),
    ))
}

/// `ALIAS ,SNAPSHOT, VM`: disk `disk` seen at snapshot `snapshot` by `vm`, in the engine's
/// words.
fn view_of(inventory: &Inventory, disk: &str, snapshot: &str, vm: &Vm) -> String {
    let alias = inventory.disks.iter().find(|d| d.id == disk);
    let alias = alias.map_or("", |d| d.alias.as_str());
    let taken = inventory.snapshots.iter().find(|s| s.id == snapshot);
    let taken = taken.map_or("", |s| s.description.as_str());
    format!("{alias} ,{taken}, {}", vm.name)
}

/// Disk `d` as snapshot `id` lists it, with the volume (`image`) that holds it there.
fn snapshot_disk_json(d: &Disk, image: Option<String>, id: &str) -> Value {
    json!({"id": d.id, "name": d.alias, "alias": d.alias, "content_type": "data",
           "format": d.format, "provisioned_size": d.provisioned_size.to_string(),
           "sparse": "true", "status": d.status, "storage_type": "image",
           "image_id": image, "snapshot": {"id": id},
           "storage_domains": {"storage_domain": [{"id": d.storage_domain}]}})
}

async fn disks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((vm, id)): Path<(String, String)>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let Some(owner) = inventory.vm(&vm) else {
        return not_found();
    };
    let ids = if id == id_of("active-snapshot", &owner.id) {
        active(owner).disks
    } else {
        match inventory
            .snapshots
            .iter()
            .find(|s| s.id == id && s.vm == vm)
        {
            Some(s) => s.disks.clone(),
            None => return not_found(),
        }
    };
    let active = id == id_of("active-snapshot", &owner.id);
    let found: Vec<Value> = inventory
        .disks
        .iter()
        .filter(|d| ids.contains(&d.id))
        .map(|d| {
            let image = if active {
                volumes::chain(&inventory, &d.id).pop().map(|v| v.id)
            } else {
                Some(volumes::layer_id(&id, &d.id))
            };
            snapshot_disk_json(d, image, &id)
        })
        .collect();
    represent(&headers, "disks", &json!({ "disk": found }))
}
