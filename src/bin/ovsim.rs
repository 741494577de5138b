//! `ovsim`: the oVirt engine simulator's command line. Parses arguments, starts the server in a
//! tokio runtime, and runs until SIGINT or SIGTERM.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary speaks to its user; the library logs through tracing"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ovbackup::sim::imageio::executable;
use ovbackup::sim::inventory::Seed;
use ovbackup::sim::server::{ServeOptions, start};

#[derive(Parser)]
#[command(
    name = "ovsim",
    version,
    about = "An oVirt engine simulator on the real oVirt data plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the engine API over HTTPS with the simulator's own CA (made at first start).
    Serve {
        /// The state folder (PKI, users, disks), kept across restarts.
        #[arg(long)]
        state: PathBuf,
        /// Address to listen on; port 0 picks a free one (printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Seconds an SSO token lives, so clients must log in again.
        #[arg(long, default_value_t = 3600)]
        token_ttl: i64,
        /// What exists at first start: clusters, storage domains, hosts, VMs and their disks
        /// (JSON). Ignored once the state folder holds an inventory.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// The ovirt-imageio daemon to run; default $OVSIM_IMAGEIO, else ./.venv/bin/ovirt-imageio
        /// (what scripts/setup.sh installs), else ovirt-imageio on PATH.
        #[arg(long)]
        imageio: Option<PathBuf>,
    },
    /// Inject a fault or act as a guest on a running instance (its admin endpoint), e.g.
    /// `ovsim admin --state DIR fault '{"path": "/ovirt-engine/api/vms/*", "status": 500}'`.
    Admin {
        /// The running instance's state folder (its URL, CA and admin password are there).
        #[arg(long)]
        state: PathBuf,
        /// What to do.
        #[arg(value_enum)]
        action: AdminAction,
        /// The request, as JSON (see the README for each action's fields).
        #[arg(default_value = "{}")]
        request: String,
    },
}

/// The admin endpoint's actions.
#[derive(Clone, Copy, clap::ValueEnum)]
enum AdminAction {
    /// Fail or delay the next calls of an endpoint.
    Fault,
    /// Remove every injected fault.
    ClearFaults,
    /// Lock or unlock a VM or a disk.
    Lock,
    /// Write to a disk as its guest would.
    GuestWrite,
    /// Cut the data connection of a transfer once it moved some bytes.
    Cut,
    /// Lose a checkpoint's bitmap, as after an unclean shutdown.
    LoseBitmap,
    /// Set a checkpoint's state (`invalid`).
    CheckpointState,
}

impl AdminAction {
    fn endpoint(self) -> (reqwest::Method, &'static str) {
        match self {
            AdminAction::Fault => (reqwest::Method::POST, "faults"),
            AdminAction::ClearFaults => (reqwest::Method::DELETE, "faults"),
            AdminAction::Lock => (reqwest::Method::POST, "lock"),
            AdminAction::GuestWrite => (reqwest::Method::POST, "guest-write"),
            AdminAction::Cut => (reqwest::Method::POST, "cut"),
            AdminAction::LoseBitmap => (reqwest::Method::POST, "lose-bitmap"),
            AdminAction::CheckpointState => (reqwest::Method::POST, "checkpoint-state"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (state, listen, token_ttl, seed, imageio) = match cli.command {
        Command::Serve {
            state,
            listen,
            token_ttl,
            seed,
            imageio,
        } => (state, listen, token_ttl, seed, imageio),
        Command::Admin {
            state,
            action,
            request,
        } => return admin(&state, action, &request),
    };
    let seed = match seed.map(|path| read_seed(&path)).transpose() {
        Ok(seed) => seed,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let options = ServeOptions {
            state,
            listen,
            token_ttl: chrono::Duration::seconds(token_ttl),
            seed,
            imageio: Some(
                imageio.unwrap_or_else(|| executable(&std::env::current_dir().unwrap_or_default())),
            ),
        };
        let running = match start(&options).await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        println!(
            "ovsim: serving {} (CA {}, users in {})",
            running.api_url(),
            running.pki.ca_cert.display(),
            options.state.join("users.json").display()
        );
        shutdown_signal().await;
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn read_seed(path: &PathBuf) -> Result<Seed, String> {
    let text = fs_err::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a seed file: {e}", path.display()))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Sends one admin request to the instance whose state folder is `state`.
fn admin(state: &std::path::Path, action: AdminAction, request: &str) -> ExitCode {
    match tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(send_admin(state, action, request)))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

async fn send_admin(
    state: &std::path::Path,
    action: AdminAction,
    request: &str,
) -> Result<(), String> {
    let read = |name: &str| {
        fs_err::read_to_string(state.join(name)).map_err(|e| {
            format!(
                "{e} (is an ovsim serving with --state {}?)",
                state.display()
            )
        })
    };
    let url = read("url")?;
    let users: std::collections::HashMap<String, String> =
        serde_json::from_str(&read("users.json")?).map_err(|e| format!("users.json: {e}"))?;
    let password = users
        .get("admin@internal")
        .ok_or("users.json has no admin@internal")?;
    let body: serde_json::Value =
        serde_json::from_str(request).map_err(|e| format!("the request is not JSON: {e}"))?;
    let ca = reqwest::Certificate::from_pem(read("pki/ca.pem")?.as_bytes())
        .map_err(|e| format!("pki/ca.pem: {e}"))?;
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .map_err(|e| e.to_string())?;
    let (method, endpoint) = action.endpoint();
    let response = http
        .request(method, format!("{}/ovsim/admin/{endpoint}", url.trim()))
        .basic_auth("admin@internal", Some(password))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", url.trim()))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    Err(format!("{endpoint}: {status} {text}"))
}
