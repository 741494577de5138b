//! Fault injection, through an admin endpoint: make the next N calls of an endpoint fail with a
//! given status and fault body, or answer late; lock a VM or a disk. Tests (and operators
//! rehearsing a drill) use it to show what a client does when the engine misbehaves.
//!
//! `POST /ovsim/admin/faults` `{"method": "GET", "path": "/ovirt-engine/api/vms/*", "count": 2,
//! "after": 0, "status": 500, "fault": {"reason": "…", "detail": "…"}, "delay_ms": 0,
//! "lose_answer": false}` (`*` matches one path segment; `after` matching calls pass first;
//! `status` 0 only delays; `lose_answer`: the call is carried out and its answer replaced by the
//! fault, as when a proxy or the network loses it). `DELETE /ovsim/admin/faults` clears them.
//! `POST /ovsim/admin/lock` `{"kind": "vm"|"disk", "id": "…", "locked": true}`.
//! `POST /ovsim/admin/guest-write` `{"disk": "…", "offset": 0, "length": 65536, "pattern": 51}`
//! (`pattern` null writes zeroes): the guest writes, and its disk's checkpoints record it.
//! `POST /ovsim/admin/cut` `{"transfer": "…"|null, "after_bytes": 0}`: the next (or that)
//! transfer's export dies once that much has moved, as a cut data connection.
//! `POST /ovsim/admin/lose-bitmap` `{"disk": "…", "checkpoint": "…"|null}`: the checkpoint's
//! bitmap (or all of them) leaves the disk, as after an unclean shutdown.
//! `POST /ovsim/admin/checkpoint-state` `{"vm": "…", "checkpoint": "…", "state": "invalid"}`.
//! `POST /ovsim/admin/hold-snapshots` `{"hold": true}`: snapshots being made stay `locked`
//! (polled or not) until released with `false`, as a snapshot stuck on a host.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::state::Engine;
use super::state::data_plane::Cut;
use super::state::faults::FaultRule;

/// The admin routes.
pub fn routes() -> axum::Router<Arc<Engine>> {
    axum::Router::new()
        .route("/ovsim/admin/faults", post(add).delete(clear))
        .route("/ovsim/admin/lock", post(lock))
        .route("/ovsim/admin/guest-write", post(guest_write))
        .route("/ovsim/admin/cut", post(cut))
        .route("/ovsim/admin/lose-bitmap", post(lose_bitmap))
        .route("/ovsim/admin/checkpoint-state", post(checkpoint_state))
        .route("/ovsim/admin/hold-snapshots", post(hold_snapshots))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hold {
    hold: bool,
}

async fn hold_snapshots(State(engine): State<Arc<Engine>>, Json(hold): Json<Hold>) -> StatusCode {
    engine.faults.hold_snapshots(hold.hold);
    StatusCode::NO_CONTENT
}

/// Middleware: answers an injected fault instead of the route, or after a delay.
pub async fn inject(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/ovsim/admin") {
        return next.run(request).await;
    }
    let Some(rule) = engine.faults.take(request.method().as_str(), &path) else {
        return next.run(request).await;
    };
    if rule.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(rule.delay_ms)).await;
    }
    if rule.status == 0 {
        return next.run(request).await;
    }
    if rule.lose_answer {
        let lost = next.run(request).await;
        tracing::warn!(
            "{path}: answered {}, replaced by {}",
            lost.status(),
            rule.status
        );
    }
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = rule
        .fault
        .unwrap_or_else(|| json!({"reason": "Operation Failed", "detail": "[injected by ovsim]"}));
    (status, Json(body)).into_response()
}

async fn add(State(engine): State<Arc<Engine>>, Json(rule): Json<FaultRule>) -> Response {
    engine.faults.add(rule);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear(State(engine): State<Arc<Engine>>) -> Response {
    engine.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct LockRequest {
    kind: String,
    id: String,
    locked: bool,
}

async fn lock(State(engine): State<Arc<Engine>>, Json(request): Json<LockRequest>) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let found = match request.kind.as_str() {
        "disk" => inventory
            .disks
            .iter_mut()
            .find(|d| d.id == request.id)
            .map(|d| {
                d.status = if request.locked { "locked" } else { "ok" }.into();
            }),
        "vm" => inventory
            .vms
            .iter_mut()
            .find(|v| v.id == request.id)
            .map(|v| {
                v.status = if request.locked { "image_locked" } else { "up" }.into();
            }),
        _ => return (StatusCode::BAD_REQUEST, "kind is vm or disk").into_response(),
    };
    match found {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct GuestWrite {
    disk: String,
    offset: u64,
    length: u64,
    /// The byte written; `null` writes zeroes (as `discard`).
    pattern: Option<u8>,
}

/// A running guest writes to one of its disks (through `qemu-io`, so checkpoints record it).
async fn guest_write(
    State(engine): State<Arc<Engine>>,
    Json(request): Json<GuestWrite>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return (StatusCode::CONFLICT, "the data plane is not running").into_response();
    };
    if !engine
        .inventory
        .lock()
        .expect("inventory lock")
        .disks
        .iter()
        .any(|d| d.id == request.disk)
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let disk = plane.image(&request.disk);
    let id = request.disk.clone();
    // One guest write at a time per disk, as one guest's writes are.
    let written = plane
        .with_guest_held(&id, move || match request.pattern {
            Some(byte) => disk.guest_write(request.offset, request.length, byte),
            None => disk.guest_zero(request.offset, request.length),
        })
        .await;
    match written {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

async fn cut(State(engine): State<Arc<Engine>>, Json(cut): Json<Cut>) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return (StatusCode::CONFLICT, "the data plane is not running").into_response();
    };
    plane.arm_cut(cut);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoseBitmap {
    disk: String,
    checkpoint: Option<String>,
}

/// The unclean-shutdown case: a checkpoint's bitmap is gone from a disk, while the engine still
/// lists the checkpoint; the next incremental backup of it fails.
async fn lose_bitmap(
    State(engine): State<Arc<Engine>>,
    Json(request): Json<LoseBitmap>,
) -> Response {
    let Some(plane) = engine.data_plane.as_ref() else {
        return (StatusCode::CONFLICT, "the data plane is not running").into_response();
    };
    let image = plane.image(&request.disk);
    if !image.path().exists() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let id = request.disk.clone();
    let removed = plane
        .with_guest_held(&id, move || {
            let names: Vec<String> = image
                .checkpoints()?
                .into_iter()
                .map(|b| b.name)
                .filter(|n| request.checkpoint.as_ref().is_none_or(|c| c == n))
                .collect();
            names.iter().try_for_each(|n| image.remove_checkpoint(n))
        })
        .await;
    match removed {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointState {
    vm: String,
    checkpoint: String,
    state: String,
}

async fn checkpoint_state(
    State(engine): State<Arc<Engine>>,
    Json(request): Json<CheckpointState>,
) -> Response {
    let mut inventory = engine.inventory.lock().expect("inventory lock");
    let Some(checkpoint) = inventory
        .checkpoints
        .iter_mut()
        .find(|c| c.id == request.checkpoint && c.vm == request.vm)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    checkpoint.state = request.state;
    engine.save(&inventory);
    StatusCode::NO_CONTENT.into_response()
}
