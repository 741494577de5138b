//! A point's disks, one after the other: for each, an image transfer of the engine's backup,
//! read into a new local qcow2 (backed by the parent's file for an incremental) through
//! [`download`], and the manifest's entry for it with its block digests.

use std::collections::BTreeMap;
use std::path::Path;

use super::Attempt;
use super::download::{self, Reads, Source, file_names};
use crate::plan::full::Kind;
use crate::run::blocksum::{self, BlockSums};
use crate::run::catalog::{ContentSum, DiskEntry, Manifest};
use crate::run::engine::{Backup, BackupMode, Disk, ImageTransfer, TransferRequest};
use crate::run::job::RunError;
use crate::run::local;
use crate::run::transfer::{finish_transfer, wait_transferring};

/// Where a disk's point is read from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    /// The disk in the engine's running backup (this id).
    Backup(&'a str),
    /// A snapshot's volume of the disk (this disk snapshot id): whole for a full, its layer
    /// alone for an incremental.
    Volume(&'a str),
}

impl Origin<'_> {
    /// What the transfer's extents say must be read.
    fn reads(self, incremental: bool) -> Reads {
        match (self, incremental) {
            (_, false) => Reads::Whole,
            (Origin::Backup(_), true) => Reads::Dirty,
            (Origin::Volume(_), true) => Reads::Layer,
        }
    }
}

impl Attempt<'_> {
    /// Every disk of the point from the engine's backup `started`, in the VM's order; their
    /// manifest entries. A disk is incremental where the point is and the backup reads it so.
    pub(super) async fn transfer_all(
        &self,
        started: &Backup,
        point: &str,
        kind: Kind,
        parent: Option<&Manifest>,
    ) -> Result<Vec<DiskEntry>, RunError> {
        let modes: Vec<Disk> = self.client.backup_disks(self.vm_id, &started.id).await?;
        let mode_of: BTreeMap<&str, &BackupMode> = modes
            .iter()
            .map(|d| {
                (
                    d.id.as_str(),
                    d.backup_mode.as_ref().unwrap_or(&BackupMode::Full),
                )
            })
            .collect();
        let plan = self.sources.iter().map(|source| {
            let incremental = kind == Kind::Incremental
                && mode_of.get(source.disk.id.as_str()) == Some(&&BackupMode::Incremental);
            (source, Origin::Backup(&started.id), incremental)
        });
        self.read_disks(plan.collect(), point, kind, parent).await
    }

    /// Reads each planned disk (its source, where from, whether incremental) into the point;
    /// their manifest entries.
    pub(super) async fn read_disks(
        &self,
        plan: Vec<(&Source, Origin<'_>, bool)>,
        point: &str,
        kind: Kind,
        parent: Option<&Manifest>,
    ) -> Result<Vec<DiskEntry>, RunError> {
        let names = file_names(self.sources);
        let mut entries = Vec::new();
        for (source, origin, incremental) in plan {
            let parent_disk = parent
                .filter(|_| incremental)
                .and_then(|p| p.disks.iter().find(|d| d.id == source.disk.id));
            let file = format!("{point}.{}.{}.qcow2", kind.as_str(), names[&source.disk.id]);
            let entry = self
                .transfer_disk(origin, source, &file, parent_disk)
                .await?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// One disk: an image transfer of `origin`, its extents, the data ranges read in parallel
    /// into a local qcow2 (over `parent`'s file for an incremental); the transfer always
    /// finalized.
    pub(super) async fn transfer_disk(
        &self,
        origin: Origin<'_>,
        source: &Source,
        file: &str,
        parent: Option<&DiskEntry>,
    ) -> Result<DiskEntry, RunError> {
        let size = source.disk.size()?;
        let path = self.catalog.create_image(file)?;
        let backing = parent
            .map(|p| self.catalog.qemu_path(&p.file))
            .transpose()?;
        local::create(&path, size, backing.as_deref())?;
        let transfer = self.open_transfer(origin, source, parent.is_some()).await?;
        self.note_transfer(&transfer.id, true);
        let start_sums = self.parent_sums(parent, size);
        let reads = origin.reads(parent.is_some());
        let moved = self
            .read_transfer(&transfer.id, &path, reads, start_sums, source)
            .await;
        let finished = finish_transfer(self.client, self.options, &transfer.id).await;
        self.note_transfer(&transfer.id, false);
        let (bytes, sums) = moved?;
        finished?;
        let blocks = file.replace(".qcow2", ".sums");
        self.catalog.write_file(&blocks, &sums.to_bytes())?;
        let file_size = self.catalog.file_size(file)?;
        let content = ContentSum {
            algorithm: blocksum::ALGORITHM.into(),
            block_size: blocksum::BLOCK,
            checksum: sums.checksum(),
            blocks,
        };
        let sizes = (size, file_size);
        Ok(disk_entry(source, file, parent, bytes, sizes, content))
    }

    /// Opens the image transfer that reads `source` from `origin` (an incremental's alone).
    async fn open_transfer(
        &self,
        origin: Origin<'_>,
        source: &Source,
        incremental: bool,
    ) -> Result<ImageTransfer, RunError> {
        Ok(match origin {
            Origin::Backup(backup) => {
                let disk = &source.disk.id;
                let request = TransferRequest::Download { disk, backup };
                self.client.create_transfer(request).await?
            }
            Origin::Volume(volume) => {
                self.client
                    .download_disk_snapshot(volume, incremental)
                    .await?
            }
        })
    }

    /// Notes transfer `id` open or ended in the catalog (see `catalog::open_transfers`); a
    /// note that cannot be written costs only the next run's cleanup of a killed run.
    fn note_transfer(&self, id: &str, open: bool) {
        if let Err(e) = self.catalog.note_transfer(id, open) {
            tracing::warn!("noting transfer {id}: {e}");
        }
    }

    /// Waits until transfer `id` is transferring, then reads it into the image at `path`
    /// ([`download::download`]).
    async fn read_transfer(
        &self,
        id: &str,
        path: &Path,
        reads: Reads,
        start_sums: Option<BlockSums>,
        source: &Source,
    ) -> Result<(u64, BlockSums), RunError> {
        let url = wait_transferring(self.client, self.options, id).await?;
        let (client, options) = (self.client, self.options);
        download::download(client, options, &url, path, reads, start_sums, source).await
    }

    /// Where a disk's block digests start: zeroes for a new image, the parent's for an
    /// incremental; `None` when the parent has none usable (older `ovrun`, damaged), and then
    /// every block is hashed from the finished chain.
    fn parent_sums(&self, parent: Option<&DiskEntry>, size: u64) -> Option<BlockSums> {
        let Some(parent) = parent else {
            return Some(BlockSums::zeroes(size));
        };
        let blocks = &parent.content.as_ref()?.blocks;
        let sums = self.catalog.block_sums(parent, size);
        if sums.is_none() {
            tracing::warn!(
                disk = %parent.alias,
                "{blocks} cannot be read, does not fit the disk's size or does not give its \
                 manifest's checksum: hashing every block of the chain"
            );
        }
        sums
    }
}

/// The manifest's entry of a disk read into `file` (from `parent`'s file for an incremental).
fn disk_entry(
    source: &Source,
    file: &str,
    parent: Option<&DiskEntry>,
    bytes_transferred: u64,
    (provisioned_size, file_size): (u64, u64),
    content: ContentSum,
) -> DiskEntry {
    DiskEntry {
        id: source.disk.id.clone(),
        alias: source.disk.label().to_owned(),
        interface: source.interface.clone(),
        bootable: source.bootable,
        provisioned_size,
        mode: if parent.is_some() {
            "incremental"
        } else {
            "full"
        }
        .into(),
        file: file.to_owned(),
        backing: parent.map(|p| p.file.clone()),
        bytes_transferred,
        file_size,
        sha256: None,
        content: Some(content),
    }
}
