//! A point's record, its manifest: what was backed up, from where, into which files; written
//! last, so a point that has one is complete.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest format this `ovrun` writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

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
    /// How the disks were read (absent in points taken before the snapshot method: the
    /// backup API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodRecord>,
    /// The VM's configuration at the point (absent in points taken before issue 16: a restore
    /// then gives the DR VM production's memory only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<super::VmConfig>,
    /// The disks.
    pub disks: Vec<DiskEntry>,
}

/// How a point's disks were read, and why that way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodRecord {
    /// `backup_api` or `snapshot`.
    pub name: String,
    /// Why: the policy's `backup_method`, and for `auto` what the engine offers.
    pub why: String,
    /// The snapshot method's VM snapshot, kept on the engine until the next run: the layer
    /// above it is what the next incremental reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Whether the VM was running (a crash-consistent point) or down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_was_up: Option<bool>,
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
    /// The VM snapshot a snapshot-method point kept on the engine for the next incremental.
    pub fn kept_snapshot(&self) -> Option<&str> {
        let record = self.method.as_ref()?;
        (record.name == crate::plan::model::BackupMethod::Snapshot.as_str())
            .then_some(record.snapshot.as_deref())
            .flatten()
    }

    /// Whether it is a full point.
    pub fn is_full(&self) -> bool {
        self.kind == "full"
    }

    /// The manifest's file name.
    pub fn file_name(&self) -> String {
        format!("{}.{}.manifest.json", self.point, self.kind)
    }
}
