//! `ovsim`: the oVirt engine simulator's command line. Parses arguments, starts the server in a
//! tokio runtime, and runs until SIGINT or SIGTERM.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve {
        state,
        listen,
        token_ttl,
        seed,
        imageio,
    } = cli.command;
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
