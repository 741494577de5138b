//! A restore's data path, from the point's local chain to the DR engine's image transfer: the
//! chain read in one pass through a read-only `qemu-nbd` of its top file, only its data extents
//! sent in parallel connections, and imageio's checksum of the result compared with the point's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::run::blocksum;
use crate::run::catalog::{Catalog, DiskEntry};
use crate::run::imageio::Ticket;
use crate::run::job::{Options, RunError, panicked};
use crate::run::local::{self, Writer};
use crate::run::workers::{self, Ranges, progress_bar};

/// Reads the point's chain of `disk` through a read-only `qemu-nbd` and writes its data
/// extents to the ticket with `options.workers` connections; the bytes sent. Zero extents are
/// not sent: a new disk reads as zeroes.
///
/// # Errors
/// The chain cannot be read, the data plane fails, or the run is being stopped.
pub(crate) async fn send_chain(
    catalog: &Catalog,
    options: &Options,
    ticket: &Ticket,
    disk: &DiskEntry,
) -> Result<u64, RunError> {
    let top = catalog.qemu_path(&disk.file)?;
    let map_top = top.clone();
    let extents = tokio::task::spawn_blocking(move || local::map(&map_top))
        .await
        .map_err(|e| panicked(&e))??;
    let pieces: Vec<(u64, u64)> = extents
        .iter()
        .filter(|e| e.data)
        .flat_map(|e| blocksum::split_at_blocks(e.start, e.length))
        .collect();
    let total: u64 = pieces.iter().map(|p| p.1).sum();
    tracing::info!(disk = %disk.alias, "{} of data to send", indicatif::HumanBytes(total));
    let reader = Arc::new(Writer::open_read_only(&top, &options.run_dir)?);
    let bar = progress_bar(options.progress, total, &disk.alias);
    let sent = parallel_upload(ticket, &reader, pieces, options, &bar).await;
    bar.finish_and_clear();
    let reader = Arc::try_unwrap(reader)
        .map_err(|_| RunError::Config("a chain reader outlived its upload".into()))?;
    let closed = tokio::task::spawn_blocking(move || reader.close())
        .await
        .map_err(|e| panicked(&e))?;
    let sent = sent?;
    closed?;
    Ok(sent)
}

/// imageio's checksum of the uploaded disk against the one `point` recorded; `None` for a
/// point that recorded none (taken by an older `ovrun`).
///
/// # Errors
/// The checksum cannot be had, or differs.
pub(crate) async fn compare_checksum(
    ticket: &Ticket,
    disk: &DiskEntry,
    point: &str,
) -> Result<Option<String>, RunError> {
    let Some(recorded) = &disk.content else {
        tracing::warn!(
            disk = %disk.alias,
            "point {point} recorded no content checksum: the upload is not compared"
        );
        return Ok(None);
    };
    let remote = ticket
        .checksum(&recorded.algorithm, recorded.block_size)
        .await?;
    if remote != recorded.checksum {
        return Err(RunError::Failed(format!(
            "disk {}: the DR engine's checksum of the uploaded disk is {remote}, the point \
             recorded {}: the upload is discarded (run `ovrun verify` on the catalog)",
            disk.alias, recorded.checksum
        )));
    }
    Ok(Some(remote))
}

/// Sends `pieces` of the chain served by `reader` to the ticket with `options.workers`
/// connections; the bytes sent.
async fn parallel_upload(
    ticket: &Ticket,
    reader: &Arc<Writer>,
    pieces: Vec<(u64, u64)>,
    options: &Options,
    bar: &indicatif::ProgressBar,
) -> Result<u64, RunError> {
    let sent = Arc::new(AtomicU64::new(0));
    workers::spread(pieces, options, |queue| {
        let (ticket, reader, sent, bar) =
            (ticket.clone(), reader.clone(), sent.clone(), bar.clone());
        async move { send_ranges(&ticket, &reader, &queue, &sent, &bar).await }
    })
    .await?;
    Ok(sent.load(Ordering::Relaxed))
}

/// One upload worker: its own connection to the chain, ranges taken from `queue` until none is
/// left, each read whole and written to the ticket.
async fn send_ranges(
    ticket: &Ticket,
    reader: &Writer,
    queue: &Ranges,
    sent: &AtomicU64,
    bar: &indicatif::ProgressBar,
) -> Result<(), RunError> {
    let mut connection = reader.connect()?;
    while let Some((offset, length)) = queue.next()? {
        let mut buffer = vec![0u8; usize::try_from(length).unwrap_or(0)];
        tokio::task::block_in_place(|| connection.read_at(offset, &mut buffer))?;
        ticket.write(offset, Bytes::from(buffer)).await?;
        sent.fetch_add(length, Ordering::Relaxed);
        bar.inc(length);
    }
    Ok(())
}
