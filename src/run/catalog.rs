//! The backup directory, as the predecessor laid it out and operators expect it: one folder per
//! VM, holding each point's disk images and, written last and durably, its manifest:
//!
//! ```text
//! BACKUP_DIR/web01/20261129T020000Z.full.web01_os.qcow2
//! BACKUP_DIR/web01/20261129T020000Z.full.manifest.json
//! BACKUP_DIR/web01/20261130T020000Z.incremental.web01_os.qcow2   (backing: the file above)
//! BACKUP_DIR/web01/20261130T020000Z.incremental.manifest.json
//! BACKUP_DIR/checkpoints.json                                    (checkpoints_file)
//! ```
//!
//! File names sort by time and say the kind and the disk. A point is its manifest: files of a
//! point without one are leftovers of a run that did not finish, removed by the next run. One
//! `ovrun` works on a VM's folder at a time (an advisory lock on `.lock` in it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

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
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CatalogError {
    let what = what.into();
    move |source| CatalogError::Io { what, source }
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

/// The point id for a backup started at `at`.
pub fn point_id(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A disk alias as a file-name part: letters, digits, `-`, `_` and unicode letters kept, the
/// rest `_`.
pub fn safe_name(alias: &str) -> String {
    let name: String = alias
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() { "disk".into() } else { name }
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

/// A VM's folder in the backup directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    vm: String,
    dir: PathBuf,
}

/// The VM's lock; released on drop.
#[derive(Debug)]
pub struct VmLock {
    _file: std::fs::File,
}

impl Catalog {
    /// The folder of `vm` under `backup_dir` (made if missing). The VM's name is the folder's
    /// name, with `/` replaced (names may hold spaces and any letters).
    ///
    /// # Errors
    /// The folder cannot be made.
    pub fn open(backup_dir: &Path, vm: &str) -> Result<Self, CatalogError> {
        let folder = vm.replace('/', "_");
        let folder = if folder.starts_with('.') {
            format!("_{folder}")
        } else {
            folder
        };
        let dir = backup_dir.join(folder);
        fs_err::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(Self {
            vm: vm.to_owned(),
            dir,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the VM's lock, waiting up to `wait` for another `ovrun` to release it.
    ///
    /// # Errors
    /// Still held after `wait`, or the lock file cannot be opened.
    pub fn lock(&self, wait: Duration) -> Result<VmLock, CatalogError> {
        let path = self.dir.join(".lock");
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?
            .into_parts()
            .0;
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

    fn entries(&self) -> Result<Vec<String>, CatalogError> {
        let mut names = Vec::new();
        for entry in
            fs_err::read_dir(&self.dir).map_err(io(format!("reading {}", self.dir.display())))?
        {
            let entry = entry.map_err(io("reading the VM folder"))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The complete points, oldest first.
    ///
    /// # Errors
    /// The folder or a manifest cannot be read.
    pub fn points(&self) -> Result<Vec<Manifest>, CatalogError> {
        let mut points = Vec::new();
        for name in self.entries()? {
            if name.starts_with('.') || !name.ends_with(".manifest.json") {
                continue;
            }
            let path = self.dir.join(&name);
            let text = fs_err::read_to_string(&path).map_err(io("reading a manifest"))?;
            let manifest: Manifest =
                serde_json::from_str(&text).map_err(|e| CatalogError::Manifest {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            points.push(manifest);
        }
        points.sort_by(|a, b| a.point.cmp(&b.point));
        Ok(points)
    }

    /// Files that belong to no complete point (a run that died before its manifest), and
    /// temporary files of interrupted writes.
    ///
    /// # Errors
    /// The folder cannot be read.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, CatalogError> {
        let complete: Vec<String> = self.points()?.into_iter().map(|p| p.point).collect();
        Ok(self
            .entries()?
            .into_iter()
            .filter(|name| {
                name != ".lock" && name != STATUS_FILE && name != super::restore::JOURNAL
            })
            .filter(|name| {
                name.starts_with(".tmp-")
                    || !complete.iter().any(|p| name.starts_with(&format!("{p}.")))
            })
            .map(|name| self.dir.join(name))
            .collect())
    }

    /// Removes the leftovers; the paths removed.
    ///
    /// # Errors
    /// One cannot be removed.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>, CatalogError> {
        let leftovers = self.leftovers()?;
        for path in &leftovers {
            fs_err::remove_file(path).map_err(io("removing a leftover"))?;
        }
        if !leftovers.is_empty() {
            crate::fsutil::sync_dir(&self.dir).map_err(io("syncing the VM folder"))?;
        }
        Ok(leftovers)
    }

    /// How the last runs went (default when never recorded or unreadable).
    pub fn run_status(&self) -> RunStatus {
        fs_err::read_to_string(self.dir.join(STATUS_FILE))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
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
        crate::fsutil::write_atomic(&self.dir.join(STATUS_FILE), text.as_bytes())
            .map_err(io("writing the run status"))
    }

    /// The path of a file in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
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
        let bytes = fs_err::read(self.path(&content.blocks)).ok()?;
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
        crate::fsutil::write_atomic(&self.path(&manifest.file_name()), text.as_bytes())
            .map_err(io("writing the manifest"))
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
    /// whose parent is gone.
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
            fs_err::remove_file(self.path(&manifest.file_name()))
                .map_err(io("removing a manifest"))?;
            crate::fsutil::sync_dir(&self.dir).map_err(io("syncing the VM folder"))?;
            for file in manifest.disks.iter().flat_map(DiskEntry::files) {
                match fs_err::remove_file(self.path(file)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("removing a pruned image")(e)),
                }
            }
        }
        if !verdict.delete.is_empty() {
            crate::fsutil::sync_dir(&self.dir).map_err(io("syncing the VM folder"))?;
        }
        Ok(verdict)
    }
}

/// The predecessor's `checkpoints_file`: per VM, the checkpoint the next incremental starts
/// from. Updated under a lock (several VMs' runs share it), durably.
///
/// # Errors
/// The file cannot be read, locked or written.
pub fn record_checkpoint(
    path: &Path,
    vm: &str,
    checkpoint: Option<&str>,
    point: &str,
) -> Result<(), CatalogError> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(io("creating the checkpoints file's folder"))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(format!("opening {}", lock_path.display())))?
        .into_parts()
        .0;
    flock(&lock, FlockOperation::LockExclusive)
        .map_err(|e| io(format!("locking {}", lock_path.display()))(e.into()))?;
    let mut all: serde_json::Map<String, serde_json::Value> = fs_err::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_keep_letters() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(point_id(at), "20261129T020000Z");
        assert_eq!(safe_name("web 01/os"), "web_01_os");
        assert_eq!(safe_name("dísco-1"), "dísco-1");
        assert_eq!(safe_name(""), "disk");
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
        assert!(catalog.leftovers().unwrap().is_empty());
    }

    fn point(id: &str, kind: &str, parent: Option<&str>, days_ago: i64) -> Manifest {
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
