//! `ovrun restore`: a backup point brought up as a VM in the DR engine (policy.md section 5,
//! API page sections 11 and 13.2).
//!
//! The order keeps DR as it was until the new VM is complete:
//!
//! 1. the point and its chain are picked from the catalog (under the VM's lock, so retention
//!    cannot remove them meanwhile), and the restore waits for its turn on the DR engine (one
//!    of its `max_concurrent_restores` slots); the DR cluster and storage domain are looked
//!    up, and an existing VM of the target name is refused unless `replace_existing_vm`;
//! 2. each disk is created (qcow2, sparse, the original virtual size) and uploaded: the local
//!    chain is read in one pass through a read-only `qemu-nbd` of the point's top file (the
//!    backing chain resolves there; no merged copy is written), only its data extents are sent,
//!    in parallel connections; then flush, and imageio's checksum of the uploaded disk is
//!    compared with the point's recorded one before the transfer is finalized;
//! 3. an existing VM is stopped and renamed out of the way, the new VM created from the Blank
//!    template, its disks attached (the boot disk first), and it is started when asked;
//! 4. the replaced VM is removed, or kept under its new name with `backup_old_vm`.
//!
//! Any failure undoes what was made: transfers cancelled (the engine removes their disks),
//! disks and the new VM removed, the old VM renamed back and started again if it was up.
//! What a restore makes in DR is journaled as it is made (`.restore-journal.json` in the VM's
//! catalog folder, written crash-safely): a restore that was killed (SIGKILL, power loss) and
//! could not undo leaves its journal, and the next restore of the VM undoes what it lists
//! first, so no orphan disk or half-made VM stays in DR.
//! Every restore, good or bad, appends a JSON line to the VM's log in `restore_log_directory`;
//! that log is also how a newest point already restored is recognized (the automatic DR unit
//! runs after each backup).
//!
//! This file is the restore's story and its engine steps; `log` is the restore log, `journal`
//! what a restore made in DR, `undo` how it is taken away again, `dry_run` the steps
//! `--dry-run` prints. The data path is
//! `upload`, and which point and chain are restored [`super::chain`].

mod dry_run;
mod journal;
mod log;
mod network;
mod shape;
mod undo;
mod upload;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use self::journal::{Journal, Made, OldVm};
pub use self::log::{LogEntry, RestoreLog, RestoredDisk, Verdict};
use self::network::Placement;
use super::catalog::{Catalog, DiskEntry, Manifest, SlotKind};
use super::chain;
pub use super::chain::{Selector, select};
use super::engine::ops::{VmRequest, transfer_href};
use super::engine::wait::{Seen, wait_until};
use super::engine::{
    Collection, DiskRequest, DiskStatus, EngineClient, TransferRequest, Vm, VmStatus, shown,
};
use super::imageio::Ticket;
use super::job::{Options, RunError, engine_slot, locked_catalog, panicked};
use super::local;
use super::retry;
use super::transfer::{finish_transfer, wait_transferring};
use crate::plan::runner::{EngineAccess, RestoreConfig, RunnerConfig};

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct Request {
    /// The point.
    pub selector: Selector,
    /// The VM's name in DR instead of the config's `vm_name`.
    pub name: Option<String>,
    /// Only check and say what would be done.
    pub dry_run: bool,
    /// Restore the newest point even if the log says it was restored already.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The VM is up in DR (or down, when not started): its log line.
    Restored(Box<LogEntry>),
    /// The newest point was restored before under that name: nothing done.
    AlreadyRestored {
        /// The point.
        point: String,
        /// The name it was restored as.
        restored_as: String,
    },
    /// `--dry-run`: what would be done.
    Planned(Vec<String>),
}

/// Restores a point of the VM in `config` into the DR engine.
///
/// # Errors
/// The config has no restore section, the point or the DR objects are not found, or a step
/// fails (everything made is undone first, and the failure is logged).
pub async fn run(
    config: &RunnerConfig,
    options: &Options,
    request: &Request,
) -> Result<Outcome, RunError> {
    let (restore, target) = settings(config)?;
    let password = super::engine::read_password(target)?;
    let client = EngineClient::new(target, password)?;
    let (catalog, _lock) = locked_catalog(config, options).await?;
    let points = catalog.points()?;
    let point = chain::restorable(&points, &request.selector)?;
    let name = request
        .name
        .clone()
        .unwrap_or_else(|| restore.vm_name.clone());
    let log = RestoreLog::new(Path::new(&restore.restore_log_directory), &config.vm);
    if let Some(done) = already_restored(&log, request, point, &name) {
        return Ok(done);
    }
    let job = Job {
        client: &client,
        options,
        restore,
        catalog: &catalog,
        point,
        name,
        journal: Journal::new(&catalog, &target.url),
    };
    let result = if request.dry_run {
        job.plan().await.map(Outcome::Planned)
    } else {
        restore_in_turn(&job, config, &log).await
    };
    client.logout().await;
    result
}

/// The restore, once it has its turn on the DR engine: one of its `max_concurrent_restores`
/// slots (`job::engine_slot`), waited for with the VM's lock held. A dry run changes nothing in
/// DR and takes no slot.
async fn restore_in_turn(
    job: &Job<'_>,
    config: &RunnerConfig,
    log: &RestoreLog,
) -> Result<Outcome, RunError> {
    let _slot = engine_slot(config, job.options, SlotKind::Restore).await?;
    job.restore_and_log(log).await
}

/// The newest point, when the log says it was restored under `name` already (unless forced or
/// a dry run).
fn already_restored(
    log: &RestoreLog,
    request: &Request,
    point: &Manifest,
    name: &str,
) -> Option<Outcome> {
    if request.selector != Selector::Newest || request.force || request.dry_run {
        return None;
    }
    let done = log.last_success(&point.point, name)?;
    Some(Outcome::AlreadyRestored {
        point: done.point,
        restored_as: done.restored_as,
    })
}

/// The VM's restore section and DR engine, both required: the configuration is checked whole
/// before the catalog is read.
fn settings(config: &RunnerConfig) -> Result<(&RestoreConfig, &EngineAccess), RunError> {
    let restore = config.restore.as_ref().ok_or_else(|| {
        RunError::Config(format!(
            "VM {} has no restore settings: give it a restore section (target cluster and \
             storage domain) in variables.json and rebuild",
            config.vm
        ))
    })?;
    let target = config.target.as_ref().ok_or_else(|| {
        RunError::Config(format!(
            "VM {} has no DR engine (target) settings: add the target engine to variables.json \
             and rebuild",
            config.vm
        ))
    })?;
    Ok((restore, target))
}

/// One restore in progress.
struct Job<'a> {
    client: &'a EngineClient,
    options: &'a Options,
    restore: &'a RestoreConfig,
    catalog: &'a Catalog,
    point: &'a Manifest,
    name: String,
    journal: Journal,
}

impl Job<'_> {
    /// The disks in attachment order: the boot disk first.
    fn disks(&self) -> Vec<&DiskEntry> {
        let mut disks: Vec<&DiskEntry> = self.point.disks.iter().collect();
        disks.sort_by_key(|d| !d.bootable);
        disks
    }

    /// The cluster and storage domain exist, every NIC has a DR vNIC profile; the VM now named
    /// `name`, if any (refused unless replacing), and each NIC's DR profile.
    async fn preflight(&self) -> Result<(Option<Vm>, Vec<Placement>), RunError> {
        for (collection, name, what) in [
            (
                Collection::Clusters,
                &self.restore.target_cluster_name,
                "cluster",
            ),
            (
                Collection::StorageDomains,
                &self.restore.target_storage_domain_name,
                "storage domain",
            ),
        ] {
            let found = self.client.named(&collection, name).await?;
            if !found.iter().any(|n| &n.name == name) {
                return Err(RunError::Config(format!(
                    "the DR engine has no {what} named {name:?}: check target_{}_name in \
                     variables.json",
                    what.replace(' ', "_")
                )));
            }
        }
        let placements = self.place_nics().await?;
        let existing = self.client.vms_named(&self.name).await?.into_iter().next();
        if existing.is_some() && !self.restore.replace_existing_vm {
            return Err(RunError::Failed(format!(
                "a VM named {:?} exists in DR and replace_existing_vm is off: remove or rename \
                 it, restore under another name (--name), or set replace_existing_vm",
                self.name
            )));
        }
        Ok((existing, placements))
    }

    /// Each recorded NIC's DR vNIC profile (none asked of the engine for a point without NICs).
    async fn place_nics(&self) -> Result<Vec<Placement>, RunError> {
        let Some(config) = self.point.config.as_ref().filter(|c| !c.nics.is_empty()) else {
            return Ok(Vec::new());
        };
        let profiles = self.client.vnic_profiles().await?;
        network::place_nics(&config.nics, &self.restore.network_map, &profiles)
    }

    /// The name a replaced VM is kept under.
    fn old_name(&self) -> String {
        format!("{}-old-{}", self.name, Utc::now().format("%Y%m%dT%H%M%SZ"))
    }

    /// Restores, undoing on failure, and logs the result either way.
    async fn restore_and_log(&self, log: &RestoreLog) -> Result<Outcome, RunError> {
        let started = Utc::now();
        let clock = Instant::now();
        if let Some(left) = self.journal.left() {
            tracing::warn!("undoing what a restore that did not finish left in DR: {left:?}");
            self.undo(left).await;
        }
        self.journal.clear();
        let mut made = Made::default();
        let mut disks = Vec::new();
        let timeout = Duration::from_secs(u64::from(self.restore.timeout_minutes.max(1)) * 60);
        let result = match tokio::time::timeout(timeout, self.restore(&mut made, &mut disks)).await
        {
            Ok(result) => result,
            Err(_) => Err(RunError::Failed(format!(
                "the restore took longer than timeout_minutes ({})",
                self.restore.timeout_minutes
            ))),
        };
        if result.is_err() && !made.is_empty() {
            tracing::warn!("undoing what the failed restore made in DR");
            self.undo(made).await;
        }
        self.journal.clear();
        let entry = self.log_entry(started, clock, &result, disks);
        if let Err(e) = log.append(&entry) {
            tracing::warn!("writing the restore log {}: {e}", log.path().display());
        }
        result.map(|_| Outcome::Restored(Box::new(entry)))
    }

    /// The restore log's line of this restore, which started at `started` (`clock`).
    fn log_entry(
        &self,
        started: DateTime<Utc>,
        clock: Instant,
        result: &Result<Done, RunError>,
        disks: Vec<RestoredDisk>,
    ) -> LogEntry {
        LogEntry {
            started,
            seconds: clock.elapsed().as_secs_f64(),
            vm: self.point.vm.clone(),
            point: self.point.point.clone(),
            taken_at: self.point.taken_at,
            restored_as: self.name.clone(),
            vm_id: result.as_ref().ok().map(|done| done.vm_id.clone()),
            result: if result.is_ok() {
                Verdict::Ok
            } else {
                Verdict::Failed
            },
            error: result.as_ref().err().map(ToString::to_string),
            bytes: disks.iter().map(|d: &RestoredDisk| d.bytes).sum(),
            disks,
            replaced: result.as_ref().ok().and_then(|d| d.replaced.clone()),
            started_vm: result.as_ref().is_ok_and(|d| d.started),
        }
    }

    async fn restore(
        &self,
        made: &mut Made,
        disks: &mut Vec<RestoredDisk>,
    ) -> Result<Done, RunError> {
        let (existing, placements) = self.preflight().await?;
        if self.point.config.is_none() {
            tracing::warn!("{}", shape::unshaped_warning(&self.point.point));
        }
        for disk in self.disks() {
            disks.push(self.upload_disk(disk, made).await?);
        }
        if let Some(old) = existing {
            self.move_old(old, made).await?;
        }
        let vm = self.create_vm(made, disks, &placements).await?;
        let started = self.restore.auto_start_restored_vm;
        if started {
            self.client.start_vm(&vm).await?;
            self.wait_vm_status(&vm, VmStatus::Up, true).await?;
        }
        // The new VM is complete: from here on nothing is undone, also after a crash.
        let moved = made.moved_old.take();
        made.vm = None;
        self.journal.save(made);
        let replaced = match moved {
            Some(old) if self.restore.backup_old_vm => {
                Some(format!("renamed to {}", old.renamed_to))
            }
            Some(old) => Some(self.remove_old(&old).await),
            None => None,
        };
        Ok(Done {
            vm_id: vm,
            replaced,
            started,
        })
    }

    /// One disk: created, uploaded from the chain, checked, finalized; recorded in `made`.
    async fn upload_disk(
        &self,
        disk: &DiskEntry,
        made: &mut Made,
    ) -> Result<RestoredDisk, RunError> {
        let clock = Instant::now();
        let disk_id = self.create_disk(disk, made).await?;
        let (bytes, checksum) = self.upload_into(&disk_id, disk, made).await?;
        self.wait_disk_ok(&disk_id).await?;
        let seconds = clock.elapsed().as_secs_f64();
        tracing::info!(
            disk = %disk.alias,
            bytes_sent = bytes,
            "disk {} restored: {} sent in {seconds:.1} s",
            disk.alias,
            indicatif::HumanBytes(bytes)
        );
        Ok(RestoredDisk {
            alias: disk.alias.clone(),
            source_id: disk.id.clone(),
            disk_id,
            bytes,
            seconds,
            checksum,
        })
    }

    /// The empty DR disk for `disk`, recorded in `made`, once the engine says it is ok.
    async fn create_disk(&self, disk: &DiskEntry, made: &mut Made) -> Result<String, RunError> {
        let request = DiskRequest {
            name: &disk.alias,
            description: format!(
                "restored by ovrun from {} point {}",
                self.point.vm, self.point.point
            ),
            provisioned_size: disk.provisioned_size,
            initial_size: self.initial_size(disk).await?,
            storage_domain: &self.restore.target_storage_domain_name,
        };
        let created = self.client.add_disk(&request).await?;
        made.disks.push(created.id.clone());
        self.journal.save(made);
        self.wait_disk_ok(&created.id).await?;
        Ok(created.id)
    }

    /// The chain sent into the DR disk through one upload transfer (recorded in `made` while
    /// it is open), its checksum compared, the transfer finalized; the bytes sent.
    async fn upload_into(
        &self,
        disk_id: &str,
        disk: &DiskEntry,
        made: &mut Made,
    ) -> Result<(u64, Option<String>), RunError> {
        let upload = TransferRequest::Upload { disk: disk_id };
        let transfer = self.client.create_transfer(upload).await?;
        made.transfer = Some(transfer_href(&transfer.id));
        self.journal.save(made);
        let url = wait_transferring(self.client, self.options, &transfer.id).await?;
        let ticket = Ticket::new(self.client.http().clone(), &url);
        let bytes = self.send_chain(&ticket, disk).await?;
        ticket.flush().await?;
        let checksum = self.compare_checksum(&ticket, disk).await?;
        finish_transfer(self.client, self.options, &transfer.id).await?;
        made.transfer = None;
        self.journal.save(made);
        Ok((bytes, checksum))
    }

    /// The size a sparse qcow2 disk needs to hold the point's data (`qemu-img measure` of the
    /// chain): block storage domains allocate that much up front and do not grow a disk
    /// during an upload (API page 11.1).
    async fn initial_size(&self, disk: &DiskEntry) -> Result<u64, RunError> {
        #[derive(Deserialize)]
        struct Measure {
            required: u64,
        }
        let top = self.catalog.qemu_path(&disk.file)?;
        let out = tokio::task::spawn_blocking(move || {
            let top = top.to_string_lossy().into_owned();
            local::qemu(
                "qemu-img",
                &[
                    "measure",
                    "--output=json",
                    "-f",
                    "qcow2",
                    "-O",
                    "qcow2",
                    &top,
                ],
            )
        })
        .await
        .map_err(|e| panicked(&e))??;
        let measure: Measure = serde_json::from_slice(&out)
            .map_err(|e| RunError::Failed(format!("qemu-img measure of {}: {e}", disk.file)))?;
        Ok(measure.required)
    }

    /// Sends the point's chain of `disk` to the ticket: [`upload::send_chain`].
    async fn send_chain(&self, ticket: &Ticket, disk: &DiskEntry) -> Result<u64, RunError> {
        upload::send_chain(self.catalog, self.options, ticket, disk).await
    }

    /// imageio's checksum of the uploaded disk against the point's: [`upload::compare_checksum`].
    async fn compare_checksum(
        &self,
        ticket: &Ticket,
        disk: &DiskEntry,
    ) -> Result<Option<String>, RunError> {
        upload::compare_checksum(ticket, disk, &self.point.point).await
    }

    /// Stops (if running now) and renames the VM that has the target name; recorded in `made`
    /// before anything is done to it, so a failure half-way is undone too.
    async fn move_old(&self, old: Vm, made: &mut Made) -> Result<OldVm, RunError> {
        // Read again: the uploads before this may have taken hours.
        let now = self.client.vm(&old.id).await?;
        let was_up = now.status.is_some_and(|s| s != VmStatus::Down);
        let renamed_to = self.old_name();
        made.moved_old = Some(OldVm {
            id: old.id.clone(),
            name: old.name.clone(),
            renamed_to: renamed_to.clone(),
            was_up,
            renamed: false,
        });
        self.journal.save(made);
        if was_up {
            tracing::info!(vm = %old.name, "stopping the VM being replaced");
            self.client.stop_vm(&old.id).await?;
            self.wait_vm_status(&old.id, VmStatus::Down, true).await?;
        }
        self.client.update_vm_name(&old.id, &renamed_to).await?;
        tracing::info!(vm = %old.name, "renamed to {renamed_to}");
        let moved = made.moved_old.as_mut().map(|m| {
            m.renamed = true;
            m.clone()
        });
        self.journal.save(made);
        moved.ok_or_else(|| RunError::Config("the replaced VM was not recorded".into()))
    }

    /// Removes the replaced VM with its disks; a failure is reported, not fatal (the new VM is
    /// complete, the old one stays under its temporary name).
    async fn remove_old(&self, old: &OldVm) -> String {
        match self.client.remove_vm(&old.id).await {
            Ok(()) => "removed".into(),
            Err(e) => {
                tracing::warn!(
                    "removing the replaced VM (now {}) failed: {e}; remove it by hand",
                    old.renamed_to
                );
                format!("renamed to {}; removing it failed: {e}", old.renamed_to)
            }
        }
    }

    /// The VM from the Blank template with the point's configuration, its disks attached as
    /// production had them, its NICs on their DR profiles.
    async fn create_vm(
        &self,
        made: &mut Made,
        disks: &[RestoredDisk],
        placements: &[Placement],
    ) -> Result<String, RunError> {
        let config = self.shaped_config();
        let request = VmRequest {
            name: &self.name,
            cluster: &self.restore.target_cluster_name,
            description: format!(
                "restored by ovrun from {} point {} (taken {})",
                self.point.vm, self.point.point, self.point.taken_at
            ),
            memory: self.point.memory,
            config: config.as_ref(),
        };
        let vm = self.client.add_vm(&request).await?;
        made.vm = Some(vm.id.clone());
        self.journal.save(made);
        for attach in self.attachments(disks) {
            let flags = [attach.bootable, attach.active];
            let disk = &attach.disk.disk_id;
            self.client
                .attach_disk(&vm.id, disk, &attach.interface, flags)
                .await?;
            made.disks.retain(|d| d != disk);
            self.journal.save(made);
        }
        if let Some(config) = &config {
            for nic in self.nic_requests(config, placements) {
                self.client.add_nic(&vm.id, &nic).await.map_err(|e| {
                    RunError::Failed(format!("adding NIC {} to the new VM: {e}", nic.name))
                })?;
            }
        }
        tracing::info!(vm = %self.name, id = %vm.id, "VM created with {} disks", disks.len());
        Ok(vm.id)
    }

    /// Waits (at most [`retry::PHASE_WAIT`]) until DR disk `id` is `ok`.
    async fn wait_disk_ok(&self, id: &str) -> Result<(), RunError> {
        let what = format!("DR disk {id} to be {}", DiskStatus::Ok);
        let patience = retry::stoppable(self.options, retry::PHASE_WAIT);
        let poll = async || disk_ok(self.client, id).await;
        Ok(wait_until(&what, patience, poll).await?)
    }

    /// Waits until VM `id` is `wanted`, at most `engine_lock_wait`; `stoppable`: a stop signal
    /// ends the wait (not while undoing, which must finish).
    async fn wait_vm_status(
        &self,
        id: &str,
        wanted: VmStatus,
        stoppable: bool,
    ) -> Result<(), RunError> {
        let what = format!("VM {id} to be {wanted}");
        let limit = self.options.engine_lock_wait;
        let patience = match stoppable {
            true => retry::stoppable(self.options, limit),
            false => retry::unstoppable(self.options, limit),
        };
        let poll = async || vm_status_is(self.client, id, &wanted).await;
        Ok(wait_until(&what, patience, poll).await?)
    }
}

/// What [`Job::restore`] made.
struct Done {
    vm_id: String,
    replaced: Option<String>,
    started: bool,
}

/// Whether DR disk `id` is ok; an illegal disk fails the wait.
async fn disk_ok(client: &EngineClient, id: &str) -> Result<Seen<()>, RunError> {
    match client.disk(id).await?.status {
        Some(DiskStatus::Ok) => Ok(Seen::Done(())),
        Some(DiskStatus::Illegal) => {
            Err(RunError::Failed(format!("disk {id} became illegal in DR")))
        }
        status => Ok(Seen::Waiting(format!("status {}", shown(status.as_ref())))),
    }
}

/// Whether VM `id` is `wanted`.
async fn vm_status_is(
    client: &EngineClient,
    id: &str,
    wanted: &VmStatus,
) -> Result<Seen<()>, RunError> {
    let vm = client.vm(id).await?;
    match vm.status {
        Some(status) if status == *wanted => Ok(Seen::Done(())),
        status => Ok(Seen::Waiting(format!(
            "VM {} is {}",
            vm.name,
            shown(status.as_ref())
        ))),
    }
}
