//! The one mapping from error to exit code: [`Failure`], the codes, and the [`ExitCoded`]
//! impls of the library's errors.

use std::path::Path;

use ovbackup::run::backup;
use ovbackup::run::catalog::CatalogError;
use ovbackup::run::cert::CertError;
use ovbackup::run::merge::MergeError;

/// Exit codes (the README's table): 0 success (or due); 1 the work failed (a backup or restore
/// failed, `verify` found damage, the engine refused or did not answer, an I/O error in the
/// backup directory), and for `due`, not due; 2 usage or configuration (the command line, the
/// runner config, the files it names, the engine URL); 3 another `ovrun` holds the VM; 4 stopped
/// by a signal. [`Failure`] and the [`ExitCoded`] impls are the one mapping from error to code.
pub(crate) const SUCCESS: u8 = 0;
pub(crate) const NOT_DUE: u8 = 1;
pub(crate) const FAILED: u8 = 1;
pub(crate) const USAGE_OR_CONFIG: u8 = 2;
pub(crate) const BUSY: u8 = 3;
pub(crate) const INTERRUPTED: u8 = 4;

/// Why a command did not succeed: its exit code, and the message to print (`None` when it was
/// logged already).
pub(crate) struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    /// A usage or configuration problem (exit 2).
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self {
            code: USAGE_OR_CONFIG,
            message: Some(message.into()),
        }
    }

    /// The work failed (exit 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            code: FAILED,
            message: Some(message.into()),
        }
    }

    /// A failure already logged, with its code.
    pub(crate) fn logged(code: u8) -> Self {
        Self {
            code,
            message: None,
        }
    }

    /// Prints the message (prefixed by `context`, if any) and gives the code.
    pub(crate) fn report(self, context: Option<&Path>) -> u8 {
        if let Some(message) = self.message {
            match context {
                Some(path) => eprintln!("error: {}: {message}", path.display()),
                None => eprintln!("error: {message}"),
            }
        }
        self.code
    }
}

/// A library error's exit code: with the [`Failure`] it makes, the one mapping from error to
/// exit code.
pub(crate) trait ExitCoded: std::fmt::Display {
    fn exit_code(&self) -> u8;
}

impl<E: ExitCoded> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            code: e.exit_code(),
            message: Some(e.to_string()),
        }
    }
}

/// The code of a catalog error: busy 3; I/O and unreadable manifests 1; anything else (a VM
/// name or folder the catalog refuses) is the runner config's: 2.
pub(crate) fn catalog_code(e: &CatalogError) -> u8 {
    match e {
        CatalogError::Busy { .. } => BUSY,
        CatalogError::Io { .. } | CatalogError::Manifest { .. } | CatalogError::Link { .. } => {
            FAILED
        }
        // UnsafeVm, Foreign: the runner config names a VM that cannot have this folder.
        _ => USAGE_OR_CONFIG,
    }
}

/// The code of a backup's or restore's error.
pub(crate) fn run_code(e: &backup::RunError) -> u8 {
    match e {
        backup::RunError::Catalog(e) => catalog_code(e),
        backup::RunError::Interrupted => INTERRUPTED,
        backup::RunError::Panic(_) => FAILED,
        backup::RunError::Config(_) => USAGE_OR_CONFIG,
        backup::RunError::Engine(e) if e.is_config() => USAGE_OR_CONFIG,
        _ => FAILED,
    }
}

impl ExitCoded for CatalogError {
    fn exit_code(&self) -> u8 {
        catalog_code(self)
    }
}

impl ExitCoded for backup::RunError {
    fn exit_code(&self) -> u8 {
        run_code(self)
    }
}

impl ExitCoded for CertError {
    fn exit_code(&self) -> u8 {
        match self {
            CertError::ApiUrl { .. } | CertError::TrustFile { .. } => USAGE_OR_CONFIG,
            _ => FAILED,
        }
    }
}

impl ExitCoded for MergeError {
    fn exit_code(&self) -> u8 {
        match self {
            MergeError::Catalog(e) => catalog_code(e),
            MergeError::NoPoint(e) => run_code(e),
            MergeError::BrokenChain { .. } => FAILED,
            MergeError::WhichDisk { .. } | MergeError::NoDisk { .. } => USAGE_OR_CONFIG,
            MergeError::Write { source, .. } if source.is_usage() => USAGE_OR_CONFIG,
            MergeError::Write { .. } => FAILED,
        }
    }
}

/// What a command gives: an exit code (0, or 1 for "not due" and "damage found", whose
/// output says so), or a failure.
pub(crate) type Outcome = Result<u8, Failure>;
