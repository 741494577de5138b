//! `qemu-img check` and `qemu-img info` of one file, alone (its backing file not opened), and
//! what their JSON reports say about it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::TAKE_A_FULL;
use crate::run::catalog::{CatalogError, DiskEntry};
use crate::run::local::{self, LocalError};

/// The file alone as `qemu-img` opens it: qcow2, its backing file not opened.
fn image_spec(path: &Path) -> Result<String, CatalogError> {
    let absolute = std::path::absolute(path).map_err(|source| CatalogError::Io {
        what: format!("locating {}", path.display()),
        source,
    })?;
    let spec = serde_json::json!({
        "file": {"driver": "file", "filename": absolute.to_string_lossy()},
        "backing": null,
    });
    Ok(format!("json:{spec}"))
}

fn no_qemu_img(source: std::io::Error) -> CatalogError {
    CatalogError::Io {
        what: "running qemu-img (install qemu-utils)".into(),
        source,
    }
}

/// `qemu-img check`: corruptions, leaked clusters, a check that could not complete.
///
/// Run directly rather than through [`local::qemu`]: it exits non-zero (2 corruptions, 3
/// leaks) exactly when its JSON report matters.
pub(super) fn check_image(path: &Path, file: &str) -> Result<Vec<String>, CatalogError> {
    let spec = image_spec(path)?;
    let out = Command::new("qemu-img")
        .args(["check", "-f", "qcow2", "--output=json", &spec])
        .output()
        .map_err(no_qemu_img)?;
    let Ok(report) = serde_json::from_slice::<Value>(&out.stdout) else {
        let why = String::from_utf8_lossy(&out.stderr).replace(&spec, file);
        return Ok(vec![format!(
            "qemu-img check error: cannot check it: {}; {TAKE_A_FULL}",
            why.trim()
        )]);
    };
    Ok(check_findings(&report))
}

/// The problems in a `qemu-img check --output=json` report.
fn check_findings(report: &Value) -> Vec<String> {
    let count = |key: &str| report.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut found = Vec::new();
    if count("corruptions") > 0 {
        found.push(format!(
            "qemu-img check error: {} corruptions: the image is damaged; {TAKE_A_FULL}",
            count("corruptions")
        ));
    }
    if count("check-errors") > 0 {
        found.push(format!(
            "qemu-img check error: {} errors while checking (the check did not complete); \
             {TAKE_A_FULL}",
            count("check-errors")
        ));
    }
    if count("leaks") > 0 {
        found.push(format!(
            "{} leaked clusters (harmless, repairable with qemu-img check -r leaks)",
            count("leaks")
        ));
    }
    found
}

/// `qemu-img info`: the virtual size and the backing file the image itself names.
pub(super) fn check_info(path: &Path, disk: &DiskEntry) -> Result<Vec<String>, CatalogError> {
    let spec = image_spec(path)?;
    let info = match local::qemu("qemu-img", &["info", "-f", "qcow2", "--output=json", &spec]) {
        Ok(out) => serde_json::from_slice::<Value>(&out).unwrap_or(Value::Null),
        Err(LocalError::Io { source, .. }) => return Err(no_qemu_img(source)),
        Err(e) => {
            let why = match e {
                LocalError::Tool { why, .. } => why.replace(&spec, &disk.file),
                other => other.to_string(),
            };
            return Ok(vec![format!("qemu-img info cannot read it: {why}")]);
        }
    };
    Ok(info_findings(&info, disk))
}

/// The problems in a `qemu-img info --output=json` report of a disk's file.
fn info_findings(info: &Value, disk: &DiskEntry) -> Vec<String> {
    let mut found = Vec::new();
    let size = info.get("virtual-size").and_then(Value::as_u64);
    if size != Some(disk.provisioned_size) {
        found.push(format!(
            "virtual size {}, the manifest says {} (the disk's provisioned size)",
            size.map_or_else(|| "unknown".into(), |s| s.to_string()),
            disk.provisioned_size
        ));
    }
    let backing = info.get("backing-filename").and_then(Value::as_str);
    match (backing, disk.backing.as_deref()) {
        (None, None) => {}
        (Some(actual), Some(expected)) if actual == expected => {}
        (Some(actual), None) => found.push(format!(
            "backing mismatch: a full image with backing file {actual}, the manifest names none"
        )),
        (None, Some(expected)) => found.push(format!(
            "backing mismatch: no backing file, the manifest says {expected}; {TAKE_A_FULL}"
        )),
        (Some(actual), Some(expected)) => found.push(format!(
            "backing mismatch: backing file {actual}, the manifest says {expected}; \
             `qemu-img rebase -u -b {expected} -F qcow2 {}` in the VM's folder restores the link",
            disk.file
        )),
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::verify::tests::disk;

    #[test]
    fn check_reports_say_what_is_damaged_and_what_is_harmless() {
        let report = serde_json::json!({"check-errors": 0, "corruptions": 3, "leaks": 2});
        let found = check_findings(&report);
        assert_eq!(found.len(), 2);
        assert!(found[0].contains("3 corruptions"), "{found:?}");
        assert_eq!(
            found[1],
            "2 leaked clusters (harmless, repairable with qemu-img check -r leaks)"
        );
        assert!(check_findings(&serde_json::json!({"check-errors": 0})).is_empty());
    }

    #[test]
    fn info_compares_size_and_backing_with_the_manifest() {
        let base = "20261129T020000Z.full.web01_os.qcow2";
        let sound = serde_json::json!({"virtual-size": 64 << 20, "backing-filename": base});
        assert!(info_findings(&sound, &disk(Some(base))).is_empty());
        let found = info_findings(&sound, &disk(None));
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("backing mismatch: a full image"));
        let moved = serde_json::json!({"virtual-size": 1, "backing-filename": "other.qcow2"});
        let found = info_findings(&moved, &disk(Some(base)));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].contains("other.qcow2") && found[1].contains(base));
    }
}
