//! The one integration test binary: runs the real binaries on fixtures and snapshots what a
//! person or CI would read.

mod artifact_syntax;
mod build;
mod bundle_meaning;
mod bundle_runs;
mod captures;
mod catalog_safety;
mod cert;
mod completions_man;
mod dataplane;
mod engine;
mod engine_client;
mod exit_codes;
mod injection;
mod normalize;
mod official_clients;
mod ovrun_backup;
mod ovrun_faults;
mod ovrun_full_disk;
mod ovrun_restore;
mod ovrun_verify;
mod ovsim_cli;
mod purity;
mod schedules;
mod sim_api;
mod sim_faults;
mod sim_flows;
mod support;
mod tls;
mod validate;
