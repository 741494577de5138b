//! `qemu-nbd` exports of a disk, as vdsm makes them for an image transfer: read-only (with the
//! checkpoint's dirty bitmap for an incremental backup) or writable (for an upload). `ovrun`
//! serves its local images the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::QemuError;
use super::process::{Supervised, wait_until};

/// How an image is exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Refuse writes.
    pub read_only: bool,
    /// Expose this persistent dirty bitmap as `qemu:dirty-bitmap:<name>` (one at most: imageio
    /// drops dirty extents when an export has several).
    pub bitmap: Option<String>,
    /// Turn written zeroes into zero clusters (`--detect-zeroes=on`): a client writing a backup
    /// image gets no allocated zero clusters, and zeroes still mask a backing file.
    pub detect_zeroes: bool,
    /// Exit when the last client disconnects (not `--persistent`): a writer whose owner dies
    /// (even by SIGKILL) does not outlive it, as its connections close with it.
    pub exit_with_last_client: bool,
    /// Receive SIGTERM when the thread that started it ends (Linux `PR_SET_PDEATHSIG`): covers
    /// the owner dying before its first connection. Only for owners whose starting thread lives
    /// as long as the export (`ovrun`'s runtime workers, not a blocking pool's threads).
    pub die_with_owner: bool,
    /// Bypass the page cache (`--cache=none --aio=native`), as the official imageio client
    /// does where the file system allows `O_DIRECT`: a writer copies each byte once less.
    pub direct_io: bool,
    /// Report which layer of the chain holds each block (`--allocation-depth`, as vdsm
    /// exports): imageio then marks what a layer does not hold as a `hole`, which is how a
    /// `shallow` transfer tells unchanged blocks from written zeroes.
    pub allocation_depth: bool,
}

/// A running export on a unix socket; stopped when dropped.
#[derive(Debug)]
pub struct NbdExport {
    process: Supervised,
    socket: PathBuf,
}

impl NbdExport {
    /// Exports the qcow2 image `image` on `socket`, logging to `log`.
    ///
    /// # Errors
    /// `qemu-nbd` cannot start (a missing bitmap, an image locked by another writer, ...).
    pub fn start(
        image: &Path,
        socket: &Path,
        log: &Path,
        options: &ExportOptions,
    ) -> Result<Self, QemuError> {
        // qemu-nbd writes its pid file only once the socket listens (the socket file appears
        // at bind, before listen: a client connecting then is refused), so readiness is the
        // pid file, never the socket.
        let ready = socket.with_extension("pid");
        let _ = fs_err::remove_file(socket);
        let _ = fs_err::remove_file(&ready);
        let mut command = qemu_nbd(image, socket, &ready, options);
        let mut process = Supervised::spawn("qemu-nbd", &mut command, log)?;
        wait_until(
            &mut process,
            Duration::from_secs(20),
            || ready.exists().then_some(()),
            log,
        )?;
        Ok(Self {
            process,
            socket: socket.to_owned(),
        })
    }

    /// The URL an imageio ticket names for this export.
    pub fn url(&self) -> String {
        format!("nbd:unix:{}", self.socket.display())
    }

    /// Stops the export, releasing the image's lock.
    pub fn stop(mut self) {
        self.process.stop();
    }
}

/// The `qemu-nbd` command line for `options`, writing its pid to `ready` once it listens.
fn qemu_nbd(image: &Path, socket: &Path, ready: &Path, options: &ExportOptions) -> Command {
    let mut command = Command::new("qemu-nbd");
    command.arg(format!("--socket={}", socket.display()));
    command.arg(format!("--pid-file={}", ready.display()));
    if !options.exit_with_last_client {
        command.arg("--persistent");
    }
    command.args(["--shared=8", "--export-name=", "--format=qcow2"]);
    if options.read_only {
        command.arg("--read-only");
    }
    if options.detect_zeroes {
        command.arg("--detect-zeroes=on");
    }
    if options.direct_io {
        command.args(["--cache=none", "--aio=native"]);
    }
    if options.allocation_depth {
        command.arg("--allocation-depth");
    }
    if let Some(bitmap) = &options.bitmap {
        command.arg(format!("--bitmap={bitmap}"));
    }
    command.arg(image);
    if options.die_with_owner {
        die_with_parent(&mut command);
    }
    command
}

/// Makes the child receive SIGTERM when the spawning thread ends, and refuse to start if its
/// parent is already gone.
fn die_with_parent(command: &mut Command) {
    use rustix::process::{Signal, getppid, set_parent_process_death_signal};
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and makes only raw system calls (prctl,
    // getppid), allocating nothing.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::TERM))?;
            let now = getppid().and_then(|pid| u32::try_from(pid.as_raw_nonzero().get()).ok());
            if now != Some(parent) {
                return Err(std::io::Error::other(
                    "the owner exited before qemu-nbd started",
                ));
            }
            Ok(())
        });
    }
}
