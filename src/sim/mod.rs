//! `ovsim`: an oVirt engine simulator on the real oVirt data plane.
//!
//! The data plane is what an engine host runs, for real: every disk a qcow2 file, every
//! checkpoint a qcow2 persistent dirty bitmap, every transfer a `qemu-nbd` export behind the
//! `ovirt-imageio` daemon (from PyPI), which `ovsim` starts, configures and feeds tickets through
//! its control port. The REST control plane (the engine's API) is built on top of it.
//!
//! - [`pki`]: the simulator's CA and the daemon's server certificate, made at first start.
//! - [`process`]: child processes that are stopped when their handle is dropped.
//! - [`imageio`]: the `ovirt-imageio` daemon and its tickets.
//! - [`nbd`]: `qemu-nbd` exports of a disk.
//! - [`disk`]: disks, guest writes, checkpoints, and the point-in-time view a backup reads.
//! - [`api`], [`body`], [`xml`]: the REST control plane's login, representations and faults.
//! - [`resources`], [`vms`], [`backups`], [`transfers`], [`snapshots`], [`jobs`]: its resources.
//! - [`faults`]: fault injection and guest activity for tests and drills.

pub mod api;
pub mod backups;
pub mod body;
pub mod disk;
pub mod faults;
pub mod imageio;
pub mod inventory;
pub mod jobs;
#[expect(
    unsafe_code,
    reason = "qemu-nbd's pre_exec sets the parent-death signal (prctl) between fork and exec"
)]
pub mod nbd;
pub mod pki;
pub mod process;
pub mod resources;
pub mod server;
pub mod snapshots;
pub mod transfers;
pub mod vms;
pub mod xml;

/// What can go wrong running the data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A helper program did not come up.
    #[error("{program} did not start: {why}")]
    Start {
        /// Which program.
        program: String,
        /// What was seen.
        why: String,
    },
    /// The daemon's control API refused a request.
    #[error("ovirt-imageio control: {0}")]
    Control(String),
    /// Certificates could not be made.
    #[error("making the simulator's certificates: {0}")]
    Pki(#[from] rcgen::Error),
}

impl SimError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
        let what = what.into();
        move |source| SimError::Io { what, source }
    }
}
