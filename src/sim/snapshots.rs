//! VM snapshots (section 5 of the API page), as a backup tool meets them: the list always holds
//! the "Active VM" snapshot; a new snapshot is `locked` (its disks too) for one poll, then
//! `ok`; a deleted one stays `locked` for one poll, then is gone (404). Unpolled, each moves on
//! after the engine's pace (`crate::sim::clock`). Snapshots conflict with
//! backups, transfers and each other (409). They are the engine's records only: ovsim's backups
//! freeze disks themselves (see `disk.rs`), so no snapshot volume is made here.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{Body, Flag, Reference};
use super::inventory::{Inventory, Snapshot, Vm, id_of};
use super::login::User;
use super::reply::{Refusal, created, fault, incomplete, not_found, represent};
use super::state::events::Audit;
use super::state::{API, Engine};

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
        disks: vm.attachments.iter().map(|a| a.disk.clone()).collect(),
        settle_polls: 0,
        removing: false,
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
        .filter(|d| d.status == "locked" && vm.attachments.iter().any(|a| a.disk == d.id))
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
/// `ok` after one poll.
async fn create(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
    Path(vm_id): Path<String>,
    Body(request): Body<SnapshotRequest>,
) -> Response {
    let Some(description) = request.description.filter(|d| !d.is_empty()) else {
        return incomplete("Snapshot [description] required for add");
    };
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm(&vm_id) else {
        return not_found();
    };
    if let Some(refused) = conflict(&inventory, vm) {
        return refused;
    }
    let disks = snapshot_disks(vm, request.disk_attachments);
    let snapshot = Snapshot {
        id: uuid::Uuid::new_v4().to_string(),
        vm: vm_id,
        description,
        date: chrono::Utc::now().timestamp_millis(),
        status: "locked".into(),
        // The engine's default saves memory; a backup tool must ask for false.
        persist_memorystate: request.persist_memorystate.as_ref().is_none_or(Flag::value),
        disks,
        settle_polls: 1,
        removing: false,
    };
    inventory.set_disk_status(&snapshot.disks, "locked");
    let body = snapshot_json(&snapshot, "regular");
    let creating = Audit::SnapshotCreating(&snapshot.description);
    engine.audit_vm(&inventory, creating, &snapshot.vm, Some(&user));
    inventory.snapshots.push(snapshot);
    engine.save(&inventory);
    created(&headers, "snapshot", &body)
}

/// The disks a new snapshot covers: those of the request's attachments that the VM has, or
/// all the VM's disks when the request names none.
fn snapshot_disks(vm: &Vm, wanted: Option<AttachmentList>) -> Vec<String> {
    let attached = vm.attachments.iter().map(|a| &a.disk);
    let Some(list) = wanted else {
        return attached.cloned().collect();
    };
    let named = list.disk_attachment.into_iter().filter_map(|a| a.disk?.id);
    named
        .filter(|d| vm.attachments.iter().any(|a| &a.disk == d))
        .collect()
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
    if snapshot.status != "locked" {
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

/// `DELETE …/snapshots/{id}`: the merge runs "in the background": `locked` for one poll, gone.
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
    let snapshot = &mut inventory.snapshots[index];
    snapshot.status = "locked".into();
    snapshot.removing = true;
    snapshot.settle_polls = 1;
    let (disks, description) = (snapshot.disks.clone(), snapshot.description.clone());
    inventory.set_disk_status(&disks, "locked");
    let removing = Audit::SnapshotRemoving(&description);
    engine.audit_vm(&inventory, removing, &vm, Some(&user));
    engine.save(&inventory);
    StatusCode::OK.into_response()
}

/// Where in the inventory the snapshot `id` of VM `vm` is, when it may be removed: not the
/// active one, not during a backup, not while it is being created or removed.
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
    if inventory.snapshots[index].status == "locked" {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot remove Snapshot. Snapshot is currently being created or removed.",
        ));
    }
    Ok(index)
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
    let found: Vec<Value> = inventory
        .disks
        .iter()
        .filter(|d| ids.contains(&d.id))
        .map(|d| {
            json!({"id": d.id, "name": d.alias, "alias": d.alias, "content_type": "data",
                   "format": d.format, "provisioned_size": d.provisioned_size.to_string(),
                   "sparse": "true", "status": d.status, "storage_type": "image",
                   "snapshot": {"id": id},
                   "storage_domains": {"storage_domain": [{"id": d.storage_domain}]}})
        })
        .collect();
    represent(&headers, "disks", &json!({ "disk": found }))
}
