//! oVirt / OLVM backup and disaster recovery.
//!
//! - [`plan`] (pure): a policy file (`variables.json`) -> diagnostics and a validated policy ->
//!   (later) systemd units, cron entries, runner configs and a compose bundle.
//! - [`report`] (edge): how `ovplan` shows diagnostics to a person (miette) or to CI (JSON).

pub mod cli;
pub mod fsutil;
pub mod host;
pub mod plan;
pub mod qemu;
pub mod report;
pub mod run;
#[cfg(feature = "sim")]
pub mod sim;
