//! `ovrun merge`: the chain of one disk of a backup point written as one standalone qcow2 image,
//! in one pass (`qemu-img convert` reads through the backing chain), a portable copy that needs
//! neither the catalog nor the engine.
//!
//! The VM's lock is held while the chain is read, so that retention after a backup cannot
//! remove a parent meanwhile; the image is written to a private temporary file beside `out`,
//! synced and renamed, so `out` is either the whole image or absent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::catalog::{Catalog, CatalogError, DiskEntry, Manifest};
use super::chain::{Selector, select};
use super::job::RunError;
use super::local::{self, LocalError};

/// How long `merge` waits for another `ovrun` working on the same VM.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// What to merge, and where.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The point's id.
    pub point: &'a str,
    /// The disk's alias; `None` when the point has one disk.
    pub disk: Option<&'a str>,
    /// The image to write.
    pub out: &'a Path,
    /// Compress the image's clusters.
    pub compress: bool,
}

/// Why a merge did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The backup directory failed, or another `ovrun` holds the VM.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The catalog has no such point.
    #[error(transparent)]
    NoPoint(RunError),
    /// A parent of the point is missing.
    #[error(
        "point {point}'s chain is broken (a parent point is missing; run `ovrun verify`): \
         it cannot be merged"
    )]
    BrokenChain {
        /// The point asked for.
        point: String,
    },
    /// The point has several disks and none was named.
    #[error(
        "point {point} has {} disks: name one with --disk ({})",
        aliases.len(),
        aliases.join(", ")
    )]
    WhichDisk {
        /// The point asked for.
        point: String,
        /// Its disks' aliases.
        aliases: Vec<String>,
    },
    /// The point has no disk of that alias.
    #[error("point {point} has no disk {alias:?}")]
    NoDisk {
        /// The point asked for.
        point: String,
        /// The alias given with --disk.
        alias: String,
    },
    /// Writing the merged image failed.
    #[error("merging point {point}: {source}")]
    Write {
        /// The point being merged.
        point: String,
        /// What failed.
        #[source]
        source: WriteError,
    },
}

/// Why the merged image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// `out` ends in no file name.
    #[error("--out {} names no file", .0.display())]
    NoFileName(PathBuf),
    /// A path `qemu-img` is given is not UTF-8.
    #[error("{} is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// The temporary file could not be created.
    #[error("{0}")]
    Create(std::io::Error),
    /// `qemu-img` failed, or the image could not be synced or renamed.
    #[error(transparent)]
    Local(#[from] LocalError),
}

impl WriteError {
    /// Whether the request is at fault (the output path), rather than the work.
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::NoFileName(_) | Self::NotUtf8(_))
    }
}

/// Writes the chain of the requested disk of a point as one qcow2 image; gives the disk's alias.
///
/// # Errors
/// The catalog fails or is locked, the point or disk is not there, its chain is broken, or the
/// image cannot be written.
pub fn merge(catalog: &Catalog, request: &Request<'_>) -> Result<String, MergeError> {
    let point = request.point;
    // Held while reading: retention after a backup must not remove the chain meanwhile.
    let _lock = catalog.lock(LOCK_WAIT)?;
    let points = catalog.points()?;
    let manifest =
        select(&points, &Selector::Point(point.to_owned())).map_err(MergeError::NoPoint)?;
    let chain = Catalog::chain(&points, &manifest.point);
    if chain.first().is_none_or(|first| first.parent.is_some()) {
        return Err(MergeError::BrokenChain {
            point: point.to_owned(),
        });
    }
    let entry = pick_disk(manifest, request.disk)?;
    let top = catalog.qemu_path(&entry.file)?;
    write_merged(&top, request.out, request.compress).map_err(|source| MergeError::Write {
        point: point.to_owned(),
        source,
    })?;
    Ok(entry.alias.clone())
}

/// The disk of `manifest` named `alias`, or its only disk when none is named.
fn pick_disk<'a>(manifest: &'a Manifest, alias: Option<&str>) -> Result<&'a DiskEntry, MergeError> {
    let point = || manifest.point.clone();
    match (alias, manifest.disks.as_slice()) {
        (None, [only]) => Ok(only),
        (None, disks) => Err(MergeError::WhichDisk {
            point: point(),
            aliases: disks.iter().map(|d| d.alias.clone()).collect(),
        }),
        (Some(alias), disks) => {
            disks
                .iter()
                .find(|d| d.alias == alias)
                .ok_or_else(|| MergeError::NoDisk {
                    point: point(),
                    alias: alias.to_owned(),
                })
        }
    }
}

/// The chain whose top file is `top` as one qcow2 at `out`, in one pass, written to a
/// temporary file, synced and renamed.
///
/// # Errors
/// `qemu-img` fails or the file cannot be written.
pub fn write_merged(top: &Path, out: &Path, compress: bool) -> Result<(), WriteError> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| WriteError::NoFileName(out.to_owned()))?;
    let temp = out.with_file_name(format!(".tmp-{name}"));
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| WriteError::NotUtf8(p.to_owned()))
    };
    let (top_text, temp_text) = (utf8(top)?, utf8(&temp)?);
    precreate_private(&temp)?;
    let mut args = vec!["convert", "-f", "qcow2", "-O", "qcow2"];
    if compress {
        args.push("-c");
    }
    args.extend([top_text.as_str(), temp_text.as_str()]);
    let converted = local::qemu("qemu-img", &args);
    if let Err(e) = converted {
        let _ = fs_err::remove_file(&temp);
        return Err(e.into());
    }
    publish(&temp, out)
}

/// Syncs the finished image at `temp` and renames it to `out`, then syncs `out`'s folder.
fn publish(temp: &Path, out: &Path) -> Result<(), WriteError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| LocalError::Io { what, source }
    };
    fs_err::File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing the merged image"))?;
    fs_err::rename(temp, out).map_err(io("renaming the merged image"))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::sync_dir(dir).map_err(io("syncing the output folder"))?;
    }
    Ok(())
}

/// Creates (or empties) `path` as a `0600` file, not through a link, so that the image
/// `qemu-img` writes into it is readable by its owner alone whatever the umask.
fn precreate_private(path: &Path) -> Result<(), WriteError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let file = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(crate::fsutil::NO_FOLLOW)
        .open(path)
        .map_err(WriteError::Create)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(WriteError::Create)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A point whose disks have these aliases.
    fn point(aliases: &[&str]) -> Manifest {
        let disks: Vec<_> = aliases
            .iter()
            .map(|alias| {
                json!({
                    "id": format!("id-{alias}"), "alias": alias, "interface": "virtio_scsi",
                    "bootable": false, "provisioned_size": 1, "mode": "full",
                    "file": format!("p.{alias}.qcow2"), "backing": null,
                    "bytes_transferred": 0, "file_size": 0
                })
            })
            .collect();
        serde_json::from_value(json!({
            "format": 1, "vm": "web", "vm_id": "v", "point": "p", "kind": "full",
            "reason": "first", "taken_at": "2026-01-01T00:00:00Z", "parent": null,
            "backup_id": "b", "from_checkpoint": null, "checkpoint": null, "disks": disks
        }))
        .expect("manifest")
    }

    #[test]
    fn the_disk_is_the_named_one_or_the_only_one() {
        assert_eq!(pick_disk(&point(&["os"]), None).unwrap().alias, "os");
        let two = point(&["os", "data"]);
        assert_eq!(pick_disk(&two, Some("data")).unwrap().alias, "data");
        let which = pick_disk(&two, None).unwrap_err().to_string();
        assert_eq!(
            which,
            "point p has 2 disks: name one with --disk (os, data)"
        );
        let none = pick_disk(&two, Some("swap")).unwrap_err().to_string();
        assert_eq!(none, "point p has no disk \"swap\"");
    }

    #[test]
    fn an_output_path_without_a_file_name_is_a_usage_error() {
        let error = write_merged(Path::new("/top.qcow2"), Path::new("/"), false).unwrap_err();
        assert!(error.is_usage(), "{error}");
        assert_eq!(error.to_string(), "--out / names no file");
    }
}
