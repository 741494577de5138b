//! The engine's REST control plane, first part: SSO tokens (with expiry, so clients must log in
//! again), the CA at the PKI resource URL, logout, and the API root, in JSON or XML as the
//! `Accept` header asks (the official SDK speaks XML only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::inventory::Inventory;
use super::transfers::DataPlane;
use super::xml::to_xml;

/// The API root path.
pub const API: &str = "/ovirt-engine/api";

/// Everything the control plane knows.
#[derive(Debug)]
pub struct Engine {
    ca_pem: String,
    users: HashMap<String, String>,
    token_ttl: Duration,
    tokens: Mutex<HashMap<String, Session>>,
    /// What exists.
    pub inventory: Mutex<Inventory>,
    /// The real data plane (absent when the daemon is not started).
    pub data_plane: Option<DataPlane>,
    /// The state folder, where the inventory is saved.
    pub state: Option<std::path::PathBuf>,
    /// Injected faults.
    pub faults: super::faults::Faults,
    /// Jobs by correlation id.
    pub jobs: super::jobs::Jobs,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    expires: DateTime<Utc>,
}

impl Engine {
    /// An engine with its CA, its users (`name@profile` -> password) and how long a token lives.
    pub fn new(
        ca_pem: String,
        users: HashMap<String, String>,
        token_ttl: Duration,
        inventory: Inventory,
    ) -> Self {
        Self {
            ca_pem,
            users,
            token_ttl,
            tokens: Mutex::new(HashMap::new()),
            inventory: Mutex::new(inventory),
            data_plane: None,
            state: None,
            faults: super::faults::Faults::default(),
            jobs: super::jobs::Jobs::default(),
        }
    }

    /// The same, with a data plane for image transfers.
    #[must_use]
    pub fn with_data_plane(mut self, data_plane: DataPlane) -> Self {
        self.data_plane = Some(data_plane);
        self
    }

    /// The same, saving its inventory in `state`.
    #[must_use]
    pub fn with_state(mut self, state: std::path::PathBuf) -> Self {
        self.state = Some(state);
        self
    }

    fn login(&self, user: &str, password: &str) -> Option<(String, DateTime<Utc>)> {
        (self.users.get(user)? == password).then_some(())?;
        let token = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>());
        let expires = Utc::now() + self.token_ttl;
        let session = Session {
            user: user.to_owned(),
            expires,
        };
        self.tokens
            .lock()
            .expect("token table lock")
            .insert(token.clone(), session);
        Some((token, expires))
    }

    /// The user an `Authorization` header proves, if it does (a live bearer token, or Basic).
    pub(crate) fn authenticated(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        if let Some(token) = value.strip_prefix("Bearer ") {
            let tokens = self.tokens.lock().expect("token table lock");
            let session = tokens.get(token.trim())?;
            return (session.expires > Utc::now()).then(|| session.user.clone());
        }
        let basic = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        (self.users.get(user).map(String::as_str) == Some(password)).then(|| user.to_owned())
    }
}

/// The routes of this part of the API.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/ovirt-engine/sso/oauth/token", post(token))
        .route("/ovirt-engine/services/sso-logout", post(logout))
        .route("/ovirt-engine/services/pki-resource", get(pki_resource))
        .route(API, get(root).head(root_head))
        .route("/ovirt-engine/api/v4", get(root).head(root_head))
        .merge(super::resources::routes())
        .merge(super::transfers::routes())
        .merge(super::backups::routes())
        .merge(super::vms::routes())
        .merge(super::snapshots::routes())
        .merge(super::jobs::routes())
        .merge(super::faults::routes())
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            super::jobs::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            super::faults::inject,
        ))
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            require_login,
        ))
        .layer(axum::middleware::from_fn(faults_as_asked))
        .with_state(engine)
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    scope: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

async fn token(State(engine): State<Arc<Engine>>, Form(request): Form<TokenRequest>) -> Response {
    let refuse = |code: &str, text: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error_code": code, "error": text})),
        )
            .into_response()
    };
    if request.grant_type.as_deref() != Some("password") {
        return refuse("unsupported_grant_type", "The grant type is not supported.");
    }
    if request
        .scope
        .as_deref()
        .is_none_or(|s| !s.split(' ').any(|s| s == "ovirt-app-api"))
    {
        return refuse("invalid_scope", "The requested scope is invalid.");
    }
    let (user, password) = (
        request.username.unwrap_or_default(),
        request.password.unwrap_or_default(),
    );
    match engine.login(&user, &password) {
        Some((token, expires)) => Json(json!({
            "access_token": token,
            "token_type": "bearer",
            "scope": "ovirt-app-api",
            "exp": expires.timestamp_millis().to_string(),
        }))
        .into_response(),
        None => refuse(
            "access_denied",
            &format!("Cannot authenticate user '{user}': The username or password is incorrect."),
        ),
    }
}

#[derive(Deserialize)]
struct LogoutRequest {
    token: Option<String>,
}

async fn logout(
    State(engine): State<Arc<Engine>>,
    Form(request): Form<LogoutRequest>,
) -> Json<Value> {
    if let Some(token) = request.token {
        engine
            .tokens
            .lock()
            .expect("token table lock")
            .remove(&token);
    }
    Json(json!({}))
}

#[derive(Deserialize)]
struct PkiQuery {
    resource: Option<String>,
    format: Option<String>,
}

async fn pki_resource(
    State(engine): State<Arc<Engine>>,
    Query(query): Query<PkiQuery>,
) -> Response {
    let known = query.resource.as_deref() == Some("ca-certificate")
        && matches!(query.format.as_deref(), Some("X509-PEM-CA" | "X509-PEM"));
    if !known {
        return (StatusCode::BAD_REQUEST, "unsupported resource or format").into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/x-x509-ca-cert")],
        engine.ca_pem.clone(),
    )
        .into_response()
}

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

fn wants_xml(headers: &HeaderMap) -> bool {
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
    let fault = match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if is_json => value,
        _ => json!({"reason": status.canonical_reason().unwrap_or("Error"),
                    "detail": String::from_utf8_lossy(&bytes)}),
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

/// The user a request was authenticated as, put there by [`require_login`].
#[derive(Debug, Clone)]
pub struct User(pub String);

/// Middleware: every path under the API root and the admin endpoints needs a live token or
/// Basic credentials, else the engine's HTML 401; SSO and the PKI resource need none.
pub async fn require_login(
    State(engine): State<Arc<Engine>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let guarded =
        path == API || path.starts_with("/ovirt-engine/api/") || path.starts_with("/ovsim/admin");
    if !guarded {
        return next.run(request).await;
    }
    match engine.authenticated(request.headers()) {
        Some(user) => {
            request.extensions_mut().insert(User(user));
            next.run(request).await
        }
        None => unauthorized(),
    }
}

async fn root_head() -> Response {
    StatusCode::OK.into_response()
}

async fn root(headers: HeaderMap, axum::Extension(User(user)): axum::Extension<User>) -> Response {
    let link = |rel: &str| json!({"href": format!("{API}/{rel}"), "rel": rel});
    let blank = "00000000-0000-0000-0000-000000000000";
    let links: Vec<Value> = [
        "clusters",
        "datacenters",
        "disks",
        "hosts",
        "imagetransfers",
        "jobs",
        "storagedomains",
        "vms",
    ]
    .map(link)
    .into();
    let body = json!({
        "link": links,
        "authenticated_user": {"href": format!("{API}/users/{user}"), "id": user},
        "product_info": {
            "instance_id": "5d3f8c2a-0000-4000-8000-0000000051a1",
            "name": "oVirt Engine",
            "vendor": "ovirt.org",
            "version": {"build": "0", "full_version": "4.5.6-ovsim", "major": "4", "minor": "5", "revision": "0"},
        },
        "special_objects": {
            "blank_template": {"href": format!("{API}/templates/{blank}"), "id": blank},
        },
        "time": Utc::now().timestamp_millis(),
    });
    represent(&headers, "api", &body)
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

impl Engine {
    /// Saves the inventory when the engine keeps state (a restart finds it).
    pub(crate) fn save(&self, inventory: &Inventory) {
        if let Some(state) = &self.state
            && let Err(e) = inventory.save(state)
        {
            tracing::warn!("saving the inventory: {e}");
        }
    }
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
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound => not_found(),
            Refusal::Fault(status, detail) => fault(status, &detail),
            Refusal::Incomplete(detail) => incomplete(&detail),
        }
    }
}
