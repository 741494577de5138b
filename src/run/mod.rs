//! `ovrun`'s library: what the compiled units run against the engines.
//!
//! - [`engine`]: the engine's REST API as a client sees it: the session (SSO login, re-login
//!   on 401), the wire types with an enum for every phase and status, one typed function per
//!   operation, and the one bounded poll, `wait_until`.
//! - [`imageio`]: the ovirt-imageio data plane: extents, ranged reads, writes.
//! - [`local`]: local qcow2 images written through `qemu-nbd`.
//! - [`catalog`]: the backup directory: points, manifests, the checkpoints file, the VM lock.
//! - [`chain`]: the chain rules, pure: a point's ancestry, a broken chain, which point a
//!   restore's selector names.
//! - [`job`]: what a backup and a restore share: `Options`, `RunError`, the preamble (the VM's
//!   catalog under its lock).
//! - [`backup`]: one backup run (policy.md section 3, API page section 13.1); its data path is
//!   `backup::download` (the engine's transfer into a local qcow2, hashed as it passes).
//! - [`restore`]: one restore into the DR engine (policy.md section 5); its data path is
//!   `restore::upload` (the local chain into the DR engine's transfer).
//! - `transfer`: an image transfer's two ends (until transferring; finalized), both
//!   directions; `workers`: the parallel connections over a queue of ranges that `download`
//!   and `upload` both run.
//! - [`merge`]: a point's disk chain written as one standalone qcow2 image (`ovrun merge`).
//! - [`blocksum`]: content checksums as imageio computes them, block by block.
//! - [`verify`]: whether a VM's points can still be restored.
//! - [`history`]: the run history's lines as the commands end them, and `ovrun history`.
//! - [`status`]: how each VM's backups stand, as a table, JSON or Prometheus metrics.
//! - [`cert`]: fetching an engine's CA and warning before it expires.
//! - `retry`: how long a phase is waited for, and a run's side of `wait_until` (its pace, its
//!   stop flag, its errors).
//!
//! No module here imports another that imports it back: the dependencies run from the
//! commands (`backup`, `restore`) down to `job`, `catalog` and the engine's client.

pub mod backup;
pub mod blocksum;
pub mod catalog;
pub mod cert;
pub mod chain;
pub mod config_view;
pub mod engine;
pub mod history;
pub mod imageio;
pub mod job;
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
mod transfer;
pub mod transport;
pub mod verify;
mod workers;
