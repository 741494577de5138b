//! The engine's state, what every route reads and changes: the [`Engine`] (users and their
//! tokens, the inventory, the CA), its injected [`faults`], its [`jobs`] and the image
//! transfers' [`data_plane`]. Nothing here knows the routes: the route modules (`vms`,
//! `transfers`, ...) take an `Arc<Engine>` as their state, and `api` assembles them.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};

use super::inventory::Inventory;

pub mod data_plane;
pub mod faults;
pub mod jobs;

use data_plane::DataPlane;

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
    pub faults: faults::Faults,
    /// Jobs by correlation id.
    pub jobs: jobs::Jobs,
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
            faults: faults::Faults::default(),
            jobs: jobs::Jobs::default(),
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

    /// A new token for `user` if `password` is theirs, with when it expires.
    pub(crate) fn login(&self, user: &str, password: &str) -> Option<(String, DateTime<Utc>)> {
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

    /// Forgets a token (logout).
    pub(crate) fn logout(&self, token: &str) {
        self.tokens.lock().expect("token table lock").remove(token);
    }

    /// The CA certificate, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
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

    /// Saves the inventory when the engine keeps state (a restart finds it).
    pub(crate) fn save(&self, inventory: &Inventory) {
        if let Some(state) = &self.state
            && let Err(e) = inventory.save(state)
        {
            tracing::warn!("saving the inventory: {e}");
        }
    }
}
