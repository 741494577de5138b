//! The "last runs" cell of the status page: a VM's recent runs as marks on a small time axis,
//! drawn by the template as inline SVG. Here only the geometry and the words: where each mark
//! sits, its shape, and the tooltip (`<title>`) and label a reader without colour gets.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::run::catalog::{RecentRun, RunKind, RunResult};

/// The drawing's size in CSS pixels.
pub(super) const WIDTH: u32 = 160;
const HEIGHT: u32 = 22;
/// Space kept free at either end, so a mark is never cut.
const MARGIN: f64 = 8.0;
/// The least distance between two marks' centres: runs minutes apart (a backup and its prune)
/// stay two marks.
const MIN_SPACING: f64 = 13.0;

/// The timeline as the template draws it.
#[derive(Debug, Serialize)]
pub(super) struct Timeline {
    width: u32,
    height: u32,
    /// The axis's y, where the marks sit.
    axis: u32,
    /// Where the axis starts and ends (the end is now).
    start_x: u32,
    end_x: u32,
    /// One line for assistive technology: how many runs, over how long, how they ended.
    label: String,
    marks: Vec<Mark>,
}

/// One run on the timeline.
#[derive(Debug, Serialize)]
struct Mark {
    x: u32,
    /// `ok` (a circle), `failed` (a square), `other` (a triangle: killed, interrupted).
    shape: &'static str,
    /// Backups are filled; prunes and verifies are outlined.
    filled: bool,
    /// The tooltip: kind, result, when, the point.
    title: String,
}

/// The timeline of `runs` (oldest first), ending at `now`; times are shown in `zone`.
pub(super) fn timeline(runs: &[RecentRun], now: DateTime<Utc>, zone: chrono_tz::Tz) -> Timeline {
    let xs = spread(&positions(runs, now));
    let marks = runs
        .iter()
        .zip(xs)
        .map(|(run, x)| Mark {
            x: x.round() as u32,
            shape: shape(run.result),
            filled: run.kind == RunKind::Backup,
            title: title(run, now, zone),
        })
        .collect();
    Timeline {
        width: WIDTH,
        height: HEIGHT,
        axis: HEIGHT / 2,
        start_x: MARGIN as u32,
        end_x: WIDTH - MARGIN as u32,
        label: label(runs, now),
        marks,
    }
}

/// Each run's x, proportional to its start between the oldest run's and `now`.
fn positions(runs: &[RecentRun], now: DateTime<Utc>) -> Vec<f64> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let span = (now - first.started).num_seconds().max(1) as f64;
    let usable = f64::from(WIDTH) - 2.0 * MARGIN;
    runs.iter()
        .map(|run| {
            let offset = (run.started - first.started).num_seconds() as f64;
            MARGIN + usable * (offset / span).clamp(0.0, 1.0)
        })
        .collect()
}

/// The positions moved apart to [`MIN_SPACING`], kept in order and inside the margins: pushed
/// right where two crowd, then pulled back left from the end.
fn spread(xs: &[f64]) -> Vec<f64> {
    let right = f64::from(WIDTH) - MARGIN;
    let mut out: Vec<f64> = Vec::with_capacity(xs.len());
    for &x in xs {
        let least = out.last().map_or(MARGIN, |last| last + MIN_SPACING);
        out.push(x.max(least));
    }
    let mut limit = right;
    for x in out.iter_mut().rev() {
        *x = x.min(limit);
        limit = *x - MIN_SPACING;
    }
    out
}

fn shape(result: RunResult) -> &'static str {
    match result {
        RunResult::Ok => "ok",
        RunResult::Failed => "failed",
        _ => "other",
    }
}

/// `backup ok, 2026-12-01 03:00 UTC (3h ago), point 20261201T030000Z`.
fn title(run: &RecentRun, now: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        "{} {}, {} ({})",
        run.kind.as_str(),
        run.result.as_str(),
        super::local_time(run.started, zone),
        super::super::age(run.started, now)
    );
    if let Some(point) = &run.point {
        let _ = write!(text, ", point {point}");
    }
    text
}

/// `5 runs in 4d: 4 ok, 1 failed` (`no runs recorded` without any).
fn label(runs: &[RecentRun], now: DateTime<Utc>) -> String {
    let Some(first) = runs.first() else {
        return "no runs recorded".into();
    };
    let count = |result: RunResult| runs.iter().filter(|r| r.result == result).count();
    let (ok, failed) = (count(RunResult::Ok), count(RunResult::Failed));
    let other = runs.len() - ok - failed;
    let mut parts = vec![format!("{ok} ok")];
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    if other > 0 {
        parts.push(format!("{other} killed or interrupted"));
    }
    let runs_word = if runs.len() == 1 { "run" } else { "runs" };
    let since = crate::plan::alerts::human_duration(now - first.started);
    format!(
        "{} {runs_word} in {since}: {}",
        runs.len(),
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started: &str, kind: RunKind, result: RunResult) -> RecentRun {
        RecentRun {
            kind,
            started: DateTime::parse_from_rfc3339(started).unwrap().to_utc(),
            result,
            point: None,
        }
    }

    #[test]
    fn marks_keep_their_order_apart_and_inside() {
        let spread = spread(&[8.0, 8.0, 9.0, 150.0, 152.0]);
        assert_eq!(spread[0], MARGIN);
        for pair in spread.windows(2) {
            assert!(pair[1] - pair[0] >= MIN_SPACING - 1e-9, "{spread:?}");
        }
        assert_eq!(*spread.last().unwrap(), f64::from(WIDTH) - MARGIN);
        assert!(spread[3] < spread[4]);
    }

    #[test]
    fn runs_sit_where_they_started_and_say_how_they_ended() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let runs = [
            run("2026-11-27T00:00:00Z", RunKind::Backup, RunResult::Ok),
            run("2026-11-29T00:00:00Z", RunKind::Backup, RunResult::Failed),
            run("2026-11-30T00:00:00Z", RunKind::Verify, RunResult::Killed),
        ];
        let line = timeline(&runs, now, chrono_tz::Tz::UTC);
        let xs: Vec<u32> = line.marks.iter().map(|m| m.x).collect();
        // Four days from the first run to now over 144 px: 0, 2 and 3 days in.
        assert_eq!(xs, [8, 80, 116]);
        let shapes: Vec<&str> = line.marks.iter().map(|m| m.shape).collect();
        assert_eq!(shapes, ["ok", "failed", "other"]);
        assert!(!line.marks[2].filled);
        assert_eq!(
            line.label,
            "3 runs in 4d: 1 ok, 1 failed, 1 killed or interrupted"
        );
        assert_eq!(
            line.marks[1].title,
            "backup failed, 2026-11-29 00:00 UTC (2d ago)"
        );
        assert_eq!(
            timeline(&[], now, chrono_tz::Tz::UTC).label,
            "no runs recorded"
        );
    }
}
