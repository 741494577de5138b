//! Inventory resources of the engine API (section 4 of the API page): VMs (with name search;
//! their configuration fields are [`super::settings`]'s), disk attachments, disks, clusters,
//! storage domains and hosts, in the engine's JSON (scalars as strings) or XML. An unknown id is
//! 404 with an empty body, as the engine answers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{Body, Flag, Number, Reference};
use super::inventory::{Attachment, Disk, Inventory, Named, Vm};
use super::reply::{Refusal, created, fault, not_found, represent};
use super::search::Search;
use super::state::{API, Engine, EngineVersion};

/// The routes of the inventory.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/vms", get(vms))
        .route("/ovirt-engine/api/vms/{id}", get(vm))
        .route(
            "/ovirt-engine/api/vms/{id}/diskattachments",
            get(attachments),
        )
        .route(
            "/ovirt-engine/api/vms/{id}/diskattachments/{disk}",
            get(attachment),
        )
        .route("/ovirt-engine/api/disks", get(disks).post(add_disk))
        .route(
            "/ovirt-engine/api/disks/{id}",
            get(disk).delete(remove_disk),
        )
        .route(
            "/ovirt-engine/api/clusters",
            get(|s, h, q| named_list(s, h, q, Kind::Cluster)),
        )
        .route(
            "/ovirt-engine/api/clusters/{id}",
            get(|s, h, p| named_one(s, h, p, Kind::Cluster)),
        )
        .route(
            "/ovirt-engine/api/storagedomains",
            get(|s, h, q| named_list(s, h, q, Kind::StorageDomain)),
        )
        .route(
            "/ovirt-engine/api/storagedomains/{id}",
            get(|s, h, p| named_one(s, h, p, Kind::StorageDomain)),
        )
        .route("/ovirt-engine/api/datacenters", get(data_centers))
        .route("/ovirt-engine/api/datacenters/{id}", get(data_center))
        .route(
            "/ovirt-engine/api/datacenters/{id}/storagedomains",
            get(data_center_domains),
        )
        .route(
            "/ovirt-engine/api/hosts",
            get(|s, h, q| named_list(s, h, q, Kind::Host)),
        )
        .route(
            "/ovirt-engine/api/hosts/{id}",
            get(|s, h, p| named_one(s, h, p, Kind::Host)),
        )
}

/// `search=`, `case_sensitive=`, `max=` and `all_content=` of a list request.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    case_sensitive: Option<String>,
    max: Option<i64>,
    all_content: Option<String>,
}

/// `all_content=` of a request for one object.
#[derive(Debug, Default, Deserialize)]
pub struct ContentQuery {
    all_content: Option<String>,
}

/// Whether a request asks for all of an object's content (`all_content=true`, or the header
/// `All-Content: true`), which adds a VM's OVF.
fn wants_all_content(headers: &HeaderMap, query: Option<&str>) -> bool {
    let header = headers.get("all-content").and_then(|v| v.to_str().ok());
    [query, header]
        .into_iter()
        .flatten()
        .any(|v| v.eq_ignore_ascii_case("true"))
}

/// VM `vm`'s body with its OVF, as the engine adds it for `all_content`.
fn with_configuration(engine: &Engine, inventory: &Inventory, vm: &Vm, mut body: Value) -> Value {
    let ovf = super::ovf::vm_ovf(engine, inventory, vm);
    body["initialization"] = json!({"configuration": {"type": "ovf", "data": ovf}});
    body
}

impl ListQuery {
    /// The search parsed once, to filter and page a list with.
    pub(crate) fn filter(&self) -> Filter<'_> {
        let search = super::search::parse(self.search.as_deref().unwrap_or_default());
        Filter {
            query: self,
            search,
        }
    }
}

/// A list query with its search parsed.
pub(crate) struct Filter<'a> {
    query: &'a ListQuery,
    search: Search,
}

impl Filter<'_> {
    /// Whether an object named `name` matches the search ([`Self::matches`]).
    pub(crate) fn matches_name(&self, name: &str) -> bool {
        self.matches(&[("name", name)])
    }

    /// Whether an object with these `fields` matches every `FIELD=VALUE` term of the search
    /// (VALUE optionally quoted, `*` a wildcard; case-insensitive unless
    /// `case_sensitive=true`); a term on a field it has not, or a free word, does not match.
    /// `page N` is paging ([`Self::window`]); no search matches everything.
    fn matches(&self, fields: &[(&str, &str)]) -> bool {
        self.search.terms.iter().all(|term| {
            let Some((key, wanted)) = super::search::field(term) else {
                return false;
            };
            let value = fields.iter().find(|(field, _)| *field == key);
            value.is_some_and(|(_, value)| self.like(wanted, value))
        })
    }

    fn like(&self, wanted: &str, value: &str) -> bool {
        if self.query.case_sensitive.as_deref() == Some("true") {
            glob(wanted, value)
        } else {
            glob(&wanted.to_lowercase(), &value.to_lowercase())
        }
    }

    /// The part of `found` the client asked for: at most `max` (none, or a negative one, is no
    /// limit), from page N (`search=page N`, pages of `max`) when it asks for one.
    pub(crate) fn window<T>(&self, found: Vec<T>) -> Vec<T> {
        // No `max` is the engine's unlimited page: page 1 holds everything, later pages nothing.
        let max = (self.query.max)
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(usize::MAX);
        let page = self.search.page.unwrap_or(1);
        let skip = page.saturating_sub(1).saturating_mul(max);
        found.into_iter().skip(skip).take(max).collect()
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => text.strip_prefix(head).is_some_and(|tail| {
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }),
    }
}

fn href(kind: &str, id: &str) -> String {
    format!("{API}/{kind}/{id}")
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"href": href(kind, id), "id": id})
}

fn flag(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Runs `answer` on the inventory (requests here were authenticated by `login::require_login`).
fn with_inventory(engine: &Engine, answer: impl FnOnce(&Inventory) -> Response) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    answer(&inventory)
}

/// A VM in the engine's shape, with its configuration.
pub(crate) fn vm_json(vm: &Vm, version: EngineVersion) -> Value {
    let link = |rel: &str| json!({"href": format!("{}/{rel}", href("vms", &vm.id)), "rel": rel});
    let mut links = vec![link("diskattachments"), link("nics"), link("snapshots")];
    if version.has_backup_api() {
        links.extend([link("backups"), link("checkpoints")]);
    }
    let mut body = json!({
        "id": vm.id, "href": href("vms", &vm.id), "name": vm.name,
        "link": links,
        "description": vm.description,
        "memory": vm.memory.to_string(), "stateless": "false",
        "status": vm.status,
        "cluster": reference("clusters", &vm.cluster),
        "original_template": reference("templates", "00000000-0000-0000-0000-000000000000"),
        "template": reference("templates", "00000000-0000-0000-0000-000000000000"),
    });
    let settings = super::settings::settings_json(&vm.settings, vm.memory, version);
    if let (Some(fields), Value::Object(more)) = (body.as_object_mut(), settings) {
        fields.extend(more);
    }
    if let Some(host) = &vm.host {
        body["host"] = reference("hosts", host);
    }
    body
}

/// A disk attachment in the engine's shape (its logical name only when known, as the engine
/// has it only from a guest agent).
pub(crate) fn attachment_json(vm: &Vm, attachment: &Attachment) -> Value {
    let mut body = json!({
        "id": attachment.disk,
        "href": format!("{}/diskattachments/{}", href("vms", &vm.id), attachment.disk),
        "active": flag(attachment.active), "bootable": flag(attachment.bootable),
        "interface": attachment.interface, "pass_discard": "false", "read_only": "false",
        "uses_scsi_reservation": "false",
        "disk": reference("disks", &attachment.disk),
        "vm": reference("vms", &vm.id),
    });
    if let Some(name) = &attachment.logical_name {
        body["logical_name"] = json!(name);
    }
    body
}

/// The bytes disk `id`'s image takes on its storage (the engine's `actual_size`), when the data
/// plane holds it.
pub(crate) fn actual_size(engine: &Engine, id: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let plane = engine.data_plane.as_ref()?;
    let metadata = fs_err::metadata(plane.image(id).path()).ok()?;
    Some(metadata.blocks() * 512)
}

/// A disk in the engine's shape.
fn disk_json(disk: &Disk, actual_size: Option<u64>) -> Value {
    let mut body = json!({
        "id": disk.id, "href": href("disks", &disk.id),
        "alias": disk.alias, "name": disk.alias, "description": disk.description,
        "backup": if disk.tracks_changes() { "incremental" } else { "none" },
        "content_type": "data", "format": disk.format,
        "propagate_errors": "false", "provisioned_size": disk.provisioned_size.to_string(),
        "qcow_version": "qcow2_v3", "shareable": "false", "sparse": flag(disk.is_sparse()),
        "status": disk.status,
        "storage_type": "image", "wipe_after_delete": "false",
        "storage_domains": {"storage_domain": [reference("storagedomains", &disk.storage_domain)]},
    });
    if let Some(bytes) = actual_size {
        body["actual_size"] = json!(bytes.to_string());
        body["total_size"] = json!(bytes.to_string());
    }
    body
}

async fn vms(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let filter = query.filter();
    let all_content = wants_all_content(&headers, query.all_content.as_deref());
    with_inventory(&engine, |inv| {
        let found: Vec<Value> = inv
            .vms
            .iter()
            .filter(|vm| {
                filter.matches(&[("name", &vm.name), ("status", &vm.status), ("id", &vm.id)])
            })
            .map(|vm| {
                let body = vm_json(vm, engine.version);
                if all_content {
                    with_configuration(&engine, inv, vm, body)
                } else {
                    body
                }
            })
            .collect();
        represent(&headers, "vms", &json!({"vm": filter.window(found)}))
    })
}

async fn vm(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ContentQuery>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(vm) = inventory.vm(&id) else {
        return not_found();
    };
    let mut body = vm_json(vm, engine.version);
    if wants_all_content(&headers, query.all_content.as_deref()) {
        body = with_configuration(&engine, &inventory, vm, body);
    }
    let vm = inventory.vm_mut(&id).expect("found above");
    if !vm.pending_status.is_empty() {
        vm.status = vm.pending_status.remove(0);
    }
    represent(&headers, "vm", &body)
}

async fn attachments(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_inventory(&engine, |inv| match inv.vms.iter().find(|vm| vm.id == id) {
        Some(vm) => {
            let list: Vec<Value> = vm
                .attachments
                .iter()
                .map(|a| attachment_json(vm, a))
                .collect();
            represent(
                &headers,
                "disk_attachments",
                &json!({"disk_attachment": list}),
            )
        }
        None => not_found(),
    })
}

async fn attachment(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((id, disk)): Path<(String, String)>,
) -> Response {
    with_inventory(&engine, |inv| {
        let found = inv
            .vms
            .iter()
            .find(|vm| vm.id == id)
            .and_then(|vm| Some((vm, vm.attachments.iter().find(|a| a.disk == disk)?)));
        match found {
            Some((vm, a)) => represent(&headers, "disk_attachment", &attachment_json(vm, a)),
            None => not_found(),
        }
    })
}

async fn disks(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let filter = query.filter();
    with_inventory(&engine, |inv| {
        let found: Vec<Value> = inv
            .disks
            .iter()
            .filter(|d| filter.matches(&[("name", &d.alias), ("alias", &d.alias), ("id", &d.id)]))
            .map(|d| disk_json(d, actual_size(&engine, &d.id)))
            .collect();
        represent(&headers, "disks", &json!({"disk": filter.window(found)}))
    })
}

async fn disk(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(disk) = inventory.disks.iter_mut().find(|d| d.id == id) else {
        return not_found();
    };
    let body = disk_json(disk, actual_size(&engine, &id));
    if disk.settle_polls > 0 {
        disk.settle_polls -= 1;
        if disk.settle_polls == 0 {
            disk.status = "ok".into();
        }
        engine.save(&inventory);
    }
    represent(&headers, "disk", &body)
}

/// The engine's clock (`crate::sim::clock`): a new disk nobody polled becomes `ok`.
pub(crate) fn disk_created(engine: &Engine, id: &str) {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let new = inventory
        .disks
        .iter_mut()
        .find(|d| d.id == id && d.settle_polls > 0);
    if let Some(disk) = new {
        disk.settle_polls = 0;
        disk.status = "ok".into();
        engine.save(&inventory);
    }
}

/// A new disk as a request gives it (`POST /disks`, or the disk of a new attachment).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewDisk {
    id: Option<String>,
    name: Option<String>,
    alias: Option<String>,
    description: Option<String>,
    provisioned_size: Option<Number>,
    format: Option<String>,
    sparse: Option<Flag>,
    backup: Option<String>,
    storage_domains: Option<NewDiskDomains>,
    /// An existing disk attached as it was at this snapshot (`POST …/diskattachments`).
    snapshot: Option<Reference>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewDiskDomains {
    storage_domain: Vec<Reference>,
}

/// `DELETE /disks/{id}`: removes a disk and its image; refused while it is locked (a transfer
/// or a backup) or attached to a VM that is not down, as the engine refuses.
async fn remove_disk(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Response {
    {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let Some(disk) = inventory.disks.iter().find(|d| d.id == id) else {
            return not_found();
        };
        if disk.status == "locked" {
            return fault(
                StatusCode::CONFLICT,
                "Cannot remove Virtual Disk. Disk is locked. Please try again later.",
            );
        }
        let running = inventory
            .vms
            .iter()
            .any(|vm| vm.status != "down" && vm.attachments.iter().any(|a| a.disk == id));
        if running {
            return fault(
                StatusCode::CONFLICT,
                "Cannot remove Virtual Disk. VM is running.",
            );
        }
        for vm in &mut inventory.vms {
            vm.attachments.retain(|a| a.disk != id);
        }
        inventory.disks.retain(|d| d.id != id);
        engine.save(&inventory);
    }
    if let Some(plane) = engine.data_plane.as_ref() {
        let image = plane.image(&id);
        let _ = tokio::task::spawn_blocking(move || image.remove_files()).await;
    }
    StatusCode::OK.into_response()
}

/// `POST /disks`: a new, empty qcow2 disk in a storage domain; `locked` for one poll, then `ok`.
async fn add_disk(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Body(request): Body<NewDisk>,
) -> Response {
    match create_disk(&engine, request).await {
        Ok(disk) => {
            let body = disk_json(&disk, actual_size(&engine, &disk.id));
            created(&headers, "disk", &body)
        }
        Err(refused) => refused,
    }
}

impl NewDisk {
    /// A reference to the existing disk `id`.
    pub(crate) fn named(id: String) -> Self {
        Self {
            id: Some(id),
            ..Self::default()
        }
    }

    /// Whether an attachment's disk is one to create (it names no existing disk by id).
    pub(crate) fn is_new(&self) -> bool {
        self.id.is_none()
    }

    /// The id of the existing disk the request names (an attachment of a disk with an id
    /// attaches that disk, whatever else the request says, as on the engine).
    pub(crate) fn existing_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The snapshot at which an existing disk is to be attached, if the request names one.
    pub(crate) fn snapshot_id(&self) -> Option<&str> {
        self.snapshot.as_ref().and_then(|s| s.id.as_deref())
    }
}

/// Creates the disk a request asks for (`locked` until its first poll or the engine's pace):
/// its image, then its record.
///
/// # Errors
/// The engine's answer refusing it.
pub(crate) async fn create_disk(engine: &Engine, request: NewDisk) -> Result<Disk, Response> {
    let disk = admit_new_disk(engine, request).map_err(IntoResponse::into_response)?;
    let Some(plane) = engine.data_plane.as_ref() else {
        return Err(fault(
            StatusCode::BAD_REQUEST,
            "Cannot add Virtual Disk: no host is up",
        ));
    };
    let path = plane.disks.join(format!("{}.qcow2", disk.id));
    let size = disk.provisioned_size;
    let made = tokio::task::spawn_blocking(move || super::disk::DiskImage::create(&path, size))
        .await
        .expect("the disk task does not panic");
    if let Err(e) = made {
        let why = format!("Cannot add Virtual Disk: {e}");
        return Err(fault(StatusCode::BAD_REQUEST, &why));
    }
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    inventory.disks.push(disk.clone());
    engine.save(&inventory);
    Ok(disk)
}

/// Checks a new disk's request; on success the disk to add (its image not made yet).
fn admit_new_disk(engine: &Engine, request: NewDisk) -> Result<Disk, Refusal> {
    let taken = |id: &str| {
        engine
            .inventory
            .lock()
            .expect("inventory lock")
            .disks
            .iter()
            .any(|d| d.id == id)
    };
    if request.id.as_deref().is_some_and(taken) {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot add Virtual Disk. A disk with the same ID already exists.",
        ));
    }
    let (provisioned_size, format) = requested_size_and_format(&request)?;
    if format == "raw" && request.backup.as_deref() == Some("incremental") {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot add Virtual Disk. Incremental backup is not supported for RAW format disks.",
        ));
    }
    let storage_domain = requested_domain(engine, &request)?;
    let id = request
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let alias = request
        .alias
        .or(request.name)
        .unwrap_or_else(|| format!("disk-{id}"));
    Ok(Disk {
        id,
        alias,
        provisioned_size,
        format,
        status: "locked".into(),
        storage_domain,
        settle_polls: 1,
        description: request.description.unwrap_or_default(),
        sparse: request.sparse.as_ref().map(Flag::value),
        // The engine's default: a new disk's changed blocks are not tracked.
        backup: Some(request.backup.unwrap_or_else(|| "none".into())),
    })
}

/// A new disk's size (required, above 0) and format (`cow` or `raw`).
fn requested_size_and_format(request: &NewDisk) -> Result<(u64, String), Refusal> {
    let Some(size) = request
        .provisioned_size
        .as_ref()
        .and_then(Number::value)
        .filter(|s| *s > 0)
    else {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot add Virtual Disk: provisioned_size is required",
        ));
    };
    let format = request.format.clone().unwrap_or_default();
    if !matches!(format.as_str(), "cow" | "raw") {
        return Err(Refusal::fault(
            StatusCode::BAD_REQUEST,
            "Cannot add Virtual Disk: format must be cow or raw",
        ));
    }
    Ok((size, format))
}

/// The id of the storage domain a new disk names (by id or name), which must exist.
fn requested_domain(engine: &Engine, request: &NewDisk) -> Result<String, Refusal> {
    let wanted = request
        .storage_domains
        .as_ref()
        .and_then(|d| d.storage_domain.first());
    let inventory = engine.inventory.lock().expect("inventory lock");
    wanted
        .and_then(|w| {
            inventory
                .storage_domains
                .iter()
                .find(|sd| w.names(&sd.id, &sd.name))
                .map(|sd| sd.id.clone())
        })
        .ok_or_else(|| {
            Refusal::fault(
                StatusCode::BAD_REQUEST,
                "Cannot add Virtual Disk: Storage Domain doesn't exist",
            )
        })
}

/// A cluster, as the engine describes it (in its data center).
pub(crate) fn cluster_json(cluster: &Named) -> Value {
    Kind::Cluster.json(cluster)
}

#[derive(Clone, Copy)]
enum Kind {
    Cluster,
    StorageDomain,
    Host,
}

impl Kind {
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Cluster => ("clusters", "cluster", "clusters"),
            Kind::StorageDomain => ("storagedomains", "storage_domain", "storage_domains"),
            Kind::Host => ("hosts", "host", "hosts"),
        }
    }

    fn list(self, inv: &Inventory) -> &[Named] {
        match self {
            Kind::Cluster => &inv.clusters,
            Kind::StorageDomain => &inv.storage_domains,
            Kind::Host => &inv.hosts,
        }
    }

    fn json(self, item: &Named) -> Value {
        let (path, _, _) = self.names();
        let mut body = json!({"id": item.id, "href": href(path, &item.id), "name": item.name});
        match self {
            Kind::Cluster => {
                body["version"] = json!({"major": "4", "minor": "7"});
                body["data_center"] = reference("datacenters", &data_center_id());
            }
            Kind::StorageDomain => {
                body["type"] = json!("data");
                body["storage"] = json!({"type": "nfs"});
            }
            Kind::Host => {
                body["status"] = json!("up");
                body["address"] = json!("127.0.0.1");
            }
        }
        body
    }
}

async fn named_list(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
    kind: Kind,
) -> Response {
    let filter = query.filter();
    with_inventory(&engine, |inv| {
        let (_, singular, plural) = kind.names();
        let found: Vec<Value> = kind
            .list(inv)
            .iter()
            .filter(|x| filter.matches_name(&x.name))
            .map(|x| kind.json(x))
            .collect();
        represent(&headers, plural, &json!({ singular: filter.window(found) }))
    })
}

async fn named_one(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    kind: Kind,
) -> Response {
    with_inventory(&engine, |inv| {
        match kind.list(inv).iter().find(|x| x.id == id) {
            Some(item) => represent(&headers, kind.names().1, &kind.json(item)),
            None => not_found(),
        }
    })
}

/// The one data center, `Default`: every cluster and storage domain is in it.
/// The id of ovsim's one data center.
pub(crate) fn data_center_id() -> String {
    super::inventory::id_of("datacenter", "Default")
}

fn data_center_json() -> Value {
    let id = data_center_id();
    let link =
        |rel: &str| json!({"href": format!("{}/{rel}", href("datacenters", &id)), "rel": rel});
    json!({
        "id": id, "href": href("datacenters", &id), "name": "Default",
        "description": "The default Data Center",
        "link": [link("clusters"), link("storagedomains")],
        "local": "false", "quota_mode": "disabled", "status": "up", "storage_format": "v5",
        "version": {"major": "4", "minor": "7"},
    })
}

/// `GET /datacenters[?search=TERM and …]`: the one data center when each term holds.
async fn data_centers(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    with_inventory(&engine, |inv| {
        let search = query.search.as_deref().unwrap_or_default();
        let mut terms = search.split(" and ").filter(|t| !t.trim().is_empty());
        let holds = terms.all(|term| data_center_term(inv, term));
        let found: Vec<Value> = holds.then(data_center_json).into_iter().collect();
        represent(&headers, "data_centers", &json!({ "data_center": found }))
    })
}

/// Whether the one data center matches a search term: `name=` (`*` a wildcard),
/// `storage.name=` (a storage domain it holds), `clusters.name=` (a cluster it holds; how the
/// SDK's `add_vm_nic.py` finds a VM's data center). Case is insignificant in the key.
fn data_center_term(inv: &Inventory, term: &str) -> bool {
    let Some((key, value)) = term.trim().split_once('=') else {
        return false;
    };
    let value = value.trim().trim_matches('"');
    match key.trim().to_ascii_lowercase().as_str() {
        "name" => glob(&value.to_lowercase(), "default"),
        "storage.name" => inv.storage_domains.iter().any(|sd| sd.name == value),
        "clusters.name" | "cluster.name" => inv.clusters.iter().any(|c| c.name == value),
        _ => false,
    }
}

async fn data_center(headers: HeaderMap, Path(id): Path<String>) -> Response {
    if id == data_center_id() {
        represent(&headers, "data_center", &data_center_json())
    } else {
        not_found()
    }
}

async fn data_center_domains(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if id != data_center_id() {
        return not_found();
    }
    with_inventory(&engine, |inv| {
        let found: Vec<Value> = inv
            .storage_domains
            .iter()
            .map(|sd| {
                let mut body = Kind::StorageDomain.json(sd);
                body["href"] = json!(format!(
                    "{}/storagedomains/{}",
                    href("datacenters", &id),
                    sd.id
                ));
                body["status"] = json!("active");
                body["data_centers"] = json!({"data_center": [reference("datacenters", &id)]});
                body
            })
            .collect();
        represent(
            &headers,
            "storage_domains",
            &json!({ "storage_domain": found }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_by_name() {
        let query = |search: &str, case: Option<&str>| ListQuery {
            search: Some(search.into()),
            case_sensitive: case.map(str::to_owned),
            max: None,
            all_content: None,
        };
        assert!(query("name=web01", None).filter().matches_name("WEB01"));
        assert!(
            !query("name=web01", Some("true"))
                .filter()
                .matches_name("WEB01")
        );
        assert!(query("name=\"my vm\"", None).filter().matches_name("my vm"));
        assert!(
            query("name=web*", None)
                .filter()
                .matches_name("web-frontend")
        );
        assert!(
            !query("name=web*1", None)
                .filter()
                .matches_name("web-frontend")
        );
        assert!(!query("status=up", None).filter().matches_name("web01"));
        let up = [("name", "web01"), ("status", "up")];
        assert!(query("name=web* and status=up", None).filter().matches(&up));
        assert!(
            !query("name=web* and status=down", None)
                .filter()
                .matches(&up)
        );
        assert!(
            query("page 2", None).filter().matches(&up),
            "paging is not a filter"
        );
        assert!(
            !query("web01", None).filter().matches(&up),
            "free words are not served"
        );
    }

    #[test]
    fn max_and_pages() {
        let query = |search: Option<&str>, max: Option<i64>| ListQuery {
            search: search.map(str::to_owned),
            case_sensitive: None,
            max,
            all_content: None,
        };
        let all = || vec![1, 2, 3, 4, 5];
        assert_eq!(query(None, None).filter().window(all()), [1, 2, 3, 4, 5]);
        assert_eq!(query(None, Some(2)).filter().window(all()), [1, 2]);
        assert_eq!(
            query(None, Some(-1)).filter().window(all()),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(query(Some("page 3"), Some(2)).filter().window(all()), [5]);
        assert_eq!(
            query(Some("page 4"), Some(2)).filter().window(all()),
            Vec::<i32>::new()
        );
        assert_eq!(
            query(Some("page 1"), None).filter().window(all()),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            query(Some("page 2"), None).filter().window(all()),
            Vec::<i32>::new()
        );
    }
}
