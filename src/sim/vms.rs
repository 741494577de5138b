//! VM changes a DR restore makes (section 11 of the API page): create (from the Blank
//! template, `down` at once), update (rename), remove (with or without its disks), start and
//! stop (statuses pass one per poll: `wait_for_launch` -> `powering_up` -> `up`), and disk
//! attachments. Conflicts answer the engine's 409 faults; a missing field its 400.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Deserialize;

use super::body::{Body, Flag, Number, Reference};
use super::inventory::{Attachment, Inventory, Vm};
use super::reply::{
    action_complete, action_fault, created, fault, incomplete, not_found, represent,
};
use super::resources::{attachment_json, vm_json};
use super::state::Engine;

const BLANK: &str = "00000000-0000-0000-0000-000000000000";

/// The routes of VM changes.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/vms", post(create))
        .route(
            "/ovirt-engine/api/vms/{id}",
            axum::routing::put(update).delete(remove),
        )
        .route("/ovirt-engine/api/vms/{id}/start", post(start))
        .route("/ovirt-engine/api/vms/{id}/stop", post(stop))
        .route("/ovirt-engine/api/vms/{id}/shutdown", post(stop))
        .route("/ovirt-engine/api/vms/{id}/diskattachments", post(attach))
        .route(
            "/ovirt-engine/api/vms/{id}/diskattachments/{disk}",
            delete(detach),
        )
}

#[derive(Debug, Deserialize)]
struct VmRequest {
    name: Option<String>,
    description: Option<String>,
    cluster: Option<Reference>,
    template: Option<Reference>,
    memory: Option<Number>,
}

fn name_in_use(inventory: &Inventory, name: &str, other_than: Option<&str>) -> bool {
    inventory
        .vms
        .iter()
        .any(|vm| vm.name == name && Some(vm.id.as_str()) != other_than)
}

fn name_taken(action: &str) -> Response {
    fault(
        StatusCode::CONFLICT,
        &format!(
            "Cannot {action} VM. The VM name is already in use, please choose a unique name and try again."
        ),
    )
}

/// `POST /vms`: a new VM from the Blank template, `down`.
async fn create(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Body(request): Body<VmRequest>,
) -> Response {
    let Some(name) = request.name.clone().filter(|n| !n.is_empty()) else {
        return incomplete("Vm [name] required for add");
    };
    let (Some(cluster), Some(template)) = (&request.cluster, &request.template) else {
        return incomplete("Vm [cluster.id|name, template.id|name] required for add");
    };
    if !template.names(BLANK, "Blank") {
        return fault(
            StatusCode::BAD_REQUEST,
            "Cannot add VM. The template doesn't exist.",
        );
    }
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(cluster) = inventory
        .clusters
        .iter()
        .find(|c| cluster.names(&c.id, &c.name))
        .map(|c| c.id.clone())
    else {
        return fault(
            StatusCode::BAD_REQUEST,
            "Cannot add VM. Cluster doesn't exist.",
        );
    };
    if name_in_use(&inventory, &name, None) {
        return name_taken("add");
    }
    let vm = Vm {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        status: "down".into(),
        cluster,
        host: None,
        memory: request
            .memory
            .as_ref()
            .and_then(Number::value)
            .unwrap_or(1 << 30),
        attachments: Vec::new(),
        pending_status: Vec::new(),
        description: request.description.unwrap_or_default(),
    };
    let body = vm_json(&vm);
    inventory.vms.push(vm);
    engine.save(&inventory);
    created(&headers, "vm", &body)
}

/// `PUT /vms/{id}`: rename (and description); 409 when locked or the name is taken.
async fn update(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(request): Body<VmRequest>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm(&id) else {
        return not_found();
    };
    if vm.status == "image_locked" || inventory.running_backup(&id).is_some() {
        return fault(
            StatusCode::CONFLICT,
            "Cannot edit VM. VM is locked. Please try again in a few minutes.",
        );
    }
    if let Some(name) = &request.name
        && name_in_use(&inventory, name, Some(&id))
    {
        return name_taken("edit");
    }
    let vm = inventory.vm_mut(&id).expect("found above");
    if let Some(name) = request.name {
        vm.name = name;
    }
    if let Some(description) = request.description {
        vm.description = description;
    }
    let body = vm_json(vm);
    engine.save(&inventory);
    represent(&headers, "vm", &body)
}

#[derive(Debug, Default, Deserialize)]
struct RemoveQuery {
    detach_only: Option<String>,
}

/// `DELETE /vms/{id}`: a running VM is refused; its disks go too unless `detach_only=true`.
async fn remove(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Response {
    let disks: Vec<String> = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let Some(vm) = inventory.vm(&id) else {
            return not_found();
        };
        if vm.status != "down" {
            return fault(StatusCode::CONFLICT, "Cannot remove VM. VM is running.");
        }
        if inventory.running_backup(&id).is_some() {
            return fault(
                StatusCode::CONFLICT,
                "Cannot remove VM. The VM is during a backup operation.",
            );
        }
        let disks = if query.detach_only.as_deref() == Some("true") {
            Vec::new()
        } else {
            vm.attachments.iter().map(|a| a.disk.clone()).collect()
        };
        inventory.vms.retain(|vm| vm.id != id);
        inventory.disks.retain(|d| !disks.contains(&d.id));
        inventory.checkpoints.retain(|c| c.vm != id);
        inventory.snapshots.retain(|s| s.vm != id);
        engine.save(&inventory);
        disks
    };
    if let Some(plane) = engine.data_plane.as_ref() {
        let paths: Vec<_> = disks
            .iter()
            .map(|d| plane.image(d).path().to_owned())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            paths.iter().for_each(|p| {
                let _ = fs_err::remove_file(p);
            });
        })
        .await;
    }
    StatusCode::OK.into_response()
}

/// `POST /vms/{id}/start`: from `down`, through `wait_for_launch` and `powering_up` to `up`.
async fn start(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let host = inventory.hosts.first().map(|h| h.id.clone());
    let Some(vm) = inventory.vm_mut(&id) else {
        return not_found();
    };
    match vm.status.as_str() {
        "down" => {}
        "up" | "wait_for_launch" | "powering_up" => {
            return action_fault(StatusCode::CONFLICT, "Cannot run VM. VM is running.");
        }
        _ => {
            return action_fault(
                StatusCode::CONFLICT,
                "Cannot run VM. VM is locked. Please try again in a few minutes.",
            );
        }
    }
    if vm.attachments.is_empty() {
        return action_fault(
            StatusCode::CONFLICT,
            "Cannot run VM. VM has no disks and no network boot device.",
        );
    }
    vm.status = "wait_for_launch".into();
    vm.pending_status = vec!["powering_up".into(), "up".into()];
    vm.host = host;
    engine.save(&inventory);
    action_complete(&headers)
}

/// `POST /vms/{id}/stop` (and `shutdown`): `down` at once.
async fn stop(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm_mut(&id) else {
        return not_found();
    };
    vm.status = "down".into();
    vm.pending_status.clear();
    vm.host = None;
    engine.save(&inventory);
    action_complete(&headers)
}

#[derive(Debug, Deserialize)]
struct AttachRequest {
    disk: Option<Reference>,
    interface: Option<String>,
    bootable: Option<Flag>,
    active: Option<Flag>,
}

/// `POST /vms/{id}/diskattachments`: attaches an existing, unattached disk.
async fn attach(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(request): Body<AttachRequest>,
) -> Response {
    let Some(disk_id) = request.disk.and_then(|d| d.id) else {
        return incomplete("DiskAttachment [disk.id] required for add");
    };
    let Some(interface) = request.interface else {
        return incomplete("DiskAttachment [interface] required for add");
    };
    if !matches!(
        interface.as_str(),
        "virtio_scsi" | "virtio" | "sata" | "ide" | "spapr_vscsi"
    ) {
        return fault(
            StatusCode::BAD_REQUEST,
            &format!("Cannot attach Virtual Disk. Invalid interface {interface}."),
        );
    }
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    if inventory.vm(&id).is_none() {
        return not_found();
    }
    let Some(disk) = inventory.disks.iter().find(|d| d.id == disk_id) else {
        return fault(
            StatusCode::BAD_REQUEST,
            "Cannot attach Virtual Disk. The disk doesn't exist.",
        );
    };
    if disk.status == "locked" {
        return fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot attach Virtual Disk. The following disks are locked: {}. Please try again in a few minutes.",
                disk.alias
            ),
        );
    }
    if inventory
        .vms
        .iter()
        .any(|vm| vm.attachments.iter().any(|a| a.disk == disk_id))
    {
        return fault(
            StatusCode::CONFLICT,
            "Cannot attach Virtual Disk. The disk is already attached to a VM.",
        );
    }
    let bootable = request.bootable.as_ref().is_some_and(Flag::value);
    let vm = inventory.vm_mut(&id).expect("found above");
    if bootable && vm.attachments.iter().any(|a| a.bootable) {
        return fault(
            StatusCode::CONFLICT,
            "Cannot attach Virtual Disk. The VM already has a bootable disk.",
        );
    }
    let attachment = Attachment {
        disk: disk_id,
        interface,
        bootable,
        active: request.active.as_ref().is_none_or(Flag::value),
    };
    vm.attachments.push(attachment.clone());
    let body = attachment_json(vm, &attachment);
    engine.save(&inventory);
    created(&headers, "disk_attachment", &body)
}

/// `DELETE /vms/{id}/diskattachments/{disk}`: detaches (the disk stays).
async fn detach(
    State(engine): State<Arc<Engine>>,
    Path((id, disk)): Path<(String, String)>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm_mut(&id) else {
        return not_found();
    };
    let before = vm.attachments.len();
    vm.attachments.retain(|a| a.disk != disk);
    if vm.attachments.len() == before {
        return not_found();
    }
    engine.save(&inventory);
    StatusCode::OK.into_response()
}
