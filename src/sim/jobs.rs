//! Jobs by correlation id (section 4.5 of the API page): every changing call made with
//! `?correlation_id=X` registers a job; a client polls `GET /jobs?search=correlation_id=X` until
//! none is `started`. A job stays `started` for one poll, then is `finished` (or `failed` when
//! the call was refused), so a client that trusts the first answer is caught out as on a real
//! engine.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::{not_found, represent};
use super::state::Engine;
use super::state::jobs::Job;

/// The routes of jobs.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/api/jobs", get(list))
        .route("/ovirt-engine/api/jobs/{id}", get(one))
}

#[derive(Debug, Default, Deserialize)]
struct CorrelationQuery {
    correlation_id: Option<String>,
}

/// Middleware: registers a job for a changing call that carries a correlation id.
pub async fn track(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    let correlation = (request.method() != Method::GET)
        .then(|| {
            Query::<CorrelationQuery>::try_from_uri(request.uri())
                .ok()
                .and_then(|q| q.0.correlation_id)
        })
        .flatten();
    let description = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    if let Some(correlation_id) = correlation {
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            correlation_id,
            description,
            status: "started",
            outcome: if response.status().is_success() {
                "finished"
            } else {
                "failed"
            },
            start_time: chrono::Utc::now().timestamp_millis(),
            end_time: None,
        };
        engine.jobs.list.lock().expect("jobs lock").push(job);
    }
    response
}

#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    search: Option<String>,
}

async fn list(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let wanted = query
        .search
        .as_deref()
        .and_then(|s| s.trim().strip_prefix("correlation_id="))
        .map(|c| c.trim_matches('"').to_owned());
    let mut jobs = engine.jobs.list.lock().expect("jobs lock");
    let found: Vec<Value> = jobs
        .iter_mut()
        .filter(|j| wanted.as_ref().is_none_or(|w| &j.correlation_id == w))
        .map(Job::poll)
        .collect();
    represent(&headers, "jobs", &json!({ "job": found }))
}

async fn one(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut jobs = engine.jobs.list.lock().expect("jobs lock");
    match jobs.iter_mut().find(|j| j.id == id) {
        Some(job) => represent(&headers, "job", &job.poll()),
        None => not_found(),
    }
}
