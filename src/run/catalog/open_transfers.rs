//! The image transfers a backup run has open, noted in the VM's folder while they are: a run
//! that is killed leaves its transfer open on the engine, holding the disk locked until the
//! engine's inactivity timeout, and the next run ends it first. Only transfers noted here are
//! ended: another tool's transfer of the same disk is never touched. The file stays once made
//! (`[]` when none is open), so its space is taken before a point's files need theirs.

use super::{Catalog, CatalogError};

/// The file that lists them.
pub const TRANSFERS_FILE: &str = ".open-transfers.json";

impl Catalog {
    /// The transfers noted open (by a run that was killed, when no run holds the lock).
    pub fn open_transfers(&self) -> Vec<String> {
        let Ok(file) = self.open_file(TRANSFERS_FILE) else {
            return Vec::new();
        };
        serde_json::from_reader(file).unwrap_or_default()
    }

    /// Notes transfer `id` open (`open`) or ended.
    ///
    /// # Errors
    /// The list cannot be written.
    pub fn note_transfer(&self, id: &str, open: bool) -> Result<(), CatalogError> {
        let mut ids = self.open_transfers();
        ids.retain(|known| known != id);
        if open {
            ids.push(id.to_owned());
        }
        let text = serde_json::to_string(&ids).expect("ids serialize");
        self.write_file(TRANSFERS_FILE, text.as_bytes())
    }
}
