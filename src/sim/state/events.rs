//! The engine's audit log, as `/events` serves it (`crate::sim::events`): what backups,
//! snapshots, image transfers and disk attachments write, with the engine's codes, severities
//! and words (its `AuditLogType` and `AuditLogMessages.properties`), and the events applications
//! add themselves (external events: their origin, their own id, their words), under a strictly
//! increasing index. It is bounded: the oldest events go first, as the engine's audit log
//! cleanup drops them.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::API;

/// How many events are kept.
const KEPT: usize = 10_000;

/// What happened, with what the engine's message names besides the VM or disk: a backup's id
/// (`Backup*`, `IncrementalNeedsFull`), a snapshot's description (`Snapshot*`), or a transfer's
/// direction, `download` or `upload` (`Transfer*`).
#[derive(Debug, Clone, Copy)]
pub enum Audit<'a> {
    /// `VM_BACKUP_STARTED` (10790).
    BackupStarted(&'a str),
    /// `VM_INCREMENTAL_BACKUP_FAILED_FULL_VM_BACKUP_NEEDED` (10791).
    IncrementalNeedsFull(&'a str),
    /// `VM_BACKUP_FAILED` (10792).
    BackupFailed(&'a str),
    /// `VM_BACKUP_SUCCEEDED` (10793).
    BackupSucceeded(&'a str),
    /// `VM_BACKUP_FINALIZED` (10794).
    BackupFinalized(&'a str),
    /// `USER_CREATE_SNAPSHOT` (45).
    SnapshotCreating(&'a str),
    /// `USER_CREATE_SNAPSHOT_FINISHED_SUCCESS` (68).
    SnapshotCreated(&'a str),
    /// `USER_CREATE_SNAPSHOT_FINISHED_FAILURE` (69).
    SnapshotFailed(&'a str),
    /// `USER_REMOVE_SNAPSHOT` (342).
    SnapshotRemoving(&'a str),
    /// `USER_REMOVE_SNAPSHOT_FINISHED_SUCCESS` (356).
    SnapshotRemoved(&'a str),
    /// `USER_REMOVE_SNAPSHOT_FINISHED_FAILURE` (357).
    SnapshotRemovalFailed(&'a str),
    /// `TRANSFER_IMAGE_INITIATED` (1031).
    TransferStarted(&'a str),
    /// `TRANSFER_IMAGE_SUCCEEDED` (1032).
    TransferSucceeded(&'a str),
    /// `TRANSFER_IMAGE_CANCELLED` (1033).
    TransferCancelled(&'a str),
    /// `TRANSFER_IMAGE_FAILED` (1034).
    TransferFailed(&'a str),
    /// `USER_ATTACH_DISK_TO_VM` (2016).
    DiskAttached,
    /// `USER_DETACH_DISK_FROM_VM` (2018).
    DiskDetached,
}

/// An entry of the engine's audit log types: its code, severity and message template (the
/// engine's `AuditLogType` and `AuditLogMessages.properties`, placeholders as there).
struct Message {
    code: u32,
    severity: &'static str,
    template: &'static str,
}

const VM_BACKUP_STARTED: Message = Message {
    code: 10790,
    severity: "normal",
    template: "Backup ${backupId} for VM ${VmName} started (User: ${UserName}).",
};

const VM_INCREMENTAL_BACKUP_FAILED_FULL_VM_BACKUP_NEEDED: Message = Message {
    code: 10791,
    severity: "error",
    template: "Incremental backup ${backupId} for VM ${VmName} failed. Full backup is now needed (User: ${UserName}).",
};

const VM_BACKUP_FAILED: Message = Message {
    code: 10792,
    severity: "error",
    template: "Backup ${backupId} for VM ${VmName} failed (User: ${UserName}).",
};

const VM_BACKUP_SUCCEEDED: Message = Message {
    code: 10793,
    severity: "normal",
    template: "Backup ${backupId} for VM ${VmName} completed successfully (User: ${UserName}).",
};

const VM_BACKUP_FINALIZED: Message = Message {
    code: 10794,
    severity: "normal",
    template: "Backup ${backupId} for VM ${VmName} finalized (User: ${UserName}).",
};

const USER_CREATE_SNAPSHOT: Message = Message {
    code: 45,
    severity: "normal",
    template: "Snapshot '${SnapshotName}' creation for VM '${VmName}' was initiated by ${UserName}.",
};

const USER_CREATE_SNAPSHOT_FINISHED_SUCCESS: Message = Message {
    code: 68,
    severity: "normal",
    template: "Snapshot '${SnapshotName}' creation for VM '${VmName}' has been completed.",
};

const USER_CREATE_SNAPSHOT_FINISHED_FAILURE: Message = Message {
    code: 69,
    severity: "error",
    template: "Failed to complete snapshot '${SnapshotName}' creation for VM '${VmName}'.",
};

const USER_REMOVE_SNAPSHOT_FINISHED_FAILURE: Message = Message {
    code: 357,
    severity: "error",
    template: "Failed to delete snapshot '${SnapshotName}' for VM '${VmName}'.",
};

const USER_REMOVE_SNAPSHOT: Message = Message {
    code: 342,
    severity: "normal",
    template: "Snapshot '${SnapshotName}' deletion for VM '${VmName}' was initiated by ${UserName}.",
};

const USER_REMOVE_SNAPSHOT_FINISHED_SUCCESS: Message = Message {
    code: 356,
    severity: "normal",
    template: "Snapshot '${SnapshotName}' deletion for VM '${VmName}' has been completed.",
};

const TRANSFER_IMAGE_INITIATED: Message = Message {
    code: 1031,
    severity: "normal",
    template: "Image ${TransferType} with disk ${DiskAlias} was initiated by ${UserName}.",
};

const TRANSFER_IMAGE_SUCCEEDED: Message = Message {
    code: 1032,
    severity: "normal",
    template: "Image ${TransferType} with disk ${DiskAlias} succeeded.",
};

const TRANSFER_IMAGE_CANCELLED: Message = Message {
    code: 1033,
    severity: "normal",
    template: "Image ${TransferType} with disk ${DiskAlias} was cancelled.",
};

const TRANSFER_IMAGE_FAILED: Message = Message {
    code: 1034,
    severity: "error",
    template: "Image ${TransferType} with disk ${DiskAlias} failed.",
};

const USER_ATTACH_DISK_TO_VM: Message = Message {
    code: 2016,
    severity: "normal",
    template: "Disk ${DiskAlias} was successfully attached to VM ${VmName} by ${UserName}.",
};

const USER_DETACH_DISK_FROM_VM: Message = Message {
    code: 2018,
    severity: "normal",
    template: "Disk ${DiskAlias} was successfully detached from VM ${VmName} by ${UserName}.",
};

/// The engine's types of external events, one per severity (`EXTERNAL_EVENT_NORMAL` 9801,
/// `EXTERNAL_EVENT_WARNING` 9802, `EXTERNAL_EVENT_ERROR` 9803, `EXTERNAL_ALERT` 9804); their
/// description is the application's.
const EXTERNAL: [Message; 4] = [
    Message {
        code: 9801,
        severity: "normal",
        template: "",
    },
    Message {
        code: 9802,
        severity: "warning",
        template: "",
    },
    Message {
        code: 9803,
        severity: "error",
        template: "",
    },
    Message {
        code: 9804,
        severity: "alert",
        template: "",
    },
];

impl Audit<'_> {
    /// Its entry in the engine's audit log types.
    fn message(self) -> &'static Message {
        match self {
            Audit::BackupStarted(_) => &VM_BACKUP_STARTED,
            Audit::IncrementalNeedsFull(_) => &VM_INCREMENTAL_BACKUP_FAILED_FULL_VM_BACKUP_NEEDED,
            Audit::BackupFailed(_) => &VM_BACKUP_FAILED,
            Audit::BackupSucceeded(_) => &VM_BACKUP_SUCCEEDED,
            Audit::BackupFinalized(_) => &VM_BACKUP_FINALIZED,
            Audit::SnapshotCreating(_) => &USER_CREATE_SNAPSHOT,
            Audit::SnapshotCreated(_) => &USER_CREATE_SNAPSHOT_FINISHED_SUCCESS,
            Audit::SnapshotFailed(_) => &USER_CREATE_SNAPSHOT_FINISHED_FAILURE,
            Audit::SnapshotRemovalFailed(_) => &USER_REMOVE_SNAPSHOT_FINISHED_FAILURE,
            Audit::SnapshotRemoving(_) => &USER_REMOVE_SNAPSHOT,
            Audit::SnapshotRemoved(_) => &USER_REMOVE_SNAPSHOT_FINISHED_SUCCESS,
            Audit::TransferStarted(_) => &TRANSFER_IMAGE_INITIATED,
            Audit::TransferSucceeded(_) => &TRANSFER_IMAGE_SUCCEEDED,
            Audit::TransferCancelled(_) => &TRANSFER_IMAGE_CANCELLED,
            Audit::TransferFailed(_) => &TRANSFER_IMAGE_FAILED,
            Audit::DiskAttached => &USER_ATTACH_DISK_TO_VM,
            Audit::DiskDetached => &USER_DETACH_DISK_FROM_VM,
        }
    }

    /// What the message names besides the VM or disk: the backup's id, the snapshot's
    /// description, or the transfer's type (`Download`, `Upload`).
    fn object(self) -> String {
        match self {
            Audit::BackupStarted(backup)
            | Audit::IncrementalNeedsFull(backup)
            | Audit::BackupFailed(backup)
            | Audit::BackupSucceeded(backup)
            | Audit::BackupFinalized(backup) => backup.to_owned(),
            Audit::SnapshotCreating(snapshot)
            | Audit::SnapshotCreated(snapshot)
            | Audit::SnapshotFailed(snapshot)
            | Audit::SnapshotRemovalFailed(snapshot)
            | Audit::SnapshotRemoving(snapshot)
            | Audit::SnapshotRemoved(snapshot) => snapshot.to_owned(),
            Audit::TransferStarted(direction)
            | Audit::TransferSucceeded(direction)
            | Audit::TransferCancelled(direction)
            | Audit::TransferFailed(direction) => capitalized(direction),
            Audit::DiskAttached | Audit::DiskDetached => String::new(),
        }
    }

    /// The message, its template filled in for `about` (the VM's name, the disk's alias).
    fn words(self, about: &About) -> String {
        let name = |part: &Option<(String, String)>| {
            part.as_ref()
                .map_or("N/A", |(_, name)| name.as_str())
                .to_owned()
        };
        let object = self.object();
        self.message()
            .template
            .replace("${backupId}", &object)
            .replace("${SnapshotName}", &object)
            .replace("${TransferType}", &object)
            .replace("${VmName}", &name(&about.vm))
            .replace("${DiskAlias}", &name(&about.disk))
            .replace("${UserName}", about.user.as_deref().unwrap_or("SYSTEM"))
    }
}

/// `download` -> `Download`, as the engine names a transfer type.
fn capitalized(word: &str) -> String {
    let mut letters = word.chars();
    letters.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(letters).collect()
    })
}

/// What an event is about: a VM (with its name) and a disk (with its alias), and who did it.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// The VM's id and name.
    pub vm: Option<(String, String)>,
    /// The disk's id and alias.
    pub disk: Option<(String, String)>,
    /// The user, `name@profile`.
    pub user: Option<String>,
}

/// Who added an external event: the application (`origin`, never `oVirt`) and its own id for
/// the event, unique per origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// The application.
    pub origin: String,
    /// Its id for the event.
    pub custom_id: u64,
}

/// Why an external event is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not one of `normal`, `warning`, `error`, `alert`.
    Severity,
    /// The origin already added an event with this custom id.
    Duplicate,
}

/// One event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) index: u64,
    pub(crate) code: u32,
    pub(crate) severity: &'static str,
    pub(crate) description: String,
    pub(crate) time: i64,
    pub(crate) about: About,
    /// The application that added it; `None`: the engine wrote it.
    pub(crate) external: Option<External>,
}

impl Event {
    /// Who wrote it: the engine (`oVirt`) or an application.
    fn origin(&self) -> &str {
        self.external
            .as_ref()
            .map_or("oVirt", |e| e.origin.as_str())
    }

    /// The engine's JSON of it.
    pub(crate) fn json(&self) -> Value {
        let id = self.index.to_string();
        // The engine's own events have custom id -1.
        let custom_id = (self.external.as_ref()).map_or(-1, |e| i128::from(e.custom_id));
        let mut body = json!({
            "id": id, "href": format!("{API}/events/{id}"),
            "code": self.code.to_string(), "custom_id": custom_id.to_string(),
            "description": self.description, "flood_rate": "30", "index": id,
            "origin": self.origin(), "severity": self.severity,
            "time": self.time,
        });
        if let Some((vm, _)) = &self.about.vm {
            body["vm"] = json!({"id": vm, "href": format!("{API}/vms/{vm}")});
        }
        if let Some((disk, _)) = &self.about.disk {
            body["disk"] = json!({"id": disk, "href": format!("{API}/disks/{disk}")});
        }
        body
    }

    /// Whether one term of a search matches: `field=value` for the fields a client searches
    /// on, else words that the description contains (any case).
    pub(crate) fn matches(&self, term: &str) -> bool {
        let named = |part: &Option<(String, String)>, value: &str| {
            part.as_ref()
                .is_some_and(|(_, name)| name.to_lowercase() == value)
        };
        let field = crate::sim::search::field(term);
        match field.map(|(key, value)| (key, value.to_lowercase())) {
            Some(("severity", value)) => self.severity == value,
            Some(("type", value)) => self.code.to_string() == value,
            Some(("vm.name", value)) => named(&self.about.vm, &value),
            Some(("disk.alias" | "disk.name", value)) => named(&self.about.disk, &value),
            Some(("origin", value)) => self.origin().to_lowercase() == value,
            _ => (self.description.to_lowercase()).contains(&term.trim_matches('"').to_lowercase()),
        }
    }
}

/// The audit log. Its lock is a leaf: it is taken under the inventory's guard and takes no
/// other lock itself.
#[derive(Debug, Default)]
pub struct Events {
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    last_index: u64,
    events: VecDeque<Event>,
}

impl Log {
    /// Appends an event of type `message` under the next index, dropping the oldest beyond
    /// [`KEPT`]; the event.
    fn push(
        &mut self,
        message: &Message,
        description: String,
        about: About,
        external: Option<External>,
    ) -> Event {
        self.last_index += 1;
        let event = Event {
            index: self.last_index,
            code: message.code,
            severity: message.severity,
            description,
            time: chrono::Utc::now().timestamp_millis(),
            about,
            external,
        };
        self.events.push_back(event.clone());
        while self.events.len() > KEPT {
            self.events.pop_front();
        }
        event
    }
}

impl Events {
    /// Writes what happened.
    pub fn record(&self, what: Audit<'_>, about: About) {
        let description = what.words(&about);
        let mut log = self.log.lock().expect("events lock");
        log.push(what.message(), description, about, None);
    }

    /// Adds an application's event with `severity` and its `description`, unless its origin
    /// already added one with the same custom id (the engine keeps them unique per origin).
    ///
    /// # Errors
    /// The severity is unknown, or the custom id is taken.
    pub(crate) fn add_external(
        &self,
        severity: &str,
        description: String,
        external: External,
        about: About,
    ) -> Result<Event, Refused> {
        let message = EXTERNAL.iter().find(|m| m.severity == severity);
        let message = message.ok_or(Refused::Severity)?;
        let mut log = self.log.lock().expect("events lock");
        if log
            .events
            .iter()
            .any(|e| e.external.as_ref() == Some(&external))
        {
            return Err(Refused::Duplicate);
        }
        Ok(log.push(message, description, about, Some(external)))
    }

    /// The events after index `from` (all without it) that match every term, newest first, at
    /// most `max`.
    pub(crate) fn newest(
        &self,
        from: Option<u64>,
        terms: &[String],
        max: Option<usize>,
    ) -> Vec<Event> {
        let log = self.log.lock().expect("events lock");
        log.events
            .iter()
            .rev()
            .filter(|e| from.is_none_or(|from| e.index > from))
            .filter(|e| terms.iter().all(|t| e.matches(t)))
            .take(max.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// Event `index`, if it is still kept.
    pub(crate) fn get(&self, index: u64) -> Option<Event> {
        let log = self.log.lock().expect("events lock");
        log.events.iter().find(|e| e.index == index).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about_vm(name: &str) -> About {
        About {
            vm: Some(("v1".into(), name.into())),
            disk: None,
            user: Some("admin@internal".into()),
        }
    }

    #[test]
    fn events_in_the_engines_words_newest_first_from_an_index_and_at_most_max() {
        let events = Events::default();
        events.record(Audit::BackupStarted("b1"), about_vm("web"));
        events.record(Audit::BackupFailed("b1"), about_vm("web"));
        events.record(Audit::BackupStarted("b2"), about_vm("db"));
        let all = events.newest(None, &[], None);
        assert_eq!(all.iter().map(|e| e.index).collect::<Vec<_>>(), [3, 2, 1]);
        assert_eq!(
            all[1].description,
            "Backup b1 for VM web failed (User: admin@internal)."
        );
        assert_eq!((all[1].code, all[1].severity), (10792, "error"));
        let after_one = events.newest(Some(1), &[], None);
        assert_eq!(
            after_one.iter().map(|e| e.index).collect::<Vec<_>>(),
            [3, 2]
        );
        assert_eq!(events.newest(None, &[], Some(1))[0].index, 3);
        let b1 = events.newest(None, &["b1".into()], None);
        assert_eq!(
            b1.iter().map(|e| e.code).collect::<Vec<_>>(),
            [10792, 10790]
        );
        let errors = events.newest(None, &["severity=error".into()], None);
        assert_eq!(errors.len(), 1);
        let db = events.newest(None, &["vm.name=DB".into(), "type=10790".into()], None);
        assert_eq!(db.iter().map(|e| e.index).collect::<Vec<_>>(), [3]);
        assert_eq!(events.get(2).map(|e| e.code), Some(10792));
        assert!(events.get(9).is_none());
    }

    #[test]
    fn transfers_are_told_by_their_disk_and_the_log_is_bounded() {
        let events = Events::default();
        let about = About {
            vm: None,
            disk: Some(("d1".into(), "web_os".into())),
            user: None,
        };
        events.record(Audit::TransferCancelled("upload"), about.clone());
        let told = &events.newest(None, &[], None)[0];
        assert_eq!(
            told.description,
            "Image Upload with disk web_os was cancelled."
        );
        assert_eq!(told.json()["disk"]["id"], "d1");
        for _ in 0..KEPT + 5 {
            events.record(Audit::TransferStarted("download"), about.clone());
        }
        let kept = events.newest(None, &[], None);
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].index, (KEPT + 6) as u64, "indexes keep increasing");
    }
}
