//! The engines' slots (issue 14): at most N jobs of a kind work on one engine at once, N being
//! the engine's limit (`max_concurrent_backups` of the source engine for `ovrun backup`,
//! `max_concurrent_restores` of the DR engine for `ovrun restore`).
//!
//! ```text
//! BACKUP_DIR/.engine-slots/backup-8b5687cdc0fb4b00/slot-0.lock ... slot-<N-1>.lock
//! BACKUP_DIR/.engine-slots/restore-<key>/slot-0.lock ...
//! ```
//!
//! A job holds a slot while it holds an advisory lock (`flock`) on one of its engine's N slot
//! files; the kernel releases it when the job's process ends, however it ends (a crash, a
//! SIGKILL), so no slot is ever left taken. The folder is under the backup directory because
//! the compiled units may write nowhere else (`ProtectSystem=strict`, `ReadWritePaths=` the
//! backup directory): the jobs that share slots are those of one backup directory, whichever
//! bundle started them. The folder of an engine is named by its [`slot_key`], a digest of its
//! URL, so a URL (which may hold anything) never names a file, and two bundles that write one
//! engine's URL alike share its slots. With two limits for one engine (two bundles), each job
//! looks only at the first N slots of its own N: the engine then sees at most the larger.
//!
//! As everywhere in the backup directory, nothing is opened through a link: the folders are
//! opened beneath the backup directory and each other, and the slot files in them, without
//! following one ([`crate::fsutil::Folder`]); a link there is [`CatalogError::Link`].

use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use sha2::{Digest, Sha256};

use super::CatalogError;
use super::error::{io, io_at};
use crate::fsutil::Folder;

/// The folder of the slots, in the backup directory.
pub const SLOTS_DIR: &str = ".engine-slots";

/// Which jobs share a set of slots: the backups of a source engine, or the restores of a DR
/// engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// `ovrun backup`, on the source engine.
    Backup,
    /// `ovrun restore`, on the DR engine.
    Restore,
}

impl SlotKind {
    /// `backup` or `restore`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Backup => "backup",
            SlotKind::Restore => "restore",
        }
    }
}

/// The name of the folder of an engine's slots of `kind`: the kind, and the first 64 bits of
/// the SHA-256 of the engine's URL in hex. The URL is taken as the engine knows it: its scheme
/// and host in lower case, without a trailing `/`.
pub fn slot_key(kind: SlotKind, url: &str) -> String {
    let digest = Sha256::digest(engine_identity(url).as_bytes());
    format!("{}-{}", kind.as_str(), hex::encode(&digest[..8]))
}

/// `HTTPS://Engine.Example/ovirt-engine/api/` -> `https://engine.example/ovirt-engine/api`.
fn engine_identity(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!(
        "{}://{}{path}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

/// An engine's slots of one kind, in a backup directory.
#[derive(Debug)]
pub struct EngineSlots {
    folder: Folder,
    count: u32,
}

/// A slot taken: held while this lives (and the process).
#[derive(Debug)]
pub struct Slot {
    _file: std::fs::File,
    index: u32,
}

impl Slot {
    /// Which slot (0-based).
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl EngineSlots {
    /// The `count` slots of `kind` of the engine at `url`, in `backup_dir` (their folders made
    /// `0700` when missing). A count of 0 is taken as 1: a job always gets its turn.
    ///
    /// # Errors
    /// A folder cannot be made or opened; a link is [`CatalogError::Link`].
    pub fn open(
        backup_dir: &Path,
        kind: SlotKind,
        url: &str,
        count: u32,
    ) -> Result<Self, CatalogError> {
        let slots = Folder::open_in(backup_dir, SLOTS_DIR)
            .map_err(io_at("opening", backup_dir.join(SLOTS_DIR)))?;
        let key = slot_key(kind, url);
        let folder = slots
            .subfolder(&key)
            .map_err(io_at("opening", slots.path().join(&key)))?;
        Ok(Self {
            folder,
            count: count.max(1),
        })
    }

    /// How many slots there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The folder of the slot files.
    pub fn dir(&self) -> &Path {
        self.folder.path()
    }

    /// A free slot, taken; `None` when every one is held by another job.
    ///
    /// # Errors
    /// A slot file cannot be opened or locked; a link is [`CatalogError::Link`].
    pub fn try_take(&self) -> Result<Option<Slot>, CatalogError> {
        for index in 0..self.count {
            let name = format!("slot-{index}.lock");
            let path = || self.folder.path().join(&name);
            let file = self
                .folder
                .open_or_create(&name)
                .map_err(io_at("opening", path()))?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Some(Slot { _file: file, index })),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => return Err(io(format!("locking {}", path().display()))(e.into())),
            }
        }
        Ok(None)
    }

    /// The path of slot `index` (for messages).
    pub fn slot_path(&self, index: u32) -> PathBuf {
        self.folder.path().join(format!("slot-{index}.lock"))
    }
}

#[cfg(test)]
mod tests {
    use fs_err as fs;
    use fs_err::os::unix::fs::symlink;

    use super::*;

    const URL: &str = "https://engine.example.com/ovirt-engine/api";

    #[test]
    fn n_slots_admit_n_jobs_and_a_freed_slot_the_next() {
        let dir = tempfile::tempdir().expect("temp dir");
        let slots = EngineSlots::open(dir.path(), SlotKind::Backup, URL, 2).expect("slots");
        let first = slots.try_take().expect("take").expect("a free slot");
        let second = slots.try_take().expect("take").expect("a free slot");
        assert_eq!((first.index(), second.index()), (0, 1));
        assert!(slots.try_take().expect("take").is_none(), "both are held");
        // Another job of the same directory (its own open of the files) sees them held too.
        let other = EngineSlots::open(dir.path(), SlotKind::Backup, URL, 2).expect("slots");
        assert!(other.try_take().expect("take").is_none());
        drop(first);
        let third = other.try_take().expect("take").expect("the freed slot");
        assert_eq!(third.index(), 0);
        // The restores of the same engine have slots of their own.
        let restores = EngineSlots::open(dir.path(), SlotKind::Restore, URL, 1).expect("slots");
        assert!(restores.try_take().expect("take").is_some());
        assert_ne!(restores.dir(), other.dir());
    }

    #[test]
    fn a_count_of_zero_is_one_slot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let slots = EngineSlots::open(dir.path(), SlotKind::Backup, URL, 0).expect("slots");
        assert_eq!(slots.count(), 1);
        let _held = slots.try_take().expect("take").expect("a slot");
        assert!(slots.try_take().expect("take").is_none());
    }

    #[test]
    fn one_engine_is_one_key_however_its_url_is_written() {
        let key = slot_key(SlotKind::Backup, URL);
        assert!(key.starts_with("backup-") && key.len() == "backup-".len() + 16);
        for same in [
            "HTTPS://Engine.Example.COM/ovirt-engine/api",
            "https://engine.example.com/ovirt-engine/api/",
        ] {
            assert_eq!(slot_key(SlotKind::Backup, same), key, "{same}");
        }
        for other in [
            "https://engine2.example.com/ovirt-engine/api",
            "https://engine.example.com:8443/ovirt-engine/api",
            "https://engine.example.com/OVIRT-engine/api",
        ] {
            assert_ne!(slot_key(SlotKind::Backup, other), key, "{other}");
        }
        assert_ne!(slot_key(SlotKind::Restore, URL), key);
        let example = "https://engine.prod.example.com/ovirt-engine/api";
        let documented = "backup-8b5687cdc0fb4b00";
        assert_eq!(slot_key(SlotKind::Backup, example), documented, "README");
        let hostile = slot_key(SlotKind::Backup, "https://../../etc/x\n");
        assert!(
            hostile
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }

    #[test]
    fn a_link_anywhere_on_the_way_is_refused_and_nothing_is_made_through_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (backup, outside) = (dir.path().join("backup"), dir.path().join("outside"));
        fs::create_dir_all(&backup).expect("backup");
        fs::create_dir_all(&outside).expect("outside");
        let refused = |what: &str| {
            let error = EngineSlots::open(&backup, SlotKind::Backup, URL, 2)
                .and_then(|slots| slots.try_take())
                .expect_err(what);
            assert!(
                matches!(error, CatalogError::Link { .. }),
                "{what}: {error}"
            );
        };
        symlink(&outside, backup.join(SLOTS_DIR)).expect("link");
        refused("the slots folder a link");
        fs::remove_file(backup.join(SLOTS_DIR)).expect("rm");
        let key = slot_key(SlotKind::Backup, URL);
        fs::create_dir(backup.join(SLOTS_DIR)).expect("slots");
        symlink(&outside, backup.join(SLOTS_DIR).join(&key)).expect("link");
        refused("the engine's folder a link");
        fs::remove_file(backup.join(SLOTS_DIR).join(&key)).expect("rm");
        fs::create_dir(backup.join(SLOTS_DIR).join(&key)).expect("engine");
        let victim = outside.join("victim");
        fs::write(&victim, "precious").expect("victim");
        symlink(
            &victim,
            backup.join(SLOTS_DIR).join(&key).join("slot-0.lock"),
        )
        .expect("link");
        refused("a slot file a link");
        assert_eq!(fs::read_dir(&outside).expect("outside").count(), 1);
        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
    }
}
