//! Image transfers (section 7 of the API page), downloads and uploads of whole disks: each is a
//! `qemu-nbd` export of the disk's qcow2 file behind a ticket of the real `ovirt-imageio` daemon.
//! Phases move as the engine's do, each taking at least one poll: `initializing` ->
//! `transferring` -> (`finalize`) `finalizing_success` -> `finished_success`, or (`cancel`)
//! `cancelled_user` -> `finished_cleanup`. The ticket is removed and the export stopped on
//! finalize and cancel; the disk is `locked` while a transfer holds it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{API, Engine, represent};
use super::imageio::{Imageio, Ticket};
use super::nbd::{ExportOptions, NbdExport};

/// The data plane the transfers use.
#[derive(Debug)]
pub struct DataPlane {
    /// The daemon.
    pub imageio: Arc<Imageio>,
    /// Where disks (`<id>.qcow2`) are.
    pub disks: PathBuf,
    /// Where export sockets and logs go.
    pub run: PathBuf,
    transfers: Mutex<HashMap<String, Transfer>>,
}

#[derive(Debug)]
struct Transfer {
    disk: String,
    direction: String,
    phase: &'static str,
    export: Option<NbdExport>,
    url: String,
}

impl DataPlane {
    /// A data plane over a running daemon.
    pub fn new(imageio: Imageio, disks: PathBuf, run: PathBuf) -> Self {
        Self {
            imageio: Arc::new(imageio),
            disks,
            run,
            transfers: Mutex::new(HashMap::new()),
        }
    }
}

/// The routes of image transfers.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/imagetransfers", post(create))
        .route("/ovirt-engine/api/imagetransfers/{id}", get(poll))
        .route(
            "/ovirt-engine/api/imagetransfers/{id}/finalize",
            post(finalize),
        )
        .route("/ovirt-engine/api/imagetransfers/{id}/cancel", post(cancel))
}

#[derive(Deserialize)]
struct Reference {
    id: String,
}

#[derive(Deserialize)]
struct CreateRequest {
    disk: Option<Reference>,
    image: Option<Reference>,
    direction: Option<String>,
}

/// The engine's fault for a refused action (409 with reason "Operation Failed").
fn fault(status: StatusCode, detail: &str) -> Response {
    (
        status,
        Json(json!({"reason": "Operation Failed", "detail": format!("[{detail}]")})),
    )
        .into_response()
}

fn transfer_json(id: &str, t: &Transfer) -> Value {
    let actions: Vec<Value> = ["cancel", "extend", "finalize", "pause", "resume"]
        .map(|rel| json!({"href": format!("{API}/imagetransfers/{id}/{rel}"), "rel": rel}))
        .into();
    json!({
        "id": id, "href": format!("{API}/imagetransfers/{id}"),
        "actions": {"link": actions},
        "active": if t.phase == "transferring" { "true" } else { "false" },
        "direction": t.direction, "format": "raw", "inactivity_timeout": "60",
        "phase": t.phase, "shallow": "false", "timeout_policy": "legacy", "transferred": "0",
        "image": {"id": t.disk},
        "transfer_url": t.url, "proxy_url": t.url,
    })
}

async fn create(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Json(request): Json<CreateRequest>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return fault(
            StatusCode::CONFLICT,
            "Cannot transfer Virtual Disk: no host is up",
        );
    };
    let Some(disk_id) = request.disk.or(request.image).map(|r| r.id) else {
        return fault(
            StatusCode::BAD_REQUEST,
            "Cannot transfer Virtual Disk: name the disk",
        );
    };
    let direction = request.direction.unwrap_or_else(|| "upload".into());
    let size = {
        let mut inventory = engine.inventory.lock().expect("inventory lock");
        let Some(disk) = inventory.disks.iter_mut().find(|d| d.id == disk_id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if disk.status != "ok" {
            return fault(
                StatusCode::CONFLICT,
                &format!(
                    "Cannot transfer Virtual Disk: Disk {} is locked",
                    disk.alias
                ),
            );
        }
        disk.status = "locked".into();
        disk.provisioned_size
    };
    let id = uuid::Uuid::new_v4().to_string();
    let image = plane.disks.join(format!("{disk_id}.qcow2"));
    let socket = plane.run.join(format!("{id}.sock"));
    let log = plane.run.join("qemu-nbd.log");
    let read_only = direction == "download";
    let started = tokio::task::spawn_blocking(move || {
        NbdExport::start(
            &image,
            &socket,
            &log,
            &ExportOptions {
                read_only,
                bitmap: None,
            },
        )
    })
    .await
    .expect("the export task does not panic");
    let export = match started {
        Ok(export) => export,
        Err(e) => {
            unlock(&engine, &disk_id);
            return fault(
                StatusCode::CONFLICT,
                &format!("Cannot transfer Virtual Disk: {e}"),
            );
        }
    };
    let ticket = Ticket {
        uuid: id.clone(),
        size,
        url: export.url(),
        ops: vec![if read_only { "read" } else { "write" }],
        timeout: 3600,
        inactivity_timeout: 60,
        dirty: false,
        sparse: true,
        transfer_id: id.clone(),
    };
    if let Err(e) = plane.imageio.add_ticket(&ticket).await {
        unlock(&engine, &disk_id);
        return fault(
            StatusCode::CONFLICT,
            &format!("Cannot transfer Virtual Disk: {e}"),
        );
    }
    let transfer = Transfer {
        disk: disk_id,
        direction,
        phase: "initializing",
        export: Some(export),
        url: plane.imageio.transfer_url(&id),
    };
    let body = transfer_json(&id, &transfer);
    plane
        .transfers
        .lock()
        .expect("transfers lock")
        .insert(id.clone(), transfer);
    let mut response = represent(&headers, "image_transfer", &body);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = format!("{API}/imagetransfers/{id}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn unlock(engine: &Engine, disk_id: &str) {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    if let Some(disk) = inventory.disks.iter_mut().find(|d| d.id == disk_id) {
        disk.status = "ok".into();
    }
}

/// The next phase after a poll: every transient phase takes at least one poll.
fn advance(phase: &'static str) -> &'static str {
    match phase {
        "initializing" | "resuming" => "transferring",
        "finalizing_success" => "finished_success",
        "cancelled_user" => "finished_cleanup",
        other => other,
    }
}

async fn poll(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (body, done_disk) = {
        let mut transfers = plane.transfers.lock().expect("transfers lock");
        let Some(transfer) = transfers.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let body = transfer_json(&id, transfer);
        let before = transfer.phase;
        transfer.phase = advance(before);
        let finished = transfer.phase != before && transfer.phase.starts_with("finished");
        (body, finished.then(|| transfer.disk.clone()))
    };
    if let Some(disk) = done_disk {
        unlock(&engine, &disk);
    }
    represent(&headers, "image_transfer", &body)
}

async fn finalize(state: State<Arc<Engine>>, headers: HeaderMap, id: Path<String>) -> Response {
    end(state, headers, id, "finalizing_success").await
}

async fn cancel(state: State<Arc<Engine>>, headers: HeaderMap, id: Path<String>) -> Response {
    end(state, headers, id, "cancelled_user").await
}

/// Finalize or cancel: the ticket removed, the export stopped, the phase moved on.
async fn end(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    phase: &'static str,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let export = {
        let mut transfers = plane.transfers.lock().expect("transfers lock");
        let Some(transfer) = transfers.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if transfer.phase.starts_with("finished") || transfer.phase.starts_with("finalizing") {
            return fault(
                StatusCode::CONFLICT,
                "Cannot finalize or cancel a transfer that is ending",
            );
        }
        transfer.phase = phase;
        transfer.export.take()
    };
    if let Err(e) = plane.imageio.remove_ticket(&id).await {
        tracing::warn!(transfer = %id, "removing the ticket: {e}");
    }
    if let Some(export) = export {
        let _ = tokio::task::spawn_blocking(move || export.stop()).await;
    }
    represent(&headers, "action", &json!({"status": "complete"}))
}
