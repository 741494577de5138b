//! The engine's REST control plane, first part: SSO tokens (with expiry, so clients must log in
//! again), the CA at the PKI resource URL, logout, the API root, and the login every other API
//! path needs ([`require_login`]).

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::{represent, unauthorized};
use super::state::{API, Engine};

/// The routes of this part of the API.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ovirt-engine/sso/oauth/token", post(token))
        .route("/ovirt-engine/services/sso-logout", post(logout))
        .route("/ovirt-engine/services/pki-resource", get(pki_resource))
        .route(API, get(root).head(root_head))
        .route("/ovirt-engine/api/v4", get(root).head(root_head))
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    scope: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The SSO's refusal: 400 with its error code and text.
fn refuse(code: &str, text: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error_code": code, "error": text})),
    )
        .into_response()
}

async fn token(State(engine): State<Arc<Engine>>, Form(request): Form<TokenRequest>) -> Response {
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
        engine.logout(&token);
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
        engine.ca_pem().to_owned(),
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

async fn root(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::Extension(User(user)): axum::Extension<User>,
) -> Response {
    let (major, minor) = (engine.version.major, engine.version.minor);
    let link = |rel: &str| json!({"href": format!("{API}/{rel}"), "rel": rel});
    let blank = super::devices::BLANK;
    let links: Vec<Value> = [
        "clusters",
        "datacenters",
        "disks",
        "events",
        "hosts",
        "imagetransfers",
        "jobs",
        "storagedomains",
        "templates",
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
            "version": {
                "build": "0", "full_version": format!("{major}.{minor}.0-ovsim"),
                "major": major.to_string(), "minor": minor.to_string(), "revision": "0",
            },
        },
        "special_objects": {
            "blank_template": {"href": format!("{API}/templates/{blank}"), "id": blank},
        },
        "time": Utc::now().timestamp_millis(),
    });
    represent(&headers, "api", &body)
}
