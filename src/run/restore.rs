//! `ovrun restore`: a backup point brought up as a VM in the DR engine (policy.md section 5,
//! API page sections 11 and 13.2).
//!
//! The order keeps DR as it was until the new VM is complete:
//!
//! 1. the point and its chain are picked from the catalog (under the VM's lock, so retention
//!    cannot remove them meanwhile); the DR cluster and storage domain are looked up, and an
//!    existing VM of the target name is refused unless `replace_existing_vm`;
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
//! what a restore made in DR, `dry_run` the steps `--dry-run` prints. The data path is
//! `upload`, and which point and chain are restored [`super::chain`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

mod dry_run;
mod journal;
mod log;
mod upload;

use self::journal::{Journal, Made, OldVm};
pub use self::log::{LogEntry, RestoreLog, RestoredDisk};
use super::backup::human_bytes;
use super::catalog::{Catalog, DiskEntry, Manifest};
use super::chain;
pub use super::chain::{Selector, select};
use super::engine::{Disk, EngineClient, ImageTransfer, Named, Vm, url_encode};
use super::imageio::Ticket;
use super::job::{Options, Pacer, RunError, locked_catalog};
use super::local;
use super::retry::{self, Wait};
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
    if request.selector == Selector::Newest
        && !request.force
        && !request.dry_run
        && let Some(done) = log.last_success(&point.point, &name)
    {
        return Ok(Outcome::AlreadyRestored {
            point: done.point,
            restored_as: done.restored_as,
        });
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
        job.restore_and_log(&log).await
    };
    client.logout().await;
    result
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

    /// The cluster and storage domain exist; the VM now named `name`, if any (refused unless
    /// replacing).
    async fn preflight(&self) -> Result<Option<Vm>, RunError> {
        for (kind, name) in [
            ("clusters", &self.restore.target_cluster_name),
            ("storagedomains", &self.restore.target_storage_domain_name),
        ] {
            let found = named(self.client, kind, name).await?;
            if !found.iter().any(|n| &n.name == name) {
                return Err(RunError::Config(format!(
                    "the DR engine has no {} named {name:?}: check target_{}_name in \
                     variables.json",
                    if kind == "clusters" {
                        "cluster"
                    } else {
                        "storage domain"
                    },
                    if kind == "clusters" {
                        "cluster"
                    } else {
                        "storage_domain"
                    }
                )));
            }
        }
        let existing = self.client.vms_named(&self.name).await?.into_iter().next();
        if existing.is_some() && !self.restore.replace_existing_vm {
            return Err(RunError::Failed(format!(
                "a VM named {:?} exists in DR and replace_existing_vm is off: remove or rename \
                 it, restore under another name (--name), or set replace_existing_vm",
                self.name
            )));
        }
        Ok(existing)
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
            result: if result.is_ok() { "ok" } else { "failed" }.into(),
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
        let existing = self.preflight().await?;
        for disk in self.disks() {
            disks.push(self.upload_disk(disk, made).await?);
        }
        if let Some(old) = existing {
            self.move_old(old, made).await?;
        }
        let vm = self.create_vm(made, disks).await?;
        let started = self.restore.auto_start_restored_vm;
        if started {
            self.client.action(&format!("/vms/{vm}/start")).await?;
            self.wait_vm_status(&vm, "up", true).await?;
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
        let initial_size = self.initial_size(disk).await?;
        let created: Disk = self
            .client
            .post(
                "/disks",
                &json!({
                    "name": disk.alias, "alias": disk.alias,
                    "description": format!("restored by ovrun from {} point {}",
                                           self.point.vm, self.point.point),
                    "format": "cow", "sparse": "true", "backup": "incremental",
                    "provisioned_size": disk.provisioned_size.to_string(),
                    "initial_size": initial_size.to_string(),
                    "content_type": "data",
                    "storage_domains": {"storage_domain": [
                        {"name": self.restore.target_storage_domain_name}]},
                }),
            )
            .await?;
        made.disks.push(created.id.clone());
        self.journal.save(made);
        self.wait_disk_ok(&created.id).await?;
        let transfer: ImageTransfer = self
            .client
            .post(
                "/imagetransfers",
                &json!({"disk": {"id": created.id}, "direction": "upload", "format": "raw",
                        "inactivity_timeout": "120", "timeout_policy": "cancel"}),
            )
            .await?;
        let href = format!("/imagetransfers/{}", transfer.id);
        made.transfer = Some(href.clone());
        self.journal.save(made);
        let url = wait_transferring(self.client, self.options, &href).await?;
        let ticket = Ticket::new(self.client.http().clone(), &url);
        let bytes = self.send_chain(&ticket, disk).await?;
        ticket.flush().await?;
        let checksum = self.compare_checksum(&ticket, disk).await?;
        finish_transfer(self.client, self.options, &href).await?;
        made.transfer = None;
        self.journal.save(made);
        self.wait_disk_ok(&created.id).await?;
        let seconds = clock.elapsed().as_secs_f64();
        tracing::info!(
            disk = %disk.alias,
            bytes_sent = bytes,
            "disk {} restored: {} sent in {seconds:.1} s",
            disk.alias,
            human_bytes(bytes)
        );
        Ok(RestoredDisk {
            alias: disk.alias.clone(),
            source_id: disk.id.clone(),
            disk_id: created.id,
            bytes,
            seconds,
            checksum,
        })
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
        .map_err(|e| RunError::Config(e.to_string()))??;
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
        let now: Vm = self.client.get(&format!("/vms/{}", old.id)).await?;
        let was_up = now.status.as_deref().is_some_and(|s| s != "down");
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
            self.client.action(&format!("/vms/{}/stop", old.id)).await?;
            self.wait_vm_status(&old.id, "down", true).await?;
        }
        self.client
            .call(
                reqwest::Method::PUT,
                &format!("/vms/{}", old.id),
                Some(&json!({"name": renamed_to})),
            )
            .await?;
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
        match self.client.delete(&format!("/vms/{}", old.id)).await {
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

    /// The VM from the Blank template, its disks attached (boot disk first, bootable).
    async fn create_vm(&self, made: &mut Made, disks: &[RestoredDisk]) -> Result<String, RunError> {
        let mut request = json!({
            "name": self.name,
            "cluster": {"name": self.restore.target_cluster_name},
            "template": {"name": "Blank"},
            "description": format!("restored by ovrun from {} point {} (taken {})",
                                   self.point.vm, self.point.point, self.point.taken_at),
        });
        if let Some(memory) = self.point.memory {
            // The engine's default maximum is not documented: give it explicitly (API page 11.3).
            request["memory"] = json!(memory.to_string());
            request["memory_policy"] =
                json!({"guaranteed": memory.to_string(), "max": memory.to_string()});
        }
        let vm: Vm = self.client.post("/vms", &request).await?;
        made.vm = Some(vm.id.clone());
        self.journal.save(made);
        let sources: BTreeMap<&str, &DiskEntry> = self
            .point
            .disks
            .iter()
            .map(|d| (d.id.as_str(), d))
            .collect();
        let any_bootable = self.point.disks.iter().any(|d| d.bootable);
        for (index, restored) in disks.iter().enumerate() {
            let bootable = sources
                .get(restored.source_id.as_str())
                .is_some_and(|d| d.bootable)
                || (!any_bootable && index == 0);
            self.client
                .post::<Value>(
                    &format!("/vms/{}/diskattachments", vm.id),
                    &json!({"disk": {"id": restored.disk_id},
                            "interface": self.restore.disk_interface,
                            "bootable": bootable.to_string(), "active": "true",
                            "pass_discard": "false"}),
                )
                .await?;
            made.disks.retain(|d| d != &restored.disk_id);
            self.journal.save(made);
        }
        tracing::info!(vm = %self.name, id = %vm.id, "VM created with {} disks", disks.len());
        Ok(vm.id)
    }

    /// Waits (at most [`retry::PHASE_WAIT`]) until DR disk `id` is `ok`.
    async fn wait_disk_ok(&self, id: &str) -> Result<(), RunError> {
        let mut wait = Wait::new(
            self.options,
            format!("DR disk {id} to be ok"),
            retry::PHASE_WAIT,
        );
        loop {
            let disk: Disk = self.client.get(&format!("/disks/{id}")).await?;
            match disk.status.as_deref() {
                Some("ok") => return Ok(()),
                Some("illegal") => {
                    return Err(RunError::Failed(format!("disk {id} became illegal in DR")));
                }
                status => {
                    wait.next(&format!("status {}", status.unwrap_or("unknown")))
                        .await?;
                }
            }
        }
    }

    /// Waits until VM `id` is `wanted`, at most `engine_lock_wait`; `stoppable`: a stop signal
    /// ends the wait (not while undoing, which must finish).
    async fn wait_vm_status(
        &self,
        id: &str,
        wanted: &str,
        stoppable: bool,
    ) -> Result<(), RunError> {
        let deadline = Instant::now() + self.options.engine_lock_wait;
        let mut pacer = Pacer::new(self.options);
        loop {
            let vm: Vm = self.client.get(&format!("/vms/{id}")).await?;
            if vm.status.as_deref() == Some(wanted) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RunError::Failed(format!(
                    "VM {} is {} after {} s, not {wanted}",
                    vm.name,
                    vm.status.as_deref().unwrap_or("in an unknown state"),
                    self.options.engine_lock_wait.as_secs()
                )));
            }
            if stoppable {
                pacer.wait(self.options).await?;
            } else {
                pacer.pause().await;
            }
        }
    }

    /// Removes the new VM: stopped first if it runs, then deleted (with its disks), then
    /// waited for until it is gone, so its name is free again.
    async fn remove_new_vm(&self, vm: &str) -> Result<(), RunError> {
        let now: Vm = self.client.get(&format!("/vms/{vm}")).await?;
        if now.status.as_deref().is_some_and(|s| s != "down") {
            self.client.action(&format!("/vms/{vm}/stop")).await?;
            self.wait_vm_status(vm, "down", false).await?;
        }
        self.client.delete(&format!("/vms/{vm}")).await?;
        let mut wait = Wait::new(
            self.options,
            format!("VM {vm} to be gone after its removal"),
            retry::CLEANUP_WAIT,
        )
        .unstoppable();
        loop {
            match self.client.get::<Vm>(&format!("/vms/{vm}")).await {
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => wait.next(&e).await?,
                Ok(now) => {
                    wait.next(&format!(
                        "status {}",
                        now.status.as_deref().unwrap_or("unknown")
                    ))
                    .await?;
                }
            }
        }
    }

    /// Puts DR back as it was, as far as it can; each step's failure is logged and the rest
    /// still tried.
    async fn undo(&self, made: Made) {
        if let Some(href) = &made.transfer {
            if let Err(e) = retry::action(self.client, &format!("{href}/cancel")).await {
                tracing::warn!("cancelling {href}: {e}");
            }
            wait_gone(self.client, href, self.options).await;
        }
        if let Some(vm) = &made.vm
            && let Err(e) = self.remove_new_vm(vm).await
        {
            tracing::warn!("removing the half-made VM {vm}: {e}; remove it by hand");
        }
        for disk in &made.disks {
            let path = format!("/disks/{disk}");
            match self.client.delete(&path).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("removing the half-made disk {disk}: {e}"),
            }
        }
        if let Some(old) = &made.moved_old {
            self.put_back(old).await;
        }
    }

    /// The replaced VM under its name again, and running again if it was.
    async fn put_back(&self, old: &OldVm) {
        if old.renamed {
            let renamed = self
                .client
                .call(
                    reqwest::Method::PUT,
                    &format!("/vms/{}", old.id),
                    Some(&json!({"name": old.name})),
                )
                .await;
            match renamed {
                Ok(_) => tracing::info!(vm = %old.name, "the replaced VM has its name back"),
                Err(e) => tracing::error!(
                    "renaming {} back to {}: {e}; rename it by hand",
                    old.renamed_to,
                    old.name
                ),
            }
        }
        if old.was_up {
            let now: Option<Vm> = self.client.get(&format!("/vms/{}", old.id)).await.ok();
            let down = now.is_some_and(|vm| vm.status.as_deref() == Some("down"));
            let started = match down {
                true => match self.client.action(&format!("/vms/{}/start", old.id)).await {
                    Ok(()) => self.wait_vm_status(&old.id, "up", false).await,
                    Err(e) => Err(e.into()),
                },
                false => Ok(()),
            };
            if let Err(e) = started {
                tracing::error!("starting {} again: {e}; start it by hand", old.name);
            }
        }
    }
}

/// What [`Job::restore`] made.
struct Done {
    vm_id: String,
    replaced: Option<String>,
    started: bool,
}

/// Waits (at most [`retry::CLEANUP_WAIT`]) until a cancelled transfer has ended, so its disk
/// is gone; a transfer that does not end is reported.
async fn wait_gone(client: &EngineClient, href: &str, options: &Options) {
    let mut wait = Wait::new(
        options,
        format!("the cancelled transfer {href} to end"),
        retry::CLEANUP_WAIT,
    )
    .unstoppable();
    loop {
        let phase = match client.get::<ImageTransfer>(href).await {
            Ok(t) => t.phase.unwrap_or_default(),
            Err(_) => return,
        };
        if phase.starts_with("finished") {
            return;
        }
        if let Err(e) = wait.next(&format!("phase {phase}")).await {
            tracing::warn!("{e}");
            return;
        }
    }
}

/// The objects of `kind` (`clusters`, `storagedomains`) named `name`.
async fn named(client: &EngineClient, kind: &str, name: &str) -> Result<Vec<Named>, RunError> {
    let query = url_encode(&format!("name={name}"));
    let list: Value = client.get(&format!("/{kind}?search={query}")).await?;
    let singular = match kind {
        "storagedomains" => "storage_domain",
        other => other.trim_end_matches('s'),
    };
    let items = list.get(singular).cloned().unwrap_or(Value::Null);
    let items = match items {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        one => vec![one],
    };
    Ok(items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// Creates (or empties) `path` as a `0600` file, not through a link, so that the image
/// `qemu-img` writes into it is readable by its owner alone whatever the umask.
fn precreate_private(path: &Path) -> Result<(), RunError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let file = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| RunError::Failed(e.to_string()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| RunError::Failed(e.to_string()))
}

/// `ovrun merge`: the chain of a point's disk as one qcow2 at `out`, in one pass (`qemu-img
/// convert` reads through the backing chain), written to a temporary file, synced and renamed.
///
/// # Errors
/// `qemu-img` fails or the file cannot be written.
pub fn merge(top: &Path, out: &Path, compress: bool) -> Result<(), RunError> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RunError::Config(format!("--out {} names no file", out.display())))?;
    let temp = out.with_file_name(format!(".tmp-{name}"));
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| RunError::Config(format!("{} is not UTF-8", p.display())))
    };
    let (top_text, temp_text) = (utf8(top)?, utf8(&temp)?);
    precreate_private(&temp)?;
    let mut args = vec!["convert", "-f", "qcow2", "-O", "qcow2"];
    if compress {
        args.push("-c");
    }
    args.extend([top_text.as_str(), temp_text.as_str()]);
    let converted = local::qemu("qemu-img", &args);
    if let Err(e) = converted {
        let _ = fs_err::remove_file(&temp);
        return Err(e.into());
    }
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| super::local::LocalError::Io { what, source }
    };
    fs_err::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing the merged image"))?;
    fs_err::rename(&temp, out).map_err(io("renaming the merged image"))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::sync_dir(dir).map_err(io("syncing the output folder"))?;
    }
    Ok(())
}
