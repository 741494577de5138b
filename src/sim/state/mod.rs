//! The engine's state, what every route reads and changes: the [`Engine`] (users and their
//! tokens, the inventory, the CA, the version it plays), its injected [`faults`], its [`jobs`],
//! its audit log ([`events`]) and the image transfers' [`data_plane`]. Nothing here knows the
//! routes: the route modules (`vms`, `transfers`, ...) take an `Arc<Engine>` as their state, and
//! `api` assembles them.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};

use super::inventory::Inventory;

pub mod data_plane;
pub mod events;
pub mod faults;
pub mod jobs;
pub mod load;

use data_plane::DataPlane;

/// The API root path.
pub const API: &str = "/ovirt-engine/api";

/// How long work nobody polls takes by default (`ovsim serve --pace`).
pub const DEFAULT_PACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The engine version ovsim plays (`ovsim serve --engine-version`), 4.5 unless asked: before
/// 4.4 an engine has no backup API (no `/vms/{id}/backups` or `checkpoints`), as oVirt and
/// OLVM 4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EngineVersion {
    /// Major (4).
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl Default for EngineVersion {
    fn default() -> Self {
        Self { major: 4, minor: 5 }
    }
}

impl EngineVersion {
    /// Whether this engine has the incremental backup API (4.4 and newer).
    pub fn has_backup_api(self) -> bool {
        self >= Self { major: 4, minor: 4 }
    }
}

impl std::str::FromStr for EngineVersion {
    type Err = String;

    /// `MAJOR.MINOR`, e.g. `4.3`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parse = |part: &str| part.parse::<u32>().ok();
        text.split_once('.')
            .and_then(|(major, minor)| Some((parse(major)?, parse(minor)?)))
            .map(|(major, minor)| Self { major, minor })
            .ok_or_else(|| format!("{text:?} is not an engine version MAJOR.MINOR such as 4.3"))
    }
}

impl std::fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

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
    /// The version it plays.
    pub version: EngineVersion,
    /// The audit log (`/events`).
    pub events: events::Events,
    /// How long work nobody polls takes before it finishes by itself (`crate::sim::clock`).
    pub pace: std::time::Duration,
    /// The most VMs backed up at once (`/ovsim/admin/peak-backups`).
    pub load: load::BackupLoad,
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
            version: EngineVersion::default(),
            events: events::Events::default(),
            pace: DEFAULT_PACE,
            load: load::BackupLoad::default(),
        }
    }

    /// How many VMs are being backed up now ([`load`]), with the inventory its caller holds
    /// locked (the transfers' lock is taken after it, the one order of the two).
    pub fn running_backups(&self, inventory: &Inventory) -> usize {
        let none = std::collections::HashMap::new();
        match &self.data_plane {
            Some(plane) => {
                load::running(inventory, &plane.transfers.lock().expect("transfers lock"))
            }
            None => load::running(inventory, &none),
        }
    }

    /// The same, finishing unpolled work after `pace`.
    #[must_use]
    pub fn with_pace(mut self, pace: std::time::Duration) -> Self {
        self.pace = pace;
        self
    }

    /// The same, playing engine `version`.
    #[must_use]
    pub fn with_version(mut self, version: EngineVersion) -> Self {
        self.version = version;
        self
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

    /// Writes event `what` about VM `vm_id` (named from `inventory`), done by `user`.
    pub(crate) fn audit_vm(
        &self,
        inventory: &Inventory,
        what: events::Audit<'_>,
        vm_id: &str,
        user: Option<&str>,
    ) {
        let about = events::About {
            vm: Some(vm_named(inventory, vm_id)),
            disk: None,
            user: user.map(str::to_owned),
        };
        self.events.record(what, about);
    }

    /// Writes event `what` about disk `disk_id` (its alias from `inventory`), done by `user`.
    pub(crate) fn audit_disk(
        &self,
        inventory: &Inventory,
        what: events::Audit<'_>,
        disk_id: &str,
        user: Option<&str>,
    ) {
        let about = events::About {
            vm: None,
            disk: Some(disk_named(inventory, disk_id)),
            user: user.map(str::to_owned),
        };
        self.events.record(what, about);
    }

    /// Writes event `what` about a VM and a disk (`(vm_id, disk_id)`, named from `inventory`),
    /// done by `user`: a disk attached to or detached from the VM.
    pub(crate) fn audit_vm_disk(
        &self,
        inventory: &Inventory,
        what: events::Audit<'_>,
        (vm_id, disk_id): (&str, &str),
        user: Option<&str>,
    ) {
        let about = events::About {
            vm: Some(vm_named(inventory, vm_id)),
            disk: Some(disk_named(inventory, disk_id)),
            user: user.map(str::to_owned),
        };
        self.events.record(what, about);
    }

    /// [`Self::audit_disk`], taking the inventory's lock (which the caller must not hold).
    pub(crate) fn record_disk(&self, what: events::Audit<'_>, disk_id: &str, user: Option<&str>) {
        let inventory = self.inventory.lock().expect("inventory lock");
        self.audit_disk(&inventory, what, disk_id, user);
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

/// VM `id` with its name (empty when it is gone), as an event names it.
pub(crate) fn vm_named(inventory: &Inventory, id: &str) -> (String, String) {
    let name = inventory.vm(id).map(|vm| vm.name.clone());
    (id.to_owned(), name.unwrap_or_default())
}

/// Disk `id` with its alias (empty when it is gone), as an event names it.
fn disk_named(inventory: &Inventory, id: &str) -> (String, String) {
    let alias = inventory.disks.iter().find(|d| d.id == id);
    (
        id.to_owned(),
        alias.map(|d| d.alias.clone()).unwrap_or_default(),
    )
}
