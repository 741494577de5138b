//! One backup run of one VM: section 13.1 of the API page, with full or incremental decided by
//! policy.md section 3.
//!
//! The order matters for safety: the VM's lock is taken and leftovers of a dead run removed
//! first, then the run waits for its turn on the engine (one of its `max_concurrent_backups`
//! slots, `job::engine_slot`); the engine's backup and each transfer are always finalized,
//! also on errors and on interruption; the point's manifest is written last, and only then the checkpoints file, so a
//! point that exists is complete and a run that failed leaves nothing that looks like a point.
//!
//! This file is the run's story and its engine steps; `disks` reads each disk of the point
//! (the data path itself is `download`), `record` is what follows a point (status,
//! checkpoints file, retention); the run's line in the VM's history is `super::history`'s.

mod disks;
mod download;
mod method;
mod record;
mod snapshot;
mod vm_config;

use std::time::Duration;

use chrono::{DateTime, Utc};

use self::download::Source;
use self::method::{Chosen, ReadMethod, choose_method};
use self::record::{export_checkpoint, prune_after_backup, record_success};
use self::snapshot::remove_leftover_snapshots;
use super::catalog::{
    self, Catalog, MANIFEST_FORMAT, Manifest, MethodRecord, RunKind, SlotKind, VmConfig,
};
use super::engine::wait::{Seen, WaitError, wait_until};
use super::engine::{
    Backup, BackupPhase, BackupRequest, CheckpointState, ContentType, DiskStatus, EngineClient,
    EngineError, StorageType, TransferPhase, Vm, VmStatus, shown,
};
pub use super::job::{Options, Outcome, RunError};
use super::job::{engine_slot, locked_catalog};
use super::retry;
use crate::plan::full::{Chain, Kind, Reason, decide};
use crate::plan::runner::RunnerConfig;

/// Runs one backup of the VM in `config`.
///
/// # Errors
/// Any step fails; the engine's backup and transfers are finalized and the point's files
/// removed before this returns.
pub async fn run(config: &RunnerConfig, options: &Options) -> Result<Outcome, RunError> {
    let (catalog, _lock) = locked_catalog(config, options).await?;
    let removed_leftovers = catalog.remove_leftovers()?;
    for path in &removed_leftovers {
        tracing::warn!(
            "removed {}: left by a run that did not finish (it was never a point)",
            path.display()
        );
    }
    let started = Utc::now();
    let entry = super::history::begin(&catalog, RunKind::Backup, started);
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
    super::history::end_backup(&catalog, entry, &result, &pruned, Utc::now());
    result.map(|(manifest, fallback)| Outcome {
        manifest,
        removed_leftovers,
        fallback,
        pruned,
    })
}

async fn connect_and_back_up(
    config: &RunnerConfig,
    options: &Options,
    catalog: &Catalog,
) -> Result<(Manifest, Option<String>), RunError> {
    // The engine's turn before anything there: the VM's lock is held, the start was due.
    let _slot = engine_slot(config, options, SlotKind::Backup).await?;
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
    let method = choose_method(client, config).await?;
    tracing::info!(vm = %config.vm, "backup method: {} ({})", method.kind.as_str(), method.why);
    let (vm, points, sources) = prepare(client, (config, options, catalog), &method).await?;
    let taken_at = unused_second(&points).await;
    let found = (vm.id.as_str(), points.as_slice(), sources.as_slice());
    let (kind, reason, parent) =
        choose_kind(client, config, options, found, taken_at, &method).await?;
    let attempt = Attempt {
        client,
        config,
        options,
        catalog,
        vm_id: &vm.id,
        memory: vm.memory,
        vm_was_up: vm.status.as_ref().map(|s| *s == VmStatus::Up),
        vm_config: recorded_config(client, &vm.id, &sources).await,
        method: &method,
        sources: &sources,
        taken_at,
    };
    match method.kind {
        ReadMethod::Snapshot => attempt.take_by_snapshot(kind, &reason, parent).await,
        ReadMethod::BackupApi => attempt.take_or_fall_back(kind, &reason, parent).await,
    }
}

/// The VM's configuration for the point; a point without it still restores (production's
/// memory only), so a failure to read it is a warning.
async fn recorded_config(
    client: &EngineClient,
    vm_id: &str,
    sources: &[Source],
) -> Option<VmConfig> {
    match vm_config::read_vm_config(client, vm_id, sources).await {
        Ok(config) => Some(config),
        Err(e) => {
            tracing::warn!("the VM's configuration is not recorded in this point: {e}");
            None
        }
    }
}

/// Before a point: the VM once unlocked, what a killed run left on the engine ended (its
/// transfers, its snapshots but the kept one, its backups), the catalog's points, and the
/// VM's disks once unlocked.
async fn prepare(
    client: &EngineClient,
    (config, options, catalog): (&RunnerConfig, &Options, &Catalog),
    method: &Chosen,
) -> Result<(Vm, Vec<Manifest>, Vec<Source>), RunError> {
    let vm = wait_for_vm(client, &config.vm, options).await?;
    end_abandoned_transfers(client, catalog, options).await;
    let points = catalog.points()?;
    let keep = points.last().and_then(|p| method.kept_snapshot(p));
    remove_leftover_snapshots(client, &vm.id, keep, options).await?;
    if method.kind == ReadMethod::BackupApi {
        finalize_stale_backups(client, &vm.id, options).await?;
    }
    let sources = wait_for_disks(client, &vm.id, &config.vm, options).await?;
    Ok((vm, points, sources))
}

/// Ends the image transfers a killed run left open (noted in the catalog): they hold the
/// VM's disks locked until the engine's inactivity timeout. What fails is logged; the disks'
/// wait then covers the rest.
async fn end_abandoned_transfers(client: &EngineClient, catalog: &Catalog, options: &Options) {
    for id in catalog.open_transfers() {
        tracing::warn!(transfer = %id, "ending an image transfer left open by an earlier ovrun that did not finish");
        let ended = match client.transfer(&id).await {
            Err(e) if e.is_not_found() => Ok(()),
            Ok(t) if t.phase.as_ref().is_some_and(TransferPhase::is_finished) => Ok(()),
            _ => crate::run::transfer::finish_transfer(client, options, &id).await,
        };
        match ended.and_then(|()| Ok(catalog.note_transfer(&id, false)?)) {
            Ok(()) => {}
            Err(e) => tracing::warn!("transfer {id}: {e}"),
        }
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
                logical_name: attachment.logical_name,
            });
        }
    }
    Ok(sources)
}

/// Full or incremental, why, and the point an incremental builds on; `found` is the VM's id,
/// the catalog's points and the VM's disks now.
async fn choose_kind<'p>(
    client: &EngineClient,
    config: &RunnerConfig,
    options: &Options,
    (vm_id, points, sources): (&str, &'p [Manifest], &[Source]),
    at: DateTime<Utc>,
    method: &Chosen,
) -> Result<(Kind, String, Option<&'p Manifest>), RunError> {
    let policy = config.full_policy();
    let zone = config.zone();
    if options.force_full {
        return Ok((Kind::Full, "--full was given".into(), None));
    }
    let Some(last) = points.last() else {
        return Ok((Kind::Full, "no backup exists yet".into(), None));
    };
    if let Some(why) = chain_unusable(client, (vm_id, last, sources), method).await? {
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

/// Why the last point cannot be built on (rule 2), if it cannot: it was not taken so that this
/// method can build on it, the VM or its disks are not the same, or the engine lost what
/// the method builds on (the checkpoint, the kept snapshot).
async fn chain_unusable(
    client: &EngineClient,
    (vm_id, last, sources): (&str, &Manifest, &[Source]),
    method: &Chosen,
) -> Result<Option<String>, RunError> {
    if let Some(why) = method.cannot_build_on(last) {
        return Ok(Some(why));
    }
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
    match method.kind {
        ReadMethod::BackupApi => checkpoint_lost(client, vm_id, last).await,
        ReadMethod::Snapshot => snapshot::kept_snapshot_lost(client, vm_id, last).await,
    }
}

/// Why the engine cannot start an incremental from the last point's checkpoint, if it cannot.
async fn checkpoint_lost(
    client: &EngineClient,
    vm_id: &str,
    last: &Manifest,
) -> Result<Option<String>, RunError> {
    let checkpoint = last.checkpoint.as_deref().unwrap_or_default();
    let known = client.checkpoints(vm_id).await?;
    match known.iter().find(|c| c.id == checkpoint) {
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
    /// Whether the VM was running when the run began.
    vm_was_up: Option<bool>,
    /// Its configuration when the run began.
    vm_config: Option<VmConfig>,
    method: &'a Chosen,
    sources: &'a [Source],
    taken_at: DateTime<Utc>,
}

impl Attempt<'_> {
    /// Takes the point through the backup API; an incremental the engine cannot take is taken
    /// again as a full (the manifest, and the fallback's words).
    async fn take_or_fall_back(
        &self,
        kind: Kind,
        reason: &str,
        parent: Option<&Manifest>,
    ) -> Result<(Manifest, Option<String>), RunError> {
        match self.take(kind, reason, parent).await {
            Err(RunError::Engine(EngineError::NeedsFull { reason: why, .. }))
                if parent.is_some() =>
            {
                let fallback =
                    format!("incremental backup not possible ({why}); taking a full backup");
                tracing::warn!("{fallback}");
                let manifest = self
                    .take(Kind::Full, "fallback after a failed incremental", None)
                    .await?;
                Ok((manifest, Some(fallback)))
            }
            other => other.map(|manifest| (manifest, None)),
        }
    }

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
            method: Some(self.method_record(None)),
            config: self.vm_config.clone(),
            disks,
        };
        if let Err(e) = self.catalog.commit(&manifest) {
            self.catalog.remove_point_files(&point);
            return Err(e.into());
        }
        Ok(manifest)
    }

    /// The manifest's record of how the point was read (`snapshot`: the one kept for the next
    /// incremental).
    fn method_record(&self, snapshot: Option<String>) -> MethodRecord {
        MethodRecord {
            name: self.method.kind.as_str().into(),
            why: self.method.why.clone(),
            snapshot,
            vm_was_up: self.vm_was_up,
        }
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
                reason: self.why_failed(backup).await,
                fault: None,
            }
            .into()),
            phase => Ok(Seen::Waiting(format!("phase {}", shown(phase.as_ref())))),
        }
    }

    /// Why the engine's backup failed: the engine's event saying so, else what a failed backup
    /// means (an engine without events, or none written).
    async fn why_failed(&self, backup: &str) -> String {
        let told = match self.client.backup_failure_event(backup).await {
            Ok(event) => event.and_then(|e| e.description),
            Err(e) => {
                tracing::debug!("reading the engine's events about backup {backup}: {e}");
                None
            }
        };
        match told {
            Some(words) => format!("backup {backup} failed on the engine: {words}"),
            None => format!(
                "backup {backup} failed on the engine (FULL_VM_BACKUP_NEEDED if a checkpoint's \
                 bitmap was lost)"
            ),
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
