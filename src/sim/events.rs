//! The engine's events (`GET /events`, `GET /events/{id}`), as the SDK's `poll_events.py`
//! and `backup_vm.py` read them: newest first, `from=N` for those after index N, `max=N`, and
//! `search=` with terms joined by `and` (`severity=`, `type=` for the code, `vm.name=`,
//! `disk.alias=`, or free words the description contains, such as a backup's id).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::{not_found, represent};
use super::state::Engine;
use super::state::events::Event;

/// The routes of events.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/events", get(list))
        .route("/ovirt-engine/api/events/{id}", get(one))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    search: Option<String>,
    from: Option<u64>,
    max: Option<i64>,
}

async fn list(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let terms = query
        .search
        .as_deref()
        .map(super::search::terms)
        .unwrap_or_default();
    // The engine treats a negative `max` as no limit.
    let max = query.max.and_then(|m| usize::try_from(m).ok());
    let found: Vec<Value> = engine
        .events
        .newest(query.from, &terms, max)
        .iter()
        .map(Event::json)
        .collect();
    represent(&headers, "events", &json!({ "event": found }))
}

async fn one(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match id.parse().ok().and_then(|index| engine.events.get(index)) {
        Some(event) => represent(&headers, "event", &event.json()),
        None => not_found(),
    }
}
