//! `ovrun verify`: whether the backups in a VM's folder (see [`super::catalog`]) can still be
//! restored. For every complete point:
//!
//! - each disk file exists, and its size is the one its manifest recorded;
//! - its content: the blocks the file holds, read through its backing chain, hash to its
//!   recorded block digests ([`super::blocksum`]), the blocks it does not hold have its backing
//!   file's digests, and the digests give the manifest's checksum (points of older `ovrun`s
//!   recorded the file's SHA-256 instead, which is checked then);
//! - `qemu-img check` finds no corruption and no leaked clusters in it;
//! - `qemu-img info`: its virtual size is the disk's provisioned size, and its backing file is
//!   the manifest's: none for a full disk; for an incremental one, a file of the same disk in an
//!   earlier point of the point's chain, present in the folder;
//! - the point's parent is a complete point.
//!
//! Each file is inspected on its own (`qemu-img` is given the file with `"backing": null`), so a
//! missing or wrong backing file is reported once, as a broken link, and does not hide the state
//! of the files that point to it. A manifest that names a file outside the catalog's naming
//! scheme ([`super::catalog::misnamed`]: `../x`, `/x`, another point's file) is damage, and so is
//! a link or folder where the scheme puts a file; neither is followed.
//!
//! Leftovers of a run that did not finish (files of the scheme without a manifest, temporary
//! files) are warnings, not damage: the next backup removes them. Files that are not the
//! catalog's (foreign files, dotfiles) are warnings too: `ovrun` neither reads nor removes them.
//!
//! Every finding is a [`Problem`]; verification goes on after one, so the [`Report`] lists all
//! of them (damage in `problems`, the rest in `warnings`). Only what stops verification itself (an unreadable folder or manifest, `qemu-img`
//! not installed) is an error. The caller holds the VM's lock ([`Catalog::lock`]) so that a
//! backup being written does not look like damage, and runs this blocking code off the async
//! workers.
//!
//! This file walks the points and their files; `content` checks a disk's bytes against its
//! block digests, `image` reads `qemu-img check` and `qemu-img info`.

mod content;
mod image;

use std::fmt;
use std::io::Read;

use sha2::{Digest, Sha256};

use self::content::check_content;
use self::image::{check_image, check_info};

use super::catalog::{Catalog, CatalogError, DiskEntry, Manifest, Scan};

/// What to do when a point cannot be restored any more.
const TAKE_A_FULL: &str = "take a full backup (ovrun backup --full)";

/// One thing wrong in a VM's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The point it concerns (`None` for a leftover file).
    pub point: Option<String>,
    /// The file it concerns, by its name in the VM's folder (`None` for the point as a whole).
    pub file: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub what: String,
}

impl Problem {
    fn of_point(point: &str, what: impl Into<String>) -> Self {
        Self {
            point: Some(point.to_owned()),
            file: None,
            what: what.into(),
        }
    }

    fn of_file(point: &str, file: &str, what: impl Into<String>) -> Self {
        Self {
            point: Some(point.to_owned()),
            file: Some(file.to_owned()),
            what: what.into(),
        }
    }

    fn leftover(file: &str) -> Self {
        Self::of_name(
            file,
            "leftover of an unfinished run; the next backup removes it",
        )
    }

    fn foreign(file: &str) -> Self {
        Self::of_name(
            file,
            "not a file of the catalog: ovrun neither reads nor removes it; move it out of the \
             VM's folder",
        )
    }

    fn of_name(file: &str, what: impl Into<String>) -> Self {
        Self {
            point: None,
            file: Some(file.to_owned()),
            what: what.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// One line: `point P, file F: what`, leaving out what is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.point, &self.file) {
            (Some(point), Some(file)) => write!(f, "point {point}, file {file}: {}", self.what),
            (Some(point), None) => write!(f, "point {point}: {}", self.what),
            (None, Some(file)) => write!(f, "file {file}: {}", self.what),
            (None, None) => f.write_str(&self.what),
        }
    }
}

/// What [`verify`] found in a VM's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The VM (as its newest manifest names it; the folder's name when it has none).
    pub vm: String,
    /// The complete points inspected.
    pub points: usize,
    /// The disk files their manifests list.
    pub files: usize,
    /// Damage: points oldest first, then misnamed manifests and links.
    pub problems: Vec<Problem>,
    /// What is not damage but should be known: leftovers (the next backup removes them) and
    /// foreign files (never touched).
    pub warnings: Vec<Problem>,
    /// The VM configuration the newest point recorded, in one line (`None`: no point, or one
    /// taken before configurations were recorded).
    pub configuration: Option<String>,
}

impl Report {
    /// Whether no damage was found (warnings may remain).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    /// A summary line, then one line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {}: ",
            self.vm,
            counted(self.points, "point"),
            counted(self.files, "file")
        )?;
        if self.is_clean() {
            f.write_str("no damage found")?;
        } else {
            f.write_str(&counted(self.problems.len(), "problem"))?;
        }
        if !self.warnings.is_empty() {
            write!(f, ", {}", counted(self.warnings.len(), "warning"))?;
        }
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        for warning in &self.warnings {
            write!(f, "\n  - warning: {warning}")?;
        }
        if self.points > 0 {
            let recorded = self.configuration.as_deref().unwrap_or(
                "not recorded (a restore gives the DR VM production's memory only; the next \
                 backup records it)",
            );
            write!(f, "\n  newest point's VM configuration: {recorded}")?;
        }
        Ok(())
    }
}

/// `1 point`, `2 points`.
fn counted(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Verifies every complete point of `catalog` and lists the leftovers (see the module doc).
///
/// # Errors
/// The folder or a manifest cannot be read, or `qemu-img` cannot be run.
pub fn verify(catalog: &Catalog) -> Result<Report, CatalogError> {
    let scan = catalog.scan()?;
    let points = &scan.points;
    let mut problems = Vec::new();
    let mut files = 0;
    for point in points {
        problems.extend(check_parent(points, point));
        for disk in &point.disks {
            files += 1;
            problems.extend(check_disk(catalog, points, point, disk)?);
        }
    }
    problems.extend(unsafe_names(&scan));
    let warnings = scan
        .leftovers
        .iter()
        .map(|name| Problem::leftover(name))
        .chain(scan.foreign.iter().map(|name| Problem::foreign(name)))
        .collect();
    let vm = points
        .last()
        .map_or_else(|| catalog.vm().to_owned(), |newest| newest.vm.clone());
    let newest_config = points.last().and_then(|p| p.config.as_ref());
    Ok(Report {
        vm,
        points: points.len(),
        files,
        problems,
        warnings,
        configuration: newest_config.map(super::config_view::one_line),
    })
}

/// Misnamed manifests, and links or folders where the scheme puts a file.
fn unsafe_names(scan: &Scan) -> Vec<Problem> {
    let misnamed = scan.misnamed.iter().map(|(name, why)| {
        Problem::of_name(
            name,
            format!(
                "{}: ovrun ignores this point (no backup builds on it, prune removes none of \
                 its files); remove the manifest, or {TAKE_A_FULL}",
                why.join("; ")
            ),
        )
    });
    let links = scan.unsafe_entries.iter().map(|name| {
        Problem::of_name(
            name,
            "a symbolic link or no regular file where the catalog keeps its own files: ovrun \
             never follows it; remove it (and find out who put it there)",
        )
    });
    misnamed.chain(links).collect()
}

/// The point's parent must be a complete point.
fn check_parent(points: &[Manifest], point: &Manifest) -> Option<Problem> {
    let parent = point.parent.as_deref()?;
    if points.iter().any(|p| p.point == parent) {
        return None;
    }
    Some(Problem::of_point(
        &point.point,
        format!(
            "chain broken: parent {parent} missing; this point and the later ones of its chain \
             cannot be restored; {TAKE_A_FULL}"
        ),
    ))
}

/// Everything about one disk file of a point.
fn check_disk(
    catalog: &Catalog,
    points: &[Manifest],
    point: &Manifest,
    disk: &DiskEntry,
) -> Result<Vec<Problem>, CatalogError> {
    let mut found = check_link(catalog, points, point, disk);
    let opened = catalog
        .open_file(&disk.file)
        .and_then(|file| Ok((file, catalog.qemu_path(&disk.file)?)));
    match opened {
        Ok((file, path)) => {
            found.extend(check_bytes(file, disk));
            let image = check_image(&path, &disk.file)?;
            let sound = image.is_empty();
            found.extend(image);
            found.extend(check_info(&path, disk)?);
            if sound && found.is_empty() {
                found.extend(check_content(catalog, points, disk));
            }
        }
        Err(CatalogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            found.insert(
            0,
            format!(
                "missing; this point and the later ones of its chain cannot be restored: put it \
                 back from a copy, or {TAKE_A_FULL}"
            ),
        );
        }
        Err(e) => found.insert(0, format!("cannot be read: {e}")),
    }
    Ok(found
        .into_iter()
        .map(|what| Problem::of_file(&point.point, &disk.file, what))
        .collect())
}

/// The manifest's backing file: a file of the same disk in an earlier point of the chain, and
/// present.
fn check_link(
    catalog: &Catalog,
    points: &[Manifest],
    point: &Manifest,
    disk: &DiskEntry,
) -> Vec<String> {
    let Some(backing) = disk.backing.as_deref() else {
        return if disk.mode == "incremental" {
            vec!["the manifest says incremental but names no backing file".into()]
        } else {
            Vec::new()
        };
    };
    let mut found = Vec::new();
    if let Some(false) = in_chain(points, point, &disk.id, backing) {
        found.push(format!(
            "chain broken: its backing file {backing} is no file of this disk in an earlier \
             point of its chain (parent {}); {TAKE_A_FULL}",
            point.parent.as_deref().unwrap_or("none")
        ));
    }
    if !catalog.exists(backing) {
        found.push(format!(
            "chain broken: its backing file {backing} is missing; this point cannot be restored; \
             {TAKE_A_FULL}"
        ));
    }
    found
}

/// Whether `backing` is disk `id`'s file in an earlier point of `point`'s chain; `None` when
/// the chain itself is broken (reported on the point whose parent is missing).
fn in_chain(points: &[Manifest], point: &Manifest, id: &str, backing: &str) -> Option<bool> {
    let chain = Catalog::chain(points, &point.point);
    if chain.first()?.parent.is_some() {
        return None;
    }
    let (_, earlier) = chain.split_last()?;
    Some(
        earlier
            .iter()
            .flat_map(|p| &p.disks)
            .any(|d| d.id == id && d.file == backing),
    )
}

/// The file's size and SHA-256 against the manifest's (the hash only when the size matches).
fn check_bytes(file: std::fs::File, disk: &DiskEntry) -> Option<String> {
    let size = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    if size != disk.file_size {
        return Some(format!(
            "size mismatch: {size} bytes, the manifest says {}: the file was cut short or \
             changed since the backup; {TAKE_A_FULL}",
            disk.file_size
        ));
    }
    let recorded = disk.sha256.as_deref()?;
    match sha256(file) {
        Ok(sha) if sha == recorded => None,
        Ok(sha) => Some(format!(
            "sha256 mismatch: {sha}, the manifest says {recorded}: the file's bytes changed \
             since the backup; {TAKE_A_FULL}"
        )),
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// The SHA-256 of a file, in lowercase hex, read in 1 MiB pieces.
fn sha256(mut file: std::fs::File) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn disk(backing: Option<&str>) -> DiskEntry {
        DiskEntry {
            id: "d1".into(),
            alias: "web01_os".into(),
            interface: "virtio_scsi".into(),
            bootable: true,
            provisioned_size: 64 << 20,
            mode: if backing.is_some() {
                "incremental"
            } else {
                "full"
            }
            .into(),
            file: "20261130T020000Z.incremental.web01_os.qcow2".into(),
            backing: backing.map(str::to_owned),
            bytes_transferred: 0,
            file_size: 1,
            sha256: Some("00".into()),
            content: None,
        }
    }

    fn manifest(point: &str, parent: Option<&str>, disks: Vec<DiskEntry>) -> Manifest {
        Manifest {
            format: super::super::catalog::MANIFEST_FORMAT,
            vm: "web 01".into(),
            vm_id: "1".into(),
            point: point.into(),
            kind: if parent.is_some() {
                "incremental"
            } else {
                "full"
            }
            .into(),
            reason: "test".into(),
            taken_at: chrono::Utc::now(),
            parent: parent.map(str::to_owned),
            backup_id: "b".into(),
            from_checkpoint: None,
            checkpoint: None,
            memory: None,
            method: None,
            config: None,
            disks,
        }
    }

    #[test]
    fn a_backing_file_must_be_the_same_disk_earlier_in_the_chain() {
        let base = "20261129T020000Z.full.web01_os.qcow2";
        let mut full_disk = disk(None);
        full_disk.file = base.into();
        let full = manifest("20261129T020000Z", None, vec![full_disk]);
        let incremental = manifest("20261130T020000Z", Some("20261129T020000Z"), vec![]);
        let points = vec![full.clone(), incremental.clone()];
        assert_eq!(in_chain(&points, &incremental, "d1", base), Some(true));
        assert_eq!(in_chain(&points, &incremental, "d2", base), Some(false));
        assert_eq!(
            in_chain(&points, &incremental, "d1", "x.qcow2"),
            Some(false)
        );
        assert_eq!(in_chain(&points, &full, "d1", base), Some(false));
        let orphan = vec![incremental.clone()];
        assert_eq!(
            in_chain(&orphan, &incremental, "d1", base),
            None,
            "a broken chain is reported on its point"
        );
    }

    #[test]
    fn a_problem_is_one_line_naming_point_and_file() {
        let problem = Problem::of_file(
            "20261130T020000Z",
            "20261130T020000Z.incremental.web01_os.qcow2",
            "size mismatch: 10 bytes, the manifest says 20",
        );
        assert_eq!(
            problem.to_string(),
            "point 20261130T020000Z, file 20261130T020000Z.incremental.web01_os.qcow2: \
             size mismatch: 10 bytes, the manifest says 20"
        );
        let broken = Problem::of_point("20261130T020000Z", "chain broken: parent X missing");
        assert_eq!(
            broken.to_string(),
            "point 20261130T020000Z: chain broken: parent X missing"
        );
        assert_eq!(
            Problem::leftover("20261201T020000Z.full.web01_os.qcow2").to_string(),
            "file 20261201T020000Z.full.web01_os.qcow2: leftover of an unfinished run; the next \
             backup removes it"
        );
        let report = Report {
            vm: "web 01".into(),
            points: 2,
            files: 4,
            problems: vec![broken],
            warnings: Vec::new(),
            configuration: Some("4 vCPU (2x2x1), 8.00 GiB, q35_ovmf, rhel_9x64".into()),
        };
        assert_eq!(
            report.to_string(),
            "web 01: 2 points, 4 files: 1 problem\n  - point 20261130T020000Z: chain broken: \
             parent X missing\n  newest point's VM configuration: 4 vCPU (2x2x1), 8.00 GiB, \
             q35_ovmf, rhel_9x64"
        );
        assert!(!report.is_clean());
    }
}
