//! Retention applied to the catalog: the plan from [`crate::plan::retention`], carried out
//! manifest first, newest first, so a crash leaves only leftovers.

use chrono::{DateTime, Utc};

use super::{Catalog, CatalogError, DiskEntry, SchemeName};

impl Catalog {
    /// Applies retention (policy.md section 4): plans with [`crate::plan::retention::plan`],
    /// then, unless `dry_run`, deletes the points it marks, newest first (a child before its
    /// parent), each manifest before its files: a crash leaves only leftovers, never a point
    /// whose parent is gone. Only the names derived from a point are removed (a misnamed
    /// manifest is no point: see [`Catalog::points`]).
    ///
    /// # Errors
    /// The catalog cannot be read or a file cannot be removed.
    pub fn prune(
        &self,
        retention: &crate::plan::runner::Retention,
        zone: chrono_tz::Tz,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<crate::plan::retention::Verdict, CatalogError> {
        let points = self.points()?;
        let planned: Vec<crate::plan::retention::Point> = points
            .iter()
            .map(|m| crate::plan::retention::Point {
                id: m.point.clone(),
                taken_at: m.taken_at,
                parent: m.parent.clone(),
            })
            .collect();
        let verdict = crate::plan::retention::plan(&planned, retention, zone, now);
        if dry_run {
            return Ok(verdict);
        }
        for id in &verdict.delete {
            let Some(manifest) = points.iter().find(|m| &m.point == id) else {
                continue;
            };
            self.remove(&manifest.file_name())?;
            self.sync()?;
            for file in manifest.disks.iter().flat_map(DiskEntry::files) {
                if SchemeName::parse(file).is_some_and(|n| n.point == manifest.point) {
                    self.remove(file)?;
                }
            }
        }
        if !verdict.delete.is_empty() {
            self.sync()?;
        }
        Ok(verdict)
    }
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "the tests set up and inspect files directly"
)]
mod tests {
    use super::*;
    use crate::run::catalog::tests::point;

    #[test]
    fn prune_deletes_what_retention_marks_manifest_first_and_keeps_chains() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "db").unwrap();
        let points = [
            point("20260101T000000Z", "full", None, 60),
            point(
                "20260102T000000Z",
                "incremental",
                Some("20260101T000000Z"),
                59,
            ),
            point("20261101T000000Z", "full", None, 2),
            point(
                "20261102T000000Z",
                "incremental",
                Some("20261101T000000Z"),
                1,
            ),
        ];
        for p in &points {
            std::fs::write(catalog.path(&p.disks[0].file), b"x").unwrap();
            catalog.commit(p).unwrap();
        }
        let retention = crate::plan::runner::Retention {
            keep_daily: 1,
            keep_weekly: 0,
            keep_monthly: 0,
            max_backup_age_days: 30,
        };
        let dry = catalog
            .prune(&retention, chrono_tz::UTC, Utc::now(), true)
            .unwrap();
        assert_eq!(dry.delete, ["20260102T000000Z", "20260101T000000Z"]);
        assert_eq!(
            catalog.points().unwrap().len(),
            4,
            "a dry run deletes nothing"
        );
        catalog
            .prune(&retention, chrono_tz::UTC, Utc::now(), false)
            .unwrap();
        let left: Vec<String> = catalog
            .points()
            .unwrap()
            .into_iter()
            .map(|p| p.point)
            .collect();
        assert_eq!(
            left,
            ["20261101T000000Z", "20261102T000000Z"],
            "the kept chain is whole"
        );
        assert!(
            catalog.leftovers().unwrap().is_empty(),
            "the pruned files went too"
        );
    }
}
