//! `GET /ovsim/admin/peak-backups`: how many VMs the engine backs up now and the most it did at
//! once (`{"running": 1, "peak": 2}`, see [`super::state::load`]); `DELETE` starts counting
//! again from now (the peak becomes the count now) and answers the same.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;

use super::state::Engine;
use super::state::load::Load;

/// The admin route.
pub fn routes() -> axum::Router<Arc<Engine>> {
    axum::Router::new().route("/ovsim/admin/peak-backups", get(show).delete(reset))
}

async fn show(State(engine): State<Arc<Engine>>) -> Json<Load> {
    let inventory = engine.inventory.lock().expect("inventory lock");
    Json(engine.load.load(engine.running_backups(&inventory)))
}

async fn reset(State(engine): State<Arc<Engine>>) -> Json<Load> {
    let inventory = engine.inventory.lock().expect("inventory lock");
    Json(engine.load.reset(engine.running_backups(&inventory)))
}
