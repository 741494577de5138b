//! The qemu tools, as child processes: `qemu-img` and `qemu-io` runs ([`img`]), `qemu-nbd`
//! exports of a qcow2 image ([`nbd`]), and the supervised child process both the exports and
//! the simulator's daemons run as ([`process`]).
//!
//! Both the executor (`crate::run`, its local images) and the simulator (`crate::sim`, its
//! disks) use this room; it uses neither of them.

pub mod img;
#[expect(
    unsafe_code,
    reason = "qemu-nbd's pre_exec sets the parent-death signal (prctl) between fork and exec"
)]
pub mod nbd;
pub mod process;

/// What can go wrong running a qemu tool or a supervised process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QemuError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed (non-zero exit), or answered something unexpected.
    #[error("{command}: {why}")]
    Tool {
        /// The command line.
        command: String,
        /// Its error output, or what was unexpected.
        why: String,
    },
    /// A supervised program did not come up.
    #[error("{program} did not start: {why}")]
    Start {
        /// Which program.
        program: String,
        /// What was seen.
        why: String,
    },
}

impl QemuError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> QemuError {
        let what = what.into();
        move |source| QemuError::Io { what, source }
    }
}
