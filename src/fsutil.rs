//! Crash-safe file system writes (the edge; `plan` never touches files): a file is written to a
//! temporary name, fsynced, renamed, and its directory fsynced; a whole tree is built beside its
//! destination and swapped in with one atomic rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use fs_err as fs;
use rayon::prelude::*;

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
/// readers see the old tree or the new one, never a mix. The tree is written in a sibling
/// folder, `MANIFEST` last, made durable with one `syncfs` of its file system (ten thousand
/// VMs make thirty thousand files, and one fsync each would take half a minute), then exchanged
/// with `dest` in one rename.
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
    write_files(
        staging.path(),
        files.iter().filter(|(name, _)| *name != "MANIFEST"),
    )?;
    if let Some(manifest) = files.get("MANIFEST") {
        fs::write(staging.path().join("MANIFEST"), manifest)?;
    }
    rustix::fs::syncfs(fs::File::open(staging.path())?.file())?;
    let staged = staging.keep();
    swap_in(&staged, dest)?;
    sync_dir(parent)
}

/// Writes files under `root`: each folder made once, the files by one thread per core (ten
/// thousand VMs make thirty thousand files, and each create waits on the file system).
fn write_files<'a>(
    root: &Path,
    files: impl Iterator<Item = (&'a String, &'a String)>,
) -> std::io::Result<()> {
    let files: Vec<(PathBuf, &str)> = files
        .map(|(relative, content)| (root.join(relative), content.as_str()))
        .collect();
    let mut dirs: Vec<&Path> = files.iter().filter_map(|(path, _)| path.parent()).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        fs::create_dir_all(dir)?;
    }
    files
        .par_iter()
        .try_for_each(|(path, content)| fs::write(path, content))
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
        remove_tree(staged)
    } else {
        fs::rename(staged, dest)
    }
}

/// Removes a tree, its files by one thread per core (as many unlinks as there were creates).
fn remove_tree(root: &Path) -> std::io::Result<()> {
    let files = files_under(root)?;
    files
        .par_iter()
        .try_for_each(|path| fs::remove_file(root.join(path)))?;
    fs::remove_dir_all(root)
}

/// The relative paths of every file under `root`.
fn files_under(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(root.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    Ok(found)
}

/// Every file under `root`, relative path -> content; `None` when `root` is absent.
///
/// # Errors
/// Any I/O error other than `root` being absent.
pub fn read_tree(root: &Path) -> std::io::Result<Option<BTreeMap<String, Vec<u8>>>> {
    if !root.exists() {
        return Ok(None);
    }
    let mut files = BTreeMap::new();
    for path in files_under(root)? {
        let content = fs::read(root.join(&path))?;
        files.insert(path.to_string_lossy().into_owned(), content);
    }
    Ok(Some(files))
}
