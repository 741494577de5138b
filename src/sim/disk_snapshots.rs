//! Disk snapshots: each disk's volumes (`crate::sim::volumes`) as the engine lists them, under
//! the disk (`/disks/{id}/disksnapshots`) and under its storage domain
//! (`/storagedomains/{id}/disksnapshots`), with their parent links, so a client can rebuild a
//! disk's chain and name a volume in an image transfer. The active volume is listed only when
//! the request asks (`include_active=true`), as the engine does.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::inventory::{Disk, Inventory, id_of};
use super::reply::{not_found, represent};
use super::state::{API, Engine};
use super::volumes::{self, Volume};

/// The routes of disk snapshots.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/disks/{disk}/disksnapshots", get(of_disk))
        .route(
            "/ovirt-engine/api/disks/{disk}/disksnapshots/{id}",
            get(one_of_disk),
        )
        .route(
            "/ovirt-engine/api/storagedomains/{sd}/disksnapshots",
            get(of_domain),
        )
        .route(
            "/ovirt-engine/api/storagedomains/{sd}/disksnapshots/{id}",
            get(one_of_domain),
        )
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    include_active: Option<String>,
}

impl ListQuery {
    fn include_active(&self) -> bool {
        self.include_active
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Where volume `volume`'s file is and what it takes on storage.
fn actual_size(engine: &Engine, volume: &Volume) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let image = engine.data_plane.as_ref()?.image(&volume.disk);
    let path = match &volume.snapshot {
        Some(snapshot) => image.layer_path(snapshot),
        None => image.path().to_owned(),
    };
    Some(fs_err::metadata(path).ok()?.blocks() * 512)
}

/// A volume in the engine's disk snapshot shape.
fn volume_json(engine: &Engine, inventory: &Inventory, disk: &Disk, volume: &Volume) -> Value {
    let snapshot = volume.snapshot.clone().unwrap_or_else(|| {
        let vm = inventory.owner_of(&disk.id);
        vm.map_or_else(String::new, |vm| id_of("active-snapshot", &vm.id))
    });
    let sd = &disk.storage_domain;
    let mut body = json!({
        "id": volume.id,
        "href": format!("{API}/storagedomains/{sd}/disksnapshots/{}", volume.id),
        "alias": disk.alias, "name": disk.alias, "content_type": "data", "format": "cow",
        "provisioned_size": disk.provisioned_size.to_string(), "sparse": "true",
        "status": disk.status, "storage_type": "image",
        "disk": {"href": format!("{API}/disks/{}", disk.id), "id": disk.id},
        "snapshot": {"id": snapshot},
        "storage_domains": {"storage_domain": [{"id": sd}]},
    });
    if let Some(parent) = &volume.parent {
        body["parent"] = json!({"id": parent});
    }
    if let Some(bytes) = actual_size(engine, volume) {
        body["actual_size"] = json!(bytes.to_string());
    }
    body
}

/// The volumes of the disks `disks` chooses, each as a disk snapshot.
fn listed(
    engine: &Engine,
    inventory: &Inventory,
    disks: impl Fn(&Disk) -> bool,
    include_active: bool,
) -> Vec<Value> {
    let mut found = Vec::new();
    for disk in inventory.disks.iter().filter(|d| disks(d)) {
        let chain = volumes::chain(inventory, &disk.id);
        let shown = chain
            .iter()
            .filter(|v| include_active || v.snapshot.is_some());
        found.extend(shown.map(|v| volume_json(engine, inventory, disk, v)));
    }
    found
}

fn answer(headers: &HeaderMap, found: Vec<Value>) -> Response {
    represent(
        headers,
        "disk_snapshots",
        &json!({ "disk_snapshot": found }),
    )
}

async fn of_disk(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(disk): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    if !inventory.disks.iter().any(|d| d.id == disk) {
        return not_found();
    }
    let found = listed(
        &engine,
        &inventory,
        |d| d.id == disk,
        query.include_active(),
    );
    answer(&headers, found)
}

async fn of_domain(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(sd): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    if !inventory.storage_domains.iter().any(|d| d.id == sd) {
        return not_found();
    }
    let chosen = |d: &Disk| d.storage_domain == sd;
    answer(
        &headers,
        listed(&engine, &inventory, chosen, query.include_active()),
    )
}

/// Volume `id`, when it belongs to a disk `belongs` accepts.
fn one(
    engine: &Engine,
    headers: &HeaderMap,
    id: &str,
    belongs: impl Fn(&Disk) -> bool,
) -> Response {
    let inventory = engine.inventory.lock().expect("inventory lock");
    let Some(volume) = volumes::find(&inventory, id) else {
        return not_found();
    };
    match inventory
        .disks
        .iter()
        .find(|d| d.id == volume.disk && belongs(d))
    {
        Some(disk) => {
            let body = volume_json(engine, &inventory, disk, &volume);
            represent(headers, "disk_snapshot", &body)
        }
        None => not_found(),
    }
}

async fn one_of_disk(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((disk, id)): Path<(String, String)>,
) -> Response {
    one(&engine, &headers, &id, |d| d.id == disk)
}

async fn one_of_domain(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path((sd, id)): Path<(String, String)>,
) -> Response {
    one(&engine, &headers, &id, |d| d.storage_domain == sd)
}
