//! The one integration test binary: runs the real binaries on fixtures and snapshots what a
//! person or CI would read.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests set up and inspect files with std::fs; fs_err's paths in errors are for src/"
)]

mod airflow;
mod alerts;
mod build;
mod bundle_runs;
mod captures;
mod catalog_safety;
mod celery;
mod cert;
mod ci_reports;
mod ci_wiring;
mod completions_man;
mod container;
mod dataplane;
mod diff_git;
mod engine_client;
mod engine_slots;
mod engine_versions;
mod events;
mod exit_codes;
mod injection;
mod normalize;
mod official_clients;
mod ovrun_backup;
mod ovrun_faults;
mod ovrun_full_disk;
mod ovrun_history;
mod ovrun_restore;
mod ovrun_verify;
mod ovsim_cli;
mod purity;
mod review;
mod schedules;
mod sdk_examples;
mod sim_api;
mod sim_clock;
mod sim_devices;
mod sim_faults;
mod sim_flows;
mod sim_vm_config;
mod snapshot_method;
mod status_metrics;
mod status_page;
mod support;
mod tls;
mod validate;
mod vm_config;
