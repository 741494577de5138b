//! `ovsim`: an oVirt engine simulator on the real oVirt data plane.
//!
//! The data plane is what an engine host runs, for real: every disk a qcow2 file, every
//! checkpoint a qcow2 persistent dirty bitmap, every transfer a `qemu-nbd` export behind the
//! `ovirt-imageio` daemon (from PyPI), which `ovsim` starts, configures and feeds tickets through
//! its control port. The REST control plane (the engine's API) is built on top of it.
//!
//! - [`pki`]: the simulator's CA and the daemon's server certificate, made at first start.
//! - [`imageio`]: the `ovirt-imageio` daemon and its tickets.
//! - [`disk`]: disks, guest writes, checkpoints, and the point-in-time view a backup reads.
//! - [`state`]: the engine's state (users and tokens, inventory, faults, jobs, the transfers'
//!   data plane), which knows no route.
//! - [`api`]: the REST control plane assembled from the routes below and its middleware.
//! - [`login`]: SSO tokens, logout, the CA, the API root and the login check.
//! - [`reply`], [`body`], [`xml`]: answers (JSON or XML, faults), request bodies, XML.
//! - [`resources`], [`vms`], [`backups`], [`transfers`], [`snapshots`], [`jobs`]: its resources;
//!   [`settings`]: a VM's configuration (CPU, firmware, OS, ...); [`nics`] and [`networks`]: its
//!   NICs, the networks and vNIC profiles they connect to; [`ovf`]: a VM's OVF, which
//!   `all_content=true` adds to it.
//! - [`faults`]: fault injection and guest activity for tests and drills; [`backup_load`]: the
//!   most VMs backed up at once, for tests of clients' limits.
//!
//! The qemu tools it runs (`qemu-img`, `qemu-io`, `qemu-nbd`, supervised processes) live in
//! [`crate::qemu`], which the executor uses too.

pub mod api;
pub mod backup_load;
pub mod backups;
pub mod body;
pub mod clock;
pub mod devices;
pub mod disk;
pub mod disk_snapshots;
pub mod events;
pub mod faults;
pub mod imageio;
pub mod inventory;
pub mod jobs;
pub mod login;
pub mod networks;
pub mod nics;
pub mod ovf;
pub mod pki;
pub mod reply;
pub mod resources;
pub mod search;
pub mod server;
pub mod settings;
pub mod snapshots;
pub mod state;
pub mod transfers;
pub mod vms;
pub mod volumes;
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
    /// A qemu tool failed, or a supervised program did not come up.
    #[error(transparent)]
    Qemu(#[from] crate::qemu::QemuError),
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
