//! Serving the control plane over HTTPS with the simulator's own certificate (rustls), on an
//! address of the caller's choosing (`127.0.0.1:0` picks a free port).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use chrono::Duration;

use super::SimError;
use super::api::router;
use super::imageio::Imageio;
use super::inventory::{Inventory, Seed};
use super::pki::{self, PkiFiles};
use super::state::Engine;
use super::state::data_plane::DataPlane;
pub use super::state::{DEFAULT_PACE, EngineVersion};

/// How a simulator instance is set up.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Its state folder (PKI, users, disks), kept across restarts.
    pub state: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// How long an SSO token lives.
    pub token_ttl: Duration,
    /// What exists at first start (ignored once the state folder has an inventory).
    pub seed: Option<Seed>,
    /// The `ovirt-imageio` executable for the data plane; `None` serves the control plane only.
    pub imageio: Option<PathBuf>,
    /// The engine version it plays.
    pub version: EngineVersion,
    /// How long work nobody polls takes before it finishes by itself.
    pub pace: std::time::Duration,
}

/// A running instance; `stop` (or dropping the handle's server task) ends it.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its PKI files (clients trust `ca_cert`).
    pub pki: PkiFiles,
    /// The users it accepts: `name@profile` -> password.
    pub users: HashMap<String, String>,
    handle: Handle<SocketAddr>,
    server: ServerTask,
    engine: Arc<Engine>,
}

impl Running {
    /// The API root URL.
    pub fn api_url(&self) -> String {
        format!("https://localhost:{}/ovirt-engine/api", self.addr.port())
    }

    /// The engine base URL (`https://localhost:PORT`).
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The process id of its `ovirt-imageio` daemon (none without a data plane): a drill kills
    /// it to see it started again.
    pub fn imageio_pid(&self) -> Option<u32> {
        self.engine.data_plane.as_ref()?.imageio.pid()
    }

    /// Stops serving (the data plane stops when the last request ends; see [`Self::shutdown`]).
    pub fn stop(&self) {
        self.handle.shutdown();
    }

    /// Stops serving and waits until the data plane is down: the `ovirt-imageio` daemon and
    /// every `qemu-nbd` export stopped, so the disks are free for the next instance (a restart
    /// with the state kept).
    pub async fn shutdown(self) {
        self.handle.shutdown();
        let _ = self.server.await;
        let mut engine = self.engine;
        for _ in 0..500 {
            match Arc::try_unwrap(engine) {
                Ok(alone) => {
                    // Dropping it stops the daemon and the exports (blocking, bounded).
                    let _ = tokio::task::spawn_blocking(move || drop(alone)).await;
                    return;
                }
                Err(shared) => engine = shared,
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::warn!("requests still hold the engine after 10 s; leaving it to them");
    }
}

/// The users of an instance: `STATE/users.json`, made at first start with `admin@internal` and a
/// random password, so a drill never runs with a password everybody knows.
///
/// # Errors
/// The file cannot be read or written.
pub fn load_or_create_users(state: &Path) -> Result<HashMap<String, String>, SimError> {
    let path = state.join("users.json");
    if let Ok(text) = fs_err::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| SimError::Start {
            program: "ovsim".into(),
            why: format!("{} is not a users file: {e}", path.display()),
        });
    }
    let password = hex::encode(rand::random::<[u8; 12]>());
    let users = HashMap::from([("admin@internal".to_owned(), password)]);
    let text = serde_json::to_string_pretty(&users).expect("a map of strings serializes");
    crate::fsutil::write_atomic(&path, text.as_bytes())
        .map_err(SimError::io("writing users.json"))?;
    Ok(users)
}

/// Starts serving in the current tokio runtime.
///
/// # Errors
/// The state folder, the PKI or the listening socket cannot be set up.
pub async fn start(options: &ServeOptions) -> Result<Running, SimError> {
    fs_err::create_dir_all(&options.state).map_err(SimError::io(format!(
        "creating {}",
        options.state.display()
    )))?;
    let pki = pki::load_or_create(&options.state.join("pki"))?;
    let users = load_or_create_users(&options.state)?;
    let ca_pem = fs_err::read_to_string(&pki.ca_cert).map_err(SimError::io("reading the CA"))?;
    let tls = RustlsConfig::from_pem_file(&pki.server_cert, &pki.server_key)
        .await
        .map_err(SimError::io("loading the server certificate"))?;
    let inventory = Inventory::load_or_seed(&options.state, options.seed.as_ref())?;
    let mut engine = Engine::new(ca_pem, users.clone(), options.token_ttl, inventory)
        .with_state(options.state.clone())
        .with_version(options.version)
        .with_pace(options.pace);
    if let Some(executable) = &options.imageio {
        let plane = start_data_plane(&options.state, executable, &pki).await?;
        engine = engine.with_data_plane(plane);
    }
    let engine = Arc::new(engine);
    tokio::spawn(super::clock::run(Arc::downgrade(&engine)));
    let (addr, handle, server) = serve(options.listen, tls, engine.clone()).await?;
    // Where this instance answers, for `ovsim admin` and for drills.
    let url = format!("https://localhost:{}\n", addr.port());
    crate::fsutil::write_atomic(&options.state.join("url"), url.as_bytes())
        .map_err(SimError::io("writing STATE/url"))?;
    Ok(Running {
        addr,
        pki,
        users,
        handle,
        server,
        engine,
    })
}

/// The data plane of an instance: its `ovirt-imageio` daemon (state in `STATE/imageio`), the
/// disks in `STATE/disks` and the exports' sockets in `STATE/run`.
async fn start_data_plane(
    state: &Path,
    executable: &Path,
    pki: &PkiFiles,
) -> Result<DataPlane, SimError> {
    let (executable, dir, files) = (executable.to_owned(), state.join("imageio"), pki.clone());
    let imageio = tokio::task::spawn_blocking(move || Imageio::start(&executable, &dir, &files))
        .await
        .expect("the daemon start task does not panic")?;
    let run = state.join("run");
    fs_err::create_dir_all(&run).map_err(SimError::io(format!("creating {}", run.display())))?;
    Ok(DataPlane::new(imageio, state.join("disks"), run))
}

/// The server task of a running instance.
type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Serves the engine's routes over TLS on `listen`; once it listens, the address, the handle
/// that stops it, and its task.
async fn serve(
    listen: SocketAddr,
    tls: RustlsConfig,
    engine: Arc<Engine>,
) -> Result<(SocketAddr, Handle<SocketAddr>, ServerTask), SimError> {
    let handle = Handle::new();
    let server = axum_server::bind_rustls(listen, tls).handle(handle.clone());
    let server = tokio::spawn(server.serve(router(engine).into_make_service()));
    let addr = handle.listening().await.ok_or_else(|| SimError::Start {
        program: "ovsim".into(),
        why: format!("could not listen on {listen}"),
    })?;
    Ok((addr, handle, server))
}
