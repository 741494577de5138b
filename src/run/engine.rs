//! The engine's REST API as `ovrun` speaks it (section 1-7 and 12 of the API page): lenient types
//! (scalars as strings or numbers, an empty list as `{}`, optional fields missing, HTML 401 pages,
//! 404 with no body), and a client that logs in through SSO, logs in again on 401, retries
//! idempotent reads on 5xx and transport errors, and turns the engine's faults into
//! [`EngineError`]s that name the call.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use super::transport::{self, TransportKind};
use crate::plan::runner::EngineAccess;

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
}

impl EngineError {
    /// The HTTP status of a fault, if this is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            EngineError::Fault { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the engine said the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Whether the runner config or the files it names are wrong (no request was sent): the CA
    /// file, the password file, the URL.
    pub fn is_config(&self) -> bool {
        matches!(self, EngineError::Setup(_) | EngineError::Url { .. })
    }

    /// The fault's detail text ("" if none).
    pub fn detail(&self) -> &str {
        match self {
            EngineError::Fault { detail, .. } => detail,
            _ => "",
        }
    }
}

/// Lenient scalars: the engine writes numbers and booleans as strings in JSON (and some
/// engines as plain values); both are accepted.
mod lenient {
    use super::{Deserialize, Deserializer, Value};

    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        })
    }

    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        })
    }

    pub fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        })
    }

    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => Some(s.trim().eq_ignore_ascii_case("true")),
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        })
    }

    /// A list that an engine may send as `[...]`, a single object, or `{}` when empty.
    pub fn list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
                .collect(),
            Some(Value::Object(map)) if map.is_empty() => Ok(Vec::new()),
            Some(other @ Value::Object(_)) => serde_json::from_value(other)
                .map(|one| vec![one])
                .map_err(serde::de::Error::custom),
            _ => Ok(Vec::new()),
        }
    }
}

/// A reference to another object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Ref {
    /// Its id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// Its link.
    #[serde(default)]
    pub href: Option<String>,
    /// Its name, when the engine includes it.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
}

/// A VM.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vm {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `up`, `down`, `image_locked`, ...
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// Its cluster.
    #[serde(default)]
    pub cluster: Option<Ref>,
    /// Memory in bytes.
    #[serde(default, deserialize_with = "lenient::number")]
    pub memory: Option<u64>,
    /// Free text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    /// `<href>`.
    #[serde(default)]
    pub href: Option<String>,
}

/// `GET /vms`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vms {
    /// The VMs.
    #[serde(default, deserialize_with = "lenient::list")]
    pub vm: Vec<Vm>,
}

/// A disk attachment (its id is the disk's).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiskAttachment {
    /// The disk id.
    #[serde(default)]
    pub id: String,
    /// The disk (with `?follow=disk`, the whole disk).
    #[serde(default)]
    pub disk: Option<Disk>,
    /// `virtio_scsi`, `virtio`, `sata`, `ide`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub interface: Option<String>,
    /// The boot disk.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub bootable: Option<bool>,
    /// Plugged.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub active: Option<bool>,
}

/// `GET /vms/{id}/diskattachments`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiskAttachments {
    /// The attachments.
    #[serde(default, deserialize_with = "lenient::list")]
    pub disk_attachment: Vec<DiskAttachment>,
}

/// A disk.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Disk {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Alias.
    #[serde(default, deserialize_with = "lenient::text")]
    pub alias: Option<String>,
    /// Name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Virtual size in bytes.
    #[serde(default, deserialize_with = "lenient::number")]
    pub provisioned_size: Option<u64>,
    /// `cow` or `raw`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub format: Option<String>,
    /// `ok`, `locked`, `illegal`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// `image`, `lun`, `cinder`, `managed_block_storage`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub storage_type: Option<String>,
    /// `data`, `iso`, `memory_dump_volume`, ...
    #[serde(default, deserialize_with = "lenient::text")]
    pub content_type: Option<String>,
    /// In a backup's disk list: `full` or `incremental`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub backup_mode: Option<String>,
}

impl Disk {
    /// The name a person knows it by.
    pub fn label(&self) -> &str {
        self.alias
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or(&self.id)
    }
}

/// `GET /disks`, a backup's or checkpoint's disks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Disks {
    /// The disks.
    #[serde(default, deserialize_with = "lenient::list")]
    pub disk: Vec<Disk>,
}

/// A VM backup.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Backup {
    /// Id.
    pub id: String,
    /// `initializing`, `starting`, `ready`, `finalizing`, `succeeded`, `failed`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phase: Option<String>,
    /// The checkpoint an incremental starts from.
    #[serde(default, deserialize_with = "lenient::text")]
    pub from_checkpoint_id: Option<String>,
    /// The checkpoint it creates (known from `ready`).
    #[serde(default, deserialize_with = "lenient::text")]
    pub to_checkpoint_id: Option<String>,
    /// The client's description (ovrun's start with `ovrun `).
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
}

/// `GET /vms/{id}/backups`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Backups {
    /// The backups.
    #[serde(default, deserialize_with = "lenient::list")]
    pub backup: Vec<Backup>,
}

/// A checkpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Checkpoint {
    /// Id.
    pub id: String,
    /// The previous one.
    #[serde(default, deserialize_with = "lenient::text")]
    pub parent_id: Option<String>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::signed")]
    pub creation_date: Option<i64>,
    /// `created` or `invalid`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub state: Option<String>,
}

/// `GET /vms/{id}/checkpoints`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Checkpoints {
    /// The checkpoints.
    #[serde(default, deserialize_with = "lenient::list")]
    pub checkpoint: Vec<Checkpoint>,
}

/// An image transfer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageTransfer {
    /// Id.
    pub id: String,
    /// Its phase.
    #[serde(default, deserialize_with = "lenient::text")]
    pub phase: Option<String>,
    /// The host's imageio URL.
    #[serde(default, deserialize_with = "lenient::text")]
    pub transfer_url: Option<String>,
    /// The engine's imageio proxy URL.
    #[serde(default, deserialize_with = "lenient::text")]
    pub proxy_url: Option<String>,
}

/// An engine fault document, or the fault inside an action.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Fault {
    /// e.g. "Operation Failed".
    #[serde(default, deserialize_with = "lenient::text")]
    pub reason: Option<String>,
    /// e.g. "[Cannot backup VM. ...]".
    #[serde(default, deserialize_with = "lenient::text")]
    pub detail: Option<String>,
    /// In an action: the fault.
    #[serde(default)]
    pub fault: Option<Box<Fault>>,
}

impl Fault {
    /// The innermost reason and detail.
    fn parts(&self) -> (String, String) {
        match &self.fault {
            Some(inner) => inner.parts(),
            None => (
                self.reason.clone().unwrap_or_default(),
                self.detail.clone().unwrap_or_default(),
            ),
        }
    }
}

/// A job.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Job {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// `started`, `finished`, `failed`, `aborted`, `unknown`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
}

/// `GET /jobs`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jobs {
    /// The jobs.
    #[serde(default, deserialize_with = "lenient::list")]
    pub job: Vec<Job>,
}

/// An object with a name (cluster, storage domain, host).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Named {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
struct Token {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A logged-in client of one engine.
#[derive(Debug)]
pub struct EngineClient {
    http: reqwest::Client,
    base: String,
    api: String,
    ca_file: Option<String>,
    user: String,
    password: String,
    token: Mutex<Option<String>>,
    timeout: Duration,
}

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// An HTTPS client that trusts only the CA in `ca_file` (never the system store, never no
/// verification), sends nothing over plain HTTP, and follows redirects only within the first
/// URL's origin ([`transport::same_origin_redirects`]).
///
/// # Errors
/// The CA file is missing or not a certificate.
pub fn https_client(ca_file: Option<&str>) -> Result<reqwest::Client, EngineError> {
    let Some(ca_file) = ca_file else {
        return Err(EngineError::Setup(
            "no ca_file is configured for this engine, and ovrun trusts no other CA\nhelp: run \
             `ovrun cert fetch --config RUNNER.json --engine source|target --out FILE` and set \
             ca_file to FILE in the policy"
                .into(),
        ));
    };
    let refuse = |why: String| {
        EngineError::Setup(format!(
            "the CA file {ca_file} {why}\nhelp: the engine's CA certificate (PEM) is needed to \
             verify it; `ovrun cert fetch` downloads it"
        ))
    };
    let pem = fs_err::read(ca_file).map_err(|e| refuse(format!("cannot be read ({e})")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| refuse(format!("is not PEM ({e})")))?;
    if certificates.is_empty() {
        return Err(refuse("holds no certificate".to_owned()));
    }
    reqwest::Client::builder()
        .tls_certs_only(certificates)
        .https_only(true)
        .redirect(transport::same_origin_redirects())
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| EngineError::Setup(format!("setting up TLS: {e}")))
}

/// Reads a password: the systemd credential `credential` when the unit loaded it
/// (`$CREDENTIALS_DIRECTORY`), else the file. A trailing newline is not part of it.
///
/// # Errors
/// Neither is readable.
pub fn read_password(access: &EngineAccess) -> Result<String, EngineError> {
    let from_credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| std::path::Path::new(&dir).join(&access.password_credential))
        .filter(|p| p.exists());
    let path = from_credentials.unwrap_or_else(|| access.password_file.clone().into());
    let text = fs_err::read_to_string(&path).map_err(|e| {
        EngineError::Setup(format!(
            "{e}\nhelp: the password of {} for {} is read from this file (mode 0400, one line)",
            access.user, access.url
        ))
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

impl EngineClient {
    /// A client for the engine `access` describes, with its password. Nothing is sent yet.
    ///
    /// # Errors
    /// The URL is not an https engine API URL ([`EngineError::Url`]), or the CA file cannot be
    /// used.
    pub fn new(access: &EngineAccess, password: String) -> Result<Self, EngineError> {
        let api = check_url(&access.url)?;
        let base = api
            .strip_suffix("/ovirt-engine/api")
            .expect("check_url keeps only URLs ending with /ovirt-engine/api")
            .to_owned();
        Ok(Self {
            http: https_client(access.ca_file.as_deref())?,
            base,
            api,
            ca_file: access.ca_file.clone(),
            user: access.user.clone(),
            password,
            token: Mutex::new(None),
            timeout: CALL_TIMEOUT,
        })
    }

    /// The same client with another time limit per call (120 s by default).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A request that got no answer, with its cause in plain words.
    fn transport_error(&self, method: Method, url: String, source: reqwest::Error) -> EngineError {
        let described = transport::describe(
            &source,
            transport::Context {
                url: &url,
                ca_file: self.ca_file.as_deref(),
                timeout: Some(self.timeout),
            },
        );
        EngineError::Transport {
            method,
            url,
            kind: described.kind,
            cause: described.cause,
            help: described.help,
            source,
        }
    }

    /// The HTTP client (it trusts the engine's CA, which signs imageio's certificates too).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Logs in (SSO password grant) and keeps the token.
    async fn login(&self) -> Result<String, EngineError> {
        let url = format!("{}/ovirt-engine/sso/oauth/token", self.base);
        let response = self
            .http
            .post(&url)
            .header("Accept", "application/json")
            .form(&[
                ("grant_type", "password"),
                ("scope", "ovirt-app-api"),
                ("username", self.user.as_str()),
                ("password", self.password.as_str()),
            ])
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|source| self.transport_error(Method::POST, url.clone(), source))?;
        let token: Token = response.json().await.map_err(|e| EngineError::Login {
            url: url.clone(),
            user: self.user.clone(),
            detail: format!("not an SSO answer: {e}"),
        })?;
        match token.access_token {
            Some(token) => {
                *self.token.lock().await = Some(token.clone());
                Ok(token)
            }
            None => Err(EngineError::Login {
                url,
                user: self.user.clone(),
                detail: token
                    .error_description
                    .or(token.error)
                    .unwrap_or_else(|| "no token".into()),
            }),
        }
    }

    /// Revokes the token (best effort).
    pub async fn logout(&self) {
        let Some(token) = self.token.lock().await.take() else {
            return;
        };
        let url = format!("{}/ovirt-engine/services/sso-logout", self.base);
        let _ = self
            .http
            .post(url)
            .form(&[("scope", "ovirt-app-api"), ("token", token.as_str())])
            .timeout(Duration::from_secs(10))
            .send()
            .await;
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("/ovirt-engine/") {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}", self.api)
        }
    }

    /// One call; JSON in and out. Logs in first and again on 401; retries a GET on 5xx or a
    /// transport error (3 tries, 1 s, 2 s apart).
    ///
    /// # Errors
    /// The engine refused (a [`EngineError::Fault`]), or did not answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, EngineError> {
        let tries = if method == Method::GET { 3 } else { 1 };
        let mut relogged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The guard must be gone before `login` takes the lock again.
            let cached = self.token.lock().await.clone();
            let token = match cached {
                Some(token) => token,
                None => self.login().await?,
            };
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(&token)
                .header("Accept", "application/json")
                .header("Version", "4")
                .timeout(self.timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(source) if attempt < tries => {
                    tracing::warn!("{method} {path}: {source}; trying again");
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                    continue;
                }
                Err(source) => {
                    return Err(self.transport_error(method, self.url(path), source));
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !relogged {
                relogged = true;
                *self.token.lock().await = None;
                continue;
            }
            if status.is_server_error() && attempt < tries {
                tracing::warn!("{method} {path}: {status}; trying again");
                tokio::time::sleep(Duration::from_secs(attempt)).await;
                continue;
            }
            return decode(method, path, status, response).await;
        }
    }

    /// `GET path` as `T`.
    ///
    /// # Errors
    /// See [`Self::call`]; or the answer is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, EngineError> {
        let value = self.call(Method::GET, path, None).await?;
        typed(path, value)
    }

    /// `POST path` with `body`, as `T`.
    ///
    /// # Errors
    /// See [`Self::call`]; or the answer is not a `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, EngineError> {
        let value = self.call(Method::POST, path, Some(body)).await?;
        typed(path, value)
    }

    /// An action (`POST path` with `{}`): finalize, cancel, start, ...
    ///
    /// # Errors
    /// See [`Self::call`].
    pub async fn action(&self, path: &str) -> Result<(), EngineError> {
        self.call(
            Method::POST,
            path,
            Some(&Value::Object(serde_json::Map::new())),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE path`.
    ///
    /// # Errors
    /// See [`Self::call`].
    pub async fn delete(&self, path: &str) -> Result<(), EngineError> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }

    /// The VMs named exactly `name` (case-sensitive; the engine's search also matches
    /// patterns and other cases).
    ///
    /// # Errors
    /// The call fails.
    pub async fn vms_named(&self, name: &str) -> Result<Vec<Vm>, EngineError> {
        let search = format!("name=\"{}\"", name.replace('"', "\\\""));
        let query: String = url_encode(&search);
        let vms: Vms = self
            .get(&format!("/vms?search={query}&case_sensitive=true"))
            .await?;
        Ok(vms.vm.into_iter().filter(|vm| vm.name == name).collect())
    }

    /// The one VM named `name` (exact, case-sensitive).
    ///
    /// # Errors
    /// None or several match, or the call fails.
    pub async fn vm_by_name(&self, name: &str) -> Result<Vm, EngineError> {
        let mut exact = self.vms_named(name).await?;
        match exact.len() {
            1 => Ok(exact.remove(0)),
            0 => Err(EngineError::Decode {
                path: "/vms".into(),
                why: format!("no VM is named {name:?} on {}", self.api),
            }),
            n => Err(EngineError::Decode {
                path: "/vms".into(),
                why: format!("{n} VMs are named {name:?}"),
            }),
        }
    }
}

/// The engine API URL of a runner config, if it is one credentials may be sent to: https, a
/// host, no user info, ending with `/ovirt-engine/api`. Without a trailing `/`.
///
/// # Errors
/// [`EngineError::Url`], naming the URL and what is wrong.
pub fn check_url(url: &str) -> Result<String, EngineError> {
    transport::api_url(url).map_err(|reason| EngineError::Url {
        url: url.to_owned(),
        reason,
    })
}

/// Percent-encodes a query value: every byte but RFC 3986's unreserved characters.
pub fn url_encode(text: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string()
}

fn typed<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, EngineError> {
    serde_json::from_value(value).map_err(|e| EngineError::Decode {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// The body of an answer, or the fault it carries. A 404 has no body; a 401 may be an HTML page.
async fn decode(
    method: Method,
    path: &str,
    status: StatusCode,
    response: reqwest::Response,
) -> Result<Value, EngineError> {
    let text = response.text().await.unwrap_or_default();
    let value: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        let value = value.unwrap_or(Value::Null);
        // An action may say "failed" with a 200 on some engines.
        if value["status"] == "failed"
            && let Some(fault) = fault_of(&value)
        {
            let (reason, detail) = fault.parts();
            return Err(EngineError::Fault {
                method,
                path: path.to_owned(),
                status,
                reason,
                detail,
            });
        }
        return Ok(value);
    }
    let (reason, detail) = value
        .as_ref()
        .and_then(fault_of)
        .map(|f| f.parts())
        .unwrap_or_else(|| {
            let plain = if text.trim_start().starts_with('<') {
                String::new()
            } else {
                text.trim().chars().take(200).collect()
            };
            (String::new(), plain)
        });
    Err(EngineError::Fault {
        method,
        path: path.to_owned(),
        status,
        reason,
        detail,
    })
}

fn fault_of(value: &Value) -> Option<Fault> {
    let fault: Fault = serde_json::from_value(value.clone()).ok()?;
    (fault.reason.is_some() || fault.detail.is_some() || fault.fault.is_some()).then_some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_as_strings_or_values_and_empty_lists_as_objects() {
        let vms: Vms = serde_json::from_value(json!({"vm": [
            {"id": "1", "name": "a", "memory": "1073741824", "status": "up"},
            {"id": "2", "name": "b", "memory": 2048}
        ]}))
        .unwrap();
        assert_eq!(vms.vm[0].memory, Some(1 << 30));
        assert_eq!(vms.vm[1].memory, Some(2048));
        let empty: DiskAttachments = serde_json::from_value(json!({})).unwrap();
        assert!(empty.disk_attachment.is_empty());
        let one: Disks = serde_json::from_value(json!({"disk": {"id": "d"}})).unwrap();
        assert_eq!(one.disk[0].id, "d");
        let a: DiskAttachment =
            serde_json::from_value(json!({"id": "d", "bootable": "true", "active": false}))
                .unwrap();
        assert_eq!((a.bootable, a.active), (Some(true), Some(false)));
    }

    #[test]
    fn faults_plain_and_inside_an_action() {
        let plain: Fault =
            serde_json::from_value(json!({"reason": "Operation Failed", "detail": "[x]"})).unwrap();
        assert_eq!(plain.parts(), ("Operation Failed".into(), "[x]".into()));
        let action: Fault = serde_json::from_value(
            json!({"status": "failed", "fault": {"reason": "Operation Failed", "detail": "[y]"}}),
        )
        .unwrap();
        assert_eq!(action.parts(), ("Operation Failed".into(), "[y]".into()));
    }
}
