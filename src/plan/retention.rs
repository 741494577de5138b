//! Retention (policy.md section 4) as a pure decision: which of one VM's completed backup points
//! to keep, why, and which to delete.
//!
//! This is the pure core behind `ovrun prune` and the prune that follows each backup: the runner
//! reads the catalog and the clock once, calls [`plan`], and then does the deleting itself (files
//! and catalog entries together, crash-safe). Nothing here deletes; a [`Verdict`] only marks, so a
//! caller can show it (dry run) before acting.
//!
//! The rules, in the order [`plan`] applies them:
//! 1. the newest point is always kept;
//! 2. `keep_daily` / `keep_weekly` / `keep_monthly` n: the newest point of each of the n most
//!    recent calendar days / ISO weeks / months (in the VM's zone) that have points; each rule
//!    looks at all points on its own, so a point kept by one also counts for the others;
//! 3. `max_backup_age_days` a > 0: a point older than a days is not kept by rule 2;
//! 4. closure: every point a kept point needs to be restored (its chain back to the full) is kept,
//!    however old;
//! 5. everything else is deleted.
//!
//! All `keep_*` zero means no calendar rule thins the points out: every point is kept by rule 2,
//! so with no age limit everything is kept. With an age limit, section 4 says it plainly: every
//! point younger than a days is kept (rule 2 is "keep all", rule 3 limits it), with the chains
//! those points need (rule 4); see the test `age_limit_alone_keeps_every_young_point_and_its_chain`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use super::runner::Retention;

/// A completed backup point, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The catalog's id of the point, unique within the VM.
    pub id: String,
    /// When the point was taken.
    pub taken_at: DateTime<Utc>,
    /// The point this incremental builds on; `None` for a full.
    pub parent: Option<String>,
}

/// Why a point is kept. A point kept for several reasons shows the first in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Rule 1: the newest point.
    Newest,
    /// Rule 2: the newest point of one of the `keep_daily` most recent days.
    Daily,
    /// Rule 2: the newest point of one of the `keep_weekly` most recent ISO weeks.
    Weekly,
    /// Rule 2: the newest point of one of the `keep_monthly` most recent months.
    Monthly,
    /// All `keep_*` are zero, so every point within the age limit (if any) is kept.
    All,
    /// Rule 4: the id of a point kept by rule 1 or 2 whose chain runs through this one.
    NeededBy(String),
}

/// What to do with a VM's points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The points to keep and why, newest first.
    pub keep: Vec<(String, Keep)>,
    /// The ids of the points to delete, newest first.
    pub delete: Vec<String>,
}

/// Decides which of one VM's completed `points` to keep, for a VM whose calendar is `zone`, at
/// `now`. The points may come in any order; equal times are ordered by id, the smaller first
/// (counted as newer). A parent that is not among the points (already gone) is ignored.
pub fn plan(points: &[Point], retention: &Retention, zone: Tz, now: DateTime<Utc>) -> Verdict {
    let sorted = newest_first(points);
    let mut reasons: Vec<Option<Keep>> = vec![None; sorted.len()];
    if let Some(newest) = reasons.first_mut() {
        *newest = Some(Keep::Newest);
    }
    // Daily before weekly before monthly, so a point kept by several rules shows the first.
    for (index, keep) in by_calendar(&sorted, retention, zone, now) {
        reasons[index].get_or_insert(keep);
    }
    close_chains(&sorted, &mut reasons);
    verdict(&sorted, reasons)
}

/// How one side of a retention change prunes: the VM's retention and zone, or `None` when that
/// side prunes nothing (the policy has no such VM, or it is disabled: it has no runner config).
pub type Side = Option<(Retention, Tz)>;

/// What a retention change would delete: the ids of the points (newest first) that `after`
/// deletes and `before` keeps, each side planned with [`plan`] at `now` (what `ovplan diff
/// --catalog` shows for a policy change).
pub fn newly_deleted(
    points: &[Point],
    before: Side,
    after: Side,
    now: DateTime<Utc>,
) -> Vec<String> {
    let deleted = |side: Side| {
        side.map(|(retention, zone)| plan(points, &retention, zone, now).delete)
            .unwrap_or_default()
    };
    let already: HashSet<String> = deleted(before).into_iter().collect();
    let mut newly = deleted(after);
    newly.retain(|id| !already.contains(id));
    newly
}

/// The points sorted newest first, ties by id, so the verdict does not depend on input order.
fn newest_first(points: &[Point]) -> Vec<&Point> {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then_with(|| a.id.cmp(&b.id)));
    sorted
}

/// A calendar period of rule 2.
#[derive(Debug, Clone, Copy)]
enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    /// A key equal for the dates of one period.
    fn key(self, date: NaiveDate) -> (i32, u32) {
        match self {
            Period::Day => (date.year(), date.ordinal()),
            // The ISO year, not the calendar year: 2024-12-30 is in week 1 of 2025.
            Period::Week => (date.iso_week().year(), date.iso_week().week()),
            Period::Month => (date.year(), date.month()),
        }
    }
}

/// Rules 2 and 3: the indexes (into `sorted`) kept by the calendar rules, with the rule, daily
/// first. An index may appear under several rules.
fn by_calendar(
    sorted: &[&Point],
    retention: &Retention,
    zone: Tz,
    now: DateTime<Utc>,
) -> Vec<(usize, Keep)> {
    let dates: Vec<NaiveDate> = sorted
        .iter()
        .map(|p| p.taken_at.with_timezone(&zone).date_naive())
        .collect();
    let rules = [
        (Period::Day, retention.keep_daily, Keep::Daily),
        (Period::Week, retention.keep_weekly, Keep::Weekly),
        (Period::Month, retention.keep_monthly, Keep::Monthly),
    ];
    let picked: Vec<(usize, Keep)> = if rules.iter().all(|(_, count, _)| *count == 0) {
        (0..sorted.len()).map(|index| (index, Keep::All)).collect()
    } else {
        rules
            .into_iter()
            .flat_map(|(period, count, keep)| {
                newest_per_period(&dates, period, count)
                    .into_iter()
                    .map(move |index| (index, keep.clone()))
            })
            .collect()
    };
    picked
        .into_iter()
        .filter(|(index, _)| young_enough(sorted[*index], retention.max_backup_age_days, now))
        .collect()
}

/// The index of the newest date in each of the `count` most recent periods that have dates
/// (`dates` newest first). Keyed by a set rather than by "the period changed", because a
/// DST change at midnight can make local dates step back.
fn newest_per_period(dates: &[NaiveDate], period: Period, count: u32) -> Vec<usize> {
    let mut seen = HashSet::new();
    dates
        .iter()
        .enumerate()
        .filter(|(_, date)| seen.insert(period.key(**date)))
        .map(|(index, _)| index)
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect()
}

/// Rule 3: whether `point` is not older than `max_age_days` (0 = no limit). A point exactly that
/// old still counts, as "older than" says.
fn young_enough(point: &Point, max_age_days: u32, now: DateTime<Utc>) -> bool {
    max_age_days == 0 || now - point.taken_at <= Duration::days(i64::from(max_age_days))
}

/// Rule 4: keeps every existing ancestor of every kept point, naming the kept point it walked
/// from. Each point is walked once, which also ends a (corrupt) parent cycle.
fn close_chains(sorted: &[&Point], reasons: &mut [Option<Keep>]) {
    let index: HashMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(at, point)| (point.id.as_str(), at))
        .collect();
    let parent = |at: usize| {
        sorted[at]
            .parent
            .as_deref()
            .and_then(|id| index.get(id).copied())
    };
    let mut walked = vec![false; sorted.len()];
    for origin in 0..sorted.len() {
        if reasons[origin].is_none() || walked[origin] {
            continue;
        }
        walked[origin] = true;
        let mut next = parent(origin);
        // A walked ancestor's own chain is already closed, so the walk can stop there.
        while let Some(at) = next.filter(|at| !walked[*at]) {
            walked[at] = true;
            reasons[at].get_or_insert_with(|| Keep::NeededBy(sorted[origin].id.clone()));
            next = parent(at);
        }
    }
}

/// Rule 5: splits the sorted points into kept (with reasons) and deleted.
fn verdict(sorted: &[&Point], reasons: Vec<Option<Keep>>) -> Verdict {
    let mut verdict = Verdict::default();
    for (point, reason) in sorted.iter().zip(reasons) {
        match reason {
            Some(keep) => verdict.keep.push((point.id.clone(), keep)),
            None => verdict.delete.push(point.id.clone()),
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    /// Points from `(id, taken_at, parent)`.
    fn points(specs: &[(&str, &str, Option<&str>)]) -> Vec<Point> {
        specs
            .iter()
            .map(|(id, taken_at, parent)| Point {
                id: (*id).to_owned(),
                taken_at: at(taken_at),
                parent: parent.map(str::to_owned),
            })
            .collect()
    }

    /// Full points (no parent) from `(id, taken_at)`.
    fn fulls(specs: &[(&str, &str)]) -> Vec<Point> {
        let specs: Vec<_> = specs.iter().map(|(id, t)| (*id, *t, None)).collect();
        points(&specs)
    }

    fn retention(daily: u32, weekly: u32, monthly: u32, max_age_days: u32) -> Retention {
        Retention {
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
            max_backup_age_days: max_age_days,
        }
    }

    /// A verdict in one line: `a=N b=D c=^b | d e` (kept with reasons, then deleted), so a case
    /// reads as a table row.
    fn render(verdict: &Verdict) -> String {
        let kept: Vec<String> = verdict
            .keep
            .iter()
            .map(|(id, keep)| {
                let why = match keep {
                    Keep::Newest => "N".to_owned(),
                    Keep::Daily => "D".to_owned(),
                    Keep::Weekly => "W".to_owned(),
                    Keep::Monthly => "M".to_owned(),
                    Keep::All => "A".to_owned(),
                    Keep::NeededBy(by) => format!("^{by}"),
                };
                format!("{id}={why}")
            })
            .collect();
        format!("{} | {}", kept.join(" "), verdict.delete.join(" "))
    }

    fn run(points: &[Point], retention: Retention, zone: Tz, now: &str) -> String {
        render(&plan(points, &retention, zone, at(now)))
    }

    const NOW: &str = "2025-03-31T12:00:00Z";

    #[test]
    fn no_points_no_verdict() {
        assert_eq!(run(&[], retention(7, 4, 3, 0), Tz::UTC, NOW), " | ");
    }

    #[test]
    fn the_newest_is_kept_even_past_the_age_limit() {
        let old = fulls(&[
            ("a", "2025-01-03T10:00:00Z"),
            ("b", "2025-01-02T10:00:00Z"),
            ("c", "2025-01-01T10:00:00Z"),
        ]);
        assert_eq!(run(&old, retention(7, 4, 3, 30), Tz::UTC, NOW), "a=N | b c");
        // Also when the age limit is the only rule.
        assert_eq!(run(&old, retention(0, 0, 0, 30), Tz::UTC, NOW), "a=N | b c");
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day_with_points() {
        // 03-09 has no point, so the three days are 03-10, 03-08 and 03-07.
        let daily = fulls(&[
            ("a", "2025-03-10T20:00:00Z"),
            ("b", "2025-03-10T08:00:00Z"),
            ("c", "2025-03-08T12:00:00Z"),
            ("d", "2025-03-07T12:00:00Z"),
            ("e", "2025-03-07T06:00:00Z"),
            ("f", "2025-03-05T12:00:00Z"),
        ]);
        assert_eq!(
            run(&daily, retention(3, 0, 0, 0), Tz::UTC, NOW),
            "a=N c=D d=D | b e f"
        );
        assert_eq!(
            run(&daily, retention(1, 0, 0, 0), Tz::UTC, NOW),
            "a=N | b c d e f"
        );
    }

    /// A table row: fulls as `(id, taken_at)`, the rule's count, the rendered verdict.
    type Case<'a> = (&'a [(&'a str, &'a str)], u32, &'a str);

    #[test]
    fn weekly_counts_iso_weeks() {
        let cases: &[Case] = &[
            // Weeks start on Monday: Sunday 03-09 and Monday 03-10 are in different weeks.
            (
                &[
                    ("a", "2025-03-16T12:00:00Z"), // Sun, W11
                    ("b", "2025-03-10T12:00:00Z"), // Mon, W11
                    ("c", "2025-03-09T12:00:00Z"), // Sun, W10
                    ("d", "2025-03-08T12:00:00Z"), // Sat, W10
                    ("e", "2025-03-02T12:00:00Z"), // Sun, W09
                ],
                2,
                "a=N c=W | b d e",
            ),
            // The ISO year: Monday 2024-12-30 is in week 1 of 2025, Sunday 12-29 is not.
            (
                &[
                    ("a", "2025-01-02T12:00:00Z"),
                    ("b", "2024-12-30T12:00:00Z"),
                    ("c", "2024-12-29T12:00:00Z"),
                    ("d", "2024-12-23T12:00:00Z"),
                ],
                2,
                "a=N c=W | b d",
            ),
        ];
        for (specs, weeks, expected) in cases {
            let got = run(&fulls(specs), retention(0, *weeks, 0, 0), Tz::UTC, NOW);
            assert_eq!(got, *expected, "{specs:?}");
        }
    }

    #[test]
    fn monthly_counts_calendar_months() {
        let monthly = fulls(&[
            ("a", "2025-03-31T10:00:00Z"),
            ("b", "2025-03-01T10:00:00Z"),
            ("c", "2025-02-28T10:00:00Z"),
            ("d", "2025-02-01T10:00:00Z"),
            ("e", "2025-01-15T10:00:00Z"),
            ("f", "2024-12-31T10:00:00Z"),
        ]);
        assert_eq!(
            run(&monthly, retention(0, 0, 3, 0), Tz::UTC, NOW),
            "a=N c=M e=M | b d f"
        );
    }

    #[test]
    fn a_point_kept_by_one_rule_counts_for_the_others() {
        // Wed 03-12 .. Sat 03-08. Daily 2 keeps a, b; weekly 2 keeps the newest of W11 (a,
        // already kept, so not c as well) and of W10 (d).
        let week = fulls(&[
            ("a", "2025-03-12T12:00:00Z"),
            ("b", "2025-03-11T12:00:00Z"),
            ("c", "2025-03-10T12:00:00Z"),
            ("d", "2025-03-09T12:00:00Z"),
            ("e", "2025-03-08T12:00:00Z"),
        ]);
        assert_eq!(
            run(&week, retention(2, 2, 0, 0), Tz::UTC, NOW),
            "a=N b=D d=W | c e"
        );
        // d is the newest of its day and of its week: shown once, as the first rule (daily).
        assert_eq!(
            run(&week, retention(4, 2, 2, 0), Tz::UTC, NOW),
            "a=N b=D c=D d=D | e"
        );
    }

    #[test]
    fn max_age_takes_old_points_out_of_the_calendar_rules() {
        // Now is 03-12 12:00: c is exactly 3 days old (kept), d is 4 days old.
        let daily = fulls(&[
            ("a", "2025-03-12T12:00:00Z"),
            ("b", "2025-03-11T12:00:00Z"),
            ("c", "2025-03-09T12:00:00Z"),
            ("d", "2025-03-08T12:00:00Z"),
            ("e", "2025-03-07T12:00:00Z"),
        ]);
        let now = "2025-03-12T12:00:00Z";
        assert_eq!(
            run(&daily, retention(5, 4, 3, 3), Tz::UTC, now),
            "a=N b=D c=D | d e"
        );
        // With no calendar rule, the age limit alone decides.
        assert_eq!(
            run(&daily, retention(0, 0, 0, 3), Tz::UTC, now),
            "a=N b=A c=A | d e"
        );
    }

    #[test]
    fn closure_keeps_the_chain_of_a_kept_point_past_the_age_limit() {
        let chain = points(&[
            ("i3", "2025-03-10T12:00:00Z", Some("i2")),
            ("x", "2025-03-09T12:00:00Z", Some("gone")),
            ("i2", "2025-03-03T12:00:00Z", Some("i1")),
            ("i1", "2025-03-02T12:00:00Z", Some("f")),
            ("f", "2025-03-01T12:00:00Z", None),
            ("g", "2025-02-20T12:00:00Z", None),
        ]);
        // i3 is the newest; x's parent is gone, which is ignored; i2 is past the age limit for
        // daily, but i3 needs it, and i1 and f.
        assert_eq!(
            run(
                &chain,
                retention(3, 0, 0, 5),
                Tz::UTC,
                "2025-03-10T12:00:00Z"
            ),
            "i3=N x=D i2=^i3 i1=^i3 f=^i3 | g"
        );
        // A point kept by a rule keeps its own reason when a newer one also needs it (i2).
        assert_eq!(
            run(
                &chain,
                retention(3, 0, 0, 0),
                Tz::UTC,
                "2025-03-10T12:00:00Z"
            ),
            "i3=N x=D i2=D i1=^i3 f=^i3 | g"
        );
    }

    #[test]
    fn all_zero_and_no_age_limit_keeps_everything() {
        let chain = points(&[
            ("a", "2025-03-10T12:00:00Z", Some("b")),
            ("b", "2024-03-10T12:00:00Z", None),
            ("c", "2020-03-10T12:00:00Z", None),
        ]);
        assert_eq!(
            run(&chain, retention(0, 0, 0, 0), Tz::UTC, NOW),
            "a=N b=A c=A | "
        );
    }

    /// policy.md section 4: "All `keep_*` zero: with an age limit a > 0, every point younger
    /// than a days is kept (rule 2 is then "keep all", and rule 3 limits it)". Rule 4 still
    /// keeps the chains the kept points need, however old; the newest is kept by rule 1.
    #[test]
    fn age_limit_alone_keeps_every_young_point_and_its_chain() {
        let shape = points(&[
            // Younger than 7 days: all kept, two of one day included (no thinning per day).
            ("i4", "2025-03-31T06:00:00Z", Some("i3")),
            ("i3", "2025-03-30T18:00:00Z", Some("i2")),
            ("i2", "2025-03-30T06:00:00Z", Some("f1")),
            ("g", "2025-03-26T12:00:00Z", None),
            // Older than 7 days: f1 is the full the young chain needs; the rest go.
            ("f1", "2025-03-20T12:00:00Z", None),
            ("j1", "2025-03-19T12:00:00Z", Some("f0")),
            ("f0", "2025-03-01T12:00:00Z", None),
        ]);
        assert_eq!(
            run(&shape, retention(0, 0, 0, 7), Tz::UTC, NOW),
            "i4=N i3=A i2=A g=A f1=^i4 | j1 f0"
        );
        // One second past the limit is out; one second inside is in (a = 5 days from NOW:
        // 03-26 12:00 is exactly 5 days old).
        let edge = fulls(&[
            ("new", "2025-03-31T00:00:00Z"),
            ("in", "2025-03-26T12:00:01Z"),
            ("out", "2025-03-26T11:59:59Z"),
        ]);
        assert_eq!(
            run(&edge, retention(0, 0, 0, 5), Tz::UTC, NOW),
            "new=N in=A | out"
        );
    }

    #[test]
    fn days_are_in_the_vms_zone() {
        // In Tokyo (UTC+9) a is 03-11 01:00 and b is 03-10 23:00; in UTC both are on 03-10.
        let late = fulls(&[
            ("a", "2025-03-10T16:00:00Z"),
            ("b", "2025-03-10T14:00:00Z"),
            ("c", "2025-03-10T02:00:00Z"),
            ("d", "2025-03-09T12:00:00Z"),
        ]);
        let daily = retention(2, 0, 0, 0);
        assert_eq!(run(&late, daily, Tz::UTC, NOW), "a=N d=D | b c");
        assert_eq!(run(&late, daily, Tz::Asia__Tokyo, NOW), "a=N b=D | c d");
        // Months too: 02-28 20:00 UTC is already March in Tokyo.
        let month_end = fulls(&[("a", "2025-03-05T12:00:00Z"), ("b", "2025-02-28T20:00:00Z")]);
        let monthly = retention(0, 0, 2, 0);
        assert_eq!(run(&month_end, monthly, Tz::UTC, NOW), "a=N b=M | ");
        assert_eq!(run(&month_end, monthly, Tz::Asia__Tokyo, NOW), "a=N | b");
    }

    #[test]
    fn input_order_does_not_matter_and_ties_go_by_id() {
        let mut same_time = fulls(&[
            ("b", "2025-03-10T12:00:00Z"),
            ("a", "2025-03-10T12:00:00Z"),
            ("c", "2025-03-09T12:00:00Z"),
        ]);
        let expected = "a=N c=D | b";
        assert_eq!(
            run(&same_time, retention(2, 0, 0, 0), Tz::UTC, NOW),
            expected
        );
        same_time.reverse();
        assert_eq!(
            run(&same_time, retention(2, 0, 0, 0), Tz::UTC, NOW),
            expected
        );
    }

    #[test]
    fn a_parent_cycle_ends() {
        let cycle = points(&[
            ("a", "2025-03-10T12:00:00Z", Some("b")),
            ("b", "2025-03-09T12:00:00Z", Some("a")),
            ("c", "2025-03-08T12:00:00Z", None),
        ]);
        assert_eq!(
            run(&cycle, retention(1, 0, 0, 0), Tz::UTC, NOW),
            "a=N b=^a | c"
        );
    }

    /// Sixty days of one point a day at 01:00 UTC, a full every seventh day, the rest
    /// incrementals on the day before; every fifth day also a 13:00 incremental.
    fn weekly_fulls() -> Vec<Point> {
        let start = at("2025-01-01T01:00:00Z");
        let mut chain = Vec::new();
        let mut previous: Option<String> = None;
        for day in 0..60 {
            let taken_at = start + Duration::days(day);
            let id = format!("d{day:02}");
            let parent = if day % 7 == 0 { None } else { previous.clone() };
            if day % 5 == 0 {
                chain.push(Point {
                    id: format!("{id}pm"),
                    taken_at: taken_at + Duration::hours(12),
                    parent: Some(id.clone()),
                });
            }
            chain.push(Point {
                id: id.clone(),
                taken_at,
                parent,
            });
            previous = Some(id);
        }
        chain
    }

    /// Hand-made shapes: a branch (two incrementals on one parent), a lost parent, a long chain
    /// from one full, and the generated weekly-full chain.
    fn shapes() -> Vec<Vec<Point>> {
        vec![
            points(&[
                ("b2", "2025-03-20T12:00:00Z", Some("a1")),
                ("b1", "2025-03-18T12:00:00Z", Some("a1")),
                ("a1", "2025-03-10T12:00:00Z", Some("f")),
                ("f", "2025-02-10T12:00:00Z", None),
                ("o", "2025-01-10T12:00:00Z", None),
            ]),
            points(&[
                ("y", "2025-03-30T12:00:00Z", Some("x")),
                ("x", "2025-03-01T12:00:00Z", Some("lost")),
                ("z", "2025-02-01T12:00:00Z", None),
            ]),
            (0..40)
                .map(|n| Point {
                    id: format!("p{n:02}"),
                    taken_at: at("2025-02-01T12:00:00Z") + Duration::hours(17 * n),
                    parent: (n > 0).then(|| format!("p{:02}", n - 1)),
                })
                .collect(),
            weekly_fulls(),
        ]
    }

    /// Whatever is deleted, every kept point's existing ancestors are kept, every point is in
    /// exactly one list, and the newest is kept.
    #[test]
    fn deleting_never_breaks_a_chain() {
        let nows = [
            "2025-03-01T00:00:00Z",
            "2025-03-31T12:00:00Z",
            "2026-01-01T00:00:00Z",
        ];
        for shape in shapes() {
            for now in nows {
                for zone in [Tz::UTC, Tz::Asia__Tokyo, Tz::America__Sao_Paulo] {
                    for keep in [0, 1, 2, 5] {
                        for age in [0, 1, 10, 45] {
                            let rules = retention(keep, keep / 2, keep % 2, age);
                            let verdict = plan(&shape, &rules, zone, at(now));
                            check_closed(&shape, &verdict, &format!("{rules:?} {zone} {now}"));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn newly_deleted_is_what_the_new_retention_deletes_and_the_old_keeps() {
        let shape = fulls(&[
            ("d5", "2026-03-05T02:00:00Z"),
            ("d4", "2026-03-04T02:00:00Z"),
            ("d3", "2026-03-03T02:00:00Z"),
            ("d2", "2026-03-02T02:00:00Z"),
            ("d1", "2026-03-01T02:00:00Z"),
        ]);
        let now = at("2026-03-05T12:00:00Z");
        let (five, three, two) = (
            retention(5, 0, 0, 0),
            retention(3, 0, 0, 0),
            retention(2, 0, 0, 0),
        );
        let utc = Tz::UTC;
        let cases: [(Side, Side, &[&str]); 5] = [
            (Some((five, utc)), Some((two, utc)), &["d3", "d2", "d1"]),
            (Some((three, utc)), Some((two, utc)), &["d3"]),
            (Some((two, utc)), Some((five, utc)), &[]),
            (None, Some((two, utc)), &["d3", "d2", "d1"]),
            (Some((two, utc)), None, &[]),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                newly_deleted(&shape, before, after, now),
                expected,
                "{before:?} -> {after:?}"
            );
        }
    }

    fn check_closed(shape: &[Point], verdict: &Verdict, case: &str) {
        let by_id: HashMap<&str, &Point> = shape.iter().map(|p| (p.id.as_str(), p)).collect();
        let kept: HashSet<&str> = verdict.keep.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(kept.len() + verdict.delete.len(), shape.len(), "{case}");
        assert!(
            verdict.delete.iter().all(|id| !kept.contains(id.as_str())),
            "{case}"
        );
        assert_eq!(verdict.keep[0].1, Keep::Newest, "{case}");
        for id in &kept {
            let mut parent = by_id[id].parent.as_deref();
            while let Some(ancestor) = parent.and_then(|p| by_id.get(p)) {
                assert!(
                    kept.contains(ancestor.id.as_str()),
                    "{case}: {id} needs {}",
                    ancestor.id
                );
                parent = ancestor.parent.as_deref();
            }
        }
    }
}
