//! A backup's data path, from the engine's image transfer into the local qcow2: which extents
//! are read, the parallel streamed reads cut into segments that are written and hashed as they
//! pass, and the block digests completed afterwards (zeroed ranges, partly read blocks).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::run::blocksum::{self, BlockSums};
use crate::run::catalog;
use crate::run::engine::{Disk, EngineClient};
use crate::run::imageio::{Extent, Ticket};
use crate::run::job::{Options, RunError, panicked};
use crate::run::local::{self, Writer};
use crate::run::workers::{self, progress_bar};

/// What of a disk a transfer's extents say must be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Every data extent (a full backup).
    Whole,
    /// The extents the backup's bitmap marks dirty (a backup-API incremental).
    Dirty,
    /// What one snapshot layer holds (a `shallow` transfer): every extent that is not a hole,
    /// written zeroes included (a snapshot-method incremental).
    Layer,
}

impl Reads {
    /// The imageio extents context that tells it.
    fn context(self) -> &'static str {
        match self {
            Reads::Dirty => "dirty",
            Reads::Whole | Reads::Layer => "zero",
        }
    }

    /// Whether an extent holds what must be read (or zeroed).
    fn wants(self, extent: &Extent) -> bool {
        match self {
            Reads::Whole => true,
            Reads::Dirty => extent.dirty,
            Reads::Layer => !extent.hole,
        }
    }
}

/// A disk to back up, as attached to the VM.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) disk: Disk,
    pub(crate) interface: String,
    pub(crate) bootable: bool,
    /// The guest's name for it, when the guest agent said.
    pub(crate) logical_name: Option<String>,
}

/// Reads what must be read from the transfer at `url` into the local image at `path`; the
/// bytes read, and the disk's block digests at this point (from the data as it passed, and
/// `start_sums`: the parent's, or zeroes).
///
/// # Errors
/// The data plane, the local image or a worker fails, or the run is being stopped.
pub(crate) async fn download(
    client: &EngineClient,
    options: &Options,
    url: &str,
    path: &Path,
    reads: Reads,
    start_sums: Option<BlockSums>,
    source: &Source,
) -> Result<(u64, BlockSums), RunError> {
    let ticket = Ticket::new(client.http().clone(), url);
    let extents = ticket.extents(reads.context()).await?;
    let size = source.disk.size()?;
    let (data, zeroes) = plan_reads(&extents, reads);
    let total: u64 = data.iter().map(|e| e.length).sum();
    log_plan(source.disk.label(), total, reads, zeroes.len());
    let writer = Arc::new(Writer::open(path, &options.run_dir)?);
    let bar = progress_bar(options.progress, total, source.disk.label());
    let began = std::time::Instant::now();
    let copied = parallel_copy(&ticket, &writer, &data, size, options, &bar).await;
    bar.finish_and_clear();
    let sums = match copied {
        Ok(copied) => {
            log_rate(source.disk.label(), copied.bytes, began);
            let workers = options.workers;
            complete_sums(&writer, copied, zeroes, start_sums, size, workers).await
        }
        Err(e) => Err(e),
    };
    // Closed after a failure too: the image's qemu-nbd must not outlive the run.
    let closed = close(writer).await;
    let sums = sums?;
    closed?;
    Ok(sums)
}

/// The bytes read, and the block digests completed off the async threads (see
/// [`finish_local`]).
async fn complete_sums(
    writer: &Arc<Writer>,
    copied: Copied,
    zeroes: Vec<Extent>,
    start_sums: Option<BlockSums>,
    size: u64,
    workers: usize,
) -> Result<(u64, BlockSums), RunError> {
    let (writer, bytes) = (writer.clone(), copied.bytes);
    let finish = move || finish_local(&writer, &copied, &zeroes, start_sums, size, workers);
    let sums = tokio::task::spawn_blocking(finish)
        .await
        .map_err(|e| panicked(&e))??;
    Ok((bytes, sums))
}

/// Logs what is to be read.
fn log_plan(disk: &str, total: u64, reads: Reads, zero_ranges: usize) {
    tracing::info!(
        disk = %disk,
        "{} to read ({}), {} zero ranges",
        indicatif::HumanBytes(total),
        if reads == Reads::Whole { "data" } else { "changed blocks" },
        zero_ranges
    );
}

/// Logs how much was read and how fast.
fn log_rate(disk: &str, bytes: u64, began: std::time::Instant) {
    let seconds = began.elapsed().as_secs_f64().max(0.001);
    tracing::info!(
        disk = %disk,
        bytes_read = bytes,
        "read {} in {seconds:.1} s ({}/s)",
        indicatif::HumanBytes(bytes),
        indicatif::HumanBytes((bytes as f64 / seconds) as u64)
    );
}

/// Closes the local image once every worker let go of it.
async fn close(writer: Arc<Writer>) -> Result<(), RunError> {
    let writer = Arc::try_unwrap(writer)
        .map_err(|_| RunError::Config("a writer outlived its download".into()))?;
    Ok(tokio::task::spawn_blocking(move || writer.close())
        .await
        .map_err(|e| panicked(&e))??)
}

/// Extents to read, and (incremental only) changed ranges that read as zero, to zero locally
/// (over the parent's data).
fn plan_reads(extents: &[Extent], reads: Reads) -> (Vec<Extent>, Vec<Extent>) {
    let wanted = |e: &&Extent| reads.wants(e);
    let data = extents
        .iter()
        .filter(wanted)
        .filter(|e| !e.zero)
        .copied()
        .collect();
    let zeroes = extents
        .iter()
        .filter(wanted)
        .filter(|e| reads != Reads::Whole && e.zero)
        .copied()
        .collect();
    (data, zeroes)
}

/// What the parallel copy did.
struct Copied {
    bytes: u64,
    /// Digests of the blocks that one read covered whole, hashed as they passed.
    hashed: Vec<(usize, blocksum::Digest)>,
    /// The blocks that reads covered only in part (hashed from the image afterwards).
    partial: Vec<usize>,
}

/// How much of a streamed read is buffered before it is written and hashed (each worker's
/// buffer): two checksum blocks, so 4 workers' buffers stay well inside the memory target.
const READ_SPAN: u64 = 2 * blocksum::BLOCK;

/// The most one ranged read asks for (128 MiB): long requests keep the daemon streaming (the
/// official client asks for whole extents; 8 MiB requests made the full backup 10% slower),
/// short enough to share a disk's data among the workers.
const REQUEST_SPAN: u64 = 16 * READ_SPAN;

/// A streamed read cut into segments that end at multiples of [`READ_SPAN`]: each is written
/// to the image and the checksum blocks it holds whole are hashed from it.
struct Segments<'a> {
    connection: &'a mut local::Connection,
    hashed: &'a mut Vec<(usize, blocksum::Digest)>,
    buffer: &'a mut Vec<u8>,
    /// The image offset of `buffer[0]`.
    at: u64,
    end: u64,
    size: u64,
    read: &'a AtomicU64,
    bar: &'a indicatif::ProgressBar,
}

impl Segments<'_> {
    /// Takes the next bytes of the stream.
    fn push(&mut self, mut piece: &[u8]) -> Result<(), RunError> {
        while !piece.is_empty() {
            let cut = ((self.at / READ_SPAN + 1) * READ_SPAN).min(self.end);
            let segment = usize::try_from(cut - self.at).unwrap_or(usize::MAX);
            let take = (segment - self.buffer.len()).min(piece.len());
            self.buffer.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.buffer.len() == segment {
                self.write_segment()?;
            }
        }
        Ok(())
    }

    /// Reads `length` bytes at `offset` from the ticket through the segments. A local failure
    /// (writing the image) is returned as itself, not as the read's I/O error.
    async fn stream(&mut self, ticket: &Ticket, offset: u64, length: u64) -> Result<(), RunError> {
        let mut local_failure = None;
        let streamed = ticket
            .read(offset, length, |_, piece| {
                self.push(&piece).map_err(|e| {
                    let text = e.to_string();
                    local_failure = Some(e);
                    std::io::Error::other(text)
                })
            })
            .await;
        if let Some(e) = local_failure {
            return Err(e);
        }
        Ok(streamed?)
    }

    fn write_segment(&mut self) -> Result<(), RunError> {
        let length = self.buffer.len() as u64;
        tokio::task::block_in_place(|| -> Result<(), RunError> {
            self.connection.write_at(self.at, self.buffer)?;
            for (index, place) in blocksum::whole_blocks_in(self.size, self.at, length) {
                self.hashed
                    .push((index, blocksum::digest(&self.buffer[place])));
            }
            Ok(())
        })?;
        self.at += length;
        self.buffer.clear();
        self.read.fetch_add(length, Ordering::Relaxed);
        self.bar.inc(length);
        Ok(())
    }
}

/// Copies `data` ranges from the ticket into the image with `options.workers` connections:
/// each takes requests of up to [`REQUEST_SPAN`] and streams them through its buffer of
/// [`READ_SPAN`] into the image, hashing the checksum blocks that a segment holds whole.
async fn parallel_copy(
    ticket: &Ticket,
    writer: &Arc<Writer>,
    data: &[Extent],
    size: u64,
    options: &Options,
    bar: &indicatif::ProgressBar,
) -> Result<Copied, RunError> {
    let requests = data
        .iter()
        .flat_map(|e| blocksum::split_at_multiples(e.start, e.length, REQUEST_SPAN))
        .collect();
    let read = Arc::new(AtomicU64::new(0));
    let hashed = workers::spread(requests, options, |queue| {
        let (ticket, writer, read, bar) =
            (ticket.clone(), writer.clone(), read.clone(), bar.clone());
        async move { copy_ranges(&ticket, &writer, &queue, size, &read, &bar).await }
    })
    .await?
    .concat();
    Ok(Copied {
        bytes: read.load(Ordering::Relaxed),
        hashed,
        partial: partial_blocks(data, size),
    })
}

/// The checksum blocks that the reads of `data` (cut at [`READ_SPAN`]) cover only in part.
fn partial_blocks(data: &[Extent], size: u64) -> Vec<usize> {
    data.iter()
        .flat_map(|e| blocksum::split_at_multiples(e.start, e.length, READ_SPAN))
        .flat_map(|(start, length)| {
            let whole: Vec<usize> = blocksum::whole_blocks_in(size, start, length)
                .into_iter()
                .map(|(index, _)| index)
                .collect();
            blocksum::touched(size, start, length).filter(move |i| !whole.contains(i))
        })
        .collect()
}

/// One download worker: its own connection to the image, ranges taken from `queue` until none
/// is left; the digests of the blocks it hashed whole.
async fn copy_ranges(
    ticket: &Ticket,
    writer: &Writer,
    queue: &workers::Ranges,
    size: u64,
    read: &AtomicU64,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<(usize, blocksum::Digest)>, RunError> {
    let mut connection = writer.connect()?;
    let mut hashed = Vec::new();
    let mut buffer = Vec::with_capacity(usize::try_from(READ_SPAN).unwrap_or(0));
    while let Some((offset, length)) = queue.next()? {
        let mut segments = Segments {
            connection: &mut connection,
            hashed: &mut hashed,
            buffer: &mut buffer,
            at: offset,
            end: offset + length,
            size,
            read,
            bar,
        };
        segments.stream(ticket, offset, length).await?;
    }
    Ok(hashed)
}

/// After the copy: zeroes the dirty ranges that read as zero, and completes the block digests:
/// the hashed blocks, zero blocks, and the blocks only partly read, hashed from the image
/// (where the backing chain fills the rest). With no starting digests every block is hashed.
fn finish_local(
    writer: &Writer,
    copied: &Copied,
    zeroes: &[Extent],
    start: Option<BlockSums>,
    size: u64,
    workers: usize,
) -> Result<BlockSums, RunError> {
    let mut connection = writer.connect()?;
    for zero in zeroes {
        connection.zero(zero.start, zero.length)?;
    }
    let (mut sums, stale) = settle_sums(start, size, copied, zeroes);
    let stale: Vec<usize> = stale.into_iter().collect();
    for share in hash_from_image(writer, &stale, size, workers) {
        for (index, digest) in share? {
            sums.set(index, digest);
        }
    }
    Ok(sums)
}

/// The digests of the `stale` blocks, read back from the image by up to `workers` threads,
/// each with its own connection; one result per thread.
fn hash_from_image(
    writer: &Writer,
    stale: &[usize],
    size: u64,
    workers: usize,
) -> Vec<Result<Vec<(usize, blocksum::Digest)>, RunError>> {
    let threads = workers.clamp(1, stale.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = stale
            .chunks(stale.len().div_ceil(threads).max(1))
            .map(|share| {
                scope.spawn(move || -> Result<_, RunError> {
                    Ok(writer.connect()?.block_digests(size, share)?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(RunError::Panic("a hashing thread panicked".into())))
            })
            .collect()
    })
}

/// The block digests that are known without reading the image, and the blocks to hash from it.
fn settle_sums(
    start: Option<BlockSums>,
    size: u64,
    copied: &Copied,
    zeroes: &[Extent],
) -> (BlockSums, std::collections::BTreeSet<usize>) {
    let mut stale = std::collections::BTreeSet::new();
    let mut sums = start.unwrap_or_else(|| {
        let all = BlockSums::zeroes(size);
        stale.extend(0..all.len());
        all
    });
    stale.extend(copied.partial.iter().copied());
    for zero in zeroes {
        for (start, length) in blocksum::split_at_blocks(zero.start, zero.length) {
            match blocksum::whole_block(size, start, length) {
                Some(index) => sums.set(index, blocksum::zero_digest(length)),
                None => stale.extend(sums.touched(start, length)),
            }
        }
    }
    for &(index, digest) in &copied.hashed {
        sums.set(index, digest);
    }
    (sums, stale)
}

/// Unique file-name parts for the disks: the alias, made safe; the disk id added on a clash.
pub(crate) fn file_names(sources: &[Source]) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in sources {
        *seen.entry(catalog::safe_name(s.disk.label())).or_default() += 1;
    }
    sources
        .iter()
        .map(|s| {
            let name = catalog::safe_name(s.disk.label());
            let unique = if seen[&name] > 1 {
                format!("{name}-{}", s.disk.id.chars().take(8).collect::<String>())
            } else {
                name
            };
            (s.disk.id.clone(), unique)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_digests_come_from_reads_zeroes_and_the_parent_and_the_rest_is_rehashed() {
        const B: u64 = blocksum::BLOCK;
        let size = 4 * B + 4096;
        let mut parent = BlockSums::zeroes(size);
        parent.set(3, blocksum::digest(b"parent's block 3"));
        let copied = Copied {
            bytes: B + 10,
            hashed: vec![(0, blocksum::digest(b"block 0"))],
            partial: vec![2],
        };
        let zero = |start, length| Extent {
            hole: false,
            start,
            length,
            zero: true,
            dirty: true,
        };
        // Block 1 zeroed whole; the short last block zeroed in part.
        let zeroes = [zero(B, B), zero(4 * B, 512)];
        let (sums, stale) = settle_sums(Some(parent.clone()), size, &copied, &zeroes);
        assert_eq!(sums.get(0), &blocksum::digest(b"block 0"));
        assert_eq!(sums.get(1), &blocksum::zero_digest(B));
        assert_eq!(sums.get(3), parent.get(3), "untouched: the parent's");
        assert_eq!(stale.into_iter().collect::<Vec<_>>(), [2, 4]);

        // Without the parent's digests every block is read back.
        let (_, stale) = settle_sums(None, size, &copied, &zeroes);
        assert_eq!(stale.len(), 5);
    }

    #[test]
    fn only_data_is_read_only_dirty_in_an_incremental_and_no_hole_of_a_layer() {
        let e = |start, zero, dirty, hole| Extent {
            start,
            length: 1,
            zero,
            dirty,
            hole,
        };
        let extents = [
            e(0, false, true, false),
            e(1, true, true, false),
            e(2, false, false, false),
            e(3, true, false, true),
        ];
        let (data, zeroes) = plan_reads(&extents, Reads::Whole);
        assert_eq!((data.len(), zeroes.len()), (2, 0));
        let (data, zeroes) = plan_reads(&extents, Reads::Dirty);
        assert_eq!(data, vec![extents[0]]);
        assert_eq!(zeroes, vec![extents[1]]);
        // A layer's written zeroes (no hole) are zeroed over the parent; its holes are not.
        let (data, zeroes) = plan_reads(&extents, Reads::Layer);
        assert_eq!(data, vec![extents[0], extents[2]]);
        assert_eq!(zeroes, vec![extents[1]]);
    }
}
