//! How the engine answers: JSON or XML as the request's `Accept` asks (the official SDK speaks
//! XML only), its fault documents, 401 page, 404s, 201s and action answers, and [`Refusal`],
//! the small value checks return before a route answers. Routes use these; they use no route.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::xml::to_xml;

/// The engine's 401: an HTML page, not a fault document.
pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"RESTAPI\""),
            (header::CONTENT_TYPE, "text/html;charset=UTF-8"),
        ],
        "<html><head><title>Error</title></head><body>Unauthorized</body></html>",
    )
        .into_response()
}

/// JSON or XML, as the request's `Accept` asks (JSON by default).
pub fn represent(headers: &HeaderMap, tag: &str, value: &Value) -> Response {
    if wants_xml(headers) {
        (
            [(header::CONTENT_TYPE, "application/xml")],
            to_xml(tag, value),
        )
            .into_response()
    } else {
        Json(value.clone()).into_response()
    }
}

/// Whether the client asked for XML only.
pub(crate) fn wants_xml(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("xml") && !a.contains("json"))
}

/// Middleware: an error body goes out as the client asked, as the engine's do: a client that
/// accepts XML only (the SDK) gets `<fault><reason/><detail/></fault>`, whatever produced the
/// error (a handler, an injected fault, a body the framework refused). 401's HTML page and
/// empty bodies stay as they are.
pub async fn faults_as_asked(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let xml = wants_xml(request.headers());
    let response = next.run(request).await;
    let status = response.status();
    if !xml || status.as_u16() < 400 || status == StatusCode::UNAUTHORIZED {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return status.into_response();
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    xml_fault(status, is_json, &bytes)
}

/// An error body as the engine's XML: a JSON fault (or action) document as it is, any other
/// body as the `detail` of a fault with the status's reason.
fn xml_fault(status: StatusCode, is_json: bool, bytes: &[u8]) -> Response {
    let fault = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if is_json => value,
        _ => json!({"reason": status.canonical_reason().unwrap_or("Error"),
                    "detail": String::from_utf8_lossy(bytes)}),
    };
    let tag = if fault.get("fault").is_some() {
        "action"
    } else {
        "fault"
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/xml")],
        to_xml(tag, &fault),
    )
        .into_response()
}

/// The engine's fault document: `reason` "Operation Failed", the messages in brackets.
pub(crate) fn fault(status: StatusCode, detail: &str) -> Response {
    (
        status,
        Json(json!({"reason": "Operation Failed", "detail": format!("[{detail}]")})),
    )
        .into_response()
}

/// A refused action (`POST …/finalize`, `…/start`): the fault inside an action, as the engine
/// answers actions.
pub(crate) fn action_fault(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "async": "false",
        "fault": {"detail": format!("[{detail}]"), "reason": "Operation Failed"},
        "status": "failed",
    });
    (status, Json(body)).into_response()
}

/// A missing mandatory field (400, reason "Incomplete parameters").
pub(crate) fn incomplete(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"reason": "Incomplete parameters", "detail": detail})),
    )
        .into_response()
}

/// An unknown id: 404 with an empty body.
pub(crate) fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// 201 with the new object and its `Location`.
pub(crate) fn created(headers: &HeaderMap, tag: &str, body: &Value) -> Response {
    let mut response = represent(headers, tag, body);
    *response.status_mut() = StatusCode::CREATED;
    if let Some(location) = body["href"].as_str().and_then(|h| h.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The answer to an action (`POST …/finalize`, `…/start`): `<action><status>complete`.
pub(crate) fn action_complete(headers: &HeaderMap) -> Response {
    represent(headers, "action", &json!({"status": "complete"}))
}

/// Why the engine refuses a call, before it is answered: a small value that checks can return
/// (`Result<_, Refusal>`), made into the engine's response at the edge.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// 404 with an empty body.
    NotFound,
    /// A fault document with this status.
    Fault(StatusCode, String),
    /// A missing mandatory field.
    Incomplete(String),
    /// A value that is not one of its enum's (400, reason "Invalid value").
    InvalidValue(String),
}

impl Refusal {
    /// A fault document.
    pub(crate) fn fault(status: StatusCode, detail: &str) -> Self {
        Refusal::Fault(status, detail.to_owned())
    }

    /// A missing mandatory field.
    pub(crate) fn incomplete(detail: &str) -> Self {
        Refusal::Incomplete(detail.to_owned())
    }

    /// A value its enum has not.
    pub(crate) fn invalid_value(detail: &str) -> Self {
        Refusal::InvalidValue(detail.to_owned())
    }

    /// What it says (empty for a 404), to report a refused seed with.
    pub(crate) fn detail(&self) -> &str {
        match self {
            Refusal::NotFound => "",
            Refusal::Fault(_, detail)
            | Refusal::Incomplete(detail)
            | Refusal::InvalidValue(detail) => detail,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound => not_found(),
            Refusal::Fault(status, detail) => fault(status, &detail),
            Refusal::Incomplete(detail) => incomplete(&detail),
            Refusal::InvalidValue(detail) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"reason": "Invalid value", "detail": detail})),
            )
                .into_response(),
        }
    }
}
