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
//! BACKUP_DIR/checkpoints.json                                    (checkpoints_file)
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::fsutil::{EntryKind, Folder, is_symlink_error};

mod naming;

pub use naming::{SchemeName, folder_name, misnamed, point_id, safe_name};

/// The manifest format this `ovrun` writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// What can go wrong in the backup directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another `ovrun` holds the VM.
    #[error(
        "another ovrun is working on {vm} (lock {lock}); waited {waited:?}: let it finish, or stop it"
    )]
    Busy {
        /// The VM.
        vm: String,
        /// The lock file.
        lock: PathBuf,
        /// How long this one waited.
        waited: Duration,
    },
    /// A manifest that cannot be read.
    #[error("{path}: not a manifest: {why}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A VM name that cannot name a folder.
    #[error(
        "VM name {vm:?} cannot name a backup folder: {why}; give the runner config's `vm` the \
         VM's name as the engine shows it (ovplan build writes it so)"
    )]
    UnsafeVm {
        /// The name.
        vm: String,
        /// Why not.
        why: &'static str,
    },
    /// The VM's folder is another VM's.
    #[error(
        "{folder} belongs to VM {owner:?}, not to {vm:?}: two VMs cannot share a folder; move \
         the folder away, or correct the runner config's `vm`"
    )]
    Foreign {
        /// The folder.
        folder: PathBuf,
        /// The VM this run is for.
        vm: String,
        /// The VM it belongs to.
        owner: String,
    },
    /// A symbolic link (or no regular file) where the catalog holds its own files.
    #[error(
        "{path} is a symbolic link, or not the kind of entry the catalog keeps there (a regular \
         file; a folder for a VM): ovrun never follows links in the backup directory; remove \
         it (and find out who put it there)"
    )]
    Link {
        /// The link.
        path: PathBuf,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CatalogError {
    let what = what.into();
    move |source| CatalogError::Io { what, source }
}

/// [`io`], but a link met is [`CatalogError::Link`].
fn io_at(what: impl Into<String>, path: PathBuf) -> impl FnOnce(std::io::Error) -> CatalogError {
    let what = what.into();
    move |source| {
        if is_symlink_error(&source) || source.kind() == std::io::ErrorKind::NotADirectory {
            CatalogError::Link { path }
        } else {
            CatalogError::Io {
                what: format!("{what} {}", path.display()),
                source,
            }
        }
    }
}
/// A point's record, written last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The VM's name.
    pub vm: String,
    /// The VM's id on the source engine.
    pub vm_id: String,
    /// The point's id (its UTC time, `20261129T020000Z`).
    pub point: String,
    /// `full` or `incremental`.
    pub kind: String,
    /// Why this kind (policy.md section 3).
    pub reason: String,
    /// When the backup started.
    pub taken_at: DateTime<Utc>,
    /// The point this one builds on (`None` for a full).
    pub parent: Option<String>,
    /// The engine's backup id.
    pub backup_id: String,
    /// The checkpoint this backup started from.
    pub from_checkpoint: Option<String>,
    /// The checkpoint it created (the next incremental starts there).
    pub checkpoint: Option<String>,
    /// The VM's memory in bytes when the backup started (a restore gives the new VM as much).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// The disks.
    pub disks: Vec<DiskEntry>,
}

/// One disk of a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskEntry {
    /// The disk's id.
    pub id: String,
    /// Its alias.
    pub alias: String,
    /// `virtio_scsi`, `virtio`, ...
    pub interface: String,
    /// The boot disk.
    pub bootable: bool,
    /// Virtual size in bytes.
    pub provisioned_size: u64,
    /// `full` or `incremental` (an incremental point may hold a full disk).
    pub mode: String,
    /// The image's file name in the VM's folder.
    pub file: String,
    /// Its backing file's name (an incremental disk), in the same folder.
    pub backing: Option<String>,
    /// Bytes read from the engine for it.
    pub bytes_transferred: u64,
    /// The file's size.
    pub file_size: u64,
    /// SHA-256 of the file (points taken before content checksums; none since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The checksum of the disk's content at this point, as imageio's checksum API gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentSum>,
}

/// A disk's content checksum ([`crate::run::blocksum`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSum {
    /// `sha256`.
    pub algorithm: String,
    /// Bytes per block.
    pub block_size: u64,
    /// The checksum, lowercase hex.
    pub checksum: String,
    /// The file of per-block digests, in the VM's folder.
    pub blocks: String,
}

impl DiskEntry {
    /// The point's files for this disk: the image and its block digests.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.file.as_str()).chain(self.content.as_ref().map(|c| c.blocks.as_str()))
    }
}

impl Manifest {
    /// Whether it is a full point.
    pub fn is_full(&self) -> bool {
        self.kind == "full"
    }

    /// The manifest's file name.
    pub fn file_name(&self) -> String {
        format!("{}.{}.manifest.json", self.point, self.kind)
    }
}

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

/// The catalog's own dotfiles (neither leftovers nor foreign).
const OWN_DOTFILES: [&str; 4] = [LOCK_FILE, STATUS_FILE, OWNER_FILE, JOURNAL_FILE];

/// What [`OWNER_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    vm: String,
}

/// What a VM's folder holds, sorted by kind (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The complete points, oldest first.
    pub points: Vec<Manifest>,
    /// Manifests that name files outside the scheme: file name, and how.
    pub misnamed: Vec<(String, Vec<String>)>,
    /// Files of the scheme whose point has no manifest, and temporary files: the next backup
    /// removes them.
    pub leftovers: Vec<String>,
    /// Entries of the scheme that are no regular files (links, folders): never followed.
    pub unsafe_entries: Vec<String>,
    /// Everything else: not the catalog's, never read or removed.
    pub foreign: Vec<String>,
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

    /// Sorts the folder's entries (see [`Scan`]).
    ///
    /// # Errors
    /// The folder or a manifest cannot be read.
    pub fn scan(&self) -> Result<Scan, CatalogError> {
        let entries = self
            .folder
            .entries()
            .map_err(io(format!("reading {}", self.dir().display())))?;
        let with_manifest: BTreeSet<&str> = entries
            .iter()
            .filter_map(|(name, _)| SchemeName::parse(name))
            .filter(|n| n.disk.is_none())
            .map(|n| n.point)
            .collect();
        let mut scan = Scan::default();
        for (name, kind) in &entries {
            let scheme = SchemeName::parse(name);
            match (scheme, kind) {
                (Some(n), EntryKind::File) if n.disk.is_none() => {
                    self.read_point(name, &mut scan)?
                }
                (Some(n), EntryKind::File) if !with_manifest.contains(n.point) => {
                    scan.leftovers.push(name.clone());
                }
                (Some(_), EntryKind::File) => {}
                (Some(_), _) => scan.unsafe_entries.push(name.clone()),
                (None, EntryKind::File) if name.starts_with(".tmp-") => {
                    scan.leftovers.push(name.clone());
                }
                (None, EntryKind::File) if OWN_DOTFILES.contains(&name.as_str()) => {}
                (None, _) if OWN_DOTFILES.contains(&name.as_str()) => {
                    scan.unsafe_entries.push(name.clone());
                }
                (None, _) => scan.foreign.push(name.clone()),
            }
        }
        scan.points.sort_by(|a, b| a.point.cmp(&b.point));
        Ok(scan)
    }

    /// Reads the manifest `name` into the scan: a point, or misnamed.
    fn read_point(&self, name: &str, scan: &mut Scan) -> Result<(), CatalogError> {
        let path = self.path(name);
        let bytes = self
            .folder
            .read(name)
            .map_err(io_at("reading the manifest", path.clone()))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| CatalogError::Manifest {
                path,
                why: e.to_string(),
            })?;
        let mut wrong = misnamed(&manifest);
        if wrong.is_empty() && manifest.file_name() != name {
            wrong.push(format!(
                "the manifest is of point {} ({}), not of its file's name",
                manifest.point, manifest.kind
            ));
        }
        if wrong.is_empty() {
            scan.points.push(manifest);
        } else {
            scan.misnamed.push((name.to_owned(), wrong));
        }
        Ok(())
    }

    /// The complete points, oldest first (a misnamed manifest's point is not one: see
    /// [`misnamed`]; `ovrun verify` reports it).
    ///
    /// # Errors
    /// The folder or a manifest cannot be read.
    pub fn points(&self) -> Result<Vec<Manifest>, CatalogError> {
        let scan = self.scan()?;
        for (name, why) in &scan.misnamed {
            tracing::warn!(
                "{}: ignored, it names files outside the catalog's scheme ({}); run ovrun verify",
                self.path(name).display(),
                why.join("; ")
            );
        }
        Ok(scan.points)
    }

    /// Files of the scheme that belong to no complete point (a run that died before its
    /// manifest), and temporary files of interrupted writes.
    ///
    /// # Errors
    /// The folder cannot be read.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, CatalogError> {
        Ok(self
            .scan()?
            .leftovers
            .iter()
            .map(|name| self.path(name))
            .collect())
    }

    /// Removes the leftovers (regular files of the scheme only; see the module doc); the paths
    /// removed.
    ///
    /// # Errors
    /// One cannot be removed.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>, CatalogError> {
        let leftovers = self.scan()?.leftovers;
        for name in &leftovers {
            self.remove(name)?;
        }
        if !leftovers.is_empty() {
            self.sync()?;
        }
        Ok(leftovers.iter().map(|name| self.path(name)).collect())
    }

    /// Removes the leftover files of point `point` (a run that failed before its manifest).
    pub fn remove_point_files(&self, point: &str) {
        let Ok(scan) = self.scan() else { return };
        for name in scan.leftovers {
            if SchemeName::parse(&name).is_some_and(|n| n.point == point) {
                let _ = self.remove(&name);
            }
        }
        let _ = self.sync();
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

    /// The chain of `point`: its full first, `point` last.
    pub fn chain<'a>(points: &'a [Manifest], point: &str) -> Vec<&'a Manifest> {
        let by_id: BTreeMap<&str, &Manifest> =
            points.iter().map(|p| (p.point.as_str(), p)).collect();
        let mut chain = Vec::new();
        let mut at = by_id.get(point).copied();
        while let Some(manifest) = at {
            chain.push(manifest);
            at = manifest
                .parent
                .as_deref()
                .and_then(|p| by_id.get(p).copied());
        }
        chain.reverse();
        chain
    }
}

impl Catalog {
    /// Applies retention (policy.md section 4): plans with [`crate::plan::retention::plan`],
    /// then, unless `dry_run`, deletes the points it marks, newest first (a child before its
    /// parent), each manifest before its files: a crash leaves only leftovers, never a point
    /// whose parent is gone. Only the names derived from a point are removed (a misnamed
    /// manifest is no point: see [`Catalog::points`]).
    ///
    /// # Errors
    /// The catalog cannot be read or a file cannot be removed.
    pub fn prune(
        &self,
        retention: &crate::plan::runner::Retention,
        zone: chrono_tz::Tz,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<crate::plan::retention::Verdict, CatalogError> {
        let points = self.points()?;
        let planned: Vec<crate::plan::retention::Point> = points
            .iter()
            .map(|m| crate::plan::retention::Point {
                id: m.point.clone(),
                taken_at: m.taken_at,
                parent: m.parent.clone(),
            })
            .collect();
        let verdict = crate::plan::retention::plan(&planned, retention, zone, now);
        if dry_run {
            return Ok(verdict);
        }
        for id in &verdict.delete {
            let Some(manifest) = points.iter().find(|m| &m.point == id) else {
                continue;
            };
            self.remove(&manifest.file_name())?;
            self.sync()?;
            for file in manifest.disks.iter().flat_map(DiskEntry::files) {
                if SchemeName::parse(file).is_some_and(|n| n.point == manifest.point) {
                    self.remove(file)?;
                }
            }
        }
        if !verdict.delete.is_empty() {
            self.sync()?;
        }
        Ok(verdict)
    }
}

/// The predecessor's `checkpoints_file`: per VM, the checkpoint the next incremental starts
/// from. Updated under a lock (several VMs' runs share it), durably, `0600`; neither the file
/// nor its lock is opened through a link (a link there is refused).
///
/// # Errors
/// The file cannot be read, locked or written, or it or its lock is a link.
pub fn record_checkpoint(
    path: &Path,
    vm: &str,
    checkpoint: Option<&str>,
    point: &str,
) -> Result<(), CatalogError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(io("creating the checkpoints file's folder"))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(io_at("opening", lock_path.clone()))?
        .into_parts()
        .0;
    flock(&lock, FlockOperation::LockExclusive)
        .map_err(|e| io(format!("locking {}", lock_path.display()))(e.into()))?;
    let mut all = read_checkpoints(path)?;
    all.insert(
        vm.to_owned(),
        serde_json::json!({
            "checkpoint_id": checkpoint,
            "point": point,
            "updated_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    );
    let text = serde_json::to_string_pretty(&all).expect("a JSON map serializes");
    crate::fsutil::write_atomic(path, text.as_bytes()).map_err(io("writing the checkpoints file"))
}

/// The checkpoints file's entries (none when it is missing or not a JSON object).
fn read_checkpoints(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, CatalogError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let opened = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(serde_json::Map::new()),
        Err(e) => return Err(io_at("opening", path.to_owned())(e)),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(CatalogError::Link {
            path: path.to_owned(),
        });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(io(format!("reading {}", path.display())))?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
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

    #[test]
    fn leftovers_are_files_of_points_without_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web 01").unwrap();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            vm: "web 01".into(),
            vm_id: "1".into(),
            point: "20261129T020000Z".into(),
            kind: "full".into(),
            reason: "no chain".into(),
            taken_at: Utc::now(),
            parent: None,
            backup_id: "b".into(),
            from_checkpoint: None,
            checkpoint: Some("c".into()),
            memory: None,
            disks: Vec::new(),
        };
        std::fs::write(catalog.path("20261129T020000Z.full.os.qcow2"), b"x").unwrap();
        catalog.commit(&manifest).unwrap();
        std::fs::write(catalog.path("20261130T020000Z.incremental.os.qcow2"), b"y").unwrap();
        std::fs::write(catalog.path("notes.txt"), b"mine").unwrap();
        std::fs::write(catalog.path(".hidden"), b"mine").unwrap();
        let link = "20261130T020000Z.incremental.data.qcow2";
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), catalog.path(link)).unwrap();
        let _lock = catalog.lock(Duration::ZERO).unwrap();
        assert_eq!(
            catalog.leftovers().unwrap(),
            vec![catalog.path("20261130T020000Z.incremental.os.qcow2")]
        );
        assert!(matches!(
            catalog.lock(Duration::ZERO),
            Err(CatalogError::Busy { .. })
        ));
        catalog.remove_leftovers().unwrap();
        assert_eq!(catalog.points().unwrap(), vec![manifest]);
        let scan = catalog.scan().unwrap();
        assert!(scan.leftovers.is_empty());
        assert_eq!(scan.foreign, [".hidden", "notes.txt"], "never removed");
        assert_eq!(scan.unsafe_entries, [link], "a link is never removed");
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

    #[test]
    fn prune_deletes_what_retention_marks_manifest_first_and_keeps_chains() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "db").unwrap();
        let points = [
            point("20260101T000000Z", "full", None, 60),
            point(
                "20260102T000000Z",
                "incremental",
                Some("20260101T000000Z"),
                59,
            ),
            point("20261101T000000Z", "full", None, 2),
            point(
                "20261102T000000Z",
                "incremental",
                Some("20261101T000000Z"),
                1,
            ),
        ];
        for p in &points {
            std::fs::write(catalog.path(&p.disks[0].file), b"x").unwrap();
            catalog.commit(p).unwrap();
        }
        let retention = crate::plan::runner::Retention {
            keep_daily: 1,
            keep_weekly: 0,
            keep_monthly: 0,
            max_backup_age_days: 30,
        };
        let dry = catalog
            .prune(&retention, chrono_tz::UTC, Utc::now(), true)
            .unwrap();
        assert_eq!(dry.delete, ["20260102T000000Z", "20260101T000000Z"]);
        assert_eq!(
            catalog.points().unwrap().len(),
            4,
            "a dry run deletes nothing"
        );
        catalog
            .prune(&retention, chrono_tz::UTC, Utc::now(), false)
            .unwrap();
        let left: Vec<String> = catalog
            .points()
            .unwrap()
            .into_iter()
            .map(|p| p.point)
            .collect();
        assert_eq!(
            left,
            ["20261101T000000Z", "20261102T000000Z"],
            "the kept chain is whole"
        );
        assert!(
            catalog.leftovers().unwrap().is_empty(),
            "the pruned files went too"
        );
    }
}
