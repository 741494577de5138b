//! The volumes of each disk, as the engine lists them as disk snapshots: one per snapshot that
//! covers the disk (its read-only layer, see `disk/layers.rs`), bottom up, then the active
//! volume. Their ids are derived from the snapshot and the disk, so nothing more is stored: the
//! inventory's snapshots, in creation order, are the chain.

use super::inventory::{Inventory, Snapshot, id_of};

/// One volume of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The disk snapshot's id (what an image transfer's `snapshot` names).
    pub id: String,
    /// The disk.
    pub disk: String,
    /// The snapshot whose layer it is; `None` for the active volume.
    pub snapshot: Option<String>,
    /// The volume below it.
    pub parent: Option<String>,
}

/// The id of snapshot `snapshot`'s volume of disk `disk`.
pub fn layer_id(snapshot: &str, disk: &str) -> String {
    id_of("disk-snapshot", &format!("{snapshot}/{disk}"))
}

/// The snapshots that cover disk `disk`, oldest first.
pub fn snapshots_of<'a>(
    inventory: &'a Inventory,
    disk: &'a str,
) -> impl Iterator<Item = &'a Snapshot> {
    inventory
        .snapshots
        .iter()
        .filter(move |s| s.disks.iter().any(|d| d == disk))
}

/// Disk `disk`'s volumes, bottom up, the active one last (its id changes with each snapshot,
/// as a new active volume is made).
pub fn chain(inventory: &Inventory, disk: &str) -> Vec<Volume> {
    let mut volumes: Vec<Volume> = Vec::new();
    for snapshot in snapshots_of(inventory, disk) {
        volumes.push(Volume {
            id: layer_id(&snapshot.id, disk),
            disk: disk.to_owned(),
            snapshot: Some(snapshot.id.clone()),
            parent: volumes.last().map(|v| v.id.clone()),
        });
    }
    let below = volumes
        .last()
        .and_then(|v| v.snapshot.clone())
        .unwrap_or_default();
    volumes.push(Volume {
        id: id_of("disk-snapshot", &format!("active/{below}/{disk}")),
        disk: disk.to_owned(),
        snapshot: None,
        parent: volumes.last().map(|v| v.id.clone()),
    });
    volumes
}

/// The volume with id `id`, of any disk.
pub fn find(inventory: &Inventory, id: &str) -> Option<Volume> {
    inventory
        .disks
        .iter()
        .flat_map(|d| chain(inventory, &d.id))
        .find(|v| v.id == id)
}

/// The snapshot whose layer sits right above snapshot `snapshot`'s layer of disk `disk`;
/// `None` when the active volume does.
pub fn child_of(inventory: &Inventory, snapshot: &str, disk: &str) -> Option<String> {
    let mut later = snapshots_of(inventory, disk).skip_while(|s| s.id != snapshot);
    later.next();
    later.next().map(|s| s.id.clone())
}
