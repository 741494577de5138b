//! What a restore in progress made in DR, journaled as it is made (`.restore-journal.json` in
//! the VM's catalog folder, written crash-safely): a restore that was killed leaves its
//! journal, and the next restore of the VM undoes what it lists first.

use serde::{Deserialize, Serialize};

use crate::run::catalog::{Catalog, CatalogError};

/// The journal's file name in the VM's catalog folder.
const JOURNAL: &str = crate::run::catalog::JOURNAL_FILE;

/// What a restore in progress made in DR, on disk: written after each thing made, removed when
/// the restore ended (done, or undone). Found at the start of a restore, it is what a killed
/// restore left behind.
pub(super) struct Journal {
    catalog: Catalog,
    engine: String,
}

/// The journal's content: the DR engine (a journal of another engine is not undone there) and
/// what was made.
#[derive(Debug, Serialize, Deserialize)]
struct Journaled {
    engine: String,
    made: Made,
}

impl Journal {
    pub(super) fn new(catalog: &Catalog, engine: &str) -> Self {
        Self {
            catalog: catalog.clone(),
            engine: engine.to_owned(),
        }
    }

    /// Records what is made so far (crash-safe). A journal that cannot be written is a warning:
    /// the restore itself still undoes on failure.
    pub(super) fn save(&self, made: &Made) {
        let journaled = Journaled {
            engine: self.engine.clone(),
            made: made.clone(),
        };
        let text = serde_json::to_vec_pretty(&journaled).expect("a journal serializes");
        if let Err(e) = self.catalog.write_file(JOURNAL, &text) {
            tracing::warn!(
                "writing the restore journal: {e}; a restore killed now leaves what it made in DR"
            );
        }
    }

    /// What a restore that did not end left in this engine, if any.
    pub(super) fn left(&self) -> Option<Made> {
        if !self.catalog.exists(JOURNAL) {
            return None;
        }
        let path = self.catalog.path(JOURNAL);
        let text = match self.catalog.open_file(JOURNAL).and_then(|file| {
            std::io::read_to_string(file).map_err(|source| CatalogError::Io {
                what: format!("reading {}", path.display()),
                source,
            })
        }) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!("{e}: a restore killed before may have left disks in DR");
                return None;
            }
        };
        match serde_json::from_str::<Journaled>(&text) {
            Ok(j) if j.engine == self.engine => Some(j.made).filter(|m| !m.is_empty()),
            Ok(j) => {
                tracing::warn!(
                    "{} lists what a restore made in {}, not in {}: not undone here; check that \
                     engine by hand",
                    path.display(),
                    j.engine,
                    self.engine
                );
                None
            }
            Err(e) => {
                tracing::warn!("{} cannot be read: {e}", path.display());
                None
            }
        }
    }

    /// The restore ended: nothing of it is left to undo.
    pub(super) fn clear(&self) {
        if let Err(e) = self.catalog.remove(JOURNAL) {
            tracing::warn!("{e}");
        }
    }
}

/// What was made or changed in DR so far, to undo on failure.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct Made {
    pub(super) disks: Vec<String>,
    pub(super) transfer: Option<String>,
    pub(super) vm: Option<String>,
    pub(super) moved_old: Option<OldVm>,
}

impl Made {
    pub(super) fn is_empty(&self) -> bool {
        self.disks.is_empty()
            && self.transfer.is_none()
            && self.vm.is_none()
            && self.moved_old.is_none()
    }
}

/// A VM that had the target name, moved out of the way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OldVm {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) renamed_to: String,
    pub(super) was_up: bool,
    pub(super) renamed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_lists_what_was_made_until_cleared_and_only_for_its_engine() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web").unwrap();
        let journal = Journal::new(&catalog, "https://dr/ovirt-engine/api");
        assert!(journal.left().is_none(), "no journal: nothing left");
        let made = Made {
            disks: vec!["d1".into()],
            transfer: Some("/imagetransfers/t1".into()),
            ..Made::default()
        };
        journal.save(&made);
        let left = journal.left().expect("a killed restore's journal");
        assert_eq!(left.disks, ["d1"]);
        assert_eq!(left.transfer.as_deref(), Some("/imagetransfers/t1"));
        let elsewhere = Journal::new(&catalog, "https://other/ovirt-engine/api");
        assert!(elsewhere.left().is_none(), "not undone in another engine");
        journal.save(&Made::default());
        assert!(journal.left().is_none(), "nothing made: nothing to undo");
        journal.clear();
        assert!(!catalog.path(JOURNAL).exists());
        journal.clear();
    }
}
