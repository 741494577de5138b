//! Crash-safe file system writes (the edge; `plan` never touches files): a file is written to a
//! temporary name, fsynced, renamed, and its directory fsynced; a whole tree is built beside its
//! destination and swapped in with one atomic rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use fs_err as fs;

/// Writes `content` to `path` atomically and durably.
///
/// # Errors
/// Any I/O error, naming the path.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(content)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// fsyncs a directory, so a rename in it survives a crash.
///
/// # Errors
/// Any I/O error, naming the directory.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Replaces the directory `dest` with a tree of files (relative path -> content), atomically:
/// readers see the old tree or the new one, never a mix. The tree is written and fsynced in a
/// sibling folder, `MANIFEST` last, then exchanged with `dest` in one rename.
///
/// # Errors
/// Any I/O error; `dest` is then left as it was.
pub fn replace_tree(dest: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".ovplan-build-")
        .tempdir_in(parent)?;
    let manifest = files.get("MANIFEST");
    for (relative, content) in files.iter().filter(|(name, _)| *name != "MANIFEST") {
        write_file(staging.path(), relative, content)?;
    }
    if let Some(manifest) = manifest {
        write_file(staging.path(), "MANIFEST", manifest)?;
    }
    sync_tree_dirs(staging.path())?;
    let staged = staging.keep();
    swap_in(&staged, dest)?;
    sync_dir(parent)
}

fn write_file(root: &Path, relative: &str, content: &str) -> std::io::Result<()> {
    let path = root.join(relative);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = fs::File::create(&path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

fn sync_tree_dirs(root: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree_dirs(&entry.path())?;
        }
    }
    sync_dir(root)
}

/// Puts `staged` at `dest`: an atomic exchange when `dest` exists (then the old tree, now at
/// `staged`, is removed), a plain rename when it does not.
fn swap_in(staged: &Path, dest: &Path) -> std::io::Result<()> {
    if dest.exists() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            staged,
            rustix::fs::CWD,
            dest,
            rustix::fs::RenameFlags::EXCHANGE,
        )?;
        fs::remove_dir_all(staged)
    } else {
        fs::rename(staged, dest)
    }
}

/// Every file under `root`, relative path (with `/`) -> content; `None` when `root` is absent.
///
/// # Errors
/// Any I/O error other than `root` being absent.
pub fn read_tree(root: &Path) -> std::io::Result<Option<BTreeMap<String, Vec<u8>>>> {
    if !root.exists() {
        return Ok(None);
    }
    let mut files = BTreeMap::new();
    collect(root, PathBuf::new(), &mut files)?;
    Ok(Some(files))
}

fn collect(
    root: &Path,
    relative: PathBuf,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(root.join(&relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            collect(root, path, files)?;
        } else {
            let key = path.to_string_lossy().into_owned();
            files.insert(key, fs::read(root.join(&path))?);
        }
    }
    Ok(())
}
