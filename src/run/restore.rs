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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::backup::{Options, RunError, finish_transfer, progress_bar, wait_transferring};
use super::blocksum;
use super::catalog::{self, Catalog, CatalogError, DiskEntry, Manifest};
use super::engine::ops::{VmRequest, transfer_href, transfer_id};
use super::engine::wait::{Seen, WaitError, wait_until};
use super::engine::{
    Collection, DiskRequest, DiskStatus, EngineClient, TransferRequest, Vm, VmStatus, shown,
};
use super::imageio::Ticket;
use super::local::{self, Writer};
use super::retry;
use super::workers::{Ranges, join_all};
use crate::plan::runner::{RestoreConfig, RunnerConfig};

/// Which point to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest point (skipped when already restored under the same name).
    Newest,
    /// A point by its id.
    Point(String),
    /// The newest point taken at or before this instant.
    At(DateTime<Utc>),
}

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

/// One disk as restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoredDisk {
    /// Its alias.
    pub alias: String,
    /// The production disk's id.
    pub source_id: String,
    /// The new disk's id in DR.
    pub disk_id: String,
    /// Bytes sent.
    pub bytes: u64,
    /// Seconds the upload took (create to finalized).
    pub seconds: f64,
    /// The content checksum both sides agreed on.
    pub checksum: Option<String>,
}

/// One line of a VM's restore log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When the restore started.
    pub started: DateTime<Utc>,
    /// Seconds it took.
    pub seconds: f64,
    /// The production VM.
    pub vm: String,
    /// The point restored.
    pub point: String,
    /// When the point was taken.
    pub taken_at: DateTime<Utc>,
    /// The VM's name in DR.
    pub restored_as: String,
    /// Its id in DR (a successful restore).
    #[serde(default)]
    pub vm_id: Option<String>,
    /// `ok` or `failed`.
    pub result: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The disks uploaded.
    pub disks: Vec<RestoredDisk>,
    /// Bytes sent in all.
    pub bytes: u64,
    /// What happened to a VM that had the name: `renamed to X`, `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// Whether the VM was started.
    pub started_vm: bool,
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
    let restore = config.restore.as_ref().ok_or_else(|| {
        RunError::Config(format!(
            "VM {} has no restore settings: give it a restore section (target cluster and \
             storage domain) in variables.json and rebuild",
            config.vm
        ))
    })?;
    // The configuration is checked whole before the catalog is read.
    let target = config.target.as_ref().ok_or_else(|| {
        RunError::Config(format!(
            "VM {} has no DR engine (target) settings: add the target engine to variables.json \
             and rebuild",
            config.vm
        ))
    })?;
    let password = super::engine::read_password(target)?;
    let client = EngineClient::new(target, password)?;
    let catalog = Catalog::open(Path::new(&config.backup_directory), &config.vm)?;
    let lock_wait = options.lock_wait;
    let lock_catalog = catalog.clone();
    let _lock = tokio::task::spawn_blocking(move || lock_catalog.lock(lock_wait))
        .await
        .map_err(|e| RunError::Config(e.to_string()))??;
    let points = catalog.points()?;
    let point = select(&points, &request.selector)?;
    let chain = Catalog::chain(&points, &point.point);
    if chain.first().is_none_or(|first| first.parent.is_some()) {
        return Err(RunError::Failed(format!(
            "point {} cannot be restored: its chain is broken (run `ovrun verify`); pick \
             another point with --point",
            point.point
        )));
    }
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

/// The point a selector names.
///
/// # Errors
/// No such point.
pub fn select<'a>(points: &'a [Manifest], selector: &Selector) -> Result<&'a Manifest, RunError> {
    let found = match selector {
        Selector::Newest => points.last(),
        Selector::Point(id) => points.iter().find(|p| &p.point == id),
        Selector::At(at) => points.iter().rev().find(|p| p.taken_at <= *at),
    };
    found.ok_or_else(|| {
        let known = points
            .iter()
            .map(|p| p.point.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match selector {
            // The catalog has nothing yet: a state to fix by backing up, not a usage error.
            Selector::Newest => {
                RunError::Failed("no backup point to restore: run `ovrun backup` first".into())
            }
            Selector::Point(id) => {
                RunError::Config(format!("no point {id}; the points are: {known}"))
            }
            Selector::At(at) => RunError::Config(format!(
                "no point taken at or before {at}; the points are: {known}"
            )),
        }
    })
}

/// The VM's restore log: `<restore_log_directory>/<vm>.jsonl`, one JSON line per restore.
#[derive(Debug, Clone)]
pub struct RestoreLog {
    path: PathBuf,
    vm: String,
}

impl RestoreLog {
    /// The log of VM `vm` in `dir`.
    pub fn new(dir: &Path, vm: &str) -> Self {
        Self {
            path: dir.join(format!("{}.jsonl", catalog::safe_name(vm))),
            vm: vm.to_owned(),
        }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The VM's entries, oldest first (unreadable lines skipped). Names that differ only where
    /// a file name cannot (`a b`, `a_b`) share one file: each line names its VM, and only this
    /// VM's lines count.
    pub fn entries(&self) -> Vec<LogEntry> {
        use fs_err::os::unix::fs::OpenOptionsExt;
        fs_err::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .and_then(|mut file| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text).map(|_| text)
            })
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str::<LogEntry>(line).ok())
                    .filter(|entry| entry.vm == self.vm)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last successful restore of `point` as `name`, if it is the last restore as `name`.
    pub fn last_success(&self, point: &str, name: &str) -> Option<LogEntry> {
        self.entries()
            .into_iter()
            .rev()
            .find(|e| e.restored_as == name && e.result == "ok")
            .filter(|e| e.point == point)
    }

    /// Appends one line, durably (O_APPEND: concurrent restores of other VMs do not mix). The
    /// log is never opened through a link (`ELOOP`), and is made `0600` in a `0700` folder.
    ///
    /// # Errors
    /// The folder or file cannot be written, or the log is a link.
    pub fn append(&self, entry: &LogEntry) -> std::io::Result<()> {
        use fs_err::os::unix::fs::OpenOptionsExt;
        use std::io::Write;
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = self.path.parent().filter(|dir| !dir.is_dir()) {
            // fs-err has no DirBuilder; the error is given the folder's name here.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
                })?;
        }
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_all()
    }
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

/// The journal's file name in the VM's catalog folder.
pub(crate) const JOURNAL: &str = super::catalog::JOURNAL_FILE;

/// What a restore in progress made in DR, on disk: written after each thing made, removed when
/// the restore ended (done, or undone). Found at the start of a restore, it is what a killed
/// restore left behind.
struct Journal {
    catalog: Catalog,
    engine: String,
}

/// The journal's content: the DR engine (a journal of another engine is not undone there) and
/// what was made.
#[derive(Debug, Serialize, Deserialize)]
struct Journaled {
    engine: String,
    made: Made,
}

impl Journal {
    fn new(catalog: &Catalog, engine: &str) -> Self {
        Self {
            catalog: catalog.clone(),
            engine: engine.to_owned(),
        }
    }

    /// Records what is made so far (crash-safe). A journal that cannot be written is a warning:
    /// the restore itself still undoes on failure.
    fn save(&self, made: &Made) {
        let journaled = Journaled {
            engine: self.engine.clone(),
            made: made.clone(),
        };
        let text = serde_json::to_vec_pretty(&journaled).expect("a journal serializes");
        if let Err(e) = self.catalog.write_file(JOURNAL, &text) {
            tracing::warn!(
                "writing the restore journal: {e}; a restore killed now leaves what it made in DR"
            );
        }
    }

    /// What a restore that did not end left in this engine, if any.
    fn left(&self) -> Option<Made> {
        if !self.catalog.exists(JOURNAL) {
            return None;
        }
        let path = self.catalog.path(JOURNAL);
        let text = match self.catalog.open_file(JOURNAL).and_then(|file| {
            std::io::read_to_string(file).map_err(|source| CatalogError::Io {
                what: format!("reading {}", path.display()),
                source,
            })
        }) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!("{e}: a restore killed before may have left disks in DR");
                return None;
            }
        };
        match serde_json::from_str::<Journaled>(&text) {
            Ok(j) if j.engine == self.engine => Some(j.made).filter(|m| !m.is_empty()),
            Ok(j) => {
                tracing::warn!(
                    "{} lists what a restore made in {}, not in {}: not undone here; check that \
                     engine by hand",
                    path.display(),
                    j.engine,
                    self.engine
                );
                None
            }
            Err(e) => {
                tracing::warn!("{} cannot be read: {e}", path.display());
                None
            }
        }
    }

    /// The restore ended: nothing of it is left to undo.
    fn clear(&self) {
        if let Err(e) = self.catalog.remove(JOURNAL) {
            tracing::warn!("{e}");
        }
    }
}

/// What was made or changed in DR so far, to undo on failure.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Made {
    disks: Vec<String>,
    transfer: Option<String>,
    vm: Option<String>,
    moved_old: Option<OldVm>,
}

impl Made {
    fn is_empty(&self) -> bool {
        self.disks.is_empty()
            && self.transfer.is_none()
            && self.vm.is_none()
            && self.moved_old.is_none()
    }
}

/// A VM that had the target name, moved out of the way.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OldVm {
    id: String,
    name: String,
    renamed_to: String,
    was_up: bool,
    renamed: bool,
}

impl Job<'_> {
    /// The disks in attachment order: the boot disk first.
    fn disks(&self) -> Vec<&DiskEntry> {
        let mut disks: Vec<&DiskEntry> = self.point.disks.iter().collect();
        disks.sort_by_key(|d| !d.bootable);
        disks
    }

    /// Checks the DR side and says what a restore would do.
    async fn plan(&self) -> Result<Vec<String>, RunError> {
        let existing = self.preflight().await?;
        let mut steps = vec![format!(
            "restore point {} ({}, taken {}) of {} as VM {:?} in cluster {}",
            self.point.point,
            self.point.kind,
            self.point.taken_at,
            self.point.vm,
            self.name,
            self.restore.target_cluster_name
        )];
        for disk in self.disks() {
            steps.push(format!(
                "upload disk {} ({} virtual, from {}) into storage domain {}, attached as {}{}",
                disk.alias,
                indicatif::HumanBytes(disk.provisioned_size),
                disk.file,
                self.restore.target_storage_domain_name,
                self.restore.disk_interface,
                if disk.bootable { ", bootable" } else { "" }
            ));
        }
        if let Some(old) = existing {
            steps.push(if self.restore.backup_old_vm {
                format!(
                    "rename the existing VM {:?} ({}) to {:?} and keep it",
                    old.name,
                    old.id,
                    self.old_name()
                )
            } else {
                format!(
                    "remove the existing VM {:?} ({}) and its disks",
                    old.name, old.id
                )
            });
        }
        if self.restore.auto_start_restored_vm {
            steps.push("start the restored VM".into());
        }
        Ok(steps)
    }

    /// The cluster and storage domain exist; the VM now named `name`, if any (refused unless
    /// replacing).
    async fn preflight(&self) -> Result<Option<Vm>, RunError> {
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
        let entry = LogEntry {
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
        };
        if let Err(e) = log.append(&entry) {
            tracing::warn!("writing the restore log {}: {e}", log.path().display());
        }
        result.map(|_| Outcome::Restored(Box::new(entry)))
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
        let initial_size = self.initial_size(disk).await?;
        let request = DiskRequest {
            name: &disk.alias,
            description: format!(
                "restored by ovrun from {} point {}",
                self.point.vm, self.point.point
            ),
            provisioned_size: disk.provisioned_size,
            initial_size,
            storage_domain: &self.restore.target_storage_domain_name,
        };
        let created = self.client.add_disk(&request).await?;
        made.disks.push(created.id.clone());
        self.journal.save(made);
        self.wait_disk_ok(&created.id).await?;
        let upload = TransferRequest::Upload { disk: &created.id };
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
        self.wait_disk_ok(&created.id).await?;
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

    /// Reads the point's chain of `disk` through a read-only `qemu-nbd` and writes its data
    /// extents to the ticket with `workers` connections; the bytes sent. Zero extents are not
    /// sent: a new disk reads as zeroes.
    async fn send_chain(&self, ticket: &Ticket, disk: &DiskEntry) -> Result<u64, RunError> {
        let top = self.catalog.qemu_path(&disk.file)?;
        let map_top = top.clone();
        let extents = tokio::task::spawn_blocking(move || local::map(&map_top))
            .await
            .map_err(|e| RunError::Config(e.to_string()))??;
        let pieces: Vec<(u64, u64)> = extents
            .iter()
            .filter(|e| e.data)
            .flat_map(|e| blocksum::split_at_blocks(e.start, e.length))
            .collect();
        let total: u64 = pieces.iter().map(|p| p.1).sum();
        tracing::info!(disk = %disk.alias, "{} of data to send", indicatif::HumanBytes(total));
        let reader = Arc::new(Writer::open_read_only(&top, &self.options.run_dir)?);
        let bar = progress_bar(self.options.progress, total, &disk.alias);
        let sent = parallel_upload(ticket, &reader, pieces, self.options, &bar).await;
        bar.finish_and_clear();
        let reader = Arc::try_unwrap(reader)
            .map_err(|_| RunError::Config("a chain reader outlived its upload".into()))?;
        let closed = tokio::task::spawn_blocking(move || reader.close())
            .await
            .map_err(|e| RunError::Config(e.to_string()))?;
        let sent = sent?;
        closed?;
        Ok(sent)
    }

    /// imageio's checksum of the uploaded disk against the point's; `None` for a point that
    /// recorded none (taken by an older `ovrun`).
    async fn compare_checksum(
        &self,
        ticket: &Ticket,
        disk: &DiskEntry,
    ) -> Result<Option<String>, RunError> {
        let Some(recorded) = &disk.content else {
            tracing::warn!(
                disk = %disk.alias,
                "point {} recorded no content checksum: the upload is not compared",
                self.point.point
            );
            return Ok(None);
        };
        let remote = ticket
            .checksum(&recorded.algorithm, recorded.block_size)
            .await?;
        if remote != recorded.checksum {
            return Err(RunError::Failed(format!(
                "disk {}: the DR engine's checksum of the uploaded disk is {remote}, the point \
                 recorded {}: the upload is discarded (run `ovrun verify` on the catalog)",
                disk.alias, recorded.checksum
            )));
        }
        Ok(Some(remote))
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

    /// The VM from the Blank template, its disks attached (boot disk first, bootable).
    async fn create_vm(&self, made: &mut Made, disks: &[RestoredDisk]) -> Result<String, RunError> {
        let request = VmRequest {
            name: &self.name,
            cluster: &self.restore.target_cluster_name,
            description: format!(
                "restored by ovrun from {} point {} (taken {})",
                self.point.vm, self.point.point, self.point.taken_at
            ),
            memory: self.point.memory,
        };
        let vm = self.client.add_vm(&request).await?;
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
            let interface = self.restore.disk_interface.as_str();
            self.client
                .attach_disk(&vm.id, &restored.disk_id, interface, bootable)
                .await?;
            made.disks.retain(|d| d != &restored.disk_id);
            self.journal.save(made);
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

    /// Removes the new VM: stopped first if it runs, then deleted (with its disks), then
    /// waited for until it is gone, so its name is free again.
    async fn remove_new_vm(&self, vm: &str) -> Result<(), RunError> {
        let now = self.client.vm(vm).await?;
        if now.status.is_some_and(|s| s != VmStatus::Down) {
            self.client.stop_vm(vm).await?;
            self.wait_vm_status(vm, VmStatus::Down, false).await?;
        }
        self.client.remove_vm(vm).await?;
        let what = format!("VM {vm} to be gone after its removal");
        let patience = retry::unstoppable(self.options, retry::CLEANUP_WAIT);
        let poll = async || vm_gone(self.client, vm).await;
        Ok(wait_until(&what, patience, poll).await?)
    }

    /// Puts DR back as it was, as far as it can; each step's failure is logged and the rest
    /// still tried.
    async fn undo(&self, made: Made) {
        if let Some(href) = &made.transfer {
            let id = transfer_id(href);
            if let Err(e) = self.client.cancel_transfer(id).await {
                tracing::warn!("cancelling {href}: {e}");
            }
            wait_gone(self.client, id, self.options).await;
        }
        if let Some(vm) = &made.vm
            && let Err(e) = self.remove_new_vm(vm).await
        {
            tracing::warn!("removing the half-made VM {vm}: {e}; remove it by hand");
        }
        for disk in &made.disks {
            match self.client.remove_disk(disk).await {
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
            let renamed = self.client.update_vm_name(&old.id, &old.name).await;
            match renamed {
                Ok(()) => tracing::info!(vm = %old.name, "the replaced VM has its name back"),
                Err(e) => tracing::error!(
                    "renaming {} back to {}: {e}; rename it by hand",
                    old.renamed_to,
                    old.name
                ),
            }
        }
        if old.was_up {
            let now: Option<Vm> = self.client.vm(&old.id).await.ok();
            let down = now.is_some_and(|vm| vm.status == Some(VmStatus::Down));
            let started = match down {
                true => match self.client.start_vm(&old.id).await {
                    Ok(()) => self.wait_vm_status(&old.id, VmStatus::Up, false).await,
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

/// Waits (at most [`retry::CLEANUP_WAIT`]) until cancelled image transfer `id` has ended, so
/// its disk is gone; a transfer that does not end is reported.
async fn wait_gone(client: &EngineClient, id: &str, options: &Options) {
    let what = format!("the cancelled image transfer {id} to end");
    let patience = retry::unstoppable(options, retry::CLEANUP_WAIT);
    let poll = async || {
        let phase = client.transfer(id).await?.phase;
        Ok::<_, RunError>(match phase {
            Some(p) if p.is_finished() => Seen::Done(()),
            p => Seen::Waiting(format!("phase {}", shown(p.as_ref()))),
        })
    };
    match wait_until(&what, patience, poll).await {
        Err(WaitError::Poll(_)) | Ok(()) => {}
        Err(e) => tracing::warn!("{e}"),
    }
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

/// Whether VM `id` is gone (404).
async fn vm_gone(client: &EngineClient, id: &str) -> Result<Seen<()>, RunError> {
    match client.vm(id).await {
        Err(e) if e.is_not_found() => Ok(Seen::Done(())),
        Err(e) => Ok(Seen::Waiting(e.to_string())),
        Ok(now) => Ok(Seen::Waiting(format!(
            "status {}",
            shown(now.status.as_ref())
        ))),
    }
}

/// Sends `pieces` of the chain served by `reader` to the ticket with `workers` connections.
async fn parallel_upload(
    ticket: &Ticket,
    reader: &Arc<Writer>,
    pieces: Vec<(u64, u64)>,
    options: &Options,
    bar: &indicatif::ProgressBar,
) -> Result<u64, RunError> {
    let queue = Ranges::new(pieces, options.stop.clone());
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.workers.max(1) {
        let (ticket, reader, queue, sent, bar) = (
            ticket.clone(),
            reader.clone(),
            queue.clone(),
            sent.clone(),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut connection = reader.connect()?;
            loop {
                let Some((offset, length)) = queue.next()? else {
                    return Ok(());
                };
                let mut buffer = vec![0u8; usize::try_from(length).unwrap_or(0)];
                tokio::task::block_in_place(|| connection.read_at(offset, &mut buffer))?;
                ticket.write(offset, Bytes::from(buffer)).await?;
                sent.fetch_add(length, Ordering::Relaxed);
                bar.inc(length);
            }
        });
    }
    join_all(workers).await?;
    Ok(sent.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(id: &str, hours_ago: i64) -> Manifest {
        serde_json::from_value(json!({
            "format": 1, "vm": "web", "vm_id": "v", "point": id, "kind": "full",
            "reason": "first", "taken_at": (Utc::now() - chrono::Duration::hours(hours_ago)),
            "parent": null, "backup_id": "b", "from_checkpoint": null, "checkpoint": null,
            "disks": []
        }))
        .expect("manifest")
    }

    #[test]
    fn a_selector_picks_newest_by_id_or_at_or_before_an_instant() {
        let points = [point("a", 48), point("b", 24), point("c", 1)];
        assert_eq!(select(&points, &Selector::Newest).unwrap().point, "c");
        assert_eq!(
            select(&points, &Selector::Point("a".into())).unwrap().point,
            "a"
        );
        let at = Utc::now() - chrono::Duration::hours(12);
        assert_eq!(select(&points, &Selector::At(at)).unwrap().point, "b");
        let before_all = Utc::now() - chrono::Duration::hours(100);
        let error = select(&points, &Selector::At(before_all))
            .unwrap_err()
            .to_string();
        assert!(error.contains("the points are: a, b, c"), "{error}");
        assert!(select(&points, &Selector::Point("x".into())).is_err());
        assert!(select(&[], &Selector::Newest).is_err());
    }

    #[test]
    fn a_journal_lists_what_was_made_until_cleared_and_only_for_its_engine() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web").unwrap();
        let journal = Journal::new(&catalog, "https://dr/ovirt-engine/api");
        assert!(journal.left().is_none(), "no journal: nothing left");
        let made = Made {
            disks: vec!["d1".into()],
            transfer: Some("/imagetransfers/t1".into()),
            ..Made::default()
        };
        journal.save(&made);
        let left = journal.left().expect("a killed restore's journal");
        assert_eq!(left.disks, ["d1"]);
        assert_eq!(left.transfer.as_deref(), Some("/imagetransfers/t1"));
        let elsewhere = Journal::new(&catalog, "https://other/ovirt-engine/api");
        assert!(elsewhere.left().is_none(), "not undone in another engine");
        journal.save(&Made::default());
        assert!(journal.left().is_none(), "nothing made: nothing to undo");
        journal.clear();
        assert!(!catalog.path(JOURNAL).exists());
        journal.clear();
    }

    #[test]
    fn the_log_knows_the_last_restore_under_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = RestoreLog::new(dir.path(), "web 01");
        let entry = |point: &str, name: &str, result: &str| LogEntry {
            started: Utc::now(),
            seconds: 1.0,
            vm: "web 01".into(),
            point: point.into(),
            taken_at: Utc::now(),
            restored_as: name.into(),
            vm_id: None,
            result: result.into(),
            error: None,
            disks: Vec::new(),
            bytes: 0,
            replaced: None,
            started_vm: false,
        };
        assert!(log.last_success("p1", "web_dr").is_none());
        log.append(&entry("p1", "web_dr", "ok")).unwrap();
        log.append(&entry("p2", "web_dr", "failed")).unwrap();
        log.append(&entry("p9", "other", "ok")).unwrap();
        assert_eq!(log.last_success("p1", "web_dr").unwrap().point, "p1");
        assert!(log.last_success("p2", "web_dr").is_none(), "p2 failed");
        log.append(&entry("p2", "web_dr", "ok")).unwrap();
        assert!(
            log.last_success("p1", "web_dr").is_none(),
            "p2 was restored since"
        );
        assert_eq!(log.entries().len(), 4);
        assert!(log.path().ends_with("web_01.jsonl") || log.path().exists());
    }

    #[test]
    fn vms_whose_logs_share_a_file_see_only_their_own_restores() {
        let dir = tempfile::tempdir().unwrap();
        let spaced = RestoreLog::new(dir.path(), "web 01");
        let underscored = RestoreLog::new(dir.path(), "web_01");
        assert_eq!(spaced.path(), underscored.path(), "one file name for both");
        let entry = LogEntry {
            started: Utc::now(),
            seconds: 1.0,
            vm: "web_01".into(),
            point: "p1".into(),
            taken_at: Utc::now(),
            restored_as: "web_dr".into(),
            vm_id: None,
            result: "ok".into(),
            error: None,
            disks: Vec::new(),
            bytes: 0,
            replaced: None,
            started_vm: false,
        };
        underscored.append(&entry).unwrap();
        assert!(underscored.last_success("p1", "web_dr").is_some());
        assert!(
            spaced.last_success("p1", "web_dr").is_none(),
            "web 01 never restored p1: web_01 did"
        );
        assert!(spaced.entries().is_empty());
    }
}
