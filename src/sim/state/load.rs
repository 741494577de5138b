//! How many VMs the engine backs up at once, and the most it ever did since the count was last
//! reset (`/ovsim/admin/peak-backups`): what a test reads to see that clients kept to an
//! engine's limit of concurrent backups.
//!
//! A VM counts as being backed up while it has a backup of the backup API that is neither
//! `succeeded` nor `failed` (from `POST /vms/{id}/backups` on, through its finalize), or while
//! one of its disk snapshots is being downloaded by an image transfer not yet `finished_*`
//! (the snapshot method: it holds no backup, but its transfers load the engine as a backup's
//! do). A VM counts once however many disks it moves. Between two of a snapshot-method run's
//! transfers the VM does not count, so its count is a lower bound of the runs in progress; a
//! backup-API run counts from its start to its end.
//!
//! The count is taken where it can grow, under the inventory's lock (and then the transfers'
//! lock, the one order they are taken in together): when a backup is registered and when a
//! snapshot's download opens. So no peak is missed between two looks.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Serialize;

use super::data_plane::Transfer;
use crate::sim::inventory::Inventory;

/// The most VMs seen being backed up at once.
#[derive(Debug, Default)]
pub struct BackupLoad {
    peak: Mutex<usize>,
}

/// What `GET /ovsim/admin/peak-backups` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Load {
    /// VMs being backed up now.
    pub running: usize,
    /// The most at once since the start or the last reset.
    pub peak: usize,
}

impl BackupLoad {
    /// Notes that `running` VMs are being backed up now.
    pub(crate) fn observe(&self, running: usize) {
        let mut peak = self.peak.lock().expect("peak lock");
        *peak = (*peak).max(running);
    }

    /// The count now and the peak.
    pub fn load(&self, running: usize) -> Load {
        self.observe(running);
        Load {
            running,
            peak: *self.peak.lock().expect("peak lock"),
        }
    }

    /// Starts counting again from the VMs being backed up now.
    pub fn reset(&self, running: usize) -> Load {
        *self.peak.lock().expect("peak lock") = running;
        Load {
            running,
            peak: running,
        }
    }
}

/// The VMs being backed up now (see the module doc).
pub(crate) fn running(inventory: &Inventory, transfers: &HashMap<String, Transfer>) -> usize {
    let by_api = inventory
        .backups
        .iter()
        .filter(|b| b.is_running())
        .map(|b| b.vm.clone());
    let by_snapshot = transfers
        .values()
        .filter(|t| reads_a_snapshot(t))
        .filter_map(|t| Some(inventory.owner_of(&t.disk)?.id.clone()));
    by_api.chain(by_snapshot).collect::<BTreeSet<_>>().len()
}

/// A snapshot method's transfer still open: a download of a disk snapshot outside any backup.
pub(crate) fn reads_a_snapshot(transfer: &Transfer) -> bool {
    transfer.direction == "download"
        && transfer.backup.is_none()
        && transfer.volume.is_some()
        && !transfer.phase.starts_with("finished")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_seen_until_a_reset() {
        let load = BackupLoad::default();
        load.observe(2);
        load.observe(1);
        assert_eq!(
            load.load(0),
            Load {
                running: 0,
                peak: 2
            }
        );
        assert_eq!(load.load(3).peak, 3, "a look counts too");
        assert_eq!(
            load.reset(1),
            Load {
                running: 1,
                peak: 1
            }
        );
        assert_eq!(load.load(0).peak, 1);
    }
}
