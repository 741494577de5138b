//! The catalog's names (see [`super`]): a VM's folder name, point ids, and the file names of a
//! point, derived from its id, kind and disks; [`misnamed`] checks a manifest against them.

use chrono::{DateTime, Utc};

use super::{DiskEntry, Manifest};

/// The point id for a backup started at `at`.
pub fn point_id(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A disk alias as a file-name part: letters, digits, `-`, `_` and unicode letters kept, the
/// rest `_`.
pub fn safe_name(alias: &str) -> String {
    let name: String = alias
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() { "disk".into() } else { name }
}

/// The folder name of VM `vm`: the name itself, with `%`, `/`, control characters and a
/// leading `.` percent-encoded (injective: `%` is always encoded, so a name decodes back).
pub fn folder_name(vm: &str) -> String {
    let mut folder = String::with_capacity(vm.len());
    for (index, c) in vm.chars().enumerate() {
        if c == '%' || c == '/' || c.is_control() || (index == 0 && c == '.') {
            let mut bytes = [0u8; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                folder.push_str(percent_encoding::percent_encode_byte(byte));
            }
        } else {
            folder.push(c);
        }
    }
    folder
}

/// A file name of the catalog's scheme, taken apart: `{point}.{kind}.manifest.json`, or
/// `{point}.{kind}.{disk}.qcow2` / `.sums` (`disk` as [`safe_name`] makes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemeName<'a> {
    /// The point id.
    pub point: &'a str,
    /// `full` or `incremental`.
    pub kind: &'a str,
    /// The disk's name part (`None` for a manifest).
    pub disk: Option<&'a str>,
    /// `json` (a manifest), `qcow2` or `sums`.
    pub extension: &'a str,
}

impl<'a> SchemeName<'a> {
    /// `name` taken apart; `None` when it is not of the scheme.
    pub fn parse(name: &'a str) -> Option<Self> {
        let mut parts = name.splitn(3, '.');
        let (point, kind, rest) = (parts.next()?, parts.next()?, parts.next()?);
        if !is_point_id(point) || !matches!(kind, "full" | "incremental") {
            return None;
        }
        if rest == "manifest.json" {
            return Some(Self {
                point,
                kind,
                disk: None,
                extension: "json",
            });
        }
        let (disk, extension) = rest.split_once('.')?;
        let disk_ok = !disk.is_empty() && safe_name(disk) == disk;
        (disk_ok && matches!(extension, "qcow2" | "sums")).then_some(Self {
            point,
            kind,
            disk: Some(disk),
            extension,
        })
    }
}

/// Whether `id` is a point id (`20261129T020000Z`).
fn is_point_id(id: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(id, "%Y%m%dT%H%M%SZ").is_ok() && id.len() == 16
}

/// How `manifest` departs from the naming scheme: each file it names must be the one derived
/// from its point id, kind and disk (a backing file: a disk image of an earlier point). Empty
/// when every name is derived.
pub fn misnamed(manifest: &Manifest) -> Vec<String> {
    let (point, kind) = (&manifest.point, &manifest.kind);
    if !is_point_id(point) || !matches!(kind.as_str(), "full" | "incremental") {
        return vec![format!(
            "the manifest's point {point:?} or kind {kind:?} is not of the catalog's scheme"
        )];
    }
    let found = manifest
        .disks
        .iter()
        .flat_map(|disk| misnamed_disk(point, kind, disk));
    found.collect()
}

/// How one disk's files depart from the names derived from `point`, `kind` and the disk.
fn misnamed_disk(point: &str, kind: &str, disk: &DiskEntry) -> Vec<String> {
    let name = safe_name(&disk.alias);
    let short_id: String = disk.id.chars().take(8).collect();
    let derived = [name.clone(), format!("{name}-{short_id}")]
        .map(|part| format!("{point}.{kind}.{part}.qcow2"));
    let image_derived = derived.contains(&disk.file);
    let mut found = Vec::new();
    if !image_derived {
        found.push(format!(
            "the manifest names file {:?} for disk {}, not {:?}",
            disk.file, disk.alias, derived[0]
        ));
    }
    if let Some(content) = &disk.content {
        let sums = format!("{}.sums", disk.file.trim_end_matches(".qcow2"));
        if content.blocks != sums || !image_derived {
            found.push(format!(
                "the manifest names block digests {:?} for disk {}, not the image's .sums",
                content.blocks, disk.alias
            ));
        }
    }
    found.extend(misnamed_backing(point, disk));
    found
}

/// A backing file that is no disk image of a point earlier than `point`.
fn misnamed_backing(point: &str, disk: &DiskEntry) -> Option<String> {
    let backing = disk.backing.as_ref()?;
    let image = SchemeName::parse(backing).filter(|b| b.extension == "qcow2" && b.point < point);
    image.is_none().then(|| {
        format!(
            "the manifest names backing file {backing:?} for disk {}, which is no disk image of \
             an earlier point",
            disk.alias
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::tests::point;
    use super::*;

    #[test]
    fn names_sort_by_time_and_keep_letters() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(point_id(at), "20261129T020000Z");
        assert_eq!(safe_name("web 01/os"), "web_01_os");
        assert_eq!(safe_name("dísco-1"), "dísco-1");
        assert_eq!(safe_name(""), "disk");
    }

    #[test]
    fn folder_names_are_plain_for_ordinary_names_and_never_shared() {
        for plain in ["web01", "db 01", "é-x", "_.x", "a_b", "x."] {
            assert_eq!(folder_name(plain), plain);
        }
        assert_eq!(folder_name(".x"), "%2Ex");
        assert_eq!(folder_name("a/b"), "a%2Fb");
        assert_eq!(folder_name("50%"), "50%25");
        assert_eq!(folder_name("a\nb"), "a%0Ab");
        let names = [".x", "_.x", "%2Ex", "a/b", "a_b", "a%2Fb", "..x", ".", ".."];
        let folders: BTreeSet<String> = names.iter().map(|n| folder_name(n)).collect();
        assert_eq!(folders.len(), names.len(), "{folders:?}");
    }

    #[test]
    fn manifests_may_name_only_derived_files() {
        let mut manifest = point(
            "20261102T000000Z",
            "incremental",
            Some("20261101T000000Z"),
            1,
        );
        manifest.disks[0].backing = Some("20261101T000000Z.full.os.qcow2".into());
        assert!(misnamed(&manifest).is_empty());
        for (file, backing) in [
            ("../x", None),
            ("/x", None),
            ("20261101T000000Z.full.os.qcow2", None),
            ("20261102T000000Z.incremental.os.qcow2", Some("../x.qcow2")),
            ("20261102T000000Z.incremental.os.qcow2", Some("/x")),
            (
                "20261102T000000Z.incremental.os.qcow2",
                Some("20261103T000000Z.full.os.qcow2"),
            ),
        ] {
            let mut bad = manifest.clone();
            bad.disks[0].file = file.into();
            bad.disks[0].backing = backing.map(str::to_owned);
            assert!(!misnamed(&bad).is_empty(), "{file} {backing:?}");
        }
        assert_eq!(
            SchemeName::parse("20261102T000000Z.full.web01_os.sums").map(|n| n.disk),
            Some(Some("web01_os"))
        );
        for foreign in [
            "notes.txt",
            "x.full.os.qcow2",
            "20261102T000000Z.full.a.b.qcow2",
        ] {
            assert_eq!(SchemeName::parse(foreign), None, "{foreign}");
        }
    }
}
