//! What follows a point that was made: the run recorded in the VM's status (or the point
//! withdrawn when it cannot be), the checkpoint exported, and retention applied.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::plan::runner::RunnerConfig;
use crate::run::catalog::{self, Catalog, Manifest};
use crate::run::job::RunError;

/// Records a run that made a point in the VM's status. A status that cannot be written (a full
/// disk) withdraws the point, whose files then free the space for recording the failure: a
/// point that `ovrun status` and the metrics do not show would be a success nobody sees.
pub(super) fn record_success(
    catalog: &Catalog,
    started: DateTime<Utc>,
    done: (Manifest, Option<String>),
) -> Result<(Manifest, Option<String>), RunError> {
    match catalog.record_run(started, Ok(&done.0.point)) {
        Ok(()) => Ok(done),
        Err(e) => {
            withdraw(catalog, &done.0);
            Err(e.into())
        }
    }
}

/// Removes a committed point: its manifest first (from then on its files are leftovers), then
/// its files. A failure to remove is logged: the next run's leftover sweep removes the rest.
fn withdraw(catalog: &Catalog, manifest: &Manifest) {
    tracing::warn!(point = %manifest.point, "withdrawing the point: its run could not be recorded");
    if let Err(e) = catalog.remove(&manifest.file_name()) {
        tracing::warn!("{e}");
    }
    catalog.remove_point_files(&manifest.point);
}

/// Writes the point's checkpoint to the `checkpoints_file`. The manifests are the truth and the
/// file an export for the predecessor's tools, so a failure is a warning: the point counts,
/// and the run (and the restore that follows it) goes on.
pub(super) fn export_checkpoint(config: &RunnerConfig, manifest: &Manifest) {
    let path = Path::new(&config.checkpoints_file);
    if let Err(e) = catalog::record_checkpoint(
        path,
        &config.vm,
        manifest.checkpoint.as_deref(),
        &manifest.point,
    ) {
        tracing::warn!(
            point = %manifest.point,
            "the point is complete, but the checkpoints file {} was not updated: {e}; the \
             next backup writes it again (check that it can be written)",
            path.display()
        );
    }
}

/// Retention after a successful backup; a failure to prune is logged, not fatal (the backup
/// is good, and the next run prunes again).
pub(super) fn prune_after_backup(config: &RunnerConfig, catalog: &Catalog) -> Vec<String> {
    match catalog.prune(&config.retention, config.zone(), Utc::now(), false) {
        Ok(verdict) => {
            for id in &verdict.delete {
                tracing::info!(point = %id, "pruned by retention");
            }
            verdict.delete
        }
        Err(e) => {
            tracing::warn!("pruning failed (the next run tries again): {e}");
            Vec::new()
        }
    }
}
