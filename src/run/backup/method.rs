//! Which way a run reads the VM's disks (the policy's `backup_method`): the engine's backup API
//! (4.4+: checkpoints and dirty bitmaps) or VM snapshots (every engine, every disk format), and
//! what each needs of the last point to build an incremental on it.

use crate::plan::model::BackupMethod;
use crate::plan::runner::RunnerConfig;
use crate::run::catalog::Manifest;
use crate::run::engine::{BACKUP_API_SINCE, EngineClient};
use crate::run::job::RunError;

/// A way of reading disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMethod {
    /// The incremental backup API.
    BackupApi,
    /// VM snapshots and disk snapshot transfers.
    Snapshot,
}

impl ReadMethod {
    /// The policy's word for it (also the manifest's).
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ReadMethod::BackupApi => BackupMethod::BackupApi.as_str(),
            ReadMethod::Snapshot => BackupMethod::Snapshot.as_str(),
        }
    }
}

/// The way this run reads the disks, and why (for the log and the manifest).
#[derive(Debug, Clone)]
pub(super) struct Chosen {
    pub(super) kind: ReadMethod,
    pub(super) why: String,
}

impl Chosen {
    /// The VM snapshot point `last` kept for an incremental of this method, if any.
    pub(super) fn kept_snapshot(&self, last: &Manifest) -> Option<String> {
        if self.kind != ReadMethod::Snapshot {
            return None;
        }
        last.kept_snapshot().map(str::to_owned)
    }

    /// Why an incremental of this method cannot build on `last` whatever the engine says, if
    /// it cannot (it was taken by the other method).
    pub(super) fn cannot_build_on(&self, last: &Manifest) -> Option<String> {
        match self.kind {
            ReadMethod::BackupApi => last
                .checkpoint
                .is_none()
                .then(|| "the last point has no checkpoint".into()),
            ReadMethod::Snapshot => self.kept_snapshot(last).is_none().then(|| {
                "the last point was not taken by the snapshot method (no snapshot was kept)".into()
            }),
        }
    }
}

/// The method `config` asks for; for `auto`, the backup API where the engine has it.
///
/// # Errors
/// The engine cannot be asked which it is, or `backup_api` is asked of an engine without it.
pub(super) async fn choose_method(
    client: &EngineClient,
    config: &RunnerConfig,
) -> Result<Chosen, RunError> {
    let chosen = |kind, why: String| Ok(Chosen { kind, why });
    match config.backup.backup_method {
        BackupMethod::Snapshot => chosen(ReadMethod::Snapshot, "backup_method is snapshot".into()),
        BackupMethod::BackupApi => {
            let root = client.require_backup_api().await?;
            let why = format!("backup_method is backup_api; {}", root.product());
            chosen(ReadMethod::BackupApi, why)
        }
        BackupMethod::Auto => {
            let root = client.api_root().await?;
            let (major, minor) = BACKUP_API_SINCE;
            if root.has_backup_api() {
                let why = format!("backup_method auto: {} has the backup API", root.product());
                return chosen(ReadMethod::BackupApi, why);
            }
            let why = format!(
                "backup_method auto: {} has no backup API (it came with {major}.{minor})",
                root.product()
            );
            chosen(ReadMethod::Snapshot, why)
        }
    }
}
