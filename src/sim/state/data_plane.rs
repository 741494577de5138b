//! The data plane the image transfers use: the `ovirt-imageio` daemon, where disks and exports
//! are, the transfers with their `qemu-nbd` exports, armed cuts, and the guest's per-disk
//! locks. The transfer routes (`crate::sim::transfers`) drive it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::qemu::nbd::NbdExport;
use crate::sim::disk::DiskImage;
use crate::sim::imageio::Imageio;

/// The data plane the transfers use.
#[derive(Debug)]
pub struct DataPlane {
    /// The daemon.
    pub imageio: Arc<Imageio>,
    /// Where disks (`<id>.qcow2`) are.
    pub disks: PathBuf,
    /// Where export sockets and logs go.
    pub run: PathBuf,
    pub(crate) transfers: Mutex<HashMap<String, Transfer>>,
    pub(crate) cuts: Mutex<Vec<Cut>>,
    /// One lock per disk for what the guest does to it (`qemu-io` takes the image's write
    /// lock: two at once fail with "Failed to get write lock").
    guests: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// An armed cut of the data connection: the export of a matching transfer is killed once its
/// ticket has moved `after_bytes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cut {
    /// The transfer, or any (`None`).
    pub transfer: Option<String>,
    /// Bytes moved before the cut.
    #[serde(default)]
    pub after_bytes: u64,
}

/// One image transfer.
#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) disk: String,
    pub(crate) direction: String,
    pub(crate) phase: &'static str,
    pub(crate) export: Option<NbdExport>,
    pub(crate) url: String,
    pub(crate) backup: Option<String>,
    /// The disk snapshot read, if the transfer reads one.
    pub(crate) volume: Option<String>,
    /// Only that volume, without its backing chain.
    pub(crate) shallow: bool,
    pub(crate) inactivity_timeout: u64,
    pub(crate) timeout_policy: String,
    pub(crate) host: String,
}

impl DataPlane {
    /// A data plane over a running daemon.
    pub fn new(imageio: Imageio, disks: PathBuf, run: PathBuf) -> Self {
        Self {
            imageio: Arc::new(imageio),
            disks,
            run,
            transfers: Mutex::new(HashMap::new()),
            cuts: Mutex::new(Vec::new()),
            guests: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serializes the guest's writes to `disk` (held while `qemu-io` runs).
    fn guest_lock(&self, disk: &str) -> Arc<Mutex<()>> {
        self.guests
            .lock()
            .expect("guests lock")
            .entry(disk.to_owned())
            .or_default()
            .clone()
    }

    /// Runs `work` on disk `disk`'s images off the async threads while holding its guest lock:
    /// one guest write at a time per disk, and no write while a volume changes under it.
    pub async fn with_guest_held<T: Send + 'static>(
        &self,
        disk: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let lock = self.guest_lock(disk);
        tokio::task::spawn_blocking(move || {
            let _held = lock.lock().expect("guest lock");
            work()
        })
        .await
        .expect("a task on a disk's images does not panic")
    }

    /// The qcow2 image of a disk.
    pub fn image(&self, disk: &str) -> DiskImage {
        DiskImage::open(&self.disks.join(format!("{disk}.qcow2")))
    }

    /// Arms a cut of the data connection.
    pub fn arm_cut(&self, cut: Cut) {
        self.cuts.lock().expect("cuts lock").push(cut);
    }

    /// Ends the transfers of a backup that its client left open (the backup is finalized).
    pub async fn end_backup_transfers(&self, backup: &str) {
        let ids: Vec<String> = self
            .transfers
            .lock()
            .expect("transfers lock")
            .iter()
            .filter(|(_, t)| t.backup.as_deref() == Some(backup) && t.export.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.stop(&id, "finished_success").await;
        }
    }

    /// Moves a transfer to `phase`, removes its ticket and stops its export.
    pub(crate) async fn stop(&self, id: &str, phase: &'static str) {
        let export = {
            let mut transfers = self.transfers.lock().expect("transfers lock");
            let Some(transfer) = transfers.get_mut(id) else {
                return;
            };
            transfer.phase = phase;
            transfer.export.take()
        };
        if let Err(e) = self.imageio.remove_ticket(id).await {
            tracing::warn!(transfer = %id, "removing the ticket: {e}");
        }
        if let Some(export) = export {
            let _ = tokio::task::spawn_blocking(move || export.stop()).await;
        }
    }
}
