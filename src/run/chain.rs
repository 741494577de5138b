//! The chain rules, as pure functions of the catalog's points: a point's ancestry (its full
//! first), whether a chain is broken (it does not start at a full), and which point a restore's
//! [`Selector`] names. No I/O here: callers read the points and act on the answers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::catalog::{Catalog, Manifest};
use super::job::RunError;

impl Catalog {
    /// The chain of `point`: its full first, `point` last ([`ancestry`]; kept here so that the
    /// catalog does not depend on the chain rules).
    pub fn chain<'a>(points: &'a [Manifest], point: &str) -> Vec<&'a Manifest> {
        ancestry(points, point)
    }
}

/// The chain of `point`: its full first, `point` last; empty when no point has that id. A
/// parent that is gone ends the walk, so the chain then starts at an incremental (broken).
pub fn ancestry<'a>(points: &'a [Manifest], point: &str) -> Vec<&'a Manifest> {
    let by_id: BTreeMap<&str, &Manifest> = points.iter().map(|p| (p.point.as_str(), p)).collect();
    let mut chain = Vec::new();
    let mut at = by_id.get(point).copied();
    while let Some(manifest) = at {
        chain.push(manifest);
        at = manifest
            .parent
            .as_deref()
            .and_then(|p| by_id.get(p).copied());
    }
    chain.reverse();
    chain
}

/// Whether a chain (as [`ancestry`] gives it) cannot be restored: it is empty, or its first
/// point has a parent that is gone.
pub fn is_broken(chain: &[&Manifest]) -> bool {
    chain.first().is_none_or(|first| first.parent.is_some())
}

/// Which point to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest point (skipped when already restored under the same name).
    Newest,
    /// A point by its id.
    Point(String),
    /// The newest point taken at or before this instant.
    At(DateTime<Utc>),
}

/// The point a selector names, if its chain can be restored.
///
/// # Errors
/// No such point, or its chain is broken.
pub fn restorable<'a>(
    points: &'a [Manifest],
    selector: &Selector,
) -> Result<&'a Manifest, RunError> {
    let point = select(points, selector)?;
    if is_broken(&ancestry(points, &point.point)) {
        return Err(RunError::Failed(format!(
            "point {} cannot be restored: its chain is broken (run `ovrun verify`); pick \
             another point with --point",
            point.point
        )));
    }
    Ok(point)
}

/// The point a selector names.
///
/// # Errors
/// No such point.
pub fn select<'a>(points: &'a [Manifest], selector: &Selector) -> Result<&'a Manifest, RunError> {
    let found = match selector {
        Selector::Newest => points.last(),
        Selector::Point(id) => points.iter().find(|p| &p.point == id),
        Selector::At(at) => points.iter().rev().find(|p| p.taken_at <= *at),
    };
    found.ok_or_else(|| {
        let known = points
            .iter()
            .map(|p| p.point.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match selector {
            // The catalog has nothing yet: a state to fix by backing up, not a usage error.
            Selector::Newest => {
                RunError::Failed("no backup point to restore: run `ovrun backup` first".into())
            }
            Selector::Point(id) => {
                RunError::Config(format!("no point {id}; the points are: {known}"))
            }
            Selector::At(at) => RunError::Config(format!(
                "no point taken at or before {at}; the points are: {known}"
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(id: &str, hours_ago: i64) -> Manifest {
        serde_json::from_value(json!({
            "format": 1, "vm": "web", "vm_id": "v", "point": id, "kind": "full",
            "reason": "first", "taken_at": (Utc::now() - chrono::Duration::hours(hours_ago)),
            "parent": null, "backup_id": "b", "from_checkpoint": null, "checkpoint": null,
            "disks": []
        }))
        .expect("manifest")
    }

    #[test]
    fn a_selector_picks_newest_by_id_or_at_or_before_an_instant() {
        let points = [point("a", 48), point("b", 24), point("c", 1)];
        assert_eq!(select(&points, &Selector::Newest).unwrap().point, "c");
        assert_eq!(
            select(&points, &Selector::Point("a".into())).unwrap().point,
            "a"
        );
        let at = Utc::now() - chrono::Duration::hours(12);
        assert_eq!(select(&points, &Selector::At(at)).unwrap().point, "b");
        let before_all = Utc::now() - chrono::Duration::hours(100);
        let error = select(&points, &Selector::At(before_all))
            .unwrap_err()
            .to_string();
        assert!(error.contains("the points are: a, b, c"), "{error}");
        assert!(select(&points, &Selector::Point("x".into())).is_err());
        assert!(select(&[], &Selector::Newest).is_err());
    }

    fn child(id: &str, parent: &str) -> Manifest {
        let mut p = point(id, 0);
        p.parent = Some(parent.into());
        p
    }

    #[test]
    fn a_points_ancestry_runs_from_its_full_to_itself() {
        let points = [
            point("a", 3),
            child("b", "a"),
            child("c", "b"),
            point("d", 1),
        ];
        let ids = |chain: Vec<&Manifest>| chain.iter().map(|p| p.point.clone()).collect::<Vec<_>>();
        assert_eq!(ids(ancestry(&points, "c")), ["a", "b", "c"]);
        assert_eq!(ids(ancestry(&points, "d")), ["d"]);
        assert!(ancestry(&points, "x").is_empty());
        assert!(!is_broken(&ancestry(&points, "c")));
    }

    #[test]
    fn a_point_whose_chain_is_broken_is_not_restorable() {
        let points = [point("a", 3), child("b", "a"), child("d", "c")];
        let by_id = |id: &str| Selector::Point(id.into());
        assert_eq!(restorable(&points, &by_id("b")).unwrap().point, "b");
        let error = restorable(&points, &by_id("d")).unwrap_err().to_string();
        assert!(error.contains("its chain is broken"), "{error}");
        assert!(restorable(&points, &by_id("x")).is_err());
    }

    #[test]
    fn a_chain_whose_full_is_gone_or_that_is_empty_is_broken() {
        let points = [child("b", "a"), child("c", "b")];
        let chain = ancestry(&points, "c");
        assert_eq!(chain.len(), 2, "the walk stops where the parent is gone");
        assert!(is_broken(&chain));
        assert!(is_broken(&[]));
    }
}
