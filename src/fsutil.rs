//! Crash-safe file system writes (the edge; `plan` never touches files): a file is written to a
//! temporary name, fsynced, renamed, and its directory fsynced; a whole tree is built beside its
//! destination and swapped in with one atomic rename. [`Folder`] does the same inside a folder
//! reached only through its descriptor, never following a symbolic link (the backup catalog).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use fs_err as fs;
use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

/// Writes `content` to `path` atomically and durably.
///
/// # Errors
/// Any I/O error, naming the path.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, content, None)
}

/// Writes `content` to `path` as [`write_atomic`] does, readable by all (0644) from the moment
/// it appears: a file another service reads as another user (node_exporter's textfile
/// collector, a web server). [`write_atomic`]'s files are 0600, as its temporary file is made.
/// The temporary file's name starts with `.tmp-`, so a collector matching `*.prom` or a web
/// server hiding dot files never shows it.
///
/// # Errors
/// Any I/O error, naming the path.
pub fn write_atomic_readable(path: &Path, content: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, content, Some(READABLE_MODE))
}

/// The mode of [`write_atomic_readable`]'s files.
const READABLE_MODE: u32 = 0o644;

/// [`write_atomic`], the temporary file given `mode` (if any) before it is renamed.
fn write_atomic_mode(path: &Path, content: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(content)?;
    if let Some(mode) = mode {
        let permissions = std::fs::Permissions::from_mode(mode);
        temp.as_file().set_permissions(permissions)?;
    }
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

/// A folder opened once and then used only through its file descriptor: every file in it is
/// opened, created, renamed or removed relative to that descriptor, by a single name, never
/// following a symbolic link (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and
/// `O_NOFOLLOW`). A link planted in the folder, or in place of the folder itself, is refused
/// with `ELOOP` (see [`is_symlink_error`]); nothing is read, written or deleted through it.
/// Files are created `0600` and folders `0700`, whatever the umask.
#[derive(Debug, Clone)]
pub struct Folder {
    fd: std::sync::Arc<OwnedFd>,
    path: PathBuf,
}

/// The kind of a folder entry, as `readdir` tells it (not following links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (a folder, a socket, ...).
    Other,
}

/// `O_NOFOLLOW` for `OpenOptionsExt::custom_flags`: opening a symbolic link fails (`ELOOP`).
pub const NO_FOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits().cast_signed();

/// `O_DIRECT` for `OpenOptionsExt::custom_flags`: reads and writes bypass the page cache.
pub const DIRECT: i32 = rustix::fs::OFlags::DIRECT.bits().cast_signed();

/// Whether an I/O error (or the one an `fs-err` error wraps) says a symbolic link was met
/// where none may be (`ELOOP`).
pub fn is_symlink_error(error: &std::io::Error) -> bool {
    let eloop = Some(rustix::io::Errno::LOOP.raw_os_error());
    let wrapped = error
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|source| source.downcast_ref::<std::io::Error>());
    error.raw_os_error() == eloop || wrapped.is_some_and(|inner| inner.raw_os_error() == eloop)
}

/// `openat2(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode, BENEATH | NO_SYMLINKS)`; on a
/// kernel without `openat2` (before 5.6), `openat` with `O_NOFOLLOW`, which is the same for
/// the single names this module passes.
fn open_beneath(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlags,
    mode: Mode,
) -> std::io::Result<OwnedFd> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    match rustix::fs::openat2(dir, name, flags, mode, resolve) {
        Err(rustix::io::Errno::NOSYS) => Ok(rustix::fs::openat(dir, name, flags, mode)?),
        other => Ok(other?),
    }
}

impl Folder {
    /// Opens the folder `name` in `parent` (made `0700` if missing), refusing a symbolic link.
    /// Group and other permissions on an existing folder are removed.
    ///
    /// # Errors
    /// It cannot be made or opened; `ELOOP` when it is a symbolic link, `ENOTDIR` when it is
    /// no folder.
    pub fn open_in(parent: &Path, name: &str) -> std::io::Result<Self> {
        let parent_fd = rustix::fs::open(
            parent,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Self::open_at(parent_fd.as_fd(), name, parent.join(name))
    }

    /// Opens the folder `name` in this one (made `0700` if missing) through this folder's
    /// descriptor, as [`Folder::open_in`] does: a link there is refused (`ELOOP`).
    ///
    /// # Errors
    /// As [`Folder::open_in`].
    pub fn subfolder(&self, name: &str) -> std::io::Result<Self> {
        Self::open_at(self.fd.as_fd(), name, self.path.join(name))
    }

    /// The folder `name` beneath `parent_fd`, made if missing, known by `path` in messages.
    fn open_at(parent_fd: BorrowedFd<'_>, name: &str, path: PathBuf) -> std::io::Result<Self> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY;
        let fd = match open_beneath(parent_fd, name, flags, Mode::empty()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(parent_fd, name, Mode::RWXU) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::fsync(parent_fd)?;
                open_beneath(parent_fd, name, flags, Mode::empty())?
            }
            other => other?,
        };
        let mode = rustix::fs::fstat(&fd)?.st_mode;
        if mode & 0o077 != 0 {
            rustix::fs::fchmod(&fd, Mode::RWXU)?;
        }
        Ok(Self {
            fd: std::sync::Arc::new(fd),
            path,
        })
    }

    /// The folder's path (for messages; files are reached through its descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path to `name` that tools run by this process (`qemu-img`, `qemu-nbd`) resolve
    /// through this folder's descriptor, wherever the folder's path leads now:
    /// `/proc/<pid>/fd/<fd>/<name>`. Relative backing file names resolve in the folder too.
    pub fn proc_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}/{name}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }

    /// The folder's entries (names that are not UTF-8 left out), sorted by name.
    ///
    /// # Errors
    /// It cannot be read.
    pub fn entries(&self) -> std::io::Result<Vec<(String, EntryKind)>> {
        let mut found = Vec::new();
        for entry in rustix::fs::Dir::read_from(&*self.fd)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                rustix::fs::FileType::RegularFile => EntryKind::File,
                rustix::fs::FileType::Symlink => EntryKind::Symlink,
                rustix::fs::FileType::Unknown => self.kind_of(name)?,
                _ => EntryKind::Other,
            };
            found.push((name.to_owned(), kind));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// The kind of `name`, not following a link.
    fn kind_of(&self, name: &str) -> std::io::Result<EntryKind> {
        let stat = rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::RegularFile => EntryKind::File,
            rustix::fs::FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        })
    }

    /// Whether `name` exists (a link counts, and is not followed).
    pub fn exists(&self, name: &str) -> bool {
        rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Opens `name` for reading; a regular file only.
    ///
    /// # Errors
    /// It cannot be opened (`ELOOP` for a link), or is no regular file.
    pub fn open(&self, name: &str) -> std::io::Result<std::fs::File> {
        let fd = open_beneath(self.fd.as_fd(), name, OFlags::RDONLY, Mode::empty())?;
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is no regular file", self.path.join(name).display()),
            ));
        }
        Ok(file)
    }

    /// The content of `name`.
    ///
    /// # Errors
    /// As [`Folder::open`], or a read error.
    pub fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut self.open(name)?, &mut bytes)?;
        Ok(bytes)
    }

    /// Opens (creating it `0600` if missing) `name` for writing, without truncating it.
    ///
    /// # Errors
    /// It cannot be opened (`ELOOP` for a link).
    pub fn open_or_create(&self, name: &str) -> std::io::Result<std::fs::File> {
        let flags = OFlags::WRONLY | OFlags::CREATE;
        Ok(open_beneath(self.fd.as_fd(), name, flags, Mode::RUSR | Mode::WUSR)?.into())
    }

    /// Creates `name`, which must not exist (`O_EXCL`), empty and `0600`.
    ///
    /// # Errors
    /// It exists (a link included), or cannot be made.
    pub fn create_new(&self, name: &str) -> std::io::Result<std::fs::File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        Ok(open_beneath(self.fd.as_fd(), name, flags, Mode::RUSR | Mode::WUSR)?.into())
    }

    /// Writes `name` atomically and durably: a `0600` temporary file in the folder, fsynced,
    /// renamed over `name` (a link there is replaced, never followed), the folder fsynced.
    ///
    /// # Errors
    /// Any I/O error; the temporary file is then removed.
    pub fn write_atomic(&self, name: &str, content: &[u8]) -> std::io::Result<()> {
        let temp = format!(".tmp-{}-{:08x}", std::process::id(), rand::random::<u32>());
        let written = self.create_new(&temp).and_then(|mut file| {
            file.write_all(content)?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| {
            Ok(rustix::fs::renameat(
                &*self.fd,
                temp.as_str(),
                &*self.fd,
                name,
            )?)
        });
        if let Err(e) = renamed {
            let _ = self.remove(&temp);
            return Err(e);
        }
        self.sync()
    }

    /// Appends `line` to `name` (created `0600` if missing) in one `write` with `O_APPEND`,
    /// then fsyncs it: a crash leaves the line whole or absent, never half of it. The file's
    /// size after the write.
    ///
    /// # Errors
    /// It cannot be opened (`ELOOP` for a link), written or synced.
    pub fn append(&self, name: &str, line: &[u8]) -> std::io::Result<u64> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND;
        let fd = open_beneath(self.fd.as_fd(), name, flags, Mode::RUSR | Mode::WUSR)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(line)?;
        file.sync_all()?;
        Ok(file.metadata()?.len())
    }

    /// Takes group and other permissions off the regular file `name`.
    ///
    /// # Errors
    /// It cannot be opened (`ELOOP` for a link) or changed.
    pub fn restrict(&self, name: &str) -> std::io::Result<()> {
        let fd = open_beneath(self.fd.as_fd(), name, OFlags::RDONLY, Mode::empty())?;
        let mode = rustix::fs::fstat(&fd)?.st_mode;
        if mode & 0o077 != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o700))?;
        }
        Ok(())
    }

    /// Removes `name` (a link is removed itself, not what it points to).
    ///
    /// # Errors
    /// It cannot be removed.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        if name.is_empty() || name.contains('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a single file name"),
            ));
        }
        Ok(rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty())?)
    }

    /// fsyncs the folder, so that creates, renames and removals in it survive a crash.
    ///
    /// # Errors
    /// The fsync fails.
    pub fn sync(&self) -> std::io::Result<()> {
        Ok(rustix::fs::fsync(&*self.fd)?)
    }
}
