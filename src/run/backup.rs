//! One backup run of one VM: section 13.1 of the API page, with full or incremental decided by
//! policy.md section 3.
//!
//! The order matters for safety: the VM's lock is taken and leftovers of a dead run removed
//! first; the engine's backup and each transfer are always finalized, also on errors and on
//! interruption; the point's manifest is written last, and only then the checkpoints file, so a
//! point that exists is complete and a run that failed leaves nothing that looks like a point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::blocksum::{self, BlockSums};
use super::catalog::{
    self, Catalog, CatalogError, ContentSum, DiskEntry, MANIFEST_FORMAT, Manifest,
};
use super::engine::wait::{Seen, WaitError, wait_until};
use super::engine::{
    Backup, BackupMode, BackupPhase, BackupRequest, CheckpointState, ContentType, Disk, DiskStatus,
    EngineClient, EngineError, StorageType, TransferPhase, TransferRequest, Vm, shown,
};
use super::imageio::{Extent, ImageioError, Ticket};
use super::local::{self, LocalError, Writer};
use super::retry;
use super::workers::{Ranges, join_all};
use crate::plan::full::{Chain, Kind, Reason, decide};
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
}

/// What a successful run made.
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

/// A disk to back up, as attached to the VM.
#[derive(Debug, Clone)]
struct Source {
    disk: Disk,
    interface: String,
    bootable: bool,
}

/// Runs one backup of the VM in `config`.
///
/// # Errors
/// Any step fails; the engine's backup and transfers are finalized and the point's files
/// removed before this returns.
pub async fn run(config: &RunnerConfig, options: &Options) -> Result<Outcome, RunError> {
    let catalog = Catalog::open(Path::new(&config.backup_directory), &config.vm)?;
    let lock_wait = options.lock_wait;
    let lock_catalog = catalog.clone();
    let _lock = tokio::task::spawn_blocking(move || lock_catalog.lock(lock_wait))
        .await
        .map_err(|e| RunError::Config(e.to_string()))??;
    let removed_leftovers = catalog.remove_leftovers()?;
    for path in &removed_leftovers {
        tracing::warn!(
            "removed {}: left by a run that did not finish (it was never a point)",
            path.display()
        );
    }
    let started = Utc::now();
    let result = connect_and_back_up(config, options, &catalog)
        .await
        .and_then(|done| record_success(&catalog, started, done));
    if let Err(e) = &result
        && let Err(not_recorded) = catalog.record_run(started, Err(&e.to_string()))
    {
        tracing::warn!("{not_recorded}");
    }
    if let Ok((manifest, _)) = &result {
        export_checkpoint(config, manifest);
    }
    let pruned = match &result {
        Ok(_) => prune_after_backup(config, &catalog),
        Err(_) => Vec::new(),
    };
    result.map(|(manifest, fallback)| Outcome {
        manifest,
        removed_leftovers,
        fallback,
        pruned,
    })
}

/// Records a run that made a point in the VM's status. A status that cannot be written (a full
/// disk) withdraws the point, whose files then free the space for recording the failure: a
/// point that `ovrun status` and the metrics do not show would be a success nobody sees.
fn record_success(
    catalog: &Catalog,
    started: DateTime<Utc>,
    done: (Manifest, Option<String>),
) -> Result<(Manifest, Option<String>), RunError> {
    match catalog.record_run(started, Ok(&done.0.point)) {
        Ok(()) => Ok(done),
        Err(e) => {
            withdraw(catalog, &done.0);
            Err(e.into())
        }
    }
}

/// Removes a committed point: its manifest first (from then on its files are leftovers), then
/// its files. A failure to remove is logged: the next run's leftover sweep removes the rest.
fn withdraw(catalog: &Catalog, manifest: &Manifest) {
    tracing::warn!(point = %manifest.point, "withdrawing the point: its run could not be recorded");
    if let Err(e) = catalog.remove(&manifest.file_name()) {
        tracing::warn!("{e}");
    }
    catalog.remove_point_files(&manifest.point);
}

/// Writes the point's checkpoint to the `checkpoints_file`. The manifests are the truth and the
/// file an export for the predecessor's tools, so a failure is a warning: the point counts,
/// and the run (and the restore that follows it) goes on.
fn export_checkpoint(config: &RunnerConfig, manifest: &Manifest) {
    let path = Path::new(&config.checkpoints_file);
    if let Err(e) = catalog::record_checkpoint(
        path,
        &config.vm,
        manifest.checkpoint.as_deref(),
        &manifest.point,
    ) {
        tracing::warn!(
            point = %manifest.point,
            "the point is complete, but the checkpoints file {} was not updated: {e}; the \
             next backup writes it again (check that it can be written)",
            path.display()
        );
    }
}

/// Retention after a successful backup; a failure to prune is logged, not fatal (the backup
/// is good, and the next run prunes again).
fn prune_after_backup(config: &RunnerConfig, catalog: &Catalog) -> Vec<String> {
    match catalog.prune(&config.retention, config.zone(), Utc::now(), false) {
        Ok(verdict) => {
            for id in &verdict.delete {
                tracing::info!(point = %id, "pruned by retention");
            }
            verdict.delete
        }
        Err(e) => {
            tracing::warn!("pruning failed (the next run tries again): {e}");
            Vec::new()
        }
    }
}

async fn connect_and_back_up(
    config: &RunnerConfig,
    options: &Options,
    catalog: &Catalog,
) -> Result<(Manifest, Option<String>), RunError> {
    let password = super::engine::read_password(&config.source)?;
    let client = EngineClient::new(&config.source, password)?;
    let result = backup(&client, config, options, catalog).await;
    client.logout().await;
    result
}

/// Now, or the next second when a point already has this second's id (a point's id is its UTC
/// second: a second backup within one second must not collide with the first).
async fn unused_second(points: &[Manifest]) -> DateTime<Utc> {
    loop {
        let now = Utc::now();
        let id = catalog::point_id(now);
        if !points.iter().any(|p| p.point == id) {
            return now;
        }
        let into_second = u64::from(now.timestamp_subsec_millis());
        tokio::time::sleep(Duration::from_millis(1001 - into_second.min(1000))).await;
    }
}

async fn backup(
    client: &EngineClient,
    config: &RunnerConfig,
    options: &Options,
    catalog: &Catalog,
) -> Result<(Manifest, Option<String>), RunError> {
    let vm = wait_for_vm(client, &config.vm, options).await?;
    finalize_stale_backups(client, &vm.id, options).await?;
    let sources = wait_for_disks(client, &vm.id, &config.vm, options).await?;
    let points = catalog.points()?;
    let taken_at = unused_second(&points).await;
    let (kind, reason, parent) =
        choose_kind(client, config, options, &vm.id, &points, &sources, taken_at).await?;
    let attempt = Attempt {
        client,
        config,
        options,
        catalog,
        vm_id: &vm.id,
        memory: vm.memory,
        sources: &sources,
        taken_at,
    };
    match attempt.take(kind, &reason, parent).await {
        Err(RunError::Engine(EngineError::NeedsFull { reason: why, .. })) if parent.is_some() => {
            let fallback = format!("incremental backup not possible ({why}); taking a full backup");
            tracing::warn!("{fallback}");
            let manifest = attempt
                .take(Kind::Full, "fallback after a failed incremental", None)
                .await?;
            Ok((manifest, Some(fallback)))
        }
        other => other.map(|manifest| (manifest, None)),
    }
}

/// The VM, once it is not locked (up to `engine_lock_wait`).
async fn wait_for_vm(client: &EngineClient, name: &str, options: &Options) -> Result<Vm, RunError> {
    let patience = retry::stoppable(options, options.engine_lock_wait).steady();
    let what = format!("VM {name} to be unlocked");
    let waited = wait_until(&what, patience, async || unlocked_vm(client, name).await).await;
    waited.map_err(|e| match e {
        WaitError::TimedOut { last, .. } => RunError::Locked(format!(
            "VM {name} is still {last} after {:?}; if no task holds it, unlock it on the engine (unlock_entity.sh -t vm)",
            options.engine_lock_wait
        )),
        other => other.into(),
    })
}

/// The VM named `name` if it is not locked; else its status.
async fn unlocked_vm(client: &EngineClient, name: &str) -> Result<Seen<Vm>, RunError> {
    let vm = client.vm_by_name(name).await?;
    match vm.status.as_ref().filter(|s| s.is_locked()) {
        None => Ok(Seen::Done(vm)),
        Some(status) => {
            tracing::info!("VM {name} is {status}; waiting");
            Ok(Seen::Waiting(status.to_string()))
        }
    }
}

/// The VM's backed-up disks (active image data disks), once none is locked.
async fn wait_for_disks(
    client: &EngineClient,
    vm_id: &str,
    vm_name: &str,
    options: &Options,
) -> Result<Vec<Source>, RunError> {
    let patience = retry::stoppable(options, options.engine_lock_wait).steady();
    let what = format!("the disks of VM {vm_name} to be unlocked");
    let poll = async || unlocked_sources(client, vm_id, vm_name).await;
    wait_until(&what, patience, poll).await.map_err(|e| match e {
        WaitError::TimedOut { last, .. } => RunError::Locked(format!(
            "disks of VM {vm_name} still locked after {:?}: {last}; if no task holds them, unlock them on the engine (unlock_entity.sh -t disk)",
            options.engine_lock_wait,
        )),
        other => other.into(),
    })
}

/// The VM's backed-up disks if none is locked; else the locked ones' names.
async fn unlocked_sources(
    client: &EngineClient,
    vm_id: &str,
    vm_name: &str,
) -> Result<Seen<Vec<Source>>, RunError> {
    let sources = sources_of(client, vm_id).await?;
    if sources.is_empty() {
        return Err(RunError::Config(format!(
            "VM {vm_name} has no active image disk to back up"
        )));
    }
    let locked: Vec<&str> = sources
        .iter()
        .filter(|s| s.disk.status == Some(DiskStatus::Locked))
        .map(|s| s.disk.label())
        .collect();
    if locked.is_empty() {
        return Ok(Seen::Done(sources));
    }
    tracing::info!("disks locked: {}; waiting", locked.join(", "));
    Ok(Seen::Waiting(locked.join(", ")))
}

/// The VM's active image data disks, as attached.
async fn sources_of(client: &EngineClient, vm_id: &str) -> Result<Vec<Source>, RunError> {
    let mut sources = Vec::new();
    for attachment in client.disk_attachments(vm_id).await? {
        if attachment.active == Some(false) {
            continue;
        }
        let disk = match attachment.disk {
            Some(disk) if disk.provisioned_size.is_some() => disk,
            _ => client.disk(&attachment.id).await?,
        };
        let image = disk
            .storage_type
            .as_ref()
            .is_none_or(|t| *t == StorageType::Image);
        let data = disk
            .content_type
            .as_ref()
            .is_none_or(|t| *t == ContentType::Data);
        if image && data {
            sources.push(Source {
                disk,
                interface: attachment.interface.unwrap_or_else(|| "virtio_scsi".into()),
                bootable: attachment.bootable.unwrap_or(false),
            });
        }
    }
    Ok(sources)
}

/// Full or incremental, why, and the point an incremental builds on.
async fn choose_kind<'p>(
    client: &EngineClient,
    config: &RunnerConfig,
    options: &Options,
    vm_id: &str,
    points: &'p [Manifest],
    sources: &[Source],
    at: DateTime<Utc>,
) -> Result<(Kind, String, Option<&'p Manifest>), RunError> {
    let policy = config.full_policy();
    let zone = config.zone();
    if options.force_full {
        return Ok((Kind::Full, "--full was given".into(), None));
    }
    let Some(last) = points.last() else {
        return Ok((Kind::Full, "no backup exists yet".into(), None));
    };
    if let Some(why) = chain_unusable(client, vm_id, last, sources).await? {
        return Ok((Kind::Full, why, None));
    }
    let chain_points = Catalog::chain(points, &last.point);
    let chain = chain_points.first().map(|full| Chain {
        full_at: full.taken_at,
        incrementals: u32::try_from(chain_points.len() - 1).unwrap_or(u32::MAX),
    });
    let (kind, reason) = decide(&policy, zone, at, chain);
    let parent = (kind == Kind::Incremental).then_some(last);
    Ok((kind, describe(reason), parent))
}

fn describe(reason: Reason) -> String {
    match reason {
        Reason::IncrementalDisabled => "incremental backups are disabled".into(),
        Reason::NoChain => "no usable chain".into(),
        Reason::FrequencyDue(f) => format!("a {} full backup is due", f.as_str()),
        Reason::ChainFull => "the chain reached max_incremental_chain_length".into(),
        Reason::FullTooOld => "the chain's full backup is older than force_full_backup_days".into(),
        Reason::ChainContinues => "the chain continues".into(),
    }
}

/// Why the last point cannot be built on (rule 2), if it cannot.
async fn chain_unusable(
    client: &EngineClient,
    vm_id: &str,
    last: &Manifest,
    sources: &[Source],
) -> Result<Option<String>, RunError> {
    let Some(checkpoint) = &last.checkpoint else {
        return Ok(Some("the last point has no checkpoint".into()));
    };
    if last.vm_id != vm_id {
        return Ok(Some("the VM was re-created (its id changed)".into()));
    }
    let mut ours: Vec<&str> = last.disks.iter().map(|d| d.id.as_str()).collect();
    let mut now: Vec<&str> = sources.iter().map(|s| s.disk.id.as_str()).collect();
    ours.sort_unstable();
    now.sort_unstable();
    if ours != now {
        return Ok(Some("the VM's disk set changed".into()));
    }
    let known = client.checkpoints(vm_id).await?;
    match known.iter().find(|c| &c.id == checkpoint) {
        None => Ok(Some(format!(
            "the engine does not know checkpoint {checkpoint} any more"
        ))),
        Some(c) if c.state == Some(CheckpointState::Invalid) => Ok(Some(format!(
            "the engine marked checkpoint {checkpoint} invalid"
        ))),
        Some(_) => Ok(None),
    }
}

/// Everything one attempt (full, or incremental from a parent) needs.
struct Attempt<'a> {
    client: &'a EngineClient,
    config: &'a RunnerConfig,
    options: &'a Options,
    catalog: &'a Catalog,
    vm_id: &'a str,
    memory: Option<u64>,
    sources: &'a [Source],
    taken_at: DateTime<Utc>,
}

impl Attempt<'_> {
    /// Takes the point: starts the engine's backup, transfers every disk, always finalizes;
    /// then writes the manifest and the checkpoints file.
    async fn take(
        &self,
        kind: Kind,
        reason: &str,
        parent: Option<&Manifest>,
    ) -> Result<Manifest, RunError> {
        let point = catalog::point_id(self.taken_at);
        tracing::info!(vm = %self.config.vm, point = %point, "{} backup: {reason}", kind.as_str());
        let started = self.start(parent).await?;
        let transferred = self.transfer_all(&started, &point, kind, parent).await;
        let finalized = self.finalize(&started.id).await;
        let disks = match (transferred, finalized) {
            (Ok(disks), Ok(checkpoint)) => (disks, checkpoint),
            (Err(e), _) | (Ok(_), Err(e)) => {
                self.catalog.remove_point_files(&point);
                return Err(e);
            }
        };
        let (disks, checkpoint) = disks;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            vm: self.config.vm.clone(),
            vm_id: self.vm_id.to_owned(),
            point: point.clone(),
            kind: kind.as_str().into(),
            reason: reason.into(),
            taken_at: self.taken_at,
            parent: parent.map(|p| p.point.clone()),
            backup_id: started.id.clone(),
            from_checkpoint: started.from_checkpoint_id.clone(),
            checkpoint,
            memory: self.memory,
            disks,
        };
        if let Err(e) = self.catalog.commit(&manifest) {
            self.catalog.remove_point_files(&point);
            return Err(e.into());
        }
        Ok(manifest)
    }

    /// Starts the engine's backup, then polls until it is ready.
    async fn start(&self, parent: Option<&Manifest>) -> Result<Backup, RunError> {
        let request = BackupRequest {
            description: format!("ovrun {}", catalog::point_id(self.taken_at)),
            disks: self.sources.iter().map(|s| s.disk.id.as_str()).collect(),
            from_checkpoint: parent.and_then(|p| p.checkpoint.as_deref()),
        };
        let backup = self.post_backup(&request).await?;
        let ready = self.wait_ready(&backup.id).await;
        if ready.is_err()
            && let Err(e) = self.finalize(&backup.id).await
        {
            tracing::warn!("finalizing backup {} after a failed start: {e}", backup.id);
        }
        ready
    }

    /// Polls the engine's backup until it is ready (at most [`retry::PHASE_WAIT`]).
    async fn wait_ready(&self, backup: &str) -> Result<Backup, RunError> {
        let what = format!("backup {backup} to reach phase {}", BackupPhase::Ready);
        let patience = retry::stoppable(self.options, retry::PHASE_WAIT);
        let poll = async || self.ready_backup(backup).await;
        Ok(wait_until(&what, patience, poll).await?)
    }

    /// The engine's backup if it is ready; else its phase. A failed backup wants a full one
    /// (a checkpoint's bitmap was lost).
    async fn ready_backup(&self, backup: &str) -> Result<Seen<Backup>, RunError> {
        let now = match self.client.backup(self.vm_id, backup).await {
            Ok(now) => now,
            Err(e) if e.is_not_found() => {
                return Err(RunError::Failed(format!("backup {backup} vanished")));
            }
            Err(e) => return Err(e.into()),
        };
        match &now.phase {
            Some(BackupPhase::Ready) => Ok(Seen::Done(now)),
            Some(BackupPhase::Failed) => Err(EngineError::NeedsFull {
                reason: format!(
                    "backup {backup} failed on the engine (FULL_VM_BACKUP_NEEDED if a checkpoint's bitmap was lost)"
                ),
                fault: None,
            }
            .into()),
            phase => Ok(Seen::Waiting(format!("phase {}", shown(phase.as_ref())))),
        }
    }

    /// Starts the engine's backup. A backup left running by an `ovrun` that was killed blocks
    /// a new one (the engine says the VM is locked by a backup): it is finalized, and the start
    /// tried again.
    async fn post_backup(&self, request: &BackupRequest<'_>) -> Result<Backup, RunError> {
        match self.client.start_backup(self.vm_id, request).await {
            Err(e @ EngineError::Locked { .. }) => {
                let stale = finalize_stale_backups(self.client, self.vm_id, self.options).await?;
                if stale == 0 {
                    return Err(e.into());
                }
                Ok(self.client.start_backup(self.vm_id, request).await?)
            }
            other => Ok(other?),
        }
    }

    /// Finalizes the engine's backup and waits for `succeeded`; the checkpoint it created.
    async fn finalize(&self, backup: &str) -> Result<Option<String>, RunError> {
        finalize_backup(self.client, self.vm_id, backup, self.options).await
    }

    async fn transfer_all(
        &self,
        started: &Backup,
        point: &str,
        kind: Kind,
        parent: Option<&Manifest>,
    ) -> Result<Vec<DiskEntry>, RunError> {
        let modes: Vec<Disk> = self.client.backup_disks(self.vm_id, &started.id).await?;
        let mode_of: BTreeMap<&str, &BackupMode> = modes
            .iter()
            .map(|d| {
                (
                    d.id.as_str(),
                    d.backup_mode.as_ref().unwrap_or(&BackupMode::Full),
                )
            })
            .collect();
        let names = file_names(self.sources);
        let mut entries = Vec::new();
        for source in self.sources {
            let incremental = kind == Kind::Incremental
                && mode_of.get(source.disk.id.as_str()) == Some(&&BackupMode::Incremental);
            let parent_disk = parent
                .filter(|_| incremental)
                .and_then(|p| p.disks.iter().find(|d| d.id == source.disk.id));
            let file = format!("{point}.{}.{}.qcow2", kind.as_str(), names[&source.disk.id]);
            let entry = self
                .transfer_disk(started, source, &file, parent_disk)
                .await?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// One disk: an image transfer of the backup, its extents, the data ranges read in
    /// parallel into a local qcow2; the transfer always finalized.
    async fn transfer_disk(
        &self,
        started: &Backup,
        source: &Source,
        file: &str,
        parent: Option<&DiskEntry>,
    ) -> Result<DiskEntry, RunError> {
        let size = source.disk.size()?;
        let path = self.catalog.create_image(file)?;
        let backing = parent
            .map(|p| self.catalog.qemu_path(&p.file))
            .transpose()?;
        local::create(&path, size, backing.as_deref())?;
        let request = TransferRequest::Download {
            disk: &source.disk.id,
            backup: &started.id,
        };
        let transfer = self.client.create_transfer(request).await?;
        let start_sums = self.parent_sums(parent, size);
        let moved = match wait_transferring(self.client, self.options, &transfer.id).await {
            Ok(url) => {
                self.download(&url, &path, parent.is_some(), start_sums, source)
                    .await
            }
            Err(e) => Err(e),
        };
        let finished = finish_transfer(self.client, self.options, &transfer.id).await;
        let (bytes, sums) = moved?;
        finished?;
        let blocks = file.replace(".qcow2", ".sums");
        self.catalog.write_file(&blocks, &sums.to_bytes())?;
        let file_size = self.catalog.file_size(file)?;
        Ok(DiskEntry {
            id: source.disk.id.clone(),
            alias: source.disk.label().to_owned(),
            interface: source.interface.clone(),
            bootable: source.bootable,
            provisioned_size: size,
            mode: if parent.is_some() {
                "incremental"
            } else {
                "full"
            }
            .into(),
            file: file.to_owned(),
            backing: parent.map(|p| p.file.clone()),
            bytes_transferred: bytes,
            file_size,
            sha256: None,
            content: Some(ContentSum {
                algorithm: blocksum::ALGORITHM.into(),
                block_size: blocksum::BLOCK,
                checksum: sums.checksum(),
                blocks,
            }),
        })
    }

    /// Where a disk's block digests start: zeroes for a new image, the parent's for an
    /// incremental; `None` when the parent has none usable (older `ovrun`, damaged), and then
    /// every block is hashed from the finished chain.
    fn parent_sums(&self, parent: Option<&DiskEntry>, size: u64) -> Option<BlockSums> {
        let Some(parent) = parent else {
            return Some(BlockSums::zeroes(size));
        };
        let blocks = &parent.content.as_ref()?.blocks;
        let sums = self.catalog.block_sums(parent, size);
        if sums.is_none() {
            tracing::warn!(
                disk = %parent.alias,
                "{blocks} cannot be read, does not fit the disk's size or does not give its \
                 manifest's checksum: hashing every block of the chain"
            );
        }
        sums
    }

    /// Reads what must be read into the local image; the bytes read, and the disk's block
    /// digests at this point (from the data as it passed, and the parent's).
    async fn download(
        &self,
        url: &str,
        path: &Path,
        incremental: bool,
        start_sums: Option<BlockSums>,
        source: &Source,
    ) -> Result<(u64, BlockSums), RunError> {
        let ticket = Ticket::new(self.client.http().clone(), url);
        let extents = ticket
            .extents(if incremental { "dirty" } else { "zero" })
            .await?;
        let size = source.disk.size()?;
        let (data, zeroes) = plan_reads(&extents, incremental);
        let total: u64 = data.iter().map(|e| e.length).sum();
        tracing::info!(
            disk = %source.disk.label(),
            "{} to read ({}), {} zero ranges",
            indicatif::HumanBytes(total),
            if incremental { "changed blocks" } else { "data" },
            zeroes.len()
        );
        let writer = Arc::new(Writer::open(path, &self.options.run_dir)?);
        let bar = progress_bar(self.options.progress, total, source.disk.label());
        let began = std::time::Instant::now();
        let copied = parallel_copy(&ticket, &writer, &data, size, self.options, &bar).await;
        bar.finish_and_clear();
        let sums = match copied {
            Ok(copied) => {
                let seconds = began.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    disk = %source.disk.label(),
                    bytes_read = copied.bytes,
                    "read {} in {seconds:.1} s ({}/s)",
                    indicatif::HumanBytes(copied.bytes),
                    indicatif::HumanBytes((copied.bytes as f64 / seconds) as u64)
                );
                let (writer, bytes) = (writer.clone(), copied.bytes);
                let workers = self.options.workers;
                tokio::task::spawn_blocking(move || {
                    finish_local(&writer, &copied, &zeroes, start_sums, size, workers)
                })
                .await
                .map_err(|e| RunError::Config(e.to_string()))
                .and_then(|r| r.map(|sums| (bytes, sums)))
            }
            Err(e) => Err(e),
        };
        let writer = Arc::try_unwrap(writer)
            .map_err(|_| RunError::Config("a writer outlived its download".into()))?;
        let closed = tokio::task::spawn_blocking(move || writer.close())
            .await
            .map_err(|e| RunError::Config(e.to_string()))?;
        let sums = sums?;
        closed?;
        Ok(sums)
    }
}

/// Waits until image transfer `id` is transferring (at most [`retry::PHASE_WAIT`]); its
/// data-plane URL.
pub(crate) async fn wait_transferring(
    client: &EngineClient,
    options: &Options,
    id: &str,
) -> Result<String, RunError> {
    let what = format!(
        "image transfer {id} to reach phase {}",
        TransferPhase::Transferring
    );
    let patience = retry::stoppable(options, retry::PHASE_WAIT);
    let poll = async || open_transfer_url(client, id).await;
    Ok(wait_until(&what, patience, poll).await?)
}

/// The data-plane URL of image transfer `id` once it is transferring; else its phase while it
/// is still starting.
async fn open_transfer_url(client: &EngineClient, id: &str) -> Result<Seen<String>, RunError> {
    let now = client.transfer(id).await?;
    match now.phase {
        Some(TransferPhase::Transferring) => now
            .transfer_url
            .or(now.proxy_url)
            .map(Seen::Done)
            .ok_or_else(|| RunError::Failed(format!("transfer {id} has no URL"))),
        Some(phase @ (TransferPhase::Initializing | TransferPhase::Resuming)) => {
            Ok(Seen::Waiting(format!("phase {phase}")))
        }
        Some(other) => Err(RunError::Failed(format!("transfer {id} is {other}"))),
        None => Err(RunError::Failed(format!(
            "transfer {id} is in an unknown phase"
        ))),
    }
}

/// Finalizes image transfer `id` (retried by the engine operation) and waits for
/// `finished_success` (an upload's disk is then checked by the engine; a download changes
/// nothing). A finalize whose answer was lost but which the engine did carry out is seen in
/// the phase and is fine.
pub(crate) async fn finish_transfer(
    client: &EngineClient,
    options: &Options,
    id: &str,
) -> Result<(), RunError> {
    let asked = client.finalize_transfer(id).await;
    if let Err(e) = &asked {
        tracing::warn!("finalizing transfer {id}: {e}");
    }
    let what = format!(
        "image transfer {id} to reach phase {}",
        TransferPhase::FinishedSuccess
    );
    let patience = retry::unstoppable(options, retry::PHASE_WAIT);
    let poll = async || transfer_end(client, id, &asked).await;
    Ok(wait_until(&what, patience, poll).await?)
}

/// Whether image transfer `id` ended well, failed, or still runs (after its finalize was
/// `asked`).
async fn transfer_end(
    client: &EngineClient,
    id: &str,
    asked: &Result<(), EngineError>,
) -> Result<Seen<()>, RunError> {
    let phase = match client.transfer(id).await {
        Ok(t) => t.phase,
        Err(e) if e.is_not_found() => return Ok(Seen::Done(())),
        Err(e) if e.is_transient() => return Ok(Seen::Waiting(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    match phase {
        Some(TransferPhase::FinishedSuccess) => Ok(Seen::Done(())),
        Some(p) if p.is_unsuccessful_end() => Err(RunError::Failed(ended_why(id, &p, asked))),
        Some(p @ TransferPhase::Transferring) if asked.is_err() => {
            Err(RunError::Failed(ended_why(id, &p, asked)))
        }
        p => Ok(Seen::Waiting(format!("phase {}", shown(p.as_ref())))),
    }
}

/// Why a transfer ended in `phase` instead of succeeding.
fn ended_why(id: &str, phase: &TransferPhase, asked: &Result<(), EngineError>) -> String {
    match asked {
        Err(e) => format!("transfer {id} is {phase}: finalizing it failed: {e}"),
        Ok(()) => format!(
            "transfer {id} ended {phase} (the engine cancels a transfer whose client is idle \
             longer than its inactivity_timeout, or whose disk failed its check)"
        ),
    }
}

/// Finalizes the VM's running backups that an earlier `ovrun` started and left (it was
/// killed): they hold the disks locked and block a new backup. How many there were.
async fn finalize_stale_backups(
    client: &EngineClient,
    vm_id: &str,
    options: &Options,
) -> Result<usize, RunError> {
    let stale: Vec<Backup> = client
        .backups(vm_id)
        .await?
        .into_iter()
        .filter(|b| !b.phase.as_ref().is_some_and(BackupPhase::has_ended))
        .filter(|b| {
            b.description
                .as_deref()
                .is_some_and(|d| d.starts_with("ovrun "))
        })
        .collect();
    for backup in &stale {
        tracing::warn!(
            backup = %backup.id,
            "finalizing a backup left running by an earlier ovrun that did not finish"
        );
        if let Err(e) = finalize_backup(client, vm_id, &backup.id, options).await {
            tracing::warn!("finalizing stale backup {}: {e}", backup.id);
        }
    }
    Ok(stale.len())
}

/// Finalizes an engine backup (retried by the engine operation) and waits for `succeeded`; the
/// checkpoint it created. A finalize whose answer was lost but which the engine did carry out
/// is seen in the phase, so a backup that was read completely is kept.
async fn finalize_backup(
    client: &EngineClient,
    vm_id: &str,
    backup: &str,
    options: &Options,
) -> Result<Option<String>, RunError> {
    let ready = client
        .backup(vm_id, backup)
        .await
        .ok()
        .and_then(|b| b.to_checkpoint_id);
    let asked = client.finalize_backup(vm_id, backup).await;
    if let Err(e) = &asked {
        tracing::warn!("finalizing backup {backup}: {e}");
    }
    let what = format!("backup {backup} to finish finalizing");
    let patience = retry::unstoppable(options, retry::PHASE_WAIT);
    let poll = async || backup_end(client, [vm_id, backup], &asked, ready.as_deref()).await;
    Ok(wait_until(&what, patience, poll).await?)
}

/// Whether backup `[vm_id, backup]` finished finalizing (its checkpoint, else the one it had
/// when `ready`), failed, or is still finalizing (after its finalize was `asked`).
async fn backup_end(
    client: &EngineClient,
    [vm_id, backup]: [&str; 2],
    asked: &Result<(), EngineError>,
    ready: Option<&str>,
) -> Result<Seen<Option<String>>, RunError> {
    let b = match client.backup(vm_id, backup).await {
        Ok(b) => b,
        // Engines before 4.4.7 drop a finalized backup.
        Err(e) if e.is_not_found() => return Ok(Seen::Done(ready.map(str::to_owned))),
        Err(e) if e.is_transient() => return Ok(Seen::Waiting(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let phase = match &b.phase {
        Some(BackupPhase::Succeeded) => {
            return Ok(Seen::Done(
                b.to_checkpoint_id.or_else(|| ready.map(str::to_owned)),
            ));
        }
        Some(BackupPhase::Failed) => {
            return Err(RunError::Failed(format!(
                "backup {backup} failed while finalizing"
            )));
        }
        phase => shown(phase.as_ref()),
    };
    if let Err(e) = asked
        && b.phase != Some(BackupPhase::Finalizing)
    {
        return Err(RunError::Failed(format!(
            "backup {backup} is still {phase}: finalizing it failed: {e}; the next \
             run finalizes it (the VM's disks stay locked until then)"
        )));
    }
    Ok(Seen::Waiting(format!("phase {phase}")))
}

/// Extents to read, and (incremental only) dirty ranges that read as zero, to zero locally.
fn plan_reads(extents: &[Extent], incremental: bool) -> (Vec<Extent>, Vec<Extent>) {
    let wanted = |e: &&Extent| !incremental || e.dirty;
    let data = extents
        .iter()
        .filter(wanted)
        .filter(|e| !e.zero)
        .copied()
        .collect();
    let zeroes = extents
        .iter()
        .filter(wanted)
        .filter(|e| incremental && e.zero)
        .copied()
        .collect();
    (data, zeroes)
}

/// A progress bar for one disk (hidden when not drawing).
pub(crate) fn progress_bar(draw: bool, total: u64, disk: &str) -> indicatif::ProgressBar {
    if !draw {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(disk.to_owned());
    bar
}

/// What the parallel copy did.
struct Copied {
    bytes: u64,
    /// Digests of the blocks that one read covered whole, hashed as they passed.
    hashed: Vec<(usize, blocksum::Digest)>,
    /// The blocks that reads covered only in part (hashed from the image afterwards).
    partial: Vec<usize>,
}

/// How much of a streamed read is buffered before it is written and hashed (each worker's
/// buffer): two checksum blocks, so 4 workers' buffers stay well inside the memory target.
const READ_SPAN: u64 = 2 * blocksum::BLOCK;

/// The most one ranged read asks for (128 MiB): long requests keep the daemon streaming (the
/// official client asks for whole extents; 8 MiB requests made the full backup 10% slower),
/// short enough to share a disk's data among the workers.
const REQUEST_SPAN: u64 = 16 * READ_SPAN;

/// A streamed read cut into segments that end at multiples of [`READ_SPAN`]: each is written
/// to the image and the checksum blocks it holds whole are hashed from it.
struct Segments<'a> {
    connection: &'a mut local::Connection,
    hashed: &'a mut Vec<(usize, blocksum::Digest)>,
    buffer: &'a mut Vec<u8>,
    /// The image offset of `buffer[0]`.
    at: u64,
    end: u64,
    size: u64,
    read: &'a AtomicU64,
    bar: &'a indicatif::ProgressBar,
}

impl Segments<'_> {
    /// Takes the next bytes of the stream.
    fn push(&mut self, mut piece: &[u8]) -> Result<(), RunError> {
        while !piece.is_empty() {
            let cut = ((self.at / READ_SPAN + 1) * READ_SPAN).min(self.end);
            let segment = usize::try_from(cut - self.at).unwrap_or(usize::MAX);
            let take = (segment - self.buffer.len()).min(piece.len());
            self.buffer.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.buffer.len() == segment {
                self.write_segment()?;
            }
        }
        Ok(())
    }

    fn write_segment(&mut self) -> Result<(), RunError> {
        let length = self.buffer.len() as u64;
        tokio::task::block_in_place(|| -> Result<(), RunError> {
            self.connection.write_at(self.at, self.buffer)?;
            for (index, place) in blocksum::whole_blocks_in(self.size, self.at, length) {
                self.hashed
                    .push((index, blocksum::digest(&self.buffer[place])));
            }
            Ok(())
        })?;
        self.at += length;
        self.buffer.clear();
        self.read.fetch_add(length, Ordering::Relaxed);
        self.bar.inc(length);
        Ok(())
    }
}

/// Copies `data` ranges from the ticket into the image with `options.workers` connections:
/// each takes requests of up to [`REQUEST_SPAN`] and streams them through its buffer of
/// [`READ_SPAN`] into the image, hashing the checksum blocks that a segment holds whole.
async fn parallel_copy(
    ticket: &Ticket,
    writer: &Arc<Writer>,
    data: &[Extent],
    size: u64,
    options: &Options,
    bar: &indicatif::ProgressBar,
) -> Result<Copied, RunError> {
    let pieces: Vec<(u64, u64)> = data
        .iter()
        .flat_map(|e| blocksum::split_at_multiples(e.start, e.length, READ_SPAN))
        .collect();
    let partial = pieces
        .iter()
        .flat_map(|&(start, length)| {
            let whole: Vec<usize> = blocksum::whole_blocks_in(size, start, length)
                .into_iter()
                .map(|(index, _)| index)
                .collect();
            blocksum::touched(size, start, length).filter(move |i| !whole.contains(i))
        })
        .collect();
    let requests = data
        .iter()
        .flat_map(|e| blocksum::split_at_multiples(e.start, e.length, REQUEST_SPAN))
        .collect();
    let queue = Ranges::new(requests, options.stop.clone());
    let read = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.workers.max(1) {
        let (ticket, writer, queue, read, bar) = (
            ticket.clone(),
            writer.clone(),
            queue.clone(),
            read.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut connection = writer.connect()?;
            let mut hashed = Vec::new();
            let mut buffer = Vec::with_capacity(usize::try_from(READ_SPAN).unwrap_or(0));
            loop {
                let Some((offset, length)) = queue.next()? else {
                    return Ok(hashed);
                };
                let mut segments = Segments {
                    connection: &mut connection,
                    hashed: &mut hashed,
                    buffer: &mut buffer,
                    at: offset,
                    end: offset + length,
                    size,
                    read: &read,
                    bar: &bar,
                };
                let mut local_failure = None;
                let streamed = ticket
                    .read(offset, length, |_, piece| {
                        segments.push(&piece).map_err(|e| {
                            let text = e.to_string();
                            local_failure = Some(e);
                            std::io::Error::other(text)
                        })
                    })
                    .await;
                if let Some(e) = local_failure {
                    return Err(e);
                }
                streamed?;
            }
        });
    }
    let hashed = join_all(workers).await?.concat();
    Ok(Copied {
        bytes: read.load(Ordering::Relaxed),
        hashed,
        partial,
    })
}

/// After the copy: zeroes the dirty ranges that read as zero, and completes the block digests:
/// the hashed blocks, zero blocks, and the blocks only partly read, hashed from the image
/// (where the backing chain fills the rest). With no starting digests every block is hashed.
fn finish_local(
    writer: &Writer,
    copied: &Copied,
    zeroes: &[Extent],
    start: Option<BlockSums>,
    size: u64,
    workers: usize,
) -> Result<BlockSums, RunError> {
    let mut connection = writer.connect()?;
    for zero in zeroes {
        connection.zero(zero.start, zero.length)?;
    }
    let (mut sums, stale) = settle_sums(start, size, copied, zeroes);
    let stale: Vec<usize> = stale.into_iter().collect();
    let threads = workers.clamp(1, stale.len().max(1));
    let hashed: Vec<Result<Vec<(usize, blocksum::Digest)>, RunError>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = stale
                .chunks(stale.len().div_ceil(threads).max(1))
                .map(|share| {
                    scope.spawn(move || -> Result<_, RunError> {
                        Ok(writer.connect()?.block_digests(size, share)?)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RunError::Config("a hashing thread panicked".into()))
                    })
                })
                .collect()
        });
    for share in hashed {
        for (index, digest) in share? {
            sums.set(index, digest);
        }
    }
    Ok(sums)
}

/// The block digests that are known without reading the image, and the blocks to hash from it.
fn settle_sums(
    start: Option<BlockSums>,
    size: u64,
    copied: &Copied,
    zeroes: &[Extent],
) -> (BlockSums, std::collections::BTreeSet<usize>) {
    let mut stale = std::collections::BTreeSet::new();
    let mut sums = start.unwrap_or_else(|| {
        let all = BlockSums::zeroes(size);
        stale.extend(0..all.len());
        all
    });
    stale.extend(copied.partial.iter().copied());
    for zero in zeroes {
        for (start, length) in blocksum::split_at_blocks(zero.start, zero.length) {
            match blocksum::whole_block(size, start, length) {
                Some(index) => sums.set(index, blocksum::zero_digest(length)),
                None => stale.extend(sums.touched(start, length)),
            }
        }
    }
    for &(index, digest) in &copied.hashed {
        sums.set(index, digest);
    }
    (sums, stale)
}

/// Unique file-name parts for the disks: the alias, made safe; the disk id added on a clash.
fn file_names(sources: &[Source]) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in sources {
        *seen.entry(catalog::safe_name(s.disk.label())).or_default() += 1;
    }
    sources
        .iter()
        .map(|s| {
            let name = catalog::safe_name(s.disk.label());
            let unique = if seen[&name] > 1 {
                format!("{name}-{}", s.disk.id.chars().take(8).collect::<String>())
            } else {
                name
            };
            (s.disk.id.clone(), unique)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_digests_come_from_reads_zeroes_and_the_parent_and_the_rest_is_rehashed() {
        const B: u64 = blocksum::BLOCK;
        let size = 4 * B + 4096;
        let mut parent = BlockSums::zeroes(size);
        parent.set(3, blocksum::digest(b"parent's block 3"));
        let copied = Copied {
            bytes: B + 10,
            hashed: vec![(0, blocksum::digest(b"block 0"))],
            partial: vec![2],
        };
        let zero = |start, length| Extent {
            start,
            length,
            zero: true,
            dirty: true,
        };
        // Block 1 zeroed whole; the short last block zeroed in part.
        let zeroes = [zero(B, B), zero(4 * B, 512)];
        let (sums, stale) = settle_sums(Some(parent.clone()), size, &copied, &zeroes);
        assert_eq!(sums.get(0), &blocksum::digest(b"block 0"));
        assert_eq!(sums.get(1), &blocksum::zero_digest(B));
        assert_eq!(sums.get(3), parent.get(3), "untouched: the parent's");
        assert_eq!(stale.into_iter().collect::<Vec<_>>(), [2, 4]);

        // Without the parent's digests every block is read back.
        let (_, stale) = settle_sums(None, size, &copied, &zeroes);
        assert_eq!(stale.len(), 5);
    }

    #[test]
    fn only_data_is_read_and_only_dirty_in_an_incremental() {
        let e = |start, zero, dirty| Extent {
            start,
            length: 1,
            zero,
            dirty,
        };
        let extents = [
            e(0, false, true),
            e(1, true, true),
            e(2, false, false),
            e(3, true, false),
        ];
        let (data, zeroes) = plan_reads(&extents, false);
        assert_eq!((data.len(), zeroes.len()), (2, 0));
        let (data, zeroes) = plan_reads(&extents, true);
        assert_eq!(data, vec![e(0, false, true)]);
        assert_eq!(zeroes, vec![e(1, true, true)]);
    }
}
