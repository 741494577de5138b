//! A simulated VM disk, as an engine host keeps it: a qcow2 file (`STATE/disks/<id>.qcow2`)
//! whose checkpoints are persistent dirty bitmaps, written by the "guest" through `qemu-io` so
//! the bitmaps record every write exactly as a running VM's would.
//!
//! A backup sees the disk as it was when the backup began, while the guest keeps writing: as the
//! engine does with a temporary snapshot, `begin_backup` adds the new checkpoint's bitmap to the
//! disk and puts an overlay on top that takes the guest's writes; the frozen disk is what the
//! backup exports. `end_backup` commits the overlay back, and the commit's writes land in the
//! disk's enabled bitmaps, so the next incremental sees what the guest wrote meanwhile.

mod layers;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SimError;
use crate::qemu::img;

/// One qcow2 disk and, during a backup, its overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskImage {
    path: PathBuf,
}

impl DiskImage {
    /// Creates an empty qcow2 disk of `virtual_size` bytes.
    ///
    /// # Errors
    /// `qemu-img` fails.
    pub fn create(path: &Path, virtual_size: u64) -> Result<Self, SimError> {
        let size = virtual_size.to_string();
        qemu(
            "qemu-img",
            &["create", "-q", "-f", "qcow2", path_str(path)?, &size],
        )?;
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// The disk at `path` (made earlier).
    pub fn open(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// The disk's qcow2 file (the frozen image while a backup runs).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The overlay that takes guest writes while a backup runs.
    pub fn overlay_path(&self) -> PathBuf {
        self.path.with_extension("backup-overlay.qcow2")
    }

    /// Whether a backup is running (its overlay exists; this survives a restart).
    pub fn in_backup(&self) -> bool {
        self.overlay_path().exists()
    }

    /// The layer the guest writes to now.
    fn active(&self) -> PathBuf {
        if self.in_backup() {
            self.overlay_path()
        } else {
            self.path.clone()
        }
    }

    /// The guest writes `length` bytes of `pattern` at `offset`.
    ///
    /// # Errors
    /// `qemu-io` fails (out of range, image locked by a writer).
    pub fn guest_write(&self, offset: u64, length: u64, pattern: u8) -> Result<(), SimError> {
        let command = format!("write -P 0x{pattern:02x} {offset} {length}");
        qemu(
            "qemu-io",
            &["-f", "qcow2", "-c", &command, path_str(&self.active())?],
        )
    }

    /// The guest writes zeroes (as `discard` or `write -z`: a dirty range that reads as zero).
    ///
    /// # Errors
    /// `qemu-io` fails.
    pub fn guest_zero(&self, offset: u64, length: u64) -> Result<(), SimError> {
        let command = format!("write -z {offset} {length}");
        qemu(
            "qemu-io",
            &["-f", "qcow2", "-c", &command, path_str(&self.active())?],
        )
    }

    /// The checkpoints (persistent bitmaps) of the disk, with whether each is usable.
    ///
    /// # Errors
    /// `qemu-img info` fails.
    pub fn checkpoints(&self) -> Result<Vec<Bitmap>, SimError> {
        let out = qemu_output(
            "qemu-img",
            &["info", "-U", "--output=json", path_str(&self.path)?],
        )?;
        let info: Info = serde_json::from_slice(&out).map_err(|e| SimError::Start {
            program: "qemu-img info".into(),
            why: format!("unexpected output: {e}"),
        })?;
        Ok(info
            .format_specific
            .and_then(|f| f.data.bitmaps)
            .unwrap_or_default())
    }

    /// Starts a backup: the checkpoint `checkpoint` begins recording now, and guest writes go to
    /// an overlay until [`Self::end_backup`]; the disk file itself holds still for the export.
    ///
    /// # Errors
    /// A backup is already running, or `qemu-img` fails.
    pub fn begin_backup(&self, checkpoint: &str) -> Result<(), SimError> {
        self.check_no_backup()?;
        let path = path_str(&self.path)?;
        qemu(
            "qemu-img",
            &["bitmap", "--add", "--enable", path, checkpoint],
        )?;
        self.freeze()
    }

    /// Starts a backup of a disk that does not track its changes (`backup: none`): no
    /// checkpoint's bitmap, only the frozen view of [`Self::begin_backup`].
    ///
    /// # Errors
    /// A backup is already running, or `qemu-img` fails.
    pub fn begin_untracked_backup(&self) -> Result<(), SimError> {
        self.check_no_backup()?;
        self.freeze()
    }

    fn check_no_backup(&self) -> Result<(), SimError> {
        if self.in_backup() {
            return Err(SimError::Start {
                program: "backup".into(),
                why: format!("{} already has a backup running", self.path.display()),
            });
        }
        Ok(())
    }

    /// Guest writes go to an overlay from now on; the disk file holds still.
    fn freeze(&self) -> Result<(), SimError> {
        let overlay = self.overlay_path();
        let backing = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        qemu(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                backing,
                "-F",
                "qcow2",
                path_str(&overlay)?,
            ],
        )
    }

    /// Ends a backup: the guest's writes made meanwhile are committed into the disk (and so into
    /// its enabled checkpoints), and the overlay is removed. The export must be stopped first:
    /// the commit needs the disk's write lock.
    ///
    /// # Errors
    /// No backup is running, or `qemu-img commit` fails.
    pub fn end_backup(&self) -> Result<(), SimError> {
        let overlay = self.overlay_path();
        if !overlay.exists() {
            return Ok(());
        }
        qemu(
            "qemu-img",
            &["commit", "-q", "-f", "qcow2", path_str(&overlay)?],
        )?;
        fs_err::remove_file(&overlay).map_err(SimError::io("removing the backup overlay"))
    }

    /// Forgets a checkpoint.
    ///
    /// # Errors
    /// `qemu-img bitmap` fails (the image is exported).
    pub fn remove_checkpoint(&self, checkpoint: &str) -> Result<(), SimError> {
        qemu(
            "qemu-img",
            &["bitmap", "--remove", path_str(&self.path)?, checkpoint],
        )
    }
}

/// A persistent bitmap as `qemu-img info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bitmap {
    /// The checkpoint's name.
    pub name: String,
    /// `auto` (recording), `in-use` (left by a killed writer: unusable).
    pub flags: Vec<String>,
    /// Bytes per bit.
    pub granularity: u64,
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "format-specific")]
    format_specific: Option<FormatSpecific>,
}

#[derive(Deserialize)]
struct FormatSpecific {
    data: FormatData,
}

#[derive(Deserialize)]
struct FormatData {
    bitmaps: Option<Vec<Bitmap>>,
}

fn path_str(path: &Path) -> Result<&str, SimError> {
    Ok(img::utf8(path, "ovsim")?)
}

fn qemu(program: &str, args: &[&str]) -> Result<(), SimError> {
    qemu_output(program, args).map(|_| ())
}

fn qemu_output(program: &str, args: &[&str]) -> Result<Vec<u8>, SimError> {
    Ok(img::run(program, args)?)
}
