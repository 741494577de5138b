//! `ovplan diff --catalog DIR`: the points a backup directory holds, read from their manifests
//! only, as `ovrun` lays them out (`ovbackup::run::catalog`): `DIR/<the VM's folder>/<point>.
//! <kind>.manifest.json`. Nothing is written and no lock is taken: a manifest is written last, so
//! one that exists is a complete point. A VM without a folder has no points; a manifest that
//! names files outside the catalog's scheme is no point, as `ovrun prune` sees it; links are
//! never followed (`ovrun` refuses them).

use std::path::{Path, PathBuf};

use ovbackup::plan::diff::{Catalog, StoredPoint};
use ovbackup::run::catalog::{Manifest, SchemeName, folder_name, misnamed};

use crate::Failure;

/// The points of each VM in `names` that `dir` holds.
///
/// # Errors
/// `dir` is not a folder, or a VM's folder or one of its manifests cannot be read.
pub(crate) fn read<'a>(
    dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Catalog, Failure> {
    if !is_folder(dir)? {
        return Err(Failure::usage(format!(
            "{}: no such folder\nhelp: give the backup directory (the policy's backup_directory)",
            dir.display()
        )));
    }
    names
        .into_iter()
        .map(|name| Ok((name.to_owned(), points(&dir.join(folder_name(name)))?)))
        .collect()
}

/// Whether `path` is a folder (not a link to one); `false` when it does not exist.
fn is_folder(path: &Path) -> Result<bool, Failure> {
    match fs_err::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Failure::usage(format!(
            "{}: a link; ovrun refuses links in the catalog, so ovplan does not follow it",
            path.display()
        ))),
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::usage(e.to_string())),
    }
}

/// The complete points in a VM's folder, oldest first (none when it has no folder).
fn points(folder: &Path) -> Result<Vec<StoredPoint>, Failure> {
    if !is_folder(folder)? {
        return Ok(Vec::new());
    }
    let entries = fs_err::read_dir(folder).map_err(|e| Failure::usage(e.to_string()))?;
    let mut points = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Failure::usage(e.to_string()))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_file && SchemeName::parse(&name).is_some_and(|n| n.disk.is_none()) {
            points.extend(point(&folder.join(&name), &name)?);
        }
    }
    points.sort_by(|a, b| a.point.cmp(&b.point));
    Ok(points)
}

/// The point a manifest records, or `None` (with a warning) when it misnames its files.
fn point(path: &PathBuf, name: &str) -> Result<Option<StoredPoint>, Failure> {
    let text = fs_err::read_to_string(path).map_err(|e| Failure::usage(e.to_string()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{}: not a manifest ovrun wrote: {e}\nhelp: run `ovrun verify` on this VM",
            path.display()
        ))
    })?;
    if !misnamed(&manifest).is_empty() || manifest.file_name() != name {
        eprintln!(
            "warning: {}: ignored, as ovrun ignores it (it names files outside the catalog's \
             scheme); run ovrun verify",
            path.display()
        );
        return Ok(None);
    }
    Ok(Some(StoredPoint {
        point: manifest.point,
        kind: manifest.kind,
        taken_at: manifest.taken_at,
        parent: manifest.parent,
    }))
}
