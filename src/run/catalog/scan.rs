//! Reading a VM's folder: every entry sorted into points, misnamed manifests, leftovers of a
//! run that did not finish, unsafe entries and foreign files (see the catalog's module doc);
//! and the removal of leftovers.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{
    Catalog, CatalogError, EntryKind, Manifest, OWN_DOTFILES, SchemeName, io, io_at, misnamed,
};

/// What a VM's folder holds, sorted by kind (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The complete points, oldest first.
    pub points: Vec<Manifest>,
    /// Manifests that name files outside the scheme: file name, and how.
    pub misnamed: Vec<(String, Vec<String>)>,
    /// Files of the scheme whose point has no manifest, and temporary files: the next backup
    /// removes them.
    pub leftovers: Vec<String>,
    /// Entries of the scheme that are no regular files (links, folders): never followed.
    pub unsafe_entries: Vec<String>,
    /// Everything else: not the catalog's, never read or removed.
    pub foreign: Vec<String>,
}

impl Catalog {
    /// Sorts the folder's entries (see [`Scan`]).
    ///
    /// # Errors
    /// The folder or a manifest cannot be read.
    pub fn scan(&self) -> Result<Scan, CatalogError> {
        let entries = self
            .folder
            .entries()
            .map_err(io(format!("reading {}", self.dir().display())))?;
        let with_manifest: BTreeSet<&str> = entries
            .iter()
            .filter_map(|(name, _)| SchemeName::parse(name))
            .filter(|n| n.disk.is_none())
            .map(|n| n.point)
            .collect();
        let mut scan = Scan::default();
        for (name, kind) in &entries {
            let scheme = SchemeName::parse(name);
            match (scheme, kind) {
                (Some(n), EntryKind::File) if n.disk.is_none() => {
                    self.read_point(name, &mut scan)?
                }
                (Some(n), EntryKind::File) if !with_manifest.contains(n.point) => {
                    scan.leftovers.push(name.clone());
                }
                (Some(_), EntryKind::File) => {}
                (Some(_), _) => scan.unsafe_entries.push(name.clone()),
                (None, EntryKind::File) if name.starts_with(".tmp-") => {
                    scan.leftovers.push(name.clone());
                }
                (None, EntryKind::File) if OWN_DOTFILES.contains(&name.as_str()) => {}
                (None, _) if OWN_DOTFILES.contains(&name.as_str()) => {
                    scan.unsafe_entries.push(name.clone());
                }
                (None, _) => scan.foreign.push(name.clone()),
            }
        }
        scan.points.sort_by(|a, b| a.point.cmp(&b.point));
        Ok(scan)
    }

    /// Reads the manifest `name` into the scan: a point, or misnamed.
    fn read_point(&self, name: &str, scan: &mut Scan) -> Result<(), CatalogError> {
        let path = self.path(name);
        let bytes = self
            .folder
            .read(name)
            .map_err(io_at("reading the manifest", path.clone()))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| CatalogError::Manifest {
                path,
                why: e.to_string(),
            })?;
        let mut wrong = misnamed(&manifest);
        if wrong.is_empty() && manifest.file_name() != name {
            wrong.push(format!(
                "the manifest is of point {} ({}), not of its file's name",
                manifest.point, manifest.kind
            ));
        }
        if wrong.is_empty() {
            scan.points.push(manifest);
        } else {
            scan.misnamed.push((name.to_owned(), wrong));
        }
        Ok(())
    }

    /// The complete points, oldest first (a misnamed manifest's point is not one: see
    /// [`misnamed`]; `ovrun verify` reports it).
    ///
    /// # Errors
    /// The folder or a manifest cannot be read.
    pub fn points(&self) -> Result<Vec<Manifest>, CatalogError> {
        let scan = self.scan()?;
        for (name, why) in &scan.misnamed {
            tracing::warn!(
                "{}: ignored, it names files outside the catalog's scheme ({}); run ovrun verify",
                self.path(name).display(),
                why.join("; ")
            );
        }
        Ok(scan.points)
    }

    /// Files of the scheme that belong to no complete point (a run that died before its
    /// manifest), and temporary files of interrupted writes.
    ///
    /// # Errors
    /// The folder cannot be read.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, CatalogError> {
        Ok(self
            .scan()?
            .leftovers
            .iter()
            .map(|name| self.path(name))
            .collect())
    }

    /// Removes the leftovers (regular files of the scheme only; see the module doc); the paths
    /// removed.
    ///
    /// # Errors
    /// One cannot be removed.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>, CatalogError> {
        let leftovers = self.scan()?.leftovers;
        for name in &leftovers {
            self.remove(name)?;
        }
        if !leftovers.is_empty() {
            self.sync()?;
        }
        Ok(leftovers.iter().map(|name| self.path(name)).collect())
    }

    /// Removes the leftover files of point `point` (a run that failed before its manifest).
    pub fn remove_point_files(&self, point: &str) {
        let Ok(scan) = self.scan() else { return };
        for name in scan.leftovers {
            if SchemeName::parse(&name).is_some_and(|n| n.point == point) {
                let _ = self.remove(&name);
            }
        }
        let _ = self.sync();
    }
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "the tests set up and inspect files directly"
)]
mod tests {
    use super::*;
    use std::time::Duration;

    use chrono::Utc;

    use crate::run::catalog::MANIFEST_FORMAT;

    #[test]
    fn leftovers_are_files_of_points_without_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web 01").unwrap();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            vm: "web 01".into(),
            vm_id: "1".into(),
            point: "20261129T020000Z".into(),
            kind: "full".into(),
            reason: "no chain".into(),
            taken_at: Utc::now(),
            parent: None,
            backup_id: "b".into(),
            from_checkpoint: None,
            checkpoint: Some("c".into()),
            memory: None,
            method: None,
            config: None,
            disks: Vec::new(),
        };
        std::fs::write(catalog.path("20261129T020000Z.full.os.qcow2"), b"x").unwrap();
        catalog.commit(&manifest).unwrap();
        std::fs::write(catalog.path("20261130T020000Z.incremental.os.qcow2"), b"y").unwrap();
        std::fs::write(catalog.path("notes.txt"), b"mine").unwrap();
        std::fs::write(catalog.path(".hidden"), b"mine").unwrap();
        let link = "20261130T020000Z.incremental.data.qcow2";
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), catalog.path(link)).unwrap();
        let _lock = catalog.lock(Duration::ZERO).unwrap();
        assert_eq!(
            catalog.leftovers().unwrap(),
            vec![catalog.path("20261130T020000Z.incremental.os.qcow2")]
        );
        assert!(matches!(
            catalog.lock(Duration::ZERO),
            Err(CatalogError::Busy { .. })
        ));
        catalog.remove_leftovers().unwrap();
        assert_eq!(catalog.points().unwrap(), vec![manifest]);
        let scan = catalog.scan().unwrap();
        assert!(scan.leftovers.is_empty());
        assert_eq!(scan.foreign, [".hidden", "notes.txt"], "never removed");
        assert_eq!(scan.unsafe_entries, [link], "a link is never removed");
    }
}
