//! The engine's own time: what a real engine finishes by itself, whether or not a client polls
//! it. A poll moves an object on at once (every transient phase lasts at least one poll, see
//! the route modules); the clock moves on what nobody polled once it has stayed in the same
//! transient state for the engine's pace (`ovsim serve --pace`): snapshots being created or
//! removed, new disks, backups starting or finalizing, image transfers starting, finalizing or
//! cancelled. Without it, a snapshot nobody polls would keep its VM's disks locked for ever.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::state::Engine;

/// One object in a transient state: what it is, and the state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pending {
    /// A snapshot (VM, snapshot) being created (false) or removed (true).
    Snapshot(String, String, bool),
    /// A disk being created.
    Disk(String),
    /// A backup (VM, backup) in a phase.
    Backup(String, String, String),
    /// An image transfer in a phase.
    Transfer(String, &'static str),
}

/// Runs the clock until the engine is dropped.
pub async fn run(engine: Weak<Engine>) {
    let mut seen: HashMap<Pending, Instant> = HashMap::new();
    loop {
        let pace = match engine.upgrade() {
            Some(engine) => engine.pace,
            None => return,
        };
        tokio::time::sleep((pace / 4).max(Duration::from_millis(20))).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let due = due(&mut seen, pending(&engine), pace);
        for what in due {
            move_on(&engine, what).await;
        }
    }
}

/// The pending objects that have waited `pace` in the same state; `seen` keeps when each was
/// first seen in its state (and forgets what is no longer pending).
fn due(
    seen: &mut HashMap<Pending, Instant>,
    now_pending: Vec<Pending>,
    pace: Duration,
) -> Vec<Pending> {
    let now = Instant::now();
    seen.retain(|what, _| now_pending.contains(what));
    let mut due = Vec::new();
    for what in now_pending {
        let since = *seen.entry(what.clone()).or_insert(now);
        if now.duration_since(since) >= pace {
            seen.remove(&what);
            due.push(what);
        }
    }
    due
}

/// Every object in a transient state now.
fn pending(engine: &Engine) -> Vec<Pending> {
    let mut found = Vec::new();
    {
        let inventory = engine.inventory.lock().expect("inventory lock");
        let snapshots = inventory.snapshots.iter().filter(|s| s.status == "locked");
        found.extend(snapshots.map(|s| Pending::Snapshot(s.vm.clone(), s.id.clone(), s.removing)));
        let disks = inventory.disks.iter().filter(|d| d.settle_polls > 0);
        found.extend(disks.map(|d| Pending::Disk(d.id.clone())));
        let transient = ["initializing", "starting", "finalizing"];
        let backups = inventory
            .backups
            .iter()
            .filter(|b| !b.busy && transient.contains(&b.phase.as_str()));
        found.extend(backups.map(|b| Pending::Backup(b.vm.clone(), b.id.clone(), b.phase.clone())));
    }
    if let Some(plane) = engine.data_plane.as_ref() {
        let transfers = plane.transfers.lock().expect("transfers lock");
        let transient = transfers
            .iter()
            .filter(|(_, t)| super::transfers::is_transient(t.phase));
        found.extend(transient.map(|(id, t)| Pending::Transfer(id.clone(), t.phase)));
    }
    found
}

/// Moves one object on, as a poll would, if it is still as it was seen.
async fn move_on(engine: &Arc<Engine>, what: Pending) {
    match what {
        Pending::Snapshot(vm, id, removing) => {
            super::snapshots::move_on(engine, &vm, &id, removing);
        }
        Pending::Disk(id) => super::resources::disk_created(engine, &id),
        Pending::Backup(vm, id, phase) => {
            super::backups::move_on(engine, &vm, &id, Some(&phase)).await;
        }
        Pending::Transfer(id, phase) => super::transfers::move_on(engine, &id, Some(phase)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_due_once_it_stayed_a_pace_in_one_state() {
        let mut seen = HashMap::new();
        let pace = Duration::from_millis(30);
        let disk = Pending::Disk("d1".into());
        let first = |state: &'static str| Pending::Transfer("t1".into(), state);
        assert!(due(&mut seen, vec![disk.clone(), first("initializing")], pace).is_empty());
        std::thread::sleep(pace);
        // The transfer moved on meanwhile: its new state starts its own wait.
        let now_due = due(&mut seen, vec![disk.clone(), first("transferring")], pace);
        assert_eq!(now_due, vec![disk]);
        assert!(
            !seen.contains_key(&first("initializing")),
            "forgotten once gone"
        );
        assert!(seen.contains_key(&first("transferring")));
        std::thread::sleep(pace);
        assert_eq!(
            due(&mut seen, vec![first("transferring")], pace),
            [first("transferring")]
        );
    }
}
