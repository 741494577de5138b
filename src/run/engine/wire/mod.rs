//! The engine's wire types (sections 1-7 and 12 of the API page), read leniently: scalars as
//! strings or numbers, an empty list as `{}`, optional fields missing. Every phase, status and
//! other closed set the engine sends is an enum here, with an unknown value kept as
//! `Other(text)` rather than refused: an engine newer than this code must still be readable.
//! This is the only place their spellings appear.

use std::fmt;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod config;
mod resources;
pub use config::*;
pub use resources::*;

/// An enum of the engine's words: `Deserialize` from the text (a value it does not know becomes
/// `Other(text)`), `as_str` and `Display` back to it.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this code does not know, as the engine wrote it.
            Other(String),
        }

        impl $name {
            /// The engine's word for it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(text) => text,
                }
            }

            /// The value the engine's `text` names (`Other` if none).
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = lenient::text(d)?.unwrap_or_default();
                Ok(Self::parse(&text))
            }
        }
    };
}

/// A phase or status for a message: as the engine wrote it, `unknown` when it wrote none.
pub fn shown<T: fmt::Display>(value: Option<&T>) -> String {
    value.map_or_else(|| "unknown".to_owned(), ToString::to_string)
}

wire_enum! {
    /// A VM backup's phase.
    BackupPhase {
        /// Created, not started yet.
        Initializing = "initializing",
        /// Starting (bitmaps, the frozen view).
        Starting = "starting",
        /// Its disks can be read.
        Ready = "ready",
        /// Finalize was asked for.
        Finalizing = "finalizing",
        /// Finalized; the checkpoint exists.
        Succeeded = "succeeded",
        /// Failed (a lost bitmap: the next must be full).
        Failed = "failed",
    }
}

impl BackupPhase {
    /// Whether the backup has ended (well or not).
    pub fn has_ended(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

wire_enum! {
    /// An image transfer's phase.
    TransferPhase {
        /// Being set up.
        Initializing = "initializing",
        /// Resuming after a pause.
        Resuming = "resuming",
        /// The data plane is open.
        Transferring = "transferring",
        /// Paused by the system.
        PausedSystem = "paused_system",
        /// Paused by the user.
        PausedUser = "paused_user",
        /// Finalize was asked for.
        FinalizingSuccess = "finalizing_success",
        /// Ending after a failure.
        FinalizingFailure = "finalizing_failure",
        /// Ending after a cancel.
        FinalizingCleanup = "finalizing_cleanup",
        /// Done; an upload's disk was checked.
        FinishedSuccess = "finished_success",
        /// Ended by a failure.
        FinishedFailure = "finished_failure",
        /// Ended by a cancel; its disk (upload) removed.
        FinishedCleanup = "finished_cleanup",
        /// Cancelled (older engines).
        Cancelled = "cancelled",
        /// Cancelled by the system (idle longer than its inactivity timeout).
        CancelledSystem = "cancelled_system",
        /// Cancelled by the user.
        CancelledUser = "cancelled_user",
        /// The engine does not know.
        Unknown = "unknown",
    }
}

impl TransferPhase {
    /// Whether the transfer has ended, well or not (a `finished_*` phase).
    pub fn is_finished(&self) -> bool {
        match self {
            Self::FinishedSuccess | Self::FinishedFailure | Self::FinishedCleanup => true,
            Self::Other(text) => text.starts_with("finished"),
            _ => false,
        }
    }

    /// Whether the transfer ended without success (finished other than `finished_success`,
    /// or cancelled).
    pub fn is_unsuccessful_end(&self) -> bool {
        let cancelled = match self {
            Self::Cancelled | Self::CancelledSystem | Self::CancelledUser => true,
            Self::Other(text) => text.starts_with("cancelled"),
            _ => false,
        };
        cancelled || (self.is_finished() && *self != Self::FinishedSuccess)
    }
}

wire_enum! {
    /// A disk's status.
    DiskStatus {
        /// Usable.
        Ok = "ok",
        /// Held by a task (a backup, a transfer, a snapshot).
        Locked = "locked",
        /// Broken.
        Illegal = "illegal",
    }
}

wire_enum! {
    /// A VM's status.
    VmStatus {
        /// Running.
        Up = "up",
        /// Not running.
        Down = "down",
        /// A task holds its images.
        ImageLocked = "image_locked",
        /// Held by a task (older engines).
        Locked = "locked",
        /// Starting.
        PoweringUp = "powering_up",
        /// Stopping.
        PoweringDown = "powering_down",
        /// Paused.
        Paused = "paused",
        /// Suspended.
        Suspended = "suspended",
        /// Waiting to be started on a host.
        WaitForLaunch = "wait_for_launch",
        /// Its host does not answer.
        NotResponding = "not_responding",
        /// The engine does not know.
        Unknown = "unknown",
    }
}

impl VmStatus {
    /// Whether a task holds the VM (its backup must wait).
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::ImageLocked | Self::Locked)
    }
}

wire_enum! {
    /// A VM snapshot's status.
    SnapshotStatus {
        /// Made (or not being removed).
        Ok = "ok",
        /// Being made or removed.
        Locked = "locked",
        /// Being previewed.
        InPreview = "in_preview",
    }
}

wire_enum! {
    /// A checkpoint's state.
    CheckpointState {
        /// Usable for an incremental backup.
        Created = "created",
        /// Not usable (its bitmap is gone).
        Invalid = "invalid",
    }
}

wire_enum! {
    /// A job's status.
    JobStatus {
        /// Running.
        Started = "started",
        /// Done.
        Finished = "finished",
        /// Failed.
        Failed = "failed",
        /// Aborted.
        Aborted = "aborted",
        /// The engine does not know.
        Unknown = "unknown",
    }
}

wire_enum! {
    /// How a backup reads a disk.
    BackupMode {
        /// Every allocated block.
        Full = "full",
        /// The blocks changed since the checkpoint.
        Incremental = "incremental",
    }
}

wire_enum! {
    /// What kind of storage a disk is.
    StorageType {
        /// An image on a storage domain (the only kind backed up).
        Image = "image",
        /// A direct LUN.
        Lun = "lun",
        /// A Cinder volume.
        Cinder = "cinder",
        /// A managed block storage volume.
        ManagedBlockStorage = "managed_block_storage",
    }
}

wire_enum! {
    /// What a disk holds.
    ContentType {
        /// A VM's data (the only kind backed up).
        Data = "data",
        /// An ISO image.
        Iso = "iso",
        /// A memory dump.
        MemoryDumpVolume = "memory_dump_volume",
        /// A memory metadata volume.
        MemoryMetadataVolume = "memory_metadata_volume",
    }
}

wire_enum! {
    /// The status of an action's answer.
    ActionStatus {
        /// Carried out.
        Complete = "complete",
        /// Refused (some engines answer 200 with this and a fault).
        Failed = "failed",
    }
}

wire_enum! {
    /// An image transfer's direction.
    Direction {
        /// Reading a disk (a backup).
        Download = "download",
        /// Writing a disk (a restore).
        Upload = "upload",
    }
}

wire_enum! {
    /// A collection looked up by name.
    Collection {
        /// `/clusters`.
        Clusters = "clusters",
        /// `/storagedomains`.
        StorageDomains = "storagedomains",
    }
}

impl Collection {
    /// The key of its items in a list answer.
    pub fn item_key(&self) -> &str {
        match self {
            Self::Clusters => "cluster",
            Self::StorageDomains => "storage_domain",
            Self::Other(plural) => plural.trim_end_matches('s'),
        }
    }
}

impl Serialize for Direction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What an engine fault means for a backup, from its detail (the engine has no codes, only
/// these words; section 6.8 of the API page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMeaning {
    /// The incremental cannot be taken: a full one is needed.
    NeedsFull,
    /// Another backup of the VM is running.
    BackupRunning,
    /// Anything else.
    Other,
}

impl FaultMeaning {
    /// The meaning of a fault's `detail`.
    pub fn of(detail: &str) -> Self {
        const NEEDS_FULL: [&str; 5] = [
            "Checkpoint ID",
            "FULL_VM_BACKUP_NEEDED",
            "backup failed",
            "not included in the previous VM backup",
            "Incremental backup is disabled",
        ];
        if NEEDS_FULL.iter().any(|words| detail.contains(words)) {
            Self::NeedsFull
        } else if detail.contains("during a backup operation") {
            Self::BackupRunning
        } else {
            Self::Other
        }
    }
}

/// Lenient scalars: the engine writes numbers and booleans as strings in JSON (and some
/// engines as plain values); both are accepted.
pub(super) mod lenient {
    use super::{Deserialize, Deserializer, Value};

    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        })
    }

    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        })
    }

    pub fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        })
    }

    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            Some(Value::String(s)) => Some(s.trim().eq_ignore_ascii_case("true")),
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        })
    }

    /// A list that an engine may send as `[...]`, a single object, or `{}` when empty.
    pub fn list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
                .collect(),
            Some(Value::Object(map)) if map.is_empty() => Ok(Vec::new()),
            Some(other @ Value::Object(_)) => serde_json::from_value(other)
                .map(|one| vec![one])
                .map_err(serde::de::Error::custom),
            _ => Ok(Vec::new()),
        }
    }
}

/// An answer's fault: an error document, or a 200 action answer whose status is `failed`
/// (`failed_action` true: only then is a fault inside a success read as one).
pub(super) fn fault_of(value: &Value, failed_action: bool) -> Option<Fault> {
    if failed_action {
        let status = value.get("status").map(ActionStatus::deserialize);
        if !matches!(status, Some(Ok(ActionStatus::Failed))) {
            return None;
        }
    }
    let fault: Fault = serde_json::from_value(value.clone()).ok()?;
    (fault.reason.is_some() || fault.detail.is_some() || fault.fault.is_some()).then_some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_as_strings_or_values_and_empty_lists_as_objects() {
        let vms: Vms = serde_json::from_value(json!({"vm": [
            {"id": "1", "name": "a", "memory": "1073741824", "status": "up"},
            {"id": "2", "name": "b", "memory": 2048}
        ]}))
        .unwrap();
        assert_eq!(vms.vm[0].memory, Some(1 << 30));
        assert_eq!(vms.vm[1].memory, Some(2048));
        let empty: DiskAttachments = serde_json::from_value(json!({})).unwrap();
        assert!(empty.disk_attachment.is_empty());
        let one: Disks = serde_json::from_value(json!({"disk": {"id": "d"}})).unwrap();
        assert_eq!(one.disk[0].id, "d");
        let a: DiskAttachment =
            serde_json::from_value(json!({"id": "d", "bootable": "true", "active": false}))
                .unwrap();
        assert_eq!((a.bootable, a.active), (Some(true), Some(false)));
    }

    #[test]
    fn faults_plain_and_inside_an_action() {
        let plain: Fault =
            serde_json::from_value(json!({"reason": "Operation Failed", "detail": "[x]"})).unwrap();
        assert_eq!(plain.parts(), ("Operation Failed".into(), "[x]".into()));
        let action: Fault = serde_json::from_value(
            json!({"status": "failed", "fault": {"reason": "Operation Failed", "detail": "[y]"}}),
        )
        .unwrap();
        assert_eq!(action.parts(), ("Operation Failed".into(), "[y]".into()));
    }

    #[test]
    fn unknown_phases_and_statuses_are_kept_as_other() {
        let transfer: ImageTransfer =
            serde_json::from_value(json!({"id": "t", "phase": "warping"})).unwrap();
        assert_eq!(transfer.phase, Some(TransferPhase::Other("warping".into())));
        let backup: Backup = serde_json::from_value(json!({"id": "b", "phase": "ready"})).unwrap();
        assert_eq!(backup.phase, Some(BackupPhase::Ready));
        let vm: Vm = serde_json::from_value(json!({"id": "v", "status": "hibernating"})).unwrap();
        assert_eq!(vm.status, Some(VmStatus::Other("hibernating".into())));
        assert_eq!(vm.status.unwrap().to_string(), "hibernating");
        let disk: Disk = serde_json::from_value(json!({"id": "d", "status": 7})).unwrap();
        assert_eq!(disk.status, Some(DiskStatus::Other("7".into())));
        let missing: Disk = serde_json::from_value(json!({"id": "d"})).unwrap();
        assert_eq!(missing.status, None);
    }

    #[test]
    fn transfer_ends_and_fault_meanings() {
        assert!(TransferPhase::FinishedFailure.is_unsuccessful_end());
        assert!(TransferPhase::CancelledSystem.is_unsuccessful_end());
        assert!(!TransferPhase::FinishedSuccess.is_unsuccessful_end());
        assert!(TransferPhase::Other("finished_later".into()).is_finished());
        assert!(!TransferPhase::Transferring.is_finished());
        let meaning = |d: &str| FaultMeaning::of(d);
        assert_eq!(
            meaning("[Cannot backup VM. Checkpoint ID c1 doesn't exist.]"),
            FaultMeaning::NeedsFull
        );
        assert_eq!(
            meaning("[Cannot backup VM. The VM is during a backup operation.]"),
            FaultMeaning::BackupRunning
        );
        assert_eq!(meaning("[Internal Engine Error]"), FaultMeaning::Other);
    }

    #[test]
    fn the_api_root_says_whether_the_backup_api_exists() {
        let root = |version: serde_json::Value| -> ApiRoot {
            serde_json::from_value(json!({"product_info": {
                "name": "oVirt Engine", "version": version
            }}))
            .unwrap()
        };
        let old = root(json!({"major": "4", "minor": "3", "full_version": "4.3.10.4-1.el7"}));
        assert_eq!(old.version(), Some((4, 3)));
        assert!(!old.has_backup_api());
        assert_eq!(old.product(), "oVirt Engine 4.3.10.4-1.el7");
        let new = root(json!({"major": 4, "minor": 4}));
        assert!(new.has_backup_api());
        assert_eq!(new.product(), "oVirt Engine 4.4");
        assert!(root(json!({"major": "5", "minor": "0"})).has_backup_api());
        // An engine that does not say is not refused here: its backup calls answer for it.
        let silent: ApiRoot = serde_json::from_value(json!({})).unwrap();
        assert_eq!(silent.version(), None);
        assert!(silent.has_backup_api());
        assert_eq!(silent.product(), "the engine (version not given)");
    }

    #[test]
    fn a_disk_without_a_size_is_an_error_not_zero() {
        let disk: Disk = serde_json::from_value(json!({"id": "d1"})).unwrap();
        let error = disk.size().unwrap_err();
        assert!(error.to_string().contains("no provisioned_size"), "{error}");
        let sized: Disk =
            serde_json::from_value(json!({"id": "d1", "provisioned_size": "1024"})).unwrap();
        assert_eq!(sized.size().unwrap(), 1024);
    }
}
