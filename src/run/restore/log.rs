//! A restore's log: one JSON line per restore in `<restore_log_directory>/<vm>.jsonl`, good
//! or bad; also how a newest point already restored under a name is recognized.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::run::catalog;

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
    /// Whether it succeeded.
    pub result: Verdict,
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

/// How a restore ended, as its log line says (`ok` or `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The VM was restored.
    Ok,
    /// It failed; DR was put back as it was.
    Failed,
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
            .custom_flags(crate::fsutil::NO_FOLLOW)
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
            .find(|e| e.restored_as == name && e.result == Verdict::Ok)
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
            .custom_flags(crate::fsutil::NO_FOLLOW)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_knows_the_last_restore_under_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = RestoreLog::new(dir.path(), "web 01");
        let entry = |point: &str, name: &str, result: Verdict| LogEntry {
            started: Utc::now(),
            seconds: 1.0,
            vm: "web 01".into(),
            point: point.into(),
            taken_at: Utc::now(),
            restored_as: name.into(),
            vm_id: None,
            result,
            error: None,
            disks: Vec::new(),
            bytes: 0,
            replaced: None,
            started_vm: false,
        };
        assert!(log.last_success("p1", "web_dr").is_none());
        log.append(&entry("p1", "web_dr", Verdict::Ok)).unwrap();
        log.append(&entry("p2", "web_dr", Verdict::Failed)).unwrap();
        log.append(&entry("p9", "other", Verdict::Ok)).unwrap();
        assert_eq!(log.last_success("p1", "web_dr").unwrap().point, "p1");
        assert!(log.last_success("p2", "web_dr").is_none(), "p2 failed");
        log.append(&entry("p2", "web_dr", Verdict::Ok)).unwrap();
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
            result: Verdict::Ok,
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
