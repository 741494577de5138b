//! `ovrun`'s library: what the compiled units run against the engines.
//!
//! - [`engine`]: the engine's REST API as a client sees it: lenient types and a client with
//!   SSO login, re-login on 401, the engine's faults, polling.
//! - [`imageio`]: the ovirt-imageio data plane: extents, ranged reads, writes.
//! - [`local`]: local qcow2 images written through `qemu-nbd`.
//! - [`catalog`]: the backup directory: points, manifests, the checkpoints file, the VM lock.
//! - [`backup`]: one backup run (policy.md section 3, API page section 13.1).
//! - [`blocksum`]: content checksums as imageio computes them, block by block.
//! - [`restore`]: one restore into the DR engine (policy.md section 5), and `merge`.
//! - [`cert`]: fetching an engine's CA and warning before it expires.
//! - `retry`: finalize and cancel retried with a bounded backoff; every poll bounded.

pub mod backup;
pub mod blocksum;
pub mod catalog;
pub mod cert;
pub mod engine;
pub mod imageio;
#[expect(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "local.rs probes O_DIRECT with std OpenOptions: only whether the open succeeds matters"
)]
pub mod local;
pub mod restore;
mod retry;
pub mod status;
pub mod transport;
pub mod verify;
mod workers;
