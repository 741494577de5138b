//! Local qcow2 images, written the way the official imageio client writes them: `qemu-img
//! create` makes the file (a standalone image for a full backup, an overlay on the previous
//! point for an incremental), and `qemu-nbd` serves it on a unix socket while parallel NBD
//! connections write the downloaded ranges. Only written clusters are allocated, so an
//! incremental holds exactly the changed clusters; written zeroes become zero clusters, which
//! still hide the backing file's data.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nbd::client::{NbdClient, handshake};

use crate::qemu::QemuError;
use crate::qemu::img;
use crate::qemu::nbd::{ExportOptions, NbdExport};
use crate::run::blocksum;

/// What can go wrong with a local image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A qemu tool failed.
    #[error("{command}: {why}")]
    Tool {
        /// The command.
        command: String,
        /// Its error output.
        why: String,
    },
    /// I/O on the image or its socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
    let what = what.into();
    move |source| LocalError::Io { what, source }
}

/// The qemu tools' errors as a local image's: the same two kinds (the tool cannot start or it
/// fails), so callers tell a missing tool from a failing one as before.
impl From<QemuError> for LocalError {
    fn from(error: QemuError) -> Self {
        match error {
            QemuError::Io { what, source } => LocalError::Io { what, source },
            QemuError::Tool { command, why } => LocalError::Tool { command, why },
            QemuError::Start { program, why } => LocalError::Tool {
                command: program,
                why: format!("did not start: {why}"),
            },
        }
    }
}

/// Runs a qemu tool; its standard output ([`img::run`]).
///
/// # Errors
/// It cannot start or exits non-zero.
pub fn qemu(program: &str, args: &[&str]) -> Result<Vec<u8>, LocalError> {
    Ok(img::run(program, args)?)
}

/// Creates a qcow2 image of `size` bytes at `path`; with `backing`, an overlay whose backing
/// file is named relative to `path`'s folder ([`img::create`]).
///
/// # Errors
/// `qemu-img` fails.
pub fn create(path: &Path, size: u64, backing: Option<&Path>) -> Result<(), LocalError> {
    Ok(img::create(path, size, backing)?)
}

/// A local image served by `qemu-nbd`: writable for a backup, read-only (its backing chain
/// resolved by `qemu-nbd`) for a restore, a merge or a verification.
#[derive(Debug)]
pub struct Writer {
    export: Option<NbdExport>,
    socket: PathBuf,
    /// A `0700` folder of this writer's own in the run folder, for the socket and
    /// `qemu-nbd`'s log: no fixed name another user could plant a link at. Removed on drop.
    _private: tempfile::TempDir,
    /// Held for the writer's life: `qemu-nbd` runs while a client is connected, and exits with
    /// this process's connections if `ovrun` dies.
    keeper: Option<Connection>,
}

impl Writer {
    /// Serves `image` for writing on a socket in `run_dir`.
    ///
    /// # Errors
    /// `qemu-nbd` does not start.
    pub fn open(image: &Path, run_dir: &Path) -> Result<Self, LocalError> {
        Self::serve(image, run_dir, false)
    }

    /// Serves `image` read-only: reads see the guest's bytes through the whole backing chain.
    ///
    /// # Errors
    /// `qemu-nbd` does not start.
    pub fn open_read_only(image: &Path, run_dir: &Path) -> Result<Self, LocalError> {
        Self::serve(image, run_dir, true)
    }

    fn serve(image: &Path, run_dir: &Path, read_only: bool) -> Result<Self, LocalError> {
        fs_err::create_dir_all(run_dir).map_err(io("creating the run folder"))?;
        let private = tempfile::Builder::new()
            .prefix(&format!("ovrun-{}-", std::process::id()))
            .tempdir_in(run_dir)
            .map_err(io(format!("creating a folder in {}", run_dir.display())))?;
        let socket = private.path().join("nbd.sock");
        let export = NbdExport::start(
            image,
            &socket,
            &private.path().join("qemu-nbd.log"),
            &ExportOptions {
                read_only,
                bitmap: None,
                detect_zeroes: !read_only,
                exit_with_last_client: true,
                die_with_owner: true,
                direct_io: !read_only && can_use_direct_io(image),
                allocation_depth: false,
            },
        )
        .map_err(|e| LocalError::Tool {
            command: "qemu-nbd".into(),
            why: e.to_string(),
        })?;
        let mut writer = Self {
            export: Some(export),
            socket,
            _private: private,
            keeper: None,
        };
        writer.keeper = Some(writer.connect()?);
        Ok(writer)
    }

    /// A new connection (one per parallel writer).
    ///
    /// # Errors
    /// The socket refuses, or the handshake fails.
    pub fn connect(&self) -> Result<Connection, LocalError> {
        let mut stream = UnixStream::connect(&self.socket).map_err(io("connecting to qemu-nbd"))?;
        let export = handshake(&mut stream, b"").map_err(io("NBD handshake"))?;
        Ok(Connection(NbdClient::new(stream, &export)))
    }

    /// Flushes everything to the file and stops serving it.
    ///
    /// # Errors
    /// The flush fails.
    pub fn close(mut self) -> Result<(), LocalError> {
        let flushed = match self.keeper.take() {
            Some(mut keeper) => keeper.flush(),
            None => self.connect().and_then(|mut c| c.flush()),
        };
        if let Some(export) = self.export.take() {
            export.stop();
        }
        flushed
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(export) = self.export.take() {
            export.stop();
        }
    }
}

/// Whether `image` can be opened with `O_DIRECT` (not on tmpfs, for one), as the official
/// client checks before it asks `qemu-nbd` for `--cache=none`.
fn can_use_direct_io(image: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(crate::fsutil::DIRECT)
        .open(image)
        .is_ok()
}

/// One NBD connection to a [`Writer`].
pub struct Connection(NbdClient<UnixStream>);

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

impl Connection {
    /// Writes `data` at `offset`.
    ///
    /// # Errors
    /// The write fails (e.g. the disk is full).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), LocalError> {
        self.0
            .seek(SeekFrom::Start(offset))
            .map_err(io("seeking the image"))?;
        self.0.write_all(data).map_err(|source| {
            // qemu-nbd passes the file system's ENOSPC back as the NBD error.
            let full = nbd_errno(&source) == Some(rustix::io::Errno::NOSPC);
            let what = if full {
                "No space left on device in the backup directory: free space or keep fewer points \
                 (retention); nothing was recorded as a point"
                    .to_owned()
            } else {
                format!("writing {} bytes at {offset}", data.len())
            };
            LocalError::Io { what, source }
        })
    }

    /// Fills `buffer` from `offset`.
    ///
    /// # Errors
    /// The read fails.
    pub fn read_at(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), LocalError> {
        self.0
            .seek(SeekFrom::Start(offset))
            .map_err(io("seeking the image"))?;
        self.0
            .read_exact(buffer)
            .map_err(io(format!("reading {} bytes at {offset}", buffer.len())))
    }

    /// Reads checksum blocks `indexes` of a disk of `size` bytes (through the backing chain)
    /// and hashes each ([`crate::run::blocksum`]).
    ///
    /// # Errors
    /// A read fails.
    pub fn block_digests(
        &mut self,
        size: u64,
        indexes: &[usize],
    ) -> Result<Vec<(usize, blocksum::Digest)>, LocalError> {
        let mut buffer = vec![0u8; usize::try_from(blocksum::BLOCK).unwrap_or(0)];
        let mut digests = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let (offset, length) = blocksum::block_range(size, index);
            let block = &mut buffer[..usize::try_from(length).unwrap_or(0)];
            self.read_at(offset, block)?;
            digests.push((index, blocksum::digest(block)));
        }
        Ok(digests)
    }

    /// Writes zeroes over `[offset, offset + length)` (zero clusters, see [`Writer::open`]).
    ///
    /// # Errors
    /// The write fails.
    pub fn zero(&mut self, offset: u64, length: u64) -> Result<(), LocalError> {
        const PIECE: u64 = 4 << 20;
        let zeroes = vec![0u8; usize::try_from(PIECE.min(length)).unwrap_or(0)];
        for at in (offset..offset + length).step_by(zeroes.len().max(1)) {
            let n = PIECE.min(offset + length - at);
            self.write_at(at, &zeroes[..usize::try_from(n).unwrap_or(0)])?;
        }
        Ok(())
    }

    /// Flushes the image to storage.
    ///
    /// # Errors
    /// The flush fails.
    pub fn flush(&mut self) -> Result<(), LocalError> {
        self.0.flush().map_err(io("flushing the image"))
    }
}

pub use crate::qemu::img::MapExtent;

/// The extents of `image` and its backing chain ([`img::map`]).
///
/// # Errors
/// `qemu-img` fails or answers something else than its JSON map.
pub fn map(image: &Path) -> Result<Vec<MapExtent>, LocalError> {
    Ok(img::map(image)?)
}

/// The errno of a failed NBD request: the `nbd` crate hands the server's NBD error back as an
/// `io::Error` whose whole message is the errno's name (its only form of the code), or as the
/// OS error of a failed socket call.
fn nbd_errno(error: &std::io::Error) -> Option<rustix::io::Errno> {
    use rustix::io::Errno;
    if let Some(code) = error.raw_os_error() {
        return Some(Errno::from_raw_os_error(code));
    }
    let name = error.get_ref().map(ToString::to_string)?;
    [
        ("EIO", Errno::IO),
        ("ENOMEM", Errno::NOMEM),
        ("EINVAL", Errno::INVAL),
        ("ENOSPC", Errno::NOSPC),
    ]
    .into_iter()
    .find_map(|(known, errno)| (name == known).then_some(errno))
}

#[cfg(test)]
mod tests {
    use std::io::Error;

    use rustix::io::Errno;

    use super::nbd_errno;

    #[test]
    fn an_nbd_error_is_known_by_its_errno_never_by_a_word_in_a_message() {
        assert_eq!(nbd_errno(&Error::other("ENOSPC")), Some(Errno::NOSPC));
        assert_eq!(nbd_errno(&Error::from_raw_os_error(28)), Some(Errno::NOSPC));
        assert_eq!(nbd_errno(&Error::other("not ENOSPC at all")), None);
        assert_eq!(nbd_errno(&Error::other("other error from device")), None);
    }
}
