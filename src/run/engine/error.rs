//! [`EngineError`]: what can go wrong talking to an engine, from no answer to the engine's own
//! faults, some of which the session and [`super::ops`] sort into what a caller decides on
//! ([`EngineError::NeedsFull`], [`EngineError::Locked`], [`EngineError::NotFound`]).

use reqwest::{Method, StatusCode};

use crate::run::transport::TransportKind;

/// What can go wrong talking to an engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The client cannot be set up (CA file, password).
    #[error("{0}")]
    Setup(String),
    /// The runner config's engine URL is one `ovrun` does not send credentials to.
    #[error(
        "the engine URL {url:?} {reason}\nhelp: set the engine's url in the runner config to \
         https://ENGINE/ovirt-engine/api (ovrun sends the password only over TLS verified with \
         the engine's CA), or rebuild it with `ovplan build`"
    )]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No answer (connection refused, unknown host, TLS refused, timeout, a redirect elsewhere).
    #[error("{method} {url}: {cause}\nhelp: {help}")]
    Transport {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// What kind of failure.
        kind: TransportKind,
        /// The cause in plain words (from the error's source chain).
        cause: String,
        /// What to do about it.
        help: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// SSO refused the credentials.
    #[error("logging in to {url} as {user}: {detail}")]
    Login {
        /// The token URL.
        url: String,
        /// The user.
        user: String,
        /// The engine's words.
        detail: String,
    },
    /// The engine answered with an error status (and its fault, when it sent one).
    #[error("{method} {path}: {status} {reason}: {detail}")]
    Fault {
        /// The method.
        method: Method,
        /// The path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The fault's reason (empty without a fault).
        reason: String,
        /// The fault's detail.
        detail: String,
    },
    /// An answer that is not the expected shape.
    #[error("{path}: unexpected answer: {why}")]
    Decode {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// The engine cannot take an incremental backup and wants a full one (a checkpoint it does
    /// not know or marked invalid, a lost bitmap, a backup that failed on the engine; section
    /// 6.8 of the API page).
    #[error("{}", shown(reason, fault.as_deref()))]
    NeedsFull {
        /// Why, in the engine's words (a fault's detail) or ours (a failed phase).
        reason: String,
        /// The fault the engine answered, when it answered one.
        fault: Option<Box<EngineError>>,
    },
    /// The engine refused because something is busy or locked (a backup still running).
    #[error("{fault}")]
    Locked {
        /// What is locked, in the engine's words.
        what: String,
        /// The fault the engine answered.
        fault: Box<EngineError>,
    },
    /// The engine has no API for what was asked (an engine older than the feature).
    #[error("{url} is {product}: it has no {feature} (oVirt {since} or newer)\nhelp: {help}")]
    Unsupported {
        /// The engine's API URL.
        url: String,
        /// The product and version it reports.
        product: String,
        /// What it lacks.
        feature: String,
        /// The first version that has it.
        since: String,
        /// What to do.
        help: String,
    },
    /// An object looked up by name does not exist.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for.
        what: String,
    },
}

/// A fault as the engine sent it, else our reason.
fn shown(reason: &str, fault: Option<&EngineError>) -> String {
    fault.map_or_else(|| reason.to_owned(), ToString::to_string)
}

impl EngineError {
    /// The HTTP status of a fault, if this is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            EngineError::Fault { status, .. } => Some(*status),
            EngineError::Locked { fault, .. } => fault.status(),
            EngineError::NeedsFull { fault, .. } => fault.as_ref().and_then(|f| f.status()),
            _ => None,
        }
    }

    /// Whether the engine said the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound { .. }) || self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Whether a failed call may succeed when repeated: no answer, or a server error.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Transport { .. })
            || self.status().is_some_and(|s| s.is_server_error())
    }

    /// Whether the runner config, the files it names or the engine it points at are wrong, so
    /// that no retry can help: the CA file, the password file, the URL, an engine without the
    /// API the job needs.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            EngineError::Setup(_) | EngineError::Url { .. } | EngineError::Unsupported { .. }
        )
    }

    /// The fault's detail text ("" if none).
    pub fn detail(&self) -> &str {
        match self {
            EngineError::Fault { detail, .. } => detail,
            _ => "",
        }
    }
}
