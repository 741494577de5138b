//! Content checksums of disks, computed exactly as ovirt-imageio's checksum API computes them
//! (`GET /images/{ticket}/checksum?algorithm=sha256&block_size=4194304`, its `blkhash`): the
//! disk cut in blocks of 4 MiB (the last one shorter), each block hashed, the block digests
//! hashed in order. A zero block's digest is the digest of zeroes, so a zero range costs nothing.
//!
//! Block digests are independent, so a backup hashes each block while its data passes through
//! (in any order, from any worker), and an incremental starts from its parent's digests and
//! re-hashes only the blocks it changed. The per-block digests are kept next to the image (the
//! point's `.sums` file); the whole-disk checksum goes into the manifest, where a restore
//! compares it with the DR engine's answer for the uploaded disk.

use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

/// The block size (imageio's default).
pub const BLOCK: u64 = 4 << 20;
/// The algorithm's name as imageio's checksum API takes it.
pub const ALGORITHM: &str = "sha256";

/// One block's digest.
pub type Digest = [u8; 32];

/// The digest of `data`.
pub fn digest(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// The digest of `length` zero bytes (a full block's is computed once).
pub fn zero_digest(length: u64) -> Digest {
    static FULL: OnceLock<Digest> = OnceLock::new();
    let zeroes = |n: u64| digest(&vec![0u8; usize::try_from(n).unwrap_or(0)]);
    if length == BLOCK {
        *FULL.get_or_init(|| zeroes(BLOCK))
    } else {
        zeroes(length)
    }
}

/// The block digests of a disk of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSums {
    size: u64,
    digests: Vec<Digest>,
}

impl BlockSums {
    /// A disk that reads as zeroes (a new image).
    pub fn zeroes(size: u64) -> Self {
        let mut sums = Self {
            size,
            digests: Vec::new(),
        };
        sums.digests = (0..block_count(size))
            .map(|index| zero_digest(sums.range(index).1))
            .collect();
        sums
    }

    /// Digests read back from [`BlockSums::to_bytes`]; `None` when they do not fit `size`.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != block_count(size) * 32 {
            return None;
        }
        let digests = bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32-byte chunk"))
            .collect();
        Some(Self { size, digests })
    }

    /// The digests, one after the other (the `.sums` file).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.digests.concat()
    }

    /// The disk's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many blocks.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether the disk is empty.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Block `index`'s offset and length.
    pub fn range(&self, index: usize) -> (u64, u64) {
        block_range(self.size, index)
    }

    /// Block `index`'s digest.
    pub fn get(&self, index: usize) -> &Digest {
        &self.digests[index]
    }

    /// Sets block `index`'s digest.
    pub fn set(&mut self, index: usize, digest: Digest) {
        self.digests[index] = digest;
    }

    /// The blocks `[start, start + length)` touches.
    pub fn touched(&self, start: u64, length: u64) -> std::ops::Range<usize> {
        touched(self.size, start, length)
    }

    /// The whole disk's checksum, in lowercase hex (imageio's `checksum` field).
    pub fn checksum(&self) -> String {
        let mut outer = Sha256::new();
        for d in &self.digests {
            outer.update(d);
        }
        hex::encode(outer.finalize())
    }
}

fn block_count(size: u64) -> usize {
    usize::try_from(size.div_ceil(BLOCK)).unwrap_or(usize::MAX)
}

/// Block `index`'s offset and length on a disk of `size` bytes.
pub fn block_range(size: u64, index: usize) -> (u64, u64) {
    let start = index as u64 * BLOCK;
    (start, BLOCK.min(size.saturating_sub(start)))
}

/// The blocks `[start, start + length)` touches on a disk of `size` bytes.
pub fn touched(size: u64, start: u64, length: u64) -> std::ops::Range<usize> {
    let count = block_count(size);
    if length == 0 {
        return 0..0;
    }
    let first = usize::try_from(start / BLOCK).unwrap_or(usize::MAX);
    let last = usize::try_from((start + length - 1) / BLOCK).unwrap_or(usize::MAX);
    first.min(count)..(last + 1).min(count)
}

/// The blocks that lie whole inside `[start, start + length)`, with their place in it.
pub fn whole_blocks_in(size: u64, start: u64, length: u64) -> Vec<(usize, std::ops::Range<usize>)> {
    touched(size, start, length)
        .filter_map(|index| {
            let (at, len) = block_range(size, index);
            let inside = at >= start && at + len <= start + length && len > 0;
            let from = usize::try_from(at.checked_sub(start)?).ok()?;
            let len = usize::try_from(len).ok()?;
            inside.then_some((index, from..from + len))
        })
        .collect()
}

/// The block that `[start, start + length)` is exactly, on a disk of `size` bytes.
pub fn whole_block(size: u64, start: u64, length: u64) -> Option<usize> {
    let whole =
        start.is_multiple_of(BLOCK) && length > 0 && (length == BLOCK || start + length == size);
    whole.then(|| usize::try_from(start / BLOCK).ok()).flatten()
}

/// Splits `[start, start + length)` at block boundaries, so that no piece spans two blocks.
pub fn split_at_blocks(start: u64, length: u64) -> impl Iterator<Item = (u64, u64)> {
    split_at_multiples(start, length, BLOCK)
}

/// Splits `[start, start + length)` at the multiples of `span` (a multiple of [`BLOCK`] keeps
/// whole blocks whole).
pub fn split_at_multiples(start: u64, length: u64, span: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = start + length;
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = ((at / span) + 1) * span;
        let piece = (at, next.min(end) - at);
        at += piece.1;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_disk_is_the_digest_of_its_zero_blocks() {
        let size = BLOCK * 2 + 4096;
        let sums = BlockSums::zeroes(size);
        assert_eq!(sums.len(), 3);
        assert_eq!(sums.range(2), (2 * BLOCK, 4096));
        let mut outer = Sha256::new();
        outer.update(digest(&vec![0; BLOCK as usize]));
        outer.update(digest(&vec![0; BLOCK as usize]));
        outer.update(digest(&[0; 4096]));
        assert_eq!(sums.checksum(), hex::encode(outer.finalize()));
    }

    #[test]
    fn digests_round_trip_through_bytes_of_the_right_size_only() {
        let mut sums = BlockSums::zeroes(BLOCK * 3);
        sums.set(1, digest(b"data"));
        let bytes = sums.to_bytes();
        assert_eq!(BlockSums::from_bytes(BLOCK * 3, &bytes), Some(sums));
        assert_eq!(BlockSums::from_bytes(BLOCK * 4, &bytes), None);
    }

    #[test]
    fn ranges_map_to_the_blocks_they_touch() {
        let sums = BlockSums::zeroes(BLOCK * 4);
        assert_eq!(sums.touched(0, BLOCK), 0..1);
        assert_eq!(sums.touched(BLOCK - 1, 2), 0..2);
        assert_eq!(sums.touched(3 * BLOCK, 10 * BLOCK), 3..4);
        assert_eq!(sums.touched(5, 0), 0..0);
        assert_eq!(whole_block(BLOCK * 4, BLOCK, BLOCK), Some(1));
        assert_eq!(whole_block(BLOCK * 4, BLOCK, 4096), None);
        assert_eq!(
            whole_block(BLOCK + 4096, BLOCK, 4096),
            Some(1),
            "the short last block"
        );
    }

    #[test]
    fn whole_blocks_are_found_inside_a_longer_read() {
        let size = 3 * BLOCK + 100;
        let b = BLOCK as usize;
        assert_eq!(
            whole_blocks_in(size, BLOCK - 8, 2 * BLOCK + 8),
            vec![(1, 8..8 + b), (2, 8 + b..8 + 2 * b)]
        );
        assert_eq!(whole_blocks_in(size, 3 * BLOCK, 100), vec![(3, 0..100)]);
        assert!(whole_blocks_in(size, 10, BLOCK).is_empty());
    }

    #[test]
    fn splitting_keeps_every_piece_inside_one_block() {
        let pieces: Vec<_> = split_at_blocks(BLOCK - 10, BLOCK + 20).collect();
        assert_eq!(
            pieces,
            vec![(BLOCK - 10, 10), (BLOCK, BLOCK), (2 * BLOCK, 10)]
        );
        assert_eq!(split_at_blocks(7, 0).count(), 0);
    }
}
