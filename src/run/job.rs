//! What every job of `ovrun` (a backup, a restore) shares: how it behaves ([`Options`]), how it
//! fails ([`RunError`]), and its preamble (the VM's catalog under its lock, then its turn on the
//! engine: one of the engine's slots). Backup and restore both start here; nothing here knows
//! either command's steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::catalog::{Catalog, CatalogError, EngineSlots, Manifest, Slot, SlotKind, VmLock};
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
/// `options.lock_wait` for another `ovrun` on the same VM; a stop signal ends the wait). The
/// lock is held while the [`VmLock`] lives.
///
/// # Errors
/// The catalog cannot be opened, the lock is not free in time, or a stop signal came.
pub(crate) async fn locked_catalog(
    config: &RunnerConfig,
    options: &Options,
) -> Result<(Catalog, VmLock), RunError> {
    let catalog = Catalog::open(Path::new(&config.backup_directory), &config.vm)?;
    let started = Instant::now();
    let mut said = false;
    loop {
        let attempt = catalog.clone();
        let tried = tokio::task::spawn_blocking(move || attempt.lock(Duration::ZERO))
            .await
            .map_err(|e| panicked(&e))?;
        match tried {
            Ok(lock) => return Ok((catalog, lock)),
            Err(CatalogError::Busy { vm, lock, .. }) if started.elapsed() >= options.lock_wait => {
                let waited = options.lock_wait;
                return Err(CatalogError::Busy { vm, lock, waited }.into());
            }
            Err(CatalogError::Busy { .. }) if !said => {
                said = true;
                tracing::info!(
                    "another ovrun holds VM {}'s catalog; waiting up to {} s for it",
                    config.vm,
                    options.lock_wait.as_secs()
                );
            }
            Err(CatalogError::Busy { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if options.stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// How often a job waiting for its VM's catalog lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// The job's turn on its engine: one of the engine's slots of `kind` (the source engine's
/// `max_concurrent_backups` for a backup, the DR engine's `max_concurrent_restores` for a
/// restore; see `catalog::slots`), taken after the VM's lock and before anything is changed on
/// the engine. While every slot is taken the job waits, saying once that it does and for which
/// engine; it never fails because the engine is busy. A stop signal ends the wait
/// ([`RunError::Interrupted`]). The slot is held while the [`Slot`] lives, and released by the
/// kernel when the process ends, however it ends.
///
/// # Errors
/// A slot cannot be opened (a link in the backup directory), the config names no DR engine
/// for a restore, or a stop signal came.
pub(crate) async fn engine_slot(
    config: &RunnerConfig,
    options: &Options,
    kind: SlotKind,
) -> Result<Slot, RunError> {
    let (url, count, key) = match (kind, &config.target) {
        (SlotKind::Backup, _) => (
            &config.source.url,
            config.max_concurrent_backups,
            "max_concurrent_backups",
        ),
        (SlotKind::Restore, Some(target)) => (
            &target.url,
            config.max_concurrent_restores,
            "max_concurrent_restores",
        ),
        (SlotKind::Restore, None) => {
            return Err(RunError::Config(format!(
                "VM {} has no DR engine to restore into",
                config.vm
            )));
        }
    };
    let slots = EngineSlots::open(Path::new(&config.backup_directory), kind, url, count)?;
    let (started, mut waiting) = (Instant::now(), false);
    loop {
        if options.stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        if let Some(slot) = slots.try_take()? {
            if waiting {
                let waited = started.elapsed().as_secs_f64();
                tracing::info!(vm = %config.vm, engine = %url, "took {} slot {} of {count} on engine {url} after waiting {waited:.1} s", kind.as_str(), slot.index() + 1);
            }
            return Ok(slot);
        }
        if !waiting {
            tracing::info!(
                vm = %config.vm,
                engine = %url,
                "waiting for a {} slot on engine {url}: all {count} are taken by other ovrun \
                 processes of this backup directory ({key}; the slots are in {})",
                kind.as_str(),
                slots.dir().display()
            );
            waiting = true;
        }
        tokio::time::sleep(options.poll_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner config of the committed bundle, backing up into `dir`, one backup at a time.
    fn config(dir: &Path) -> RunnerConfig {
        let text = include_str!("../../out/runner/billing01.json");
        let mut config = RunnerConfig::from_json(text).expect("reads");
        config.backup_directory = dir.to_str().expect("utf-8").to_owned();
        config.max_concurrent_backups = 1;
        config
    }

    #[tokio::test]
    async fn a_job_waits_for_a_free_slot_and_a_stop_ends_the_wait() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path());
        let options = Options {
            poll_interval: Duration::from_millis(10),
            ..Options::default()
        };
        let held = engine_slot(&config, &options, SlotKind::Backup)
            .await
            .expect("the one slot");
        let waiting = tokio::spawn({
            let (config, options) = (config.clone(), options.clone());
            async move { engine_slot(&config, &options, SlotKind::Backup).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "it waits while the slot is held");
        drop(held);
        let slot = waiting.await.expect("joins").expect("the freed slot");
        assert_eq!(slot.index(), 0);
        let stopped = tokio::spawn({
            let (config, options) = (config.clone(), options.clone());
            async move { engine_slot(&config, &options, SlotKind::Backup).await }
        });
        options.stop.store(true, Ordering::Relaxed);
        let error = stopped.await.expect("joins").expect_err("stopped");
        assert!(matches!(error, RunError::Interrupted), "{error}");
    }

    #[tokio::test]
    async fn a_restore_without_a_dr_engine_takes_no_slot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = engine_slot(&config(dir.path()), &Options::default(), SlotKind::Restore)
            .await
            .expect_err("no target");
        assert!(matches!(error, RunError::Config(_)), "{error}");
    }
}
