//! The predecessor's `checkpoints_file`, kept as an export for its tools: per VM, the
//! checkpoint the next incremental starts from.

use std::path::Path;

use chrono::Utc;
use rustix::fs::{FlockOperation, flock};

use super::{CatalogError, io, io_at};

/// The predecessor's `checkpoints_file`: per VM, the checkpoint the next incremental starts
/// from. Updated under a lock (several VMs' runs share it), durably, `0600`; neither the file
/// nor its lock is opened through a link (a link there is refused).
///
/// # Errors
/// The file cannot be read, locked or written, or it or its lock is a link.
pub fn record_checkpoint(
    path: &Path,
    vm: &str,
    checkpoint: Option<&str>,
    point: &str,
) -> Result<(), CatalogError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(io("creating the checkpoints file's folder"))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(crate::fsutil::NO_FOLLOW)
        .open(&lock_path)
        .map_err(io_at("opening", lock_path.clone()))?
        .into_parts()
        .0;
    flock(&lock, FlockOperation::LockExclusive)
        .map_err(|e| io(format!("locking {}", lock_path.display()))(e.into()))?;
    let mut all = read_checkpoints(path)?;
    all.insert(
        vm.to_owned(),
        serde_json::json!({
            "checkpoint_id": checkpoint,
            "point": point,
            "updated_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    );
    let text = serde_json::to_string_pretty(&all).expect("a JSON map serializes");
    crate::fsutil::write_atomic(path, text.as_bytes()).map_err(io("writing the checkpoints file"))
}

/// The checkpoints file's entries (none when it is missing or not a JSON object).
fn read_checkpoints(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, CatalogError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let opened = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(crate::fsutil::NO_FOLLOW)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(serde_json::Map::new()),
        Err(e) => return Err(io_at("opening", path.to_owned())(e)),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(CatalogError::Link {
            path: path.to_owned(),
        });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(io(format!("reading {}", path.display())))?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}
