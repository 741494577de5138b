//! A disk's content checked against its recorded block digests: the digests file read and
//! checked first, then the blocks the file holds read through its chain and hashed, and the
//! blocks it does not hold compared with its backing file's digests.

use std::io::Read;
use std::path::Path;

use super::{TAKE_A_FULL, counted};
use crate::run::blocksum::{self, BlockSums};
use crate::run::catalog::{Catalog, CatalogError, ContentSum, DiskEntry, Manifest};
use crate::run::local::{self, LocalError, Writer};

/// The disk's content against its recorded block digests (nothing to check for a point of an
/// older `ovrun`, which recorded the file's SHA-256). Only run on a file that is otherwise
/// sound, since it reads through the backing chain.
pub(super) fn check_content(
    catalog: &Catalog,
    points: &[Manifest],
    disk: &DiskEntry,
) -> Vec<String> {
    let Some(content) = &disk.content else {
        return Vec::new();
    };
    let sums = match recorded_sums(catalog, disk.provisioned_size, content) {
        Ok(sums) => sums,
        Err(problem) => return vec![problem],
    };
    let base = backing_sums(catalog, points, disk);
    let image = match catalog.qemu_path(&disk.file) {
        Ok(image) => image,
        Err(e) => return vec![format!("its content cannot be read: {e}")],
    };
    match content_mismatches(&image, &sums, base.as_ref()) {
        Ok(bad) if bad.is_empty() => Vec::new(),
        Ok(bad) => vec![format!(
            "content mismatch in {} (first at offset {}): the image's bytes changed since the \
             backup; {TAKE_A_FULL}",
            counted(bad.len(), "block"),
            sums.range(bad[0]).0
        )],
        Err(e) => vec![format!("its content cannot be read: {e}")],
    }
}

/// The disk's recorded block digests, read and checked against its manifest; the problem
/// when they cannot be used.
fn recorded_sums(catalog: &Catalog, size: u64, content: &ContentSum) -> Result<BlockSums, String> {
    let sums = match read_file(catalog, &content.blocks) {
        Ok(bytes) => BlockSums::from_bytes(size, &bytes),
        Err(e) => {
            return Err(format!(
                "its block digests {} cannot be read ({e}): the content cannot be checked; \
                 {TAKE_A_FULL}",
                content.blocks
            ));
        }
    };
    let Some(sums) = sums else {
        return Err(format!(
            "its block digests {} do not fit a disk of {size} bytes; {TAKE_A_FULL}",
            content.blocks
        ));
    };
    if content.algorithm != blocksum::ALGORITHM || content.block_size != blocksum::BLOCK {
        return Err(format!(
            "its checksum is {} in blocks of {}, which this ovrun does not compute",
            content.algorithm, content.block_size
        ));
    }
    if sums.checksum() != content.checksum {
        return Err(format!(
            "its block digests {} do not give the manifest's checksum: the digests file \
             changed since the backup; {TAKE_A_FULL}",
            content.blocks
        ));
    }
    Ok(sums)
}

/// The bytes of the catalog's file `name`.
fn read_file(catalog: &Catalog, name: &str) -> Result<Vec<u8>, CatalogError> {
    let mut bytes = Vec::new();
    let mut file = catalog.open_file(name)?;
    file.read_to_end(&mut bytes)
        .map_err(|source| CatalogError::Io {
            what: format!("reading {name}"),
            source,
        })?;
    Ok(bytes)
}

/// The digests the blocks a file does not hold must have: its backing file's, or zeroes'
/// without one; `None` when the backing file has none, or damaged ones (every block is then
/// read, and the damage is reported on the backing file alone).
fn backing_sums(catalog: &Catalog, points: &[Manifest], disk: &DiskEntry) -> Option<BlockSums> {
    let Some(backing) = disk.backing.as_deref() else {
        return Some(BlockSums::zeroes(disk.provisioned_size));
    };
    let parent = points
        .iter()
        .flat_map(|p| &p.disks)
        .find(|d| d.file == backing)?;
    catalog.block_sums(parent, disk.provisioned_size)
}

/// The blocks whose content does not hash to `sums`: those the image itself holds are read
/// (through its chain); the others must carry `base`'s digest.
fn content_mismatches(
    image: &Path,
    sums: &BlockSums,
    base: Option<&BlockSums>,
) -> Result<Vec<usize>, LocalError> {
    let mut own = vec![base.is_none(); sums.len()];
    for extent in local::map(image)? {
        if extent.depth == 0 && extent.present {
            for index in sums.touched(extent.start, extent.length) {
                own[index] = true;
            }
        }
    }
    let run_dir = tempfile::Builder::new()
        .prefix("ovrun-verify-")
        .tempdir()
        .map_err(|source| LocalError::Io {
            what: "making a folder for qemu-nbd's socket".into(),
            source,
        })?;
    let read: Vec<usize> = (0..sums.len()).filter(|&i| own[i]).collect();
    let reader = Writer::open_read_only(image, run_dir.path())?;
    let hashed = reader.connect()?.block_digests(sums.size(), &read)?;
    reader.close()?;
    let mut bad: Vec<usize> = hashed
        .into_iter()
        .filter(|(index, digest)| digest != sums.get(*index))
        .map(|(index, _)| index)
        .collect();
    if let Some(base) = base {
        bad.extend((0..sums.len()).filter(|&i| !own[i] && base.get(i) != sums.get(i)));
    }
    bad.sort_unstable();
    Ok(bad)
}
