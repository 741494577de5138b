//! The engine's resources as it sends them (VMs, disks, attachments, backups, checkpoints,
//! image transfers, jobs, faults), each field read leniently (see [`super::lenient`]): the
//! phases and statuses they carry are the closed sets of [`super`].

use super::{
    BackupMode, BackupPhase, CheckpointState, ContentType, DiskStatus, JobStatus, SnapshotStatus,
    StorageType, TransferPhase, VmStatus, lenient,
};
use crate::run::engine::EngineError;
use serde::{Deserialize, Serialize};

/// A reference to another object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Ref {
    /// Its id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// Its link.
    #[serde(default)]
    pub href: Option<String>,
    /// Its name, when the engine includes it.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
}

/// A VM.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vm {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Its status.
    #[serde(default)]
    pub status: Option<VmStatus>,
    /// Its cluster.
    #[serde(default)]
    pub cluster: Option<Ref>,
    /// Memory in bytes.
    #[serde(default, deserialize_with = "lenient::number")]
    pub memory: Option<u64>,
    /// Free text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    /// `<href>`.
    #[serde(default)]
    pub href: Option<String>,
}

/// `GET /vms`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vms {
    /// The VMs.
    #[serde(default, deserialize_with = "lenient::list")]
    pub vm: Vec<Vm>,
}

/// A disk attachment (its id is the disk's).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiskAttachment {
    /// The disk id.
    #[serde(default)]
    pub id: String,
    /// The disk (with `?follow=disk`, the whole disk).
    #[serde(default)]
    pub disk: Option<Disk>,
    /// `virtio_scsi`, `virtio`, `sata`, `ide`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub interface: Option<String>,
    /// The boot disk.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub bootable: Option<bool>,
    /// Plugged.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub active: Option<bool>,
    /// The guest's name for the disk (`/dev/sda`), when the guest agent reports it.
    #[serde(default, deserialize_with = "lenient::text")]
    pub logical_name: Option<String>,
}

/// `GET /vms/{id}/diskattachments`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiskAttachments {
    /// The attachments.
    #[serde(default, deserialize_with = "lenient::list")]
    pub disk_attachment: Vec<DiskAttachment>,
}

/// A disk.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Disk {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Alias.
    #[serde(default, deserialize_with = "lenient::text")]
    pub alias: Option<String>,
    /// Name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Virtual size in bytes.
    #[serde(default, deserialize_with = "lenient::number")]
    pub provisioned_size: Option<u64>,
    /// `cow` or `raw`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub format: Option<String>,
    /// Its status.
    #[serde(default)]
    pub status: Option<DiskStatus>,
    /// What kind of storage it is.
    #[serde(default)]
    pub storage_type: Option<StorageType>,
    /// What it holds.
    #[serde(default)]
    pub content_type: Option<ContentType>,
    /// In a backup's disk list: how the backup reads it.
    #[serde(default)]
    pub backup_mode: Option<BackupMode>,
    /// In a snapshot's disk list: the snapshot's volume of the disk (the disk snapshot an image
    /// transfer names).
    #[serde(default, deserialize_with = "lenient::text")]
    pub image_id: Option<String>,
}

impl Disk {
    /// Its virtual size (the size it was created with): a disk without one cannot be backed up.
    ///
    /// # Errors
    /// The engine did not say ([`EngineError::Decode`]).
    pub fn size(&self) -> Result<u64, EngineError> {
        self.provisioned_size.ok_or_else(|| EngineError::Decode {
            path: format!("/disks/{}", self.id),
            why: format!("disk {} has no provisioned_size", self.label()),
        })
    }

    /// The name a person knows it by.
    pub fn label(&self) -> &str {
        self.alias
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or(&self.id)
    }
}

/// `GET /disks`, a backup's or checkpoint's disks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Disks {
    /// The disks.
    #[serde(default, deserialize_with = "lenient::list")]
    pub disk: Vec<Disk>,
}

/// A VM backup.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Backup {
    /// Id.
    pub id: String,
    /// Its phase.
    #[serde(default)]
    pub phase: Option<BackupPhase>,
    /// The checkpoint an incremental starts from.
    #[serde(default, deserialize_with = "lenient::text")]
    pub from_checkpoint_id: Option<String>,
    /// The checkpoint it creates (known from `ready`).
    #[serde(default, deserialize_with = "lenient::text")]
    pub to_checkpoint_id: Option<String>,
    /// The client's description (ovrun's start with `ovrun `).
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
}

/// `GET /vms/{id}/backups`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Backups {
    /// The backups.
    #[serde(default, deserialize_with = "lenient::list")]
    pub backup: Vec<Backup>,
}

/// A VM snapshot.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Snapshot {
    /// Id.
    pub id: String,
    /// The description (ovrun's start with `ovrun `).
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::signed")]
    pub date: Option<i64>,
    /// Its status.
    #[serde(default)]
    pub snapshot_status: Option<SnapshotStatus>,
    /// `active` (the VM's present state: never removed), `regular`, ...
    #[serde(default, deserialize_with = "lenient::text")]
    pub snapshot_type: Option<String>,
}

impl Snapshot {
    /// Whether it is the VM's present state rather than a snapshot taken.
    pub fn is_active(&self) -> bool {
        self.snapshot_type.as_deref() == Some("active")
    }
}

/// `GET /vms/{id}/snapshots`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Snapshots {
    /// The snapshots.
    #[serde(default, deserialize_with = "lenient::list")]
    pub snapshot: Vec<Snapshot>,
}

/// A checkpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Checkpoint {
    /// Id.
    pub id: String,
    /// The previous one.
    #[serde(default, deserialize_with = "lenient::text")]
    pub parent_id: Option<String>,
    /// Epoch ms.
    #[serde(default, deserialize_with = "lenient::signed")]
    pub creation_date: Option<i64>,
    /// Its state.
    #[serde(default)]
    pub state: Option<CheckpointState>,
}

/// `GET /vms/{id}/checkpoints`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Checkpoints {
    /// The checkpoints.
    #[serde(default, deserialize_with = "lenient::list")]
    pub checkpoint: Vec<Checkpoint>,
}

/// An image transfer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageTransfer {
    /// Id.
    pub id: String,
    /// Its phase.
    #[serde(default)]
    pub phase: Option<TransferPhase>,
    /// The host's imageio URL.
    #[serde(default, deserialize_with = "lenient::text")]
    pub transfer_url: Option<String>,
    /// The engine's imageio proxy URL.
    #[serde(default, deserialize_with = "lenient::text")]
    pub proxy_url: Option<String>,
}

/// An engine fault document, or the fault inside an action.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Fault {
    /// e.g. "Operation Failed".
    #[serde(default, deserialize_with = "lenient::text")]
    pub reason: Option<String>,
    /// e.g. "[Cannot backup VM. ...]".
    #[serde(default, deserialize_with = "lenient::text")]
    pub detail: Option<String>,
    /// In an action: the fault.
    #[serde(default)]
    pub fault: Option<Box<Fault>>,
}

impl Fault {
    /// The innermost reason and detail.
    pub(in crate::run::engine) fn parts(&self) -> (String, String) {
        match &self.fault {
            Some(inner) => inner.parts(),
            None => (
                self.reason.clone().unwrap_or_default(),
                self.detail.clone().unwrap_or_default(),
            ),
        }
    }
}

/// A job.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Job {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Its status.
    #[serde(default)]
    pub status: Option<JobStatus>,
}

/// `GET /jobs`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jobs {
    /// The jobs.
    #[serde(default, deserialize_with = "lenient::list")]
    pub job: Vec<Job>,
}

/// An object with a name (cluster, storage domain, host).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Named {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// An event of the engine's audit log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    /// Its index.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// The engine's code (10791: an incremental backup failed and a full one is needed).
    #[serde(default, deserialize_with = "lenient::number")]
    pub code: Option<u64>,
    /// The engine's words.
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
}

impl Event {
    /// Whether it says a backup failed: `VM_INCREMENTAL_BACKUP_FAILED_FULL_VM_BACKUP_NEEDED`
    /// (10791) or `VM_BACKUP_FAILED` (10792).
    pub fn tells_a_failed_backup(&self) -> bool {
        matches!(self.code, Some(10791 | 10792))
    }
}

/// `GET /events`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Events {
    /// The events, newest first.
    #[serde(default, deserialize_with = "lenient::list")]
    pub event: Vec<Event>,
}

/// The API root (`GET /ovirt-engine/api`): which engine answers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiRoot {
    /// The product and its version.
    #[serde(default)]
    pub product_info: Option<ProductInfo>,
}

/// The engine's product (`product_info`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProductInfo {
    /// "oVirt Engine", "Oracle Linux Virtualization Manager", ...
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Its version.
    #[serde(default)]
    pub version: Option<ProductVersion>,
}

/// The engine's version.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProductVersion {
    /// Major (4).
    #[serde(default, deserialize_with = "lenient::number")]
    pub major: Option<u64>,
    /// Minor (3, 4, 5).
    #[serde(default, deserialize_with = "lenient::number")]
    pub minor: Option<u64>,
    /// The whole version, e.g. "4.5.6.2-1.el8".
    #[serde(default, deserialize_with = "lenient::text")]
    pub full_version: Option<String>,
}

/// The first engine version with the incremental backup API (`/vms/{id}/backups`).
pub const BACKUP_API_SINCE: (u64, u64) = (4, 4);

impl ApiRoot {
    /// The engine's (major, minor), when it says.
    pub fn version(&self) -> Option<(u64, u64)> {
        let version = self.product_info.as_ref()?.version.as_ref()?;
        Some((version.major?, version.minor?))
    }

    /// Whether the engine has the incremental backup API. An engine that does not say its
    /// version is taken to have it: the backup calls themselves then answer.
    pub fn has_backup_api(&self) -> bool {
        self.version().is_none_or(|v| v >= BACKUP_API_SINCE)
    }

    /// The product and version in words, e.g. "oVirt Engine 4.3.10.4-1.el7".
    pub fn product(&self) -> String {
        let info = self.product_info.as_ref();
        let name = info
            .and_then(|i| i.name.clone())
            .unwrap_or_else(|| "the engine".into());
        let version = info.and_then(|i| i.version.as_ref());
        let full = version.and_then(|v| v.full_version.clone());
        match (full, self.version()) {
            (Some(full), _) => format!("{name} {full}"),
            (None, Some((major, minor))) => format!("{name} {major}.{minor}"),
            (None, None) => format!("{name} (version not given)"),
        }
    }
}
