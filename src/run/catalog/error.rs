//! What can go wrong in the backup directory, and the helpers that name the file an I/O
//! error was about (a link met is its own error: the catalog never follows one).

use std::path::PathBuf;
use std::time::Duration;

use crate::fsutil::is_symlink_error;

/// What can go wrong in the backup directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another `ovrun` holds the VM.
    #[error(
        "another ovrun is working on {vm} (lock {lock}); waited {waited:?}: let it finish, or stop it"
    )]
    Busy {
        /// The VM.
        vm: String,
        /// The lock file.
        lock: PathBuf,
        /// How long this one waited.
        waited: Duration,
    },
    /// A manifest that cannot be read.
    #[error("{path}: not a manifest: {why}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A VM name that cannot name a folder.
    #[error(
        "VM name {vm:?} cannot name a backup folder: {why}; give the runner config's `vm` the \
         VM's name as the engine shows it (ovplan build writes it so)"
    )]
    UnsafeVm {
        /// The name.
        vm: String,
        /// Why not.
        why: &'static str,
    },
    /// The VM's folder is another VM's.
    #[error(
        "{folder} belongs to VM {owner:?}, not to {vm:?}: two VMs cannot share a folder; move \
         the folder away, or correct the runner config's `vm`"
    )]
    Foreign {
        /// The folder.
        folder: PathBuf,
        /// The VM this run is for.
        vm: String,
        /// The VM it belongs to.
        owner: String,
    },
    /// A symbolic link (or no regular file) where the catalog holds its own files.
    #[error(
        "{path} is a symbolic link, or not the kind of entry the catalog keeps there (a regular \
         file; a folder for a VM): ovrun never follows links in the backup directory; remove \
         it (and find out who put it there)"
    )]
    Link {
        /// The link.
        path: PathBuf,
    },
}

pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CatalogError {
    let what = what.into();
    move |source| CatalogError::Io { what, source }
}

/// [`io`], but a link met is [`CatalogError::Link`].
pub(super) fn io_at(
    what: impl Into<String>,
    path: PathBuf,
) -> impl FnOnce(std::io::Error) -> CatalogError {
    let what = what.into();
    move |source| {
        if is_symlink_error(&source) || source.kind() == std::io::ErrorKind::NotADirectory {
            CatalogError::Link { path }
        } else {
            CatalogError::Io {
                what: format!("{what} {}", path.display()),
                source,
            }
        }
    }
}
