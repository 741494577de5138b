//! `ovsim`: the oVirt engine simulator's command line. `main` parses the arguments (clap) and
//! calls [`run`]: `serve` starts the server in a tokio runtime and runs until SIGINT or SIGTERM,
//! `admin` sends one request to a running instance's admin endpoint. A [`Failure`] is the one
//! way a command fails, with its exit code.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary speaks to its user; the library logs through tracing"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ovbackup::cli::SelfDescription;
use ovbackup::sim::imageio::executable;
use ovbackup::sim::inventory::Seed;
use ovbackup::sim::server::{DEFAULT_PACE, EngineVersion, ServeOptions, start};

/// Exit codes: 0 success; 1 an admin request failed; 2 usage, or the server could not start.
const ADMIN_FAILED: u8 = 1;
const USAGE_OR_START: u8 = 2;

/// Why a command did not succeed: its exit code and the message to print after `error: `.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The server could not start (exit 2).
    fn start(message: impl Into<String>) -> Self {
        Self {
            code: USAGE_OR_START,
            message: message.into(),
        }
    }

    /// Prints the message and gives the exit code.
    fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

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
    Serve(ServeArgs),
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
    #[command(flatten)]
    SelfDescription(SelfDescription),
}

#[derive(Args)]
struct ServeArgs {
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
    /// The engine version to play, MAJOR.MINOR: before 4.4 there is no backup API (no
    /// `/vms/{id}/backups` or `checkpoints`: 404), as on oVirt and OLVM 4.3.
    #[arg(long, default_value = "4.5")]
    engine_version: EngineVersion,
    /// Seconds that work nobody polls (snapshots, new disks, backups starting or finalizing,
    /// transfers ending) takes before it finishes by itself; a poll moves it on at once.
    #[arg(long, default_value_t = DEFAULT_PACE.as_secs_f64(), value_parser = pace)]
    pace: f64,
}

/// `--pace`: a number of seconds, positive and finite.
fn pace(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 3600"
        )),
    }
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
    /// Hold snapshots being made `locked` (`{"hold": true}`), or release them.
    HoldSnapshots,
    /// Print how many VMs are being backed up now and the most at once (JSON).
    PeakBackups,
    /// Count the most VMs backed up at once again from now (prints the same JSON).
    ResetPeakBackups,
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
            AdminAction::HoldSnapshots => (reqwest::Method::POST, "hold-snapshots"),
            AdminAction::PeakBackups => (reqwest::Method::GET, "peak-backups"),
            AdminAction::ResetPeakBackups => (reqwest::Method::DELETE, "peak-backups"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli).unwrap_or_else(Failure::report)
}

/// Runs the command line's command.
///
/// # Errors
/// The command failed; the [`Failure`] says how to exit.
fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Admin {
            state,
            action,
            request,
        } => admin(&state, action, &request),
        Command::SelfDescription(what) => what
            .run(Cli::command())
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| Failure {
                code: ADMIN_FAILED,
                message: e.to_string(),
            }),
    }
}

/// Serves until SIGINT or SIGTERM.
fn serve(args: ServeArgs) -> Result<ExitCode, Failure> {
    let seed = args
        .seed
        .map(|path| read_seed(&path))
        .transpose()
        .map_err(Failure::start)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::start(format!("starting the runtime: {e}")))?;
    let options = ServeOptions {
        state: args.state,
        listen: args.listen,
        token_ttl: chrono::Duration::seconds(args.token_ttl),
        seed,
        imageio: Some(
            args.imageio
                .unwrap_or_else(|| executable(&std::env::current_dir().unwrap_or_default())),
        ),
        version: args.engine_version,
        pace: std::time::Duration::from_secs_f64(args.pace),
    };
    runtime.block_on(async {
        let running = start(&options)
            .await
            .map_err(|e| Failure::start(e.to_string()))?;
        println!(
            "ovsim: serving {} (CA {}, users in {})",
            running.api_url(),
            running.pki.ca_cert.display(),
            options.state.join("users.json").display()
        );
        shutdown_signal().await;
        running.shutdown().await;
        Ok(ExitCode::SUCCESS)
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

/// A file of a running instance's state folder.
fn read_state(state: &std::path::Path, name: &str) -> Result<String, String> {
    fs_err::read_to_string(state.join(name)).map_err(|e| {
        format!(
            "{e} (is an ovsim serving with --state {}?)",
            state.display()
        )
    })
}

/// A running instance's URL and its admin's password, from its state folder.
fn admin_login(state: &std::path::Path) -> Result<(String, String), String> {
    let url = read_state(state, "url")?;
    let users: std::collections::HashMap<String, String> =
        serde_json::from_str(&read_state(state, "users.json")?)
            .map_err(|e| format!("users.json: {e}"))?;
    let password = users
        .get("admin@internal")
        .ok_or("users.json has no admin@internal")?;
    Ok((url, password.clone()))
}

/// Sends one admin request to the instance whose state folder is `state`.
fn admin(state: &std::path::Path, action: AdminAction, request: &str) -> Result<ExitCode, Failure> {
    tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(send_admin(state, action, request)))
        .map(|()| ExitCode::SUCCESS)
        .map_err(|message| Failure {
            code: ADMIN_FAILED,
            message,
        })
}

async fn send_admin(
    state: &std::path::Path,
    action: AdminAction,
    request: &str,
) -> Result<(), String> {
    let (url, password) = admin_login(state)?;
    let body: serde_json::Value =
        serde_json::from_str(request).map_err(|e| format!("the request is not JSON: {e}"))?;
    let ca = reqwest::Certificate::from_pem(read_state(state, "pki/ca.pem")?.as_bytes())
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
        // An action that answers something (the peak of backups) prints it.
        if !text.is_empty() {
            println!("{text}");
        }
        return Ok(());
    }
    Err(format!("{endpoint}: {status} {text}"))
}
