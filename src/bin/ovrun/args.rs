//! The command line, as clap reads it: the subcommands and their options.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use ovbackup::cli::{SelfDescription, instant};

#[derive(Parser)]
#[command(
    name = "ovrun",
    version,
    about = "Back up and restore oVirt VMs as their compiled policy says"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum CertCommand {
    /// Download an engine's CA from its PKI resource URL, print its fingerprint and expiry, and
    /// write it (atomically) where the runner config's `ca_file` says. With a CA file already
    /// there, the download is verified with it (renewal); else it is a first contact: compare
    /// the fingerprint with `openssl x509 -noout -fingerprint -sha256 -in
    /// /etc/pki/ovirt-engine/ca.pem` on the engine.
    Fetch(CertFetchArgs),
}

#[derive(Args)]
pub(crate) struct CertFetchArgs {
    /// A runner config naming the engine.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// `source` (production) or `target` (DR).
    #[arg(long, value_enum)]
    pub(crate) engine: EngineSide,
    /// Write here instead of the config's `ca_file`.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// Which of the runner config's engines.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum EngineSide {
    Source,
    Target,
}

impl EngineSide {
    /// As the runner config names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
        }
    }
}

/// How `ovrun history` and `ovrun config` print.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ReportFormat {
    Human,
    Json,
}

/// How `ovrun status` prints.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    /// An aligned table, then per VM its runs and failures.
    Human,
    /// A JSON array, one object per VM.
    Json,
    /// The status page: one self-contained HTML file (no network, no script needed to read it).
    Html,
}

/// `ovrun status`.
#[derive(Args)]
#[command(group(ArgGroup::new("vms").required(true).args(["configs", "config_dir"])))]
pub(crate) struct StatusArgs {
    /// Runner configs (one per VM; repeat).
    #[arg(long = "config")]
    pub(crate) configs: Vec<PathBuf>,
    /// Every VM whose runner config (`*.json`) is in this folder (what a metrics timer
    /// runs); with --config, those too.
    #[arg(long)]
    pub(crate) config_dir: Option<PathBuf>,
    /// `human`, `json`, or `html` (the status page).
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub(crate) format: StatusFormat,
    /// Write the report to this file (atomically, readable by all: where a web server serves
    /// the page) instead of standard output.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,
    /// Also write Prometheus text format here (node_exporter's textfile collector).
    #[arg(long)]
    pub(crate) metrics: Option<PathBuf>,
    /// Count ages and the next runs from this instant (RFC 3339) instead of now: a page that
    /// reads the same every time (tests, documentation).
    #[arg(long, value_parser = instant)]
    pub(crate) now: Option<DateTime<Utc>>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Exit 0 when a start at that instant is due by the VM's schedule, 1 when not (says why).
    Due {
        /// The VM's runner config (written by `ovplan build`).
        #[arg(long)]
        config: PathBuf,
        /// The start's instant (RFC 3339); default now.
        #[arg(long, value_parser = instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Back up the VM now: full or incremental as the policy says, into the backup directory.
    Backup(BackupArgs),
    /// Check the VM's backup points: every image (qemu-img check), chain links, sizes and
    /// checksums against the manifests. Exit 1 and a list on any damage.
    Verify(VerifyArgs),
    /// Per VM: the last point and its age, chain length, sizes, the last failure, the last runs
    /// and their success rate; as a table, JSON, or a status page (HTML).
    Status(StatusArgs),
    /// The VMs' run history: every backup, prune and verify run (start, end, result, rule,
    /// method, bytes, point, error), newest last.
    History {
        /// Runner configs (one per VM; repeat).
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// `human` or `json`.
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
        /// Only the last N runs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The engines' CA certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Restore a backup point into the DR engine as a VM (policy.md section 5). Without --point
    /// or --at: the newest point, unless the restore log says it was restored already under
    /// that name (the automatic DR unit runs this after each backup).
    Restore(RestoreArgs),
    /// Write the chain of a point's disk as one qcow2 image, in one pass (a portable copy).
    Merge(MergeArgs),
    /// Print the VM configuration a point recorded (CPU, memory, firmware, OS, NICs and their
    /// networks, disk attachments): what a restore gives the DR VM.
    Config {
        /// The VM's runner config.
        #[arg(long)]
        config: PathBuf,
        /// The point's id; default the newest.
        #[arg(long)]
        point: Option<String>,
        /// `human` or `json`.
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Apply the VM's retention to its backup points (policy.md section 4).
    Prune(PruneArgs),
    #[command(flatten)]
    SelfDescription(SelfDescription),
}

#[derive(Args)]
pub(crate) struct BackupArgs {
    /// The VM's runner config (written by `ovplan build`).
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// Take a full backup whatever the policy says.
    #[arg(long)]
    pub(crate) full: bool,
    /// Back up even when this start is not due by the schedule: the compiled timers of some
    /// schedules (monthly on the last day, n-th weekday) fire on a superset of days, and
    /// `ovrun backup` skips the extra starts (exit 0) unless told this is a manual run.
    #[arg(long)]
    pub(crate) now: bool,
    /// The start's instant for the due check (RFC 3339); default now. For tests and drills.
    #[arg(long, hide = true, value_parser = instant)]
    pub(crate) at: Option<DateTime<Utc>>,
    /// Parallel connections per disk.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Seconds to wait for another ovrun working on the same VM.
    #[arg(long, default_value_t = 60)]
    pub(crate) lock_wait: u64,
    /// Seconds to wait for a VM or disk locked on the engine.
    #[arg(long, default_value_t = 600)]
    pub(crate) engine_lock_wait: u64,
}

#[derive(Args)]
#[command(group(ArgGroup::new("vms").required(true).args(["config", "config_dir"])))]
pub(crate) struct VerifyArgs {
    /// The VM's runner config.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Every VM whose runner config (`*.json`) is in this folder, one after another (the
    /// compiled maintenance units); the exit code is the worst.
    #[arg(long)]
    pub(crate) config_dir: Option<PathBuf>,
    /// Seconds to wait for another ovrun working on the same VM.
    #[arg(long, default_value_t = 60)]
    pub(crate) lock_wait: u64,
}

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// The VM's runner config (written by `ovplan build`).
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// The point's id (as `ovrun status` and the manifests name it).
    #[arg(long, conflicts_with = "at")]
    pub(crate) point: Option<String>,
    /// The newest point taken at or before this instant (RFC 3339).
    #[arg(long, value_parser = instant)]
    pub(crate) at: Option<DateTime<Utc>>,
    /// The VM's name in DR instead of the configured one.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Check the DR engine and say what would be done; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Restore the newest point even if it was restored already.
    #[arg(long)]
    pub(crate) force: bool,
    /// Parallel connections per disk.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Seconds to wait for another ovrun working on the same VM.
    #[arg(long, default_value_t = 600)]
    pub(crate) lock_wait: u64,
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// The VM's runner config.
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// The point's id.
    #[arg(long)]
    pub(crate) point: String,
    /// The disk's alias (needed when the point has several disks).
    #[arg(long)]
    pub(crate) disk: Option<String>,
    /// The image to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Compress the image's clusters (smaller, slower to write and to read).
    #[arg(long)]
    pub(crate) compress: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("vms").required(true).args(["config", "config_dir"])))]
pub(crate) struct PruneArgs {
    /// The VM's runner config.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Every VM whose runner config (`*.json`) is in this folder, one after another (the
    /// compiled maintenance units); the exit code is the worst.
    #[arg(long)]
    pub(crate) config_dir: Option<PathBuf>,
    /// Only say what would be deleted.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Seconds to wait for another ovrun working on the same VM.
    #[arg(long, default_value_t = 60)]
    pub(crate) lock_wait: u64,
}
