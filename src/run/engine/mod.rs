//! The engine's REST API as `ovrun` speaks it (sections 1-7 and 12 of the API page), in four
//! rooms:
//!
//! - [`session`]: the HTTP session ([`EngineClient`]): SSO login, a new login on 401, retried
//!   reads, TLS that trusts only the engine's CA;
//! - [`wire`]: the engine's types, read leniently, with an enum for every phase and status;
//! - [`ops`]: one function per engine operation (`start_backup`, `create_transfer`,
//!   `finalize_transfer`, `add_vm`, ...), typed values in and out, typed errors
//!   ([`EngineError::NeedsFull`], [`EngineError::Locked`], [`EngineError::NotFound`]);
//! - [`wait`]: [`wait::wait_until`], the one bounded poll every wait for a phase or a status
//!   uses.

pub mod config_ops;
mod error;
pub mod ops;
pub mod session;
pub mod snapshot_ops;
pub mod wait;
pub mod wire;

pub use config_ops::NicRequest;
pub use error::EngineError;
pub use ops::{BackupRequest, DiskRequest, TransferRequest};
pub use session::{EngineClient, check_url, https_client, read_password, url_encode};
pub use snapshot_ops::SnapshotRequest;
pub use wire::*;
