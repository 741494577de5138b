//! What every job of `ovrun` (a backup, a restore) shares: how it behaves ([`Options`]), how it
//! fails ([`RunError`]), and its preamble (the VM's catalog under its lock). Backup and restore
//! both start here; nothing here knows either command's steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::catalog::{Catalog, CatalogError, Manifest, VmLock};
use super::engine::EngineError;
use super::imageio::ImageioError;
use super::local::LocalError;
use crate::plan::runner::RunnerConfig;

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Take a full backup whatever the policy says.
    pub force_full: bool,
    /// Parallel connections per disk.
    pub workers: usize,
    /// How long to wait for another `ovrun` on the same VM.
    pub lock_wait: Duration,
    /// How long to wait for a locked VM or disk on the engine.
    pub engine_lock_wait: Duration,
    /// How often to poll the engine.
    pub poll_interval: Duration,
    /// Where `qemu-nbd` sockets go.
    pub run_dir: PathBuf,
    /// Set to stop the run (SIGTERM, Ctrl-C): it finalizes and exits.
    pub stop: Arc<AtomicBool>,
    /// Draw a progress bar (bytes, rate, ETA) on standard error: for a person at a terminal.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            force_full: false,
            workers: 4,
            lock_wait: Duration::from_secs(60),
            engine_lock_wait: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            run_dir: std::env::temp_dir(),
            stop: Arc::new(AtomicBool::new(false)),
            progress: false,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The runner config or the environment is wrong.
    #[error("{0}")]
    Config(String),
    /// The engine refused or did not answer.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The data plane failed.
    #[error(transparent)]
    Imageio(#[from] ImageioError),
    /// Writing the local image failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The backup directory failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The VM or a disk stayed locked.
    #[error("{0}")]
    Locked(String),
    /// The engine's backup failed.
    #[error("{0}")]
    Failed(String),
    /// Stopped by a signal.
    #[error("stopped by a signal; the engine's transfers and backup were finalized or cancelled")]
    Interrupted,
    /// A task (a worker, a blocking step) panicked: a bug, not the config's fault.
    #[error("a task panicked: {0}")]
    Panic(String),
}

/// What a successful backup made.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The new point.
    pub manifest: Manifest,
    /// Leftovers of an earlier, unfinished run that were removed.
    pub removed_leftovers: Vec<PathBuf>,
    /// Why an incremental became a full, if it did.
    pub fallback: Option<String>,
    /// Points removed by retention afterwards.
    pub pruned: Vec<String>,
}

/// Why a task that should have returned did not: it panicked, or was cancelled.
pub(crate) fn panicked(error: &tokio::task::JoinError) -> RunError {
    RunError::Panic(error.to_string())
}

/// The job's preamble: the VM's catalog in `config`'s backup directory, locked (waiting up to
/// `options.lock_wait` for another `ovrun` on the same VM). The lock is held while the
/// [`VmLock`] lives.
///
/// # Errors
/// The catalog cannot be opened, or the lock is not free in time.
pub(crate) async fn locked_catalog(
    config: &RunnerConfig,
    options: &Options,
) -> Result<(Catalog, VmLock), RunError> {
    let catalog = Catalog::open(Path::new(&config.backup_directory), &config.vm)?;
    let lock_wait = options.lock_wait;
    let lock_catalog = catalog.clone();
    let lock = tokio::task::spawn_blocking(move || lock_catalog.lock(lock_wait))
        .await
        .map_err(|e| panicked(&e))??;
    Ok((catalog, lock))
}
