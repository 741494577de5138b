//! The snapshot method (the predecessor's way, for every engine and every disk): a VM snapshot
//! of the backed-up disks without memory, each disk's volume in it read through an image
//! transfer of the disk snapshot, then the snapshot removed.
//!
//! For incrementals the newest point's snapshot is kept until the next run: the next
//! snapshot's volume is then exactly what the guest wrote in between (the layer above the kept
//! one), read alone through a `shallow` transfer; afterwards the older snapshot goes. Where the
//! engine cannot give that layer (the kept snapshot is gone, or another snapshot was taken in
//! between), the run takes a full and says why.
//!
//! Safety: every snapshot this code makes is described `ovrun <point>`. A run that fails or is
//! stopped removes its own snapshot before it returns (waits that undo are not stopped); one
//! that was killed leaves it, and the next run removes every `ovrun` snapshot but the one the
//! last point kept.

use super::Attempt;
use super::disks::Origin;
use crate::plan::full::Kind;
use crate::run::catalog::{self, MANIFEST_FORMAT, Manifest};
use crate::run::engine::wait::{Seen, wait_until};
use crate::run::engine::{
    EngineClient, EngineError, Snapshot, SnapshotRequest, SnapshotStatus, shown,
};
use crate::run::job::{Options, RunError};
use crate::run::retry;

/// How ovrun's snapshots' descriptions start.
const MARK: &str = "ovrun ";

/// Why the snapshot the last point kept cannot be built on, if it cannot.
///
/// # Errors
/// The engine's snapshots cannot be listed.
pub(super) async fn kept_snapshot_lost(
    client: &EngineClient,
    vm_id: &str,
    last: &Manifest,
) -> Result<Option<String>, RunError> {
    let kept = last.kept_snapshot().unwrap_or_default();
    let snapshots = client.snapshots(vm_id).await?;
    Ok(match snapshots.iter().find(|s| s.id == kept) {
        None => Some(format!(
            "the last point's snapshot {kept} is gone from the engine: the layer above it \
             cannot be read"
        )),
        Some(s) if s.snapshot_status != Some(SnapshotStatus::Ok) => Some(format!(
            "the last point's snapshot {kept} is {}",
            shown(s.snapshot_status.as_ref())
        )),
        Some(_) => None,
    })
}

/// Removes VM `vm_id`'s snapshots that an `ovrun` made, but `keep`: left by a run that was
/// killed, or the previous point's once a newer one is kept. A removal that fails is logged
/// (the next run tries again). How many were removed.
///
/// # Errors
/// The snapshots cannot be listed.
pub(super) async fn remove_leftover_snapshots(
    client: &EngineClient,
    vm_id: &str,
    keep: Option<String>,
    options: &Options,
) -> Result<usize, RunError> {
    let leftover = |s: &Snapshot| is_ours(s) && Some(&s.id) != keep.as_ref();
    remove_snapshots(client, vm_id, options, (leftover, "no point builds on it")).await
}

/// Removes VM `vm_id`'s snapshots that `wanted` picks (never the active one), saying `why` in
/// the log; one whose removal fails is logged and left for the next run. How many went.
///
/// # Errors
/// The snapshots cannot be listed.
async fn remove_snapshots(
    client: &EngineClient,
    vm_id: &str,
    options: &Options,
    (wanted, why): (impl Fn(&Snapshot) -> bool, &str),
) -> Result<usize, RunError> {
    let snapshots = client.snapshots(vm_id).await?;
    let mut removed = 0;
    for snapshot in snapshots.iter().filter(|s| !s.is_active() && wanted(s)) {
        let description = snapshot.description.as_deref().unwrap_or_default();
        tracing::info!(snapshot = %snapshot.id, "removing snapshot '{description}': {why}");
        match remove_snapshot(client, vm_id, &snapshot.id, options).await {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!("snapshot '{description}' is left; the next run removes it: {e}")
            }
        }
    }
    Ok(removed)
}

fn is_ours(snapshot: &Snapshot) -> bool {
    snapshot
        .description
        .as_deref()
        .is_some_and(|d| d.starts_with(MARK))
}

/// Removes snapshot `id` and waits until it is gone (its layers merged); a busy VM (409) is
/// waited for. Neither wait is ended by a stop signal: undoing must finish.
///
/// # Errors
/// The engine refused, or a wait ran out.
async fn remove_snapshot(
    client: &EngineClient,
    vm_id: &str,
    id: &str,
    options: &Options,
) -> Result<(), RunError> {
    let patience = retry::unstoppable(options, options.engine_lock_wait);
    let what = format!("the engine to accept the removal of snapshot {id}");
    wait_until(&what, patience, async || {
        match client.remove_snapshot(vm_id, id).await {
            Ok(()) => Ok(Seen::Done(())),
            Err(e) if e.is_not_found() => Ok(Seen::Done(())),
            Err(e) if is_busy(&e) || e.is_transient() => Ok(Seen::Waiting(e.to_string())),
            Err(e) => Err(RunError::from(e)),
        }
    })
    .await?;
    let what = format!("snapshot {id} to be removed (its layers merged)");
    let patience = retry::unstoppable(options, retry::PHASE_WAIT);
    Ok(wait_until(&what, patience, async || {
        snapshot_gone(client, vm_id, id).await
    })
    .await?)
}

/// Whether snapshot `id` is gone; else its status.
async fn snapshot_gone(client: &EngineClient, vm_id: &str, id: &str) -> Result<Seen<()>, RunError> {
    match client.snapshot(vm_id, id).await {
        Err(e) if e.is_not_found() => Ok(Seen::Done(())),
        Err(e) if e.is_transient() => Ok(Seen::Waiting(e.to_string())),
        Err(e) => Err(e.into()),
        Ok(s) => Ok(Seen::Waiting(format!(
            "status {}",
            shown(s.snapshot_status.as_ref())
        ))),
    }
}

/// The engine refuses because the VM or its disks are busy (another snapshot, a transfer).
fn is_busy(error: &EngineError) -> bool {
    error.status() == Some(reqwest::StatusCode::CONFLICT)
}

impl Attempt<'_> {
    /// Takes the point by the snapshot method: makes the snapshot, reads it, keeps it for the
    /// next incremental and removes the older one; on any failure removes it and the point's
    /// files. The manifest, and the fallback's words when an incremental could not be taken.
    pub(super) async fn take_by_snapshot(
        &self,
        kind: Kind,
        reason: &str,
        parent: Option<&Manifest>,
    ) -> Result<(Manifest, Option<String>), RunError> {
        let point = catalog::point_id(self.taken_at);
        let snapshot = match self.make_snapshot(&point).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.remove_ours(&point).await;
                return Err(e);
            }
        };
        let taken = self
            .read_snapshot(&snapshot, &point, (kind, reason, parent))
            .await;
        if taken.is_err() {
            self.catalog.remove_point_files(&point);
            self.remove_ours(&point).await;
            return taken;
        }
        let keep = Some(snapshot.id.clone());
        if let Err(e) = remove_leftover_snapshots(self.client, self.vm_id, keep, self.options).await
        {
            tracing::warn!("the older snapshots stay until the next run: {e}");
        }
        taken
    }

    /// Removes this run's snapshot of point `point` (found by its description: its creation's
    /// answer may have been lost), logging what fails.
    async fn remove_ours(&self, point: &str) {
        let description = format!("{MARK}{point}");
        let this_run = |s: &Snapshot| s.description.as_deref() == Some(&description);
        let what = (this_run, "this run did not finish");
        if let Err(e) = remove_snapshots(self.client, self.vm_id, self.options, what).await {
            tracing::warn!("snapshot '{description}' may be left; the next run removes it: {e}");
        }
    }

    /// Makes the point's snapshot of the backed-up disks (a busy VM is waited for) and waits
    /// until it is made.
    async fn make_snapshot(&self, point: &str) -> Result<Snapshot, RunError> {
        let request = SnapshotRequest {
            description: format!("{MARK}{point}"),
            disks: self.sources.iter().map(|s| s.disk.id.as_str()).collect(),
        };
        let patience = retry::stoppable(self.options, self.options.engine_lock_wait).steady();
        let what = format!("VM {} to accept a snapshot", self.config.vm);
        let created = wait_until(&what, patience, async || {
            match self.client.create_snapshot(self.vm_id, &request).await {
                Ok(snapshot) => Ok(Seen::Done(snapshot)),
                Err(e) if is_busy(&e) => {
                    tracing::info!("{e}; waiting");
                    Ok(Seen::Waiting(e.to_string()))
                }
                Err(e) => Err(RunError::from(e)),
            }
        })
        .await?;
        self.wait_made(&created.id).await?;
        Ok(created)
    }

    /// Waits until snapshot `id` is `ok` (at most `engine_lock_wait`: its disks are locked
    /// meanwhile). A snapshot that vanishes failed on the engine.
    async fn wait_made(&self, id: &str) -> Result<(), RunError> {
        let what = format!("snapshot {id} of VM {} to be made", self.config.vm);
        let patience = retry::stoppable(self.options, self.options.engine_lock_wait);
        let poll = async || match self.client.snapshot(self.vm_id, id).await {
            Ok(s) if s.snapshot_status == Some(SnapshotStatus::Ok) => Ok(Seen::Done(())),
            Ok(s) => Ok(Seen::Waiting(format!(
                "status {}",
                shown(s.snapshot_status.as_ref())
            ))),
            Err(e) if e.is_not_found() => Err(RunError::Failed(format!(
                "the engine failed to make snapshot {id} (it is gone); its events say why"
            ))),
            Err(e) => Err(e.into()),
        };
        Ok(wait_until(&what, patience, poll).await?)
    }

    /// Reads every disk's volume in `snapshot` into the point and commits its manifest; an
    /// incremental whose layer the engine cannot give becomes a full.
    async fn read_snapshot(
        &self,
        snapshot: &Snapshot,
        point: &str,
        chosen: (Kind, &str, Option<&Manifest>),
    ) -> Result<(Manifest, Option<String>), RunError> {
        let (fallback, (kind, reason, parent)) = self.layer_or_full(snapshot, chosen).await?;
        tracing::info!(vm = %self.config.vm, point = %point, "{} backup by snapshot: {reason}", kind.as_str());
        let disks = self.read_volumes(snapshot, point, kind, parent).await?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            vm: self.config.vm.clone(),
            vm_id: self.vm_id.to_owned(),
            point: point.to_owned(),
            kind: kind.as_str().into(),
            reason: reason.into(),
            taken_at: self.taken_at,
            parent: parent.map(|p| p.point.clone()),
            backup_id: snapshot.id.clone(),
            from_checkpoint: None,
            checkpoint: None,
            memory: self.memory,
            method: Some(self.method_record(Some(snapshot.id.clone()))),
            config: self.vm_config.clone(),
            disks,
        };
        self.catalog.commit(&manifest)?;
        Ok((manifest, fallback))
    }

    /// The chosen kind, or a full (and the fallback's words) when an incremental's layer is not
    /// what the engine gives ([`Self::layer_gap`]).
    async fn layer_or_full<'m>(
        &self,
        snapshot: &Snapshot,
        chosen: (Kind, &'m str, Option<&'m Manifest>),
    ) -> Result<(Option<String>, (Kind, &'m str, Option<&'m Manifest>)), RunError> {
        let Some(parent) = chosen.2 else {
            return Ok((None, chosen));
        };
        let Some(why) = self.layer_gap(parent, snapshot).await? else {
            return Ok((None, chosen));
        };
        let words = format!("incremental backup not possible ({why}); taking a full backup");
        tracing::warn!("{words}");
        let full = (
            Kind::Full,
            "fallback: the engine cannot give the layer",
            None,
        );
        Ok((Some(words), full))
    }

    /// Why the new snapshot's layer is not exactly what was written since `parent`'s kept
    /// snapshot, if it is not: the kept one is gone, or another snapshot lies between them.
    async fn layer_gap(
        &self,
        parent: &Manifest,
        new: &Snapshot,
    ) -> Result<Option<String>, RunError> {
        let kept = parent.kept_snapshot();
        let mut taken: Vec<Snapshot> = self.client.snapshots(self.vm_id).await?;
        taken.retain(|s| !s.is_active());
        taken.sort_by_key(|s| s.date.unwrap_or_default());
        let at = |id: Option<&str>| taken.iter().position(|s| Some(s.id.as_str()) == id);
        let (Some(from), Some(to)) = (at(kept), at(Some(&new.id))) else {
            return Ok(Some(
                "the last point's snapshot is gone from the engine".into(),
            ));
        };
        Ok(taken
            .get(from + 1..to)
            .and_then(|between| between.first())
            .map(|other| {
                format!(
                    "snapshot '{}' was taken after the last point's: the layer holds only what \
                 was written since it",
                    other.description.as_deref().unwrap_or(&other.id)
                )
            }))
    }

    /// Each disk's volume in `snapshot`, whole or (an incremental) its layer alone.
    async fn read_volumes(
        &self,
        snapshot: &Snapshot,
        point: &str,
        kind: Kind,
        parent: Option<&Manifest>,
    ) -> Result<Vec<crate::run::catalog::DiskEntry>, RunError> {
        let volumes = self.client.snapshot_disks(self.vm_id, &snapshot.id).await?;
        let mut plan = Vec::new();
        for source in self.sources {
            let volume = volumes
                .iter()
                .find(|d| d.id == source.disk.id)
                .and_then(|d| d.image_id.as_deref())
                .ok_or_else(|| {
                    RunError::Failed(format!(
                        "the engine does not name disk {}'s volume in snapshot {}",
                        source.disk.label(),
                        snapshot.id
                    ))
                })?;
            plan.push((source, Origin::Volume(volume), kind == Kind::Incremental));
        }
        self.read_disks(plan, point, kind, parent).await
    }
}
