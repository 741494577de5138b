//! The backup directory, as the predecessor laid it out and operators expect it: one folder per
//! VM, holding each point's disk images and, written last and durably, its manifest:
//!
//! ```text
//! BACKUP_DIR/web01/.vm.json                                      (whose folder it is)
//! BACKUP_DIR/web01/20261129T020000Z.full.web01_os.qcow2
//! BACKUP_DIR/web01/20261129T020000Z.full.web01_os.sums           (its block digests)
//! BACKUP_DIR/web01/20261129T020000Z.full.manifest.json
//! BACKUP_DIR/web01/20261130T020000Z.incremental.web01_os.qcow2   (backing: the full's file)
//! BACKUP_DIR/web01/20261130T020000Z.incremental.web01_os.sums
//! BACKUP_DIR/web01/20261130T020000Z.incremental.manifest.json
//! BACKUP_DIR/web01/.lock  .status.json
//! BACKUP_DIR/web01/.history.jsonl  .history.1.jsonl                (one line per run: history)
//! BACKUP_DIR/checkpoints.json                                    (checkpoints_file)
//! BACKUP_DIR/.engine-slots/backup-<key>/slot-0.lock ...          (the engines' slots: `slots`)
//! ```
//!
//! **Folders.** A VM's folder is named by [`folder_name`], an injective encoding of its name:
//! the name itself, with `%`, `/`, control characters and a leading `.` percent-encoded, so
//! that `web01`, `db 01` and `é-x` keep their plain names and no two VMs share a folder
//! (`.x` is `%2Ex`, `_.x` stays `_.x`). The folder records whose it is in `.vm.json`, written
//! crash-safely when the folder is made; [`Catalog::open`] refuses a folder recorded as another
//! VM's, and adopts one without the record (a catalog of an earlier `ovrun`) unless one of its
//! manifests names another VM. `ovrun` refuses an empty or unsafe VM name
//! ([`crate::plan::names::unsafe_vm_name`], as `ovplan` does) before it touches the disk.
//!
//! **Names.** Every file of a point is named from its point id, its kind and its disk
//! (`{point}.{kind}.{disk}.qcow2`, `.sums` beside it, `{point}.{kind}.manifest.json`);
//! [`misnamed`] checks a manifest against that scheme. A manifest naming any other file (a
//! `../x`, a `/x`, another point's file) is damage: such a point is left out of
//! [`Catalog::points`] (so no backup builds on it, and `prune` deletes nothing it names), and
//! `ovrun verify` reports it.
//!
//! **No links.** The folder is opened beneath the backup directory without following a link
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), and every file in it is opened,
//! written, renamed or removed through the folder's descriptor, by its single name, never
//! following a link ([`crate::fsutil::Folder`]). A link anywhere in the catalog is refused with
//! an error naming it; nothing is read, written or removed through it. `qemu-img` and
//! `qemu-nbd` get images as `/proc/<pid>/fd/<folder>/<name>`, after the image files were
//! created by `ovrun` itself (`O_EXCL`) and every image of the folder was seen to be a regular
//! file; relative backing file names resolve in the same folder.
//!
//! **Modes.** Files are `0600` and folders `0700`, whatever the umask: VM disks are readable
//! only by the backup user. A folder adopted from an earlier `ovrun` has group and other
//! permissions taken off it and its catalog files.
//!
//! **Locking.** One `ovrun` works on a VM's folder at a time: an advisory lock on its `.lock`.
//!
//! **Recovery.** A point is its manifest, written last (temporary file, fsync, rename, fsync of
//! the folder). Files of the naming scheme whose point has no manifest, and temporary files
//! (`.tmp-*`), are leftovers of a run that did not finish: the next backup removes them, and
//! `ovrun verify` lists them as warnings. Any other file (a foreign file, a dotfile, a link, a
//! folder) is never removed; `ovrun verify` lists it. Retention removes a point's manifest
//! first, then its files, so a crash in between leaves only leftovers.
//!
//! **Rooms.** This file: the folder, its lock, its files and the run status. `naming`: the
//! names; `manifest`: a point's record; `scan`: the folder sorted, and leftovers removed;
//! `prune`: retention carried out; `history`: the run history; `checkpoints`: the
//! predecessor's checkpoints file; `slots`: the engines' slots, which limit the jobs on an
//! engine; `error`: [`CatalogError`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::fsutil::{EntryKind, Folder};

mod checkpoints;
mod error;
mod history;
mod manifest;
mod naming;
mod open_transfers;
mod prune;
mod scan;
mod slots;
mod vm_config;

pub use checkpoints::record_checkpoint;
pub use error::CatalogError;
use error::{io, io_at};
pub use history::{
    HISTORY_FILE, HISTORY_LIMIT, HISTORY_OLD_FILE, History, HistoryEntry, HistorySummary,
    RUNNING_FILE, RecentRun, Rule, RunKind, RunResult, summarize,
};
pub use manifest::{ContentSum, DiskEntry, MANIFEST_FORMAT, Manifest, MethodRecord};
pub use naming::{SchemeName, folder_name, misnamed, point_id, safe_name};
pub use scan::Scan;
pub use slots::{EngineSlots, SLOTS_DIR, Slot, SlotKind, slot_key};
pub use vm_config::{
    AttachmentConfig, CpuTopology, HighAvailability, MemoryConfig, NicConfig, VmConfig,
};

/// The file in a VM's folder that records how its last runs went.
pub const STATUS_FILE: &str = ".status.json";

/// How the VM's last runs went (for `ovrun status` and monitoring).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    /// When the last run started.
    pub last_attempt: Option<DateTime<Utc>>,
    /// When the last successful run started.
    pub last_success: Option<DateTime<Utc>>,
    /// The point it made.
    pub last_success_point: Option<String>,
    /// When the last failed run started.
    pub last_failure: Option<DateTime<Utc>>,
    /// Why it failed.
    pub last_error: Option<String>,
}

/// The VM's lock file in its folder.
pub const LOCK_FILE: &str = ".lock";

/// The file in a VM's folder that records whose folder it is.
pub const OWNER_FILE: &str = ".vm.json";

/// The file in a VM's folder that lists what a restore in progress made in DR (see
/// `run::restore`): present only while a restore runs, or after one was killed.
pub const JOURNAL_FILE: &str = ".restore-journal.json";

pub use open_transfers::TRANSFERS_FILE;

/// The catalog's own dotfiles (neither leftovers nor foreign).
const OWN_DOTFILES: [&str; 8] = [
    LOCK_FILE,
    STATUS_FILE,
    OWNER_FILE,
    JOURNAL_FILE,
    TRANSFERS_FILE,
    HISTORY_FILE,
    HISTORY_OLD_FILE,
    RUNNING_FILE,
];

/// What [`OWNER_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    vm: String,
}

/// A VM's folder in the backup directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    vm: String,
    folder: Folder,
}

/// The VM's lock; released on drop.
#[derive(Debug)]
pub struct VmLock {
    _file: std::fs::File,
}

impl Catalog {
    /// The folder of `vm` under `backup_dir` (see the module doc): made `0700` if missing,
    /// opened without following a link, and checked to be this VM's.
    ///
    /// # Errors
    /// An unsafe VM name (before anything is touched), a folder that is a link or another
    /// VM's, or one that cannot be made or read.
    pub fn open(backup_dir: &Path, vm: &str) -> Result<Self, CatalogError> {
        if let Some(why) = crate::plan::names::unsafe_vm_name(vm) {
            return Err(CatalogError::UnsafeVm {
                vm: vm.to_owned(),
                why,
            });
        }
        if !backup_dir.is_dir() {
            // fs-err has no DirBuilder; the error names the path through `io`.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(backup_dir)
                .map_err(io(format!("creating {}", backup_dir.display())))?;
        }
        let name = folder_name(vm);
        let folder =
            Folder::open_in(backup_dir, &name).map_err(io_at("opening", backup_dir.join(&name)))?;
        let catalog = Self {
            vm: vm.to_owned(),
            folder,
        };
        catalog.claim()?;
        Ok(catalog)
    }

    /// Checks the folder's owner record, or writes it for a folder without one (new, or of an
    /// earlier `ovrun`) after checking that no manifest in it names another VM.
    fn claim(&self) -> Result<(), CatalogError> {
        let owner = match self.folder.read(OWNER_FILE) {
            Ok(bytes) => {
                serde_json::from_slice::<Owner>(&bytes)
                    .map_err(|e| CatalogError::Manifest {
                        path: self.path(OWNER_FILE),
                        why: format!(
                            "not the folder's owner record ({e}); remove it to adopt the folder"
                        ),
                    })?
                    .vm
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let owner = self.manifest_owner()?;
                if owner.is_none() {
                    self.restrict_files()?;
                    let record = serde_json::to_vec(&Owner {
                        vm: self.vm.clone(),
                    })
                    .expect("an owner record serializes");
                    self.folder
                        .write_atomic(OWNER_FILE, &record)
                        .map_err(io_at("writing", self.path(OWNER_FILE)))?;
                }
                owner.unwrap_or_else(|| self.vm.clone())
            }
            Err(e) => return Err(io_at("reading", self.path(OWNER_FILE))(e)),
        };
        if owner == self.vm {
            return Ok(());
        }
        Err(CatalogError::Foreign {
            folder: self.folder.path().to_owned(),
            vm: self.vm.clone(),
            owner,
        })
    }

    /// Takes group and other permissions off the catalog's files in a folder it adopts (an
    /// earlier `ovrun` left them as the umask made them: VM disks readable by all under cron's
    /// 022).
    fn restrict_files(&self) -> Result<(), CatalogError> {
        let entries = self
            .folder
            .entries()
            .map_err(io(format!("reading {}", self.dir().display())))?;
        for (name, kind) in entries {
            let ours = SchemeName::parse(&name).is_some() || OWN_DOTFILES.contains(&name.as_str());
            if ours && kind == EntryKind::File {
                self.folder
                    .restrict(&name)
                    .map_err(io_at("restricting", self.path(&name)))?;
            }
        }
        Ok(())
    }

    /// Another VM a manifest in the folder names, if any.
    fn manifest_owner(&self) -> Result<Option<String>, CatalogError> {
        Ok(self
            .scan()?
            .points
            .into_iter()
            .map(|m| m.vm)
            .find(|vm| *vm != self.vm))
    }

    /// The VM's name.
    pub fn vm(&self) -> &str {
        &self.vm
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        self.folder.path()
    }

    /// Takes the VM's lock, waiting up to `wait` for another `ovrun` to release it.
    ///
    /// # Errors
    /// Still held after `wait`, or the lock file cannot be opened (a link there is refused).
    pub fn lock(&self, wait: Duration) -> Result<VmLock, CatalogError> {
        let path = self.path(LOCK_FILE);
        let file = self
            .folder
            .open_or_create(LOCK_FILE)
            .map_err(io_at("opening", path.clone()))?;
        let started = Instant::now();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(VmLock { _file: file }),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && started.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    return Err(CatalogError::Busy {
                        vm: self.vm.clone(),
                        lock: path,
                        waited: wait,
                    });
                }
                Err(e) => return Err(io(format!("locking {}", path.display()))(e.into())),
            }
        }
    }

    /// Removes the file `name` (a link is removed itself, never followed); an absent file is
    /// no error.
    ///
    /// # Errors
    /// It cannot be removed.
    pub fn remove(&self, name: &str) -> Result<(), CatalogError> {
        match self.folder.remove(name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("removing {}", self.path(name).display()))(e))
            }
            _ => Ok(()),
        }
    }

    fn sync(&self) -> Result<(), CatalogError> {
        self.folder
            .sync()
            .map_err(io(format!("syncing {}", self.dir().display())))
    }

    /// How the last runs went (default when never recorded or unreadable).
    pub fn run_status(&self) -> RunStatus {
        self.folder
            .read(STATUS_FILE)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Records a run that started at `at`: the point it made, or why it failed.
    ///
    /// # Errors
    /// The status file cannot be written.
    pub fn record_run(
        &self,
        at: DateTime<Utc>,
        result: Result<&str, &str>,
    ) -> Result<(), CatalogError> {
        let mut status = self.run_status();
        status.last_attempt = Some(at);
        match result {
            Ok(point) => {
                status.last_success = Some(at);
                status.last_success_point = Some(point.to_owned());
            }
            Err(why) => {
                status.last_failure = Some(at);
                status.last_error = Some(why.to_owned());
            }
        }
        let text = serde_json::to_string_pretty(&status).expect("a status serializes");
        self.write_file(STATUS_FILE, text.as_bytes())
    }

    /// The path of a file in the folder, for messages (files are reached through the folder's
    /// descriptor, and tools through [`Catalog::qemu_path`]).
    pub fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// Writes the file `name` atomically and durably, `0600`, replacing (never following) a
    /// link there.
    ///
    /// # Errors
    /// The write fails.
    pub fn write_file(&self, name: &str, content: &[u8]) -> Result<(), CatalogError> {
        self.folder
            .write_atomic(name, content)
            .map_err(io_at("writing", self.path(name)))
    }

    /// Opens the file `name` for reading: a regular file, not through a link.
    ///
    /// # Errors
    /// It is missing, a link, or cannot be read.
    pub fn open_file(&self, name: &str) -> Result<std::fs::File, CatalogError> {
        self.folder
            .open(name)
            .map_err(io_at("opening", self.path(name)))
    }

    /// Whether `name` is in the folder (a link counts, and is not followed).
    pub fn exists(&self, name: &str) -> bool {
        self.folder.exists(name)
    }

    /// The path under which `qemu-img` and `qemu-nbd` open image `name` and its backing chain:
    /// through the folder's descriptor, once `name` and every other image in the folder were
    /// seen to be regular files (so no chain can lead through a link).
    ///
    /// # Errors
    /// `name` or another image of the folder is a link or no regular file.
    pub fn qemu_path(&self, name: &str) -> Result<PathBuf, CatalogError> {
        let entries = self
            .folder
            .entries()
            .map_err(io(format!("reading {}", self.dir().display())))?;
        let unsafe_image = entries.iter().find(|(entry, kind)| {
            *kind != EntryKind::File && (entry == name || entry.ends_with(".qcow2"))
        });
        if let Some((entry, _)) = unsafe_image {
            return Err(CatalogError::Link {
                path: self.path(entry),
            });
        }
        if !entries.iter().any(|(entry, _)| entry == name) {
            return Err(io(format!("opening {}", self.path(name).display()))(
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        Ok(self.folder.proc_path(name))
    }

    /// Creates image file `name` (it must not exist: `O_EXCL`, not through a link), empty and
    /// `0600`, for `qemu-img create` to fill; its [`Catalog::qemu_path`].
    ///
    /// # Errors
    /// It exists, or cannot be made.
    pub fn create_image(&self, name: &str) -> Result<PathBuf, CatalogError> {
        self.folder
            .create_new(name)
            .map_err(io_at("creating", self.path(name)))?;
        self.qemu_path(name)
    }

    /// The size of file `name` (not through a link).
    ///
    /// # Errors
    /// It cannot be opened.
    pub fn file_size(&self, name: &str) -> Result<u64, CatalogError> {
        let file = self.open_file(name)?;
        file.metadata().map(|m| m.len()).map_err(io(format!(
            "reading the size of {}",
            self.path(name).display()
        )))
    }

    /// A point's recorded block digests of `disk` for a disk of `size` bytes; `None` when it
    /// has none (a point of an older `ovrun`), they cannot be read, do not fit the size, or do
    /// not give the manifest's checksum (damaged).
    pub fn block_sums(
        &self,
        disk: &DiskEntry,
        size: u64,
    ) -> Option<crate::run::blocksum::BlockSums> {
        let content = disk.content.as_ref()?;
        let bytes = self.folder.read(&content.blocks).ok()?;
        crate::run::blocksum::BlockSums::from_bytes(size, &bytes)
            .filter(|sums| sums.checksum() == content.checksum)
    }

    /// Writes a point's manifest durably (temp, fsync, rename, fsync folder): from then on the
    /// point exists.
    ///
    /// # Errors
    /// The write fails.
    pub fn commit(&self, manifest: &Manifest) -> Result<(), CatalogError> {
        let text = serde_json::to_string_pretty(manifest).expect("a manifest serializes");
        self.write_file(&manifest.file_name(), text.as_bytes())
    }
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "the tests set up and inspect files directly"
)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused_before_the_disk_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for vm in ["", " ", ".", "..", "a/b", "a\nb"] {
            assert!(
                matches!(
                    Catalog::open(dir.path(), vm),
                    Err(CatalogError::UnsafeVm { .. })
                ),
                "{vm:?}"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_adopted_folder_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("web01");
        std::fs::create_dir(&folder).unwrap();
        let image = folder.join("20261129T020000Z.full.os.qcow2");
        let foreign = folder.join("notes.txt");
        for file in [&folder, &image, &foreign] {
            if file != &folder {
                std::fs::write(file, b"x").unwrap();
            }
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Catalog::open(dir.path(), "web01").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&image), 0o700, "group and other bits taken off");
        assert_eq!(mode(&foreign), 0o755, "not the catalog's: untouched");
        assert_eq!(mode(&folder.join(OWNER_FILE)), 0o600);
    }

    #[test]
    fn a_folder_is_its_vms_alone() {
        let dir = tempfile::tempdir().unwrap();
        Catalog::open(dir.path(), "web01").unwrap();
        std::fs::rename(dir.path().join("web01"), dir.path().join("db01")).unwrap();
        let err = Catalog::open(dir.path(), "db01").unwrap_err();
        assert!(
            err.to_string()
                .contains("belongs to VM \"web01\", not to \"db01\""),
            "{err}"
        );
        // A folder of an earlier ovrun (no record) is adopted unless a manifest names another.
        std::fs::remove_file(dir.path().join("db01").join(OWNER_FILE)).unwrap();
        let adopted = Catalog::open(dir.path(), "db01").unwrap();
        adopted
            .commit(&point("20260101T000000Z", "full", None, 1))
            .unwrap();
        std::fs::remove_file(dir.path().join("db01").join(OWNER_FILE)).unwrap();
        std::fs::rename(dir.path().join("db01"), dir.path().join("web01")).unwrap();
        assert!(matches!(
            Catalog::open(dir.path(), "web01"),
            Err(CatalogError::Foreign { .. })
        ));
    }

    pub(super) fn point(id: &str, kind: &str, parent: Option<&str>, days_ago: i64) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            vm: "db".into(),
            vm_id: "1".into(),
            point: id.into(),
            kind: kind.into(),
            reason: String::new(),
            taken_at: Utc::now() - chrono::Duration::days(days_ago),
            parent: parent.map(str::to_owned),
            backup_id: "b".into(),
            from_checkpoint: None,
            checkpoint: None,
            memory: None,
            method: None,
            config: None,
            disks: vec![DiskEntry {
                id: "d".into(),
                alias: "os".into(),
                interface: "virtio_scsi".into(),
                bootable: true,
                provisioned_size: 1,
                mode: kind.into(),
                file: format!("{id}.{kind}.os.qcow2"),
                backing: None,
                bytes_transferred: 0,
                file_size: 1,
                sha256: None,
                content: None,
            }],
        }
    }
}
