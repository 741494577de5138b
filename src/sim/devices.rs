//! What an inventory walk of the SDK reads beside VMs and disks: the `Blank` template (the
//! only one), a VM's CD-ROMs (none: ovsim's VMs have none; its NICs are [`super::nics`]'s), and
//! a data center's clusters.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::reply::{not_found, represent};
use super::state::{API, Engine};

/// The Blank template's id, as the engine's.
pub const BLANK: &str = "00000000-0000-0000-0000-000000000000";

/// The routes of templates, VM CD-ROMs and a data center's clusters.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/templates", get(templates))
        .route("/ovirt-engine/api/templates/{id}", get(template))
        .route(
            "/ovirt-engine/api/vms/{id}/cdroms",
            get(|s, h, p| none(s, h, p, "cdrom")),
        )
        .route("/ovirt-engine/api/datacenters/{id}/clusters", get(clusters))
}

/// The Blank template, as the engine describes it.
fn blank_json() -> Value {
    json!({
        "id": BLANK, "href": format!("{API}/templates/{BLANK}"), "name": "Blank",
        "description": "Blank template", "status": "ok", "type": "server",
        "memory": (1_u64 << 30).to_string(), "os": {"type": "other"},
        "cpu": {"topology": {"sockets": "1", "cores": "1", "threads": "1"}},
        "version": {"version_name": "base version", "version_number": "1"},
    })
}

async fn templates(headers: HeaderMap) -> Response {
    represent(&headers, "templates", &json!({"template": [blank_json()]}))
}

async fn template(headers: HeaderMap, Path(id): Path<String>) -> Response {
    if id == BLANK {
        represent(&headers, "template", &blank_json())
    } else {
        not_found()
    }
}

/// An empty collection of VM `id`'s devices of kind `tag` (`cdrom`).
async fn none(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    tag: &'static str,
) -> Response {
    if engine
        .inventory
        .lock()
        .expect("inventory lock")
        .vm(&id)
        .is_none()
    {
        return not_found();
    }
    represent(&headers, &format!("{tag}s"), &json!({ tag: [] }))
}

/// The clusters of data center `id` (ovsim has one data center, holding them all).
async fn clusters(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if id != super::resources::data_center_id() {
        return not_found();
    }
    let inventory = engine.inventory.lock().expect("inventory lock");
    let found: Vec<Value> = (inventory.clusters.iter())
        .map(super::resources::cluster_json)
        .collect();
    represent(&headers, "clusters", &json!({ "cluster": found }))
}
