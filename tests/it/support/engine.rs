//! A plain HTTPS client of the simulated engine for the contract tests: JSON requests with a
//! bearer token, polling of phases, and the ovirt-imageio data plane (extents, ranged reads,
//! writes), written from the API page alone, as any third-party client would be.

use std::path::{Path, PathBuf};
use std::process::Command;

use ovbackup::sim::server::{EngineVersion, Running, ServeOptions, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::https_client;

pub const MIB: u64 = 1024 * 1024;

/// A running simulator with the real data plane and a logged-in client.
pub struct Sim {
    pub running: Running,
    pub http: reqwest::Client,
    pub bearer: String,
    pub state: PathBuf,
}

/// The seed of the flow tests: `web 01` (up, two disks with data) and `db01` (down, no disks).
pub fn seed() -> Value {
    json!({
        "clusters": [{"name": "Default"}, {"name": "DR"}],
        "storage_domains": [{"name": "data"}],
        "vms": [
            {"name": "web 01", "memory_mib": 2048, "disks": [
                {"name": "web01_os", "size_mib": 64, "data": [{"offset_mib": 0, "length_mib": 4, "pattern": 17}]},
                {"name": "web01_data", "size_mib": 16, "interface": "virtio"}
            ]},
            {"name": "db01", "status": "down"}
        ]
    })
}

impl Sim {
    /// Starts one in `state` with `seed` and logs in.
    pub async fn start(state: &Path, seed: Value) -> Sim {
        Self::start_as(state, seed, EngineVersion::default()).await
    }

    /// The same, playing engine `version`.
    pub async fn start_as(state: &Path, seed: Value, version: EngineVersion) -> Sim {
        let project = Path::new(env!("CARGO_MANIFEST_DIR"));
        let options = ServeOptions {
            state: state.to_owned(),
            listen: "127.0.0.1:0".parse().expect("address"),
            token_ttl: chrono::Duration::seconds(600),
            seed: Some(serde_json::from_value(seed).expect("seed")),
            imageio: Some(ovbackup::sim::imageio::executable(project)),
            version,
            pace: ovbackup::sim::server::DEFAULT_PACE,
        };
        let running = start(&options).await.expect("ovsim starts");
        let http = https_client(&running.pki.ca_cert);
        let password = running.users["admin@internal"].clone();
        let token: Value = http
            .post(format!(
                "{}/ovirt-engine/sso/oauth/token",
                running.base_url()
            ))
            .form(&[
                ("grant_type", "password"),
                ("scope", "ovirt-app-api"),
                ("username", "admin@internal"),
                ("password", &password),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("JSON");
        let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token"));
        Sim {
            running,
            http,
            bearer,
            state: state.to_owned(),
        }
    }

    /// `path` under the API root, or a whole `href` as the engine gives it.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/ovirt-engine") || path.starts_with("/ovsim") {
            format!("{}{path}", self.running.base_url())
        } else {
            format!("{}{path}", self.running.api_url())
        }
    }

    /// A JSON call; the status and the body (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Authorization", &self.bearer)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// GET that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POST that must answer `expected`.
    pub async fn post(&self, path: &str, body: Value, expected: u16) -> Value {
        let (status, answer) = self.call(Method::POST, path, Some(body)).await;
        assert_eq!(status.as_u16(), expected, "POST {path}: {answer}");
        answer
    }

    /// An admin call (fault injection, guest activity) that must succeed.
    pub async fn admin(&self, what: &str, body: Value) {
        let (status, answer) = self
            .call(Method::POST, &format!("/ovsim/admin/{what}"), Some(body))
            .await;
        assert!(status.is_success(), "admin {what}: {status} {answer}");
    }

    /// Polls `path` until its `key` is `want`; fails on any of `failing`. Returns the polls
    /// it took and the last body.
    pub async fn wait_for(
        &self,
        path: &str,
        key: &str,
        want: &str,
        failing: &[&str],
    ) -> (u32, Value) {
        for polls in 1..=60 {
            let body = self.get(path).await;
            let value = body[key].as_str().unwrap_or_default().to_owned();
            if value == want {
                return (polls, body);
            }
            assert!(!failing.contains(&value.as_str()), "{path}: {key} {value}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{path} never reached {key}={want}");
    }

    /// Reads `path` (a list, or an object that does not move on when read) until `done` holds
    /// on it; panics naming `what` after 30 s.
    pub async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what} did not happen by itself within 30 s: {path}");
    }

    /// The VM named `name`.
    pub async fn vm(&self, name: &str) -> Value {
        let search = format!("name=\"{name}\"");
        let query: String = url_escape(&search);
        self.get(&format!("/vms?search={query}&case_sensitive=true"))
            .await["vm"][0]
            .clone()
    }

    /// The id of the disk with alias `alias`.
    pub async fn disk_id(&self, alias: &str) -> String {
        let disks = self.get(&format!("/disks?search=name%3D{alias}")).await;
        disks["disk"][0]["id"].as_str().expect("disk").to_owned()
    }

    /// The qcow2 file of a disk in the state folder.
    pub fn disk_file(&self, id: &str) -> PathBuf {
        self.state.join("disks").join(format!("{id}.qcow2"))
    }

    /// The read-only layer snapshot `snapshot` made of a disk (the disk as it was then, with
    /// the layers below it as its backing chain).
    pub fn layer_file(&self, disk: &str, snapshot: &str) -> PathBuf {
        (self.state.join("disks")).join(format!("{disk}.snap-{snapshot}.qcow2"))
    }

    /// Starts an image transfer and waits for `transferring`; returns its href and URL.
    pub async fn transfer(&self, request: Value) -> (String, String) {
        let created = self.post("/imagetransfers", request, 201).await;
        assert_eq!(created["phase"], "initializing");
        let href = created["href"].as_str().expect("href").to_owned();
        let (_, ready) = self
            .wait_for(
                &href,
                "phase",
                "transferring",
                &["finished_failure", "paused_system"],
            )
            .await;
        (
            href,
            ready["transfer_url"].as_str().expect("url").to_owned(),
        )
    }

    /// Finalizes a transfer and waits for `finished_success`.
    pub async fn finish_transfer(&self, href: &str) {
        self.post(&format!("{href}/finalize"), json!({}), 200).await;
        self.wait_for(href, "phase", "finished_success", &["finished_failure"])
            .await;
    }

    /// The extents of a ticket in `context` (`zero` or `dirty`).
    pub async fn extents(&self, url: &str, context: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{url}/extents?context={context}"))
            .send()
            .await
            .expect("GET extents");
        assert_eq!(response.status(), 200);
        response.json().await.expect("extents")
    }

    /// Bytes `[offset, offset + length)` of a ticket.
    pub async fn read(&self, url: &str, offset: u64, length: u64) -> reqwest::Result<Vec<u8>> {
        let response = self
            .http
            .get(url)
            .header("Range", format!("bytes={offset}-{}", offset + length - 1))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.bytes().await?.to_vec())
    }

    /// Writes `data` at `offset` of a ticket (no flush).
    pub async fn write(&self, url: &str, offset: u64, data: Vec<u8>) {
        let end = offset + data.len() as u64 - 1;
        let response = self
            .http
            .put(format!("{url}?flush=n"))
            .header("Content-Range", format!("bytes {offset}-{end}/*"))
            .body(data)
            .send()
            .await
            .expect("PUT");
        assert!(response.status().is_success(), "PUT: {}", response.status());
    }

    /// Flushes a ticket.
    pub async fn flush(&self, url: &str) {
        let response = self
            .http
            .patch(url)
            .json(&json!({"op": "flush"}))
            .send()
            .await
            .expect("PATCH");
        assert!(response.status().is_success());
    }
}

/// Percent-encodes a query value (every byte but letters, digits, `-`, `_` and `.`).
pub fn url_escape(text: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(text, KEPT).to_string()
}

/// Runs a command that must succeed; its standard output.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether two images hold the same guest data (`qemu-img compare`, formats probed; `-U`
/// because a disk may be exported while we look).
pub fn same_content(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img")
        .args(["compare", "-U", "-q"])
        .arg(a)
        .arg(b)
        .status()
        .expect("qemu-img compare")
        .success()
}

/// The official imageio client's checksum of an image's content (`client.checksum`, which the
/// daemon's checksum API equals), in the algorithm `ovrun` records: SHA-256 in 4 MiB blocks.
pub fn imageio_checksum(image: &Path) -> String {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; from ovirt_imageio import client; \
             print(client.checksum(sys.argv[1], algorithm='sha256')['checksum'])",
        ])
        .arg(image)
        .output()
        .expect("the .venv's python (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "client.checksum: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A raw copy of a disk's current content (what a backup started now must see).
pub fn raw_copy(disk: &Path, to: &Path) {
    sh(
        "qemu-img",
        &[
            "convert",
            "-U",
            "-O",
            "raw",
            disk.to_str().expect("utf-8"),
            to.to_str().expect("utf-8"),
        ],
    );
}

/// The `(start, length)` of extents whose `key` is `value`.
pub fn ranges(extents: &[Value], key: &str, value: bool) -> Vec<(u64, u64)> {
    extents
        .iter()
        .filter(|e| e[key] == Value::Bool(value))
        .map(|e| {
            (
                e["start"].as_u64().expect("start"),
                e["length"].as_u64().expect("length"),
            )
        })
        .collect()
}

/// `ovsim` without a data plane (for its TLS and PKI), listening on `listen`.
pub async fn sim_without_data_plane(state: &Path, listen: &str) -> Running {
    start(&ServeOptions {
        state: state.to_owned(),
        listen: listen.parse().expect("address"),
        token_ttl: chrono::Duration::seconds(600),
        seed: Some(serde_json::from_value(seed()).expect("seed")),
        imageio: None,
        version: Default::default(),
        pace: ovbackup::sim::server::DEFAULT_PACE,
    })
    .await
    .expect("ovsim starts")
}
