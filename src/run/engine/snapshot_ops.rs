//! The engine operations of the snapshot method (section 5 of the API page): a VM's snapshots,
//! making one of chosen disks without memory, its disks with their volumes (the disk snapshots
//! an image transfer reads), and removing one. Like [`super::ops`], typed values in and out.

use serde_json::{Value, json};

use super::wire::{Disk, Disks, ImageTransfer, Snapshot, Snapshots};
use super::{EngineClient, EngineError};

/// A snapshot to make: its description and the disks it covers.
#[derive(Debug, Clone)]
pub struct SnapshotRequest<'a> {
    /// The description (ovrun's start with `ovrun `).
    pub description: String,
    /// The disks' ids (only these are snapshotted).
    pub disks: Vec<&'a str>,
}

/// The VM snapshots.
impl EngineClient {
    /// VM `vm_id`'s snapshots, the active one included.
    ///
    /// # Errors
    /// The call fails.
    pub async fn snapshots(&self, vm_id: &str) -> Result<Vec<Snapshot>, EngineError> {
        let path = format!("/vms/{vm_id}/snapshots");
        Ok(self.get::<Snapshots>(&path).await?.snapshot)
    }

    /// Snapshot `id` of VM `vm_id`.
    ///
    /// # Errors
    /// The call fails (404: it is gone, or its creation failed).
    pub async fn snapshot(&self, vm_id: &str, id: &str) -> Result<Snapshot, EngineError> {
        self.get(&format!("/vms/{vm_id}/snapshots/{id}")).await
    }

    /// Starts a snapshot of VM `vm_id`'s disks in `request`, without memory (a backup must not
    /// pause the VM to save it).
    ///
    /// # Errors
    /// The engine refused (409 while the VM or its disks are busy).
    pub async fn create_snapshot(
        &self,
        vm_id: &str,
        request: &SnapshotRequest<'_>,
    ) -> Result<Snapshot, EngineError> {
        let attachments: Vec<Value> = request
            .disks
            .iter()
            .map(|id| json!({"disk": {"id": id}}))
            .collect();
        let body = json!({
            "description": request.description,
            "persist_memorystate": "false",
            "disk_attachments": {"disk_attachment": attachments},
        });
        self.post(&format!("/vms/{vm_id}/snapshots"), &body).await
    }

    /// The disks of snapshot `id`, each with its volume in the snapshot (`image_id`).
    ///
    /// # Errors
    /// The call fails.
    pub async fn snapshot_disks(&self, vm_id: &str, id: &str) -> Result<Vec<Disk>, EngineError> {
        let path = format!("/vms/{vm_id}/snapshots/{id}/disks");
        Ok(self.get::<Disks>(&path).await?.disk)
    }

    /// Asks the engine to remove snapshot `id` (it merges the layers in the background).
    ///
    /// # Errors
    /// The engine refused (409 while the VM or its disks are busy).
    pub async fn remove_snapshot(&self, vm_id: &str, id: &str) -> Result<(), EngineError> {
        self.delete(&format!("/vms/{vm_id}/snapshots/{id}")).await
    }

    /// A download of disk snapshot `volume` (raw): with its backing chain, or (`shallow`) only
    /// what was written while it was the active volume.
    ///
    /// # Errors
    /// The engine refused.
    pub async fn download_disk_snapshot(
        &self,
        volume: &str,
        shallow: bool,
    ) -> Result<ImageTransfer, EngineError> {
        let body = json!({
            "snapshot": {"id": volume}, "direction": "download", "format": "raw",
            "shallow": if shallow { "true" } else { "false" },
            "inactivity_timeout": "120", "timeout_policy": "cancel",
        });
        self.post("/imagetransfers", &body).await
    }
}
