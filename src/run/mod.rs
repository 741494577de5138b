//! `ovrun`'s library: what the compiled units run against the engines.
//!
//! - [`engine`]: the engine's REST API as a client sees it: the session (SSO login, re-login
//!   on 401), the wire types with an enum for every phase and status, one typed function per
//!   operation, and the one bounded poll, `wait_until`.
//! - [`imageio`]: the ovirt-imageio data plane: extents, ranged reads, writes.
//! - [`local`]: local qcow2 images written through `qemu-nbd`.
//! - [`catalog`]: the backup directory: points, manifests, the checkpoints file, the VM lock.
//! - [`backup`]: one backup run (policy.md section 3, API page section 13.1).
//! - [`blocksum`]: content checksums as imageio computes them, block by block.
//! - [`restore`]: one restore into the DR engine (policy.md section 5).
//! - [`merge`]: a point's disk chain written as one standalone qcow2 image (`ovrun merge`).
//! - [`cert`]: fetching an engine's CA and warning before it expires.
//! - `retry`: how long a phase is waited for, and a run's side of `wait_until` (its pace, its
//!   stop flag, its errors).

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
pub mod merge;
pub mod restore;
mod retry;
pub mod status;
pub mod transport;
pub mod verify;
mod workers;
