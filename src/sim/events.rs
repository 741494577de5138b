//! The engine's events (`GET /events`, `GET /events/{id}`), as the SDK's `poll_events.py`
//! and `backup_vm.py` read them: newest first, `from=N` for those after index N, `max=N`, and
//! `search=` with terms joined by `and` (`severity=`, `type=` for the code, `vm.name=`,
//! `disk.alias=`, `origin=`, or free words the description contains, such as a backup's id).
//! Applications add their own (`POST /events`, as `vm_backup.py` marks its backups): origin,
//! severity, custom id and description required, the VM optional.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{Body, Number, Reference};
use super::reply::{Refusal, created, not_found, represent};
use super::state::events::{About, Event, External, Refused};
use super::state::{Engine, vm_named};

/// The routes of events.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/events", get(list).post(add))
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

/// An application's event, as `POST /events` gives it.
#[derive(Debug, Deserialize)]
struct NewEvent {
    origin: Option<String>,
    severity: Option<String>,
    custom_id: Option<Number>,
    description: Option<String>,
    vm: Option<Reference>,
}

/// `POST /events`: an external event in the audit log, as the engine adds it.
async fn add(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Body(request): Body<NewEvent>,
) -> Response {
    match add_external(&engine, request) {
        Ok(event) => created(&headers, "event", &event.json()),
        Err(refused) => refused.into_response(),
    }
}

/// Checks an application's event (the engine's required fields, an origin other than its
/// own) and adds it, about the VM it names.
fn add_external(engine: &Engine, request: NewEvent) -> Result<Event, Refusal> {
    let vm = request.vm.as_ref().and_then(|r| r.id.clone());
    let (external, severity, description) = required(request)?;
    let inventory = engine.inventory.lock().expect("inventory lock");
    let about = About {
        vm: vm.map(|id| vm_named(&inventory, &id)),
        ..About::default()
    };
    let added = (engine.events).add_external(&severity, description, external, about);
    added.map_err(|refused| match refused {
        Refused::Severity => Refusal::fault(
            StatusCode::BAD_REQUEST,
            &format!("Cannot add External Event. Invalid value '{severity}' for severity."),
        ),
        Refused::Duplicate => Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot add External Event. External Event with this custom id already exists.",
        ),
    })
}

/// Who adds the event, its severity and its description, all required; the engine's own
/// origin is refused.
fn required(request: NewEvent) -> Result<(External, String, String), Refusal> {
    let custom_id = request.custom_id.as_ref().and_then(Number::value);
    let (Some(origin), Some(severity), Some(custom_id), Some(description)) = (
        request.origin,
        request.severity,
        custom_id,
        request.description,
    ) else {
        return Err(Refusal::incomplete(
            "Event [origin, severity, customId, description] required for add",
        ));
    };
    if origin.eq_ignore_ascii_case("ovirt") {
        return Err(Refusal::fault(
            StatusCode::CONFLICT,
            "Cannot add External Event. Illegal Origin for External Event : oVirt",
        ));
    }
    Ok((External { origin, custom_id }, severity, description))
}
