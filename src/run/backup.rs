//! One backup run of one VM: section 13.1 of the API page, with full or incremental decided by
//! policy.md section 3.
//!
//! The order matters for safety: the VM's lock is taken and leftovers of a dead run removed
//! first; the engine's backup and each transfer are always finalized, also on errors and on
//! interruption; the point's manifest is written last, and only then the checkpoints file, so a
//! point that exists is complete and a run that failed leaves nothing that looks like a point.
//!
//! This file is the run's story and its engine steps; `disks` reads each disk of the point
//! (the data path itself is `download`), `record` is what follows a point (status,
//! checkpoints file, retention).

mod disks;
mod download;
mod record;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use self::download::Source;
use self::record::{export_checkpoint, prune_after_backup, record_success};
use super::catalog::{self, Catalog, MANIFEST_FORMAT, Manifest};
use super::engine::{Backup, Checkpoints, DiskAttachments, EngineClient, EngineError};
pub use super::job::{Options, Outcome, RunError};
use super::job::{locked_catalog, sleep_or_stop};
use super::retry::{self, Wait};
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
        Err(RunError::Failed(why))
        | Err(RunError::Engine(EngineError::Fault { detail: why, .. }))
            if parent.is_some() && fallback_worthy(&why) =>
        {
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

/// Errors after which the engine wants a full backup (section 6.8 of the API page).
fn fallback_worthy(why: &str) -> bool {
    why.contains("Checkpoint ID")
        || why.contains("FULL_VM_BACKUP_NEEDED")
        || why.contains("backup failed")
        || why.contains("not included in the previous VM backup")
        || why.contains("Incremental backup is disabled")
}

/// The VM, once it is not locked (up to `engine_lock_wait`).
async fn wait_for_vm(
    client: &EngineClient,
    name: &str,
    options: &Options,
) -> Result<super::engine::Vm, RunError> {
    let deadline = tokio::time::Instant::now() + options.engine_lock_wait;
    loop {
        let vm = client.vm_by_name(name).await?;
        let status = vm.status.clone().unwrap_or_default();
        if status != "image_locked" && status != "locked" {
            return Ok(vm);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Locked(format!(
                "VM {name} is still {status} after {:?}; if no task holds it, unlock it on the engine (unlock_entity.sh -t vm)",
                options.engine_lock_wait
            )));
        }
        tracing::info!("VM {name} is {status}; waiting");
        sleep_or_stop(options).await?;
    }
}

/// The VM's backed-up disks (active image data disks), once none is locked.
async fn wait_for_disks(
    client: &EngineClient,
    vm_id: &str,
    vm_name: &str,
    options: &Options,
) -> Result<Vec<Source>, RunError> {
    let deadline = tokio::time::Instant::now() + options.engine_lock_wait;
    loop {
        let attachments: DiskAttachments = client
            .get(&format!("/vms/{vm_id}/diskattachments?follow=disk"))
            .await?;
        let mut sources = Vec::new();
        for attachment in attachments.disk_attachment {
            if attachment.active == Some(false) {
                continue;
            }
            let disk = match attachment.disk {
                Some(disk) if disk.provisioned_size.is_some() => disk,
                _ => client.get(&format!("/disks/{}", attachment.id)).await?,
            };
            let image = disk.storage_type.as_deref().is_none_or(|t| t == "image");
            let data = disk.content_type.as_deref().is_none_or(|t| t == "data");
            if image && data {
                sources.push(Source {
                    disk,
                    interface: attachment.interface.unwrap_or_else(|| "virtio_scsi".into()),
                    bootable: attachment.bootable.unwrap_or(false),
                });
            }
        }
        if sources.is_empty() {
            return Err(RunError::Config(format!(
                "VM {vm_name} has no active image disk to back up"
            )));
        }
        let locked: Vec<&str> = sources
            .iter()
            .filter(|s| s.disk.status.as_deref() == Some("locked"))
            .map(|s| s.disk.label())
            .collect();
        if locked.is_empty() {
            return Ok(sources);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Locked(format!(
                "disks of VM {vm_name} still locked after {:?}: {}; if no task holds them, unlock them on the engine (unlock_entity.sh -t disk)",
                options.engine_lock_wait,
                locked.join(", ")
            )));
        }
        tracing::info!("disks locked: {}; waiting", locked.join(", "));
        sleep_or_stop(options).await?;
    }
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
    let policy = config
        .full_policy()
        .map_err(|e| RunError::Config(e.to_string()))?;
    let zone = zone_of(config)?;
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

fn zone_of(config: &RunnerConfig) -> Result<chrono_tz::Tz, RunError> {
    match &config.timezone {
        Some(name) => name
            .parse()
            .map_err(|_| RunError::Config(format!("unknown time zone {name}"))),
        None => Ok(crate::host::zone()),
    }
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
    let known: Checkpoints = client.get(&format!("/vms/{vm_id}/checkpoints")).await?;
    match known.checkpoint.iter().find(|c| &c.id == checkpoint) {
        None => Ok(Some(format!(
            "the engine does not know checkpoint {checkpoint} any more"
        ))),
        Some(c) if c.state.as_deref() == Some("invalid") => Ok(Some(format!(
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

    /// `POST /vms/{id}/backups`, then polls until `ready`.
    async fn start(&self, parent: Option<&Manifest>) -> Result<Backup, RunError> {
        let disks: Vec<Value> = self
            .sources
            .iter()
            .map(|s| json!({"id": s.disk.id}))
            .collect();
        let mut request = json!({
            "description": format!("ovrun {}", catalog::point_id(self.taken_at)),
            "disks": {"disk": disks},
        });
        if let Some(from) = parent.and_then(|p| p.checkpoint.as_deref()) {
            request["from_checkpoint_id"] = json!(from);
        }
        let backup = self.post_backup(&request).await?;
        let ready = self.wait_ready(&backup.id).await;
        if ready.is_err()
            && let Err(e) = self.finalize(&backup.id).await
        {
            tracing::warn!("finalizing backup {} after a failed start: {e}", backup.id);
        }
        ready
    }

    /// Polls the engine's backup until `ready` (at most [`retry::PHASE_WAIT`]).
    async fn wait_ready(&self, backup: &str) -> Result<Backup, RunError> {
        let path = format!("/vms/{}/backups/{backup}", self.vm_id);
        let mut wait = Wait::new(
            self.options,
            format!("backup {backup} to be ready"),
            retry::PHASE_WAIT,
        );
        loop {
            let now: Backup = match self.client.get(&path).await {
                Ok(now) => now,
                Err(e) if e.is_not_found() => {
                    return Err(RunError::Failed(format!("backup {backup} vanished")));
                }
                Err(e) => return Err(e.into()),
            };
            match now.phase.as_deref() {
                Some("ready") => return Ok(now),
                Some("failed") => {
                    return Err(RunError::Failed(format!(
                        "backup {backup} failed on the engine (FULL_VM_BACKUP_NEEDED if a checkpoint's bitmap was lost)"
                    )));
                }
                phase => {
                    wait.next(&format!("phase {}", phase.unwrap_or("unknown")))
                        .await?
                }
            }
        }
    }

    /// `POST /vms/{id}/backups`. A backup left running by an `ovrun` that was killed blocks a
    /// new one (409 "during a backup operation"): it is finalized, and the start tried again.
    async fn post_backup(&self, request: &Value) -> Result<Backup, RunError> {
        let path = format!("/vms/{}/backups?require_consistency=false", self.vm_id);
        match self.client.post(&path, request).await {
            Err(e) if e.detail().contains("during a backup operation") => {
                let stale = finalize_stale_backups(self.client, self.vm_id, self.options).await?;
                if stale == 0 {
                    return Err(e.into());
                }
                Ok(self.client.post(&path, request).await?)
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
    let all: super::engine::Backups = client.get(&format!("/vms/{vm_id}/backups")).await?;
    let stale: Vec<Backup> = all
        .backup
        .into_iter()
        .filter(|b| !matches!(b.phase.as_deref(), Some("succeeded" | "failed")))
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

/// Finalizes an engine backup (retried: [`retry::action`]) and waits for `succeeded`; the
/// checkpoint it created. A finalize whose answer was lost but which the engine did carry out
/// is seen in the phase, so a backup that was read completely is kept.
async fn finalize_backup(
    client: &EngineClient,
    vm_id: &str,
    backup: &str,
    options: &Options,
) -> Result<Option<String>, RunError> {
    let path = format!("/vms/{vm_id}/backups/{backup}");
    let ready = client
        .get::<Backup>(&path)
        .await
        .ok()
        .and_then(|b| b.to_checkpoint_id);
    let asked = retry::action(client, &format!("{path}/finalize")).await;
    if let Err(e) = &asked {
        tracing::warn!("finalizing backup {backup}: {e}");
    }
    let mut wait = Wait::new(
        options,
        format!("backup {backup} to finish finalizing"),
        retry::PHASE_WAIT,
    )
    .unstoppable();
    loop {
        let last = match client.get::<Backup>(&path).await {
            Ok(b) if b.phase.as_deref() == Some("succeeded") => {
                return Ok(b.to_checkpoint_id.or(ready));
            }
            Ok(b) if b.phase.as_deref() == Some("failed") => {
                return Err(RunError::Failed(format!(
                    "backup {backup} failed while finalizing"
                )));
            }
            Ok(b) => {
                let phase = b.phase.unwrap_or_default();
                if let Err(e) = &asked
                    && phase != "finalizing"
                {
                    return Err(RunError::Failed(format!(
                        "backup {backup} is still {phase}: finalizing it failed: {e}; the next \
                         run finalizes it (the VM's disks stay locked until then)"
                    )));
                }
                format!("phase {phase}")
            }
            // Engines before 4.4.7 drop a finalized backup.
            Err(e) if e.is_not_found() => return Ok(ready),
            Err(e) if retry::is_transient(&e) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        wait.next(&last).await?;
    }
}

/// `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
