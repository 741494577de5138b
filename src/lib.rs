//! oVirt / OLVM backup and disaster recovery: the library behind three binaries, `ovplan` (the
//! policy compiler), `ovrun` (the executor its units run) and `ovsim` (an engine simulator).
//!
//! - [`plan`] (pure: no files, clocks, network or processes): a policy file
//!   (`variables.json`) -> every diagnostic at once -> a validated policy -> its runs
//!   predicted -> the bundle: systemd units, a cron file, one runner config per VM and a
//!   compose bundle.
//! - [`run`] (effects): what `ovrun` does against the engines: backup (full and incremental),
//!   restore into the DR engine, merge, prune, verify, status, the due-guard and the engines'
//!   CAs, over the catalog of points on disk.
//! - `sim` (cargo feature `sim`): `ovsim`, the oVirt engine's REST API on the real data plane
//!   (qcow2, dirty bitmaps, `qemu-nbd`, `ovirt-imageio`), for the tests, the benchmarks and DR
//!   drills.
//! - [`fsutil`] (edge): crash-safe writes (temporary file, fsync, rename, fsync the folder).
//! - [`host`] (edge): the host's time zone, read once and passed to the pure core.
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
