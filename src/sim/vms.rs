//! VM changes a DR restore makes (section 11 of the API page): create (from the Blank
//! template, `down` at once, with the configuration the request gives: [`super::settings`]),
//! update (rename, and the configuration), remove (with or without its disks; its NICs always),
//! start and stop (statuses pass one per poll: `wait_for_launch` -> `powering_up` -> `up`), and
//! disk attachments. Conflicts answer the engine's 409 faults; a missing field its 400.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Deserialize;

use super::body::{Body, Flag, Number, Reference, Text};
use super::devices::BLANK;
use super::inventory::{Attachment, Inventory, Snapshot, Vm, id_of};
use super::login::User;
use super::reply::{Refusal, action_complete, action_fault, created, not_found, represent};
use super::resources::{NewDisk, attachment_json, create_disk, vm_json};
use super::settings::{SettingsRequest, VmSettings, check_memory};
use super::state::Engine;
use super::state::events::Audit;

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
            delete(detach).put(update_attachment),
        )
}

#[derive(Debug, Deserialize)]
struct VmRequest {
    name: Option<String>,
    description: Option<Text>,
    cluster: Option<Reference>,
    template: Option<Reference>,
    memory: Option<Number>,
    /// CPU, firmware, OS, ... (each optional).
    #[serde(flatten)]
    settings: SettingsRequest,
}

fn name_in_use(inventory: &Inventory, name: &str, other_than: Option<&str>) -> bool {
    inventory
        .vms
        .iter()
        .any(|vm| vm.name == name && Some(vm.id.as_str()) != other_than)
}

fn name_taken(action: &str) -> Refusal {
    Refusal::fault(
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
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let vm = match admit_vm(&inventory, request) {
        Ok(vm) => vm,
        Err(refused) => return refused.into_response(),
    };
    let body = vm_json(&vm, engine.version);
    inventory.vms.push(vm);
    engine.save(&inventory);
    created(&headers, "vm", &body)
}

/// Memory of a new VM whose request names none: 1 GiB.
const DEFAULT_VM_MEMORY: u64 = 1 << 30;

/// Checks a new VM's request (a unique name, an existing cluster, the Blank template, its
/// configuration); on success the VM to add.
fn admit_vm(inventory: &Inventory, request: VmRequest) -> Result<Vm, Refusal> {
    let (name, cluster) = check_new_vm(inventory, &request)?;
    let memory = request.memory.as_ref().and_then(Number::value);
    let memory = memory.unwrap_or(DEFAULT_VM_MEMORY);
    // The engine's memory policy for a new VM: all of it guaranteed (the cluster's overcommit
    // is 100%), four times it at most (`BackendVmsResource`).
    let blank = VmSettings {
        memory_guaranteed: Some(memory),
        memory_max: Some(memory.saturating_mul(4)),
        ..VmSettings::default()
    };
    let settings = request.settings.apply(&blank)?;
    check_memory(&settings, memory, "add")?;
    Ok(Vm {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        status: "down".into(),
        cluster,
        host: None,
        memory,
        attachments: Vec::new(),
        pending_status: Vec::new(),
        description: request.description.map(|d| d.value()).unwrap_or_default(),
        settings,
        nics: Vec::new(),
    })
}

/// A new VM's name (given, unique) and cluster (existing), from the Blank template.
fn check_new_vm(inventory: &Inventory, request: &VmRequest) -> Result<(String, String), Refusal> {
    let Some(name) = request.name.clone().filter(|n| !n.is_empty()) else {
        return Err(Refusal::incomplete("Vm [name] required for add"));
    };
    let (Some(cluster), Some(template)) = (&request.cluster, &request.template) else {
        return Err(Refusal::incomplete(
            "Vm [cluster.id|name, template.id|name] required for add",
        ));
    };
    if !template.names(BLANK, "Blank") {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot add VM. The template doesn't exist.",
        ));
    }
    let cluster = existing_cluster(inventory, cluster)?;
    if name_in_use(inventory, &name, None) {
        return Err(name_taken("add"));
    }
    Ok((name, cluster))
}

/// The id of the cluster a new VM names (by id or name), which must exist.
fn existing_cluster(inventory: &Inventory, wanted: &Reference) -> Result<String, Refusal> {
    inventory
        .clusters
        .iter()
        .find(|c| wanted.names(&c.id, &c.name))
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            Refusal::fault(
                StatusCode::BAD_REQUEST,
                "Cannot add VM. Cluster doesn't exist.",
            )
        })
}

/// `PUT /vms/{id}`: rename, describe, reconfigure; 409 when locked or the name is taken.
async fn update(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(request): Body<VmRequest>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let (settings, memory) = match check_edit(&inventory, &id, &request) {
        Ok(edited) => edited,
        Err(refused) => return refused.into_response(),
    };
    let vm = inventory.vm_mut(&id).expect("checked");
    if let Some(name) = request.name {
        vm.name = name;
    }
    if let Some(description) = request.description {
        vm.description = description.value();
    }
    (vm.settings, vm.memory) = (settings, memory);
    let body = vm_json(vm, engine.version);
    engine.save(&inventory);
    represent(&headers, "vm", &body)
}

/// Checks an edit of VM `id` (it exists, is not locked, a new name is free); on success its
/// configuration and memory as edited.
fn check_edit(
    inventory: &Inventory,
    id: &str,
    request: &VmRequest,
) -> Result<(VmSettings, u64), Refusal> {
    let Some(vm) = inventory.vm(id) else {
        return Err(Refusal::NotFound);
    };
    if vm.status == "image_locked" || inventory.running_backup(id).is_some() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot edit VM. VM is locked. Please try again in a few minutes.",
        ));
    }
    if let Some(name) = &request.name
        && name_in_use(inventory, name, Some(id))
    {
        return Err(name_taken("edit"));
    }
    let memory = request.memory.as_ref().and_then(Number::value);
    let memory = memory.unwrap_or(vm.memory);
    // An edit keeps the policy the VM has: the engine computes one only for a new VM.
    let mut current = vm.settings.clone();
    current.memory_guaranteed = Some(current.guaranteed(vm.memory));
    current.memory_max = Some(current.max(vm.memory));
    let settings = request.settings.apply(&current)?;
    check_memory(&settings, memory, "edit")?;
    Ok((settings, memory))
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
    let detach_only = query.detach_only.as_deref() == Some("true");
    let removed = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let removed = forget_vm(&mut inventory, &id, detach_only);
        if removed.is_ok() {
            engine.save(&inventory);
        }
        removed
    };
    let disks = match removed {
        Ok(disks) => disks,
        Err(refused) => return refused.into_response(),
    };
    if let Some(plane) = engine.data_plane.as_ref() {
        let images: Vec<_> = disks.iter().map(|d| plane.image(d)).collect();
        let _ = tokio::task::spawn_blocking(move || {
            images.iter().for_each(super::disk::DiskImage::remove_files)
        })
        .await;
    }
    StatusCode::OK.into_response()
}

/// Removes a down VM, with its checkpoints and snapshots and (unless `detach_only`) its
/// disks, from the inventory; on success the ids of the removed disks, whose images go next.
fn forget_vm(
    inventory: &mut Inventory,
    id: &str,
    detach_only: bool,
) -> Result<Vec<String>, Refusal> {
    let Some(vm) = inventory.vm(id) else {
        return Err(Refusal::NotFound);
    };
    if vm.status != "down" {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot remove VM. VM is running.",
        ));
    }
    if inventory.running_backup(id).is_some() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot remove VM. The VM is during a backup operation.",
        ));
    }
    let disks: Vec<String> = if detach_only {
        Vec::new()
    } else {
        // Disks it sees at another VM's snapshot are that VM's: they stay.
        vm.own_disks().map(str::to_owned).collect()
    };
    inventory.vms.retain(|vm| vm.id != id);
    for other in &mut inventory.vms {
        other.attachments.retain(|a| !disks.contains(&a.disk));
    }
    inventory.disks.retain(|d| !disks.contains(&d.id));
    inventory.checkpoints.retain(|c| c.vm != id);
    inventory.snapshots.retain(|s| s.vm != id);
    Ok(disks)
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
    /// An existing disk (by id), or a new one (with a size), which is created first.
    disk: Option<NewDisk>,
    interface: Option<String>,
    bootable: Option<Flag>,
    active: Option<Flag>,
}

/// `POST /vms/{id}/diskattachments`: attaches an existing, unattached disk, another VM's disk
/// as it was at one of its snapshots (`disk.snapshot.id`: how a backup appliance reads it; the
/// disk stays with its VM), or a new disk the request describes (created first, as the engine
/// does).
async fn attach(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
    Path(id): Path<String>,
    Body(request): Body<AttachRequest>,
) -> Response {
    let (request, fresh) = match with_new_disk(&engine, &id, request).await {
        Ok(made) => made,
        Err(refused) => return refused,
    };
    let attachment = match requested_attachment(request) {
        Ok(attachment) => attachment,
        Err(refused) => return refused.into_response(),
    };
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    if let Err(refused) = check_attachable(&inventory, &id, &attachment, fresh) {
        return refused.into_response();
    }
    let vm = inventory.vm_mut(&id).expect("checked above");
    vm.attachments.push(attachment.clone());
    let body = attachment_json(vm, &attachment);
    if !fresh {
        let attached = Audit::DiskAttached;
        engine.audit_vm_disk(&inventory, attached, (&id, &attachment.disk), Some(&user));
    }
    engine.save(&inventory);
    created(&headers, "disk_attachment", &body)
}

/// The request, its new disk (if it describes one) created and named by id, and whether it
/// was; the VM, the interface and a second bootable disk are checked first, so a refused
/// attachment makes no disk.
async fn with_new_disk(
    engine: &Engine,
    vm: &str,
    mut request: AttachRequest,
) -> Result<(AttachRequest, bool), Response> {
    let Some(new) = request.disk.take_if(|d| d.is_new()) else {
        return Ok((request, false));
    };
    requested_interface(request.interface.as_deref()).map_err(IntoResponse::into_response)?;
    let probe = Attachment {
        disk: String::new(),
        interface: String::new(),
        bootable: request.bootable.as_ref().is_some_and(Flag::value),
        active: true,
        snapshot: None,
        logical_name: None,
    };
    {
        let inventory = engine.inventory.lock().expect("inventory lock");
        check_attachable(&inventory, vm, &probe, true).map_err(IntoResponse::into_response)?;
    }
    let disk = create_disk(engine, new).await?;
    request.disk = Some(NewDisk::named(disk.id));
    Ok((request, true))
}

/// A known interface, which an attachment requires.
fn requested_interface(interface: Option<&str>) -> Result<String, Refusal> {
    let Some(interface) = interface else {
        return Err(Refusal::incomplete(
            "DiskAttachment [interface] required for add",
        ));
    };
    if !matches!(
        interface,
        "virtio_scsi" | "virtio" | "sata" | "ide" | "spapr_vscsi"
    ) {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            &format!("Cannot attach Virtual Disk. Invalid interface {interface}."),
        ));
    }
    Ok(interface.to_owned())
}

/// The attachment a request asks for: a disk id and a known interface are required; a disk
/// is active unless the request says otherwise; a snapshot, if named, is the one it is seen at.
fn requested_attachment(request: AttachRequest) -> Result<Attachment, Refusal> {
    let Some(disk) = request.disk.as_ref() else {
        return Err(Refusal::incomplete(
            "DiskAttachment [disk.id] required for add",
        ));
    };
    let Some(id) = disk.existing_id() else {
        return Err(Refusal::incomplete(
            "DiskAttachment [disk.id] required for add",
        ));
    };
    let interface = requested_interface(request.interface.as_deref())?;
    Ok(Attachment {
        disk: id.to_owned(),
        interface,
        bootable: request.bootable.as_ref().is_some_and(Flag::value),
        active: request.active.as_ref().is_none_or(Flag::value),
        snapshot: disk.snapshot_id().map(str::to_owned),
        logical_name: None,
    })
}

/// The VM exists, the disk is free to attach (a `fresh` one, being created for this
/// attachment, is) or a snapshot's view of it may be attached, and a bootable disk would be the
/// VM's only one.
fn check_attachable(
    inventory: &Inventory,
    vm_id: &str,
    attachment: &Attachment,
    fresh: bool,
) -> Result<(), Refusal> {
    let Some(vm) = inventory.vm(vm_id) else {
        return Err(Refusal::NotFound);
    };
    match &attachment.snapshot {
        Some(snapshot) => check_snapshot_view(inventory, vm, &attachment.disk, snapshot)?,
        None if !fresh => check_disk_unattached(inventory, &attachment.disk)?,
        None => {}
    }
    if attachment.bootable && vm.attachments.iter().any(|a| a.bootable) {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot attach Virtual Disk. The VM already has a bootable disk.",
        ));
    }
    Ok(())
}

/// The engine's answer to an attachment of a disk it does not have (or a snapshot that does
/// not cover it).
fn no_such_disk() -> Refusal {
    Refusal::fault(
        StatusCode::BAD_REQUEST,
        "Cannot attach Virtual Disk. The disk doesn't exist.",
    )
}

/// Disk `disk` as it was at snapshot `snapshot` may be attached to `vm`: the snapshot is a
/// regular one of the disk's VM that covers the disk and is `ok`, and `vm` has no attachment of
/// the disk yet (its own VM has: the disk itself).
fn check_snapshot_view(
    inventory: &Inventory,
    vm: &Vm,
    disk: &str,
    snapshot: &str,
) -> Result<(), Refusal> {
    let taken = regular_snapshot_of(inventory, disk, snapshot)?;
    if taken.status != "ok" {
        let status = taken.status.to_uppercase();
        let why = format!("Cannot attach Virtual Disk. The snapshot is in {status} status.");
        return Err(Refusal::fault(StatusCode::CONFLICT, &why));
    }
    if vm.attachments.iter().any(|a| a.disk == disk) {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot attach Virtual Disk. The disk is already attached to VM.",
        ));
    }
    Ok(())
}

/// Snapshot `snapshot` of the VM that owns disk `disk`, when it is a regular one (not the
/// active VM) that covers the disk.
fn regular_snapshot_of<'a>(
    inventory: &'a Inventory,
    disk: &str,
    snapshot: &str,
) -> Result<&'a Snapshot, Refusal> {
    let owner = inventory.owner_of(disk);
    if owner.is_some_and(|o| snapshot == id_of("active-snapshot", &o.id)) {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot attach Virtual Disk. The operation is only allowed for regular snapshots.",
        ));
    }
    let covers = |s: &&Snapshot| s.id == snapshot && s.disks.iter().any(|d| d == disk);
    inventory
        .snapshots
        .iter()
        .find(covers)
        .ok_or_else(no_such_disk)
}

/// The disk exists, is not locked, and is attached to no VM.
fn check_disk_unattached(inventory: &Inventory, disk_id: &str) -> Result<(), Refusal> {
    let Some(disk) = inventory.disks.iter().find(|d| d.id == disk_id) else {
        return Err(no_such_disk());
    };
    if disk.status == "locked" {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            &format!(
                "Cannot attach Virtual Disk. The following disks are locked: {}. Please try again in a few minutes.",
                disk.alias
            ),
        ));
    }
    if inventory.owner_of(disk_id).is_some() {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot attach Virtual Disk. The disk is already attached to a VM.",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct AttachmentUpdate {
    active: Option<Flag>,
    interface: Option<String>,
}

/// `PUT /vms/{id}/diskattachments/{disk}`: activates or deactivates the disk, or changes its
/// interface.
async fn update_attachment(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((id, disk)): Path<(String, String)>,
    Body(update): Body<AttachmentUpdate>,
) -> Response {
    let interface = update
        .interface
        .as_deref()
        .map(|i| requested_interface(Some(i)));
    let interface = match interface.transpose() {
        Ok(interface) => interface,
        Err(refused) => return refused.into_response(),
    };
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm_mut(&id) else {
        return not_found();
    };
    let Some(attachment) = vm.attachments.iter_mut().find(|a| a.disk == disk) else {
        return not_found();
    };
    if let Some(active) = &update.active {
        attachment.active = active.value();
    }
    if let Some(interface) = interface {
        attachment.interface = interface;
    }
    let updated = attachment.clone();
    let body = attachment_json(vm, &updated);
    engine.save(&inventory);
    represent(&headers, "disk_attachment", &body)
}

/// `DELETE /vms/{id}/diskattachments/{disk}`: detaches (the disk stays; a snapshot's view of
/// another VM's disk leaves that disk and its VM as they are).
async fn detach(
    State(engine): State<Arc<Engine>>,
    axum::Extension(User(user)): axum::Extension<User>,
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
    let detached = Audit::DiskDetached;
    engine.audit_vm_disk(&inventory, detached, (&id, &disk), Some(&user));
    engine.save(&inventory);
    StatusCode::OK.into_response()
}
