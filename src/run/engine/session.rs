//! The HTTP session with one engine: SSO login, a new login on 401, idempotent reads retried
//! on 5xx and transport errors, TLS that trusts only the engine's CA (through
//! [`crate::run::transport`]), and the engine's faults turned into [`EngineError`]s that name
//! the call. Callers use the typed operations of [`super::ops`]; `get`/`post` stay public for
//! them and for tests.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use super::EngineError;
use super::wire::fault_of;
use crate::plan::runner::EngineAccess;
use crate::run::transport;

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

    /// The engine's API URL (`https://ENGINE/ovirt-engine/api`).
    pub fn api_url(&self) -> &str {
        &self.api
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
            let token = self.bearer().await?;
            let response = match self.request(&method, path, body, &token).send().await {
                Ok(response) => response,
                Err(source) if attempt < tries => {
                    pause_before_retry(&method, path, source, attempt).await;
                    continue;
                }
                Err(source) => return Err(self.transport_error(method, self.url(path), source)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !relogged {
                relogged = true;
                *self.token.lock().await = None;
            } else if status.is_server_error() && attempt < tries {
                pause_before_retry(&method, path, status, attempt).await;
            } else {
                return decode(method, path, status, response).await;
            }
        }
    }

    /// The session's token, logging in when there is none.
    async fn bearer(&self) -> Result<String, EngineError> {
        // The guard must be gone before `login` takes the lock again.
        let cached = self.token.lock().await.clone();
        match cached {
            Some(token) => Ok(token),
            None => self.login().await,
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(token)
            .header("Accept", "application/json")
            .header("Version", "4")
            .timeout(self.timeout);
        match body {
            Some(body) => request.json(body),
            None => request,
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
    // An action may say "failed" with a 200 on some engines.
    let fault = value
        .as_ref()
        .and_then(|v| fault_of(v, status.is_success()));
    let (reason, detail) = match (status.is_success(), fault) {
        (true, None) => return Ok(value.unwrap_or(Value::Null)),
        (_, Some(fault)) => fault.parts(),
        (false, None) => (String::new(), plain_text(&text)),
    };
    Err(EngineError::Fault {
        method,
        path: path.to_owned(),
        status,
        reason,
        detail,
    })
}

/// At most 200 characters of a body without a fault; nothing of an HTML page.
fn plain_text(text: &str) -> String {
    if text.trim_start().starts_with('<') {
        String::new()
    } else {
        text.trim().chars().take(200).collect()
    }
}

/// Logs why a call is tried again, and waits `attempt` seconds.
async fn pause_before_retry(
    method: &Method,
    path: &str,
    why: impl std::fmt::Display,
    attempt: u64,
) {
    tracing::warn!("{method} {path}: {why}; trying again");
    tokio::time::sleep(Duration::from_secs(attempt)).await;
}
