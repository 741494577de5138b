//! The compiled units fire at exactly the instants `ovplan next` predicts (policy.md section 2):
//! for every schedule form, a year of `systemd-analyze calendar` instants of the generated
//! `OnCalendar=` lines, and of an independent cron implementation (croniter) for the generated
//! cron lines, filtered by the due-guard `ovrun due` applies, equals `ovplan next`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::support::{fixtures, json_names, ovplan, run};

const FROM: &str = "2026-01-01T00:00:00Z";
const UNTIL: &str = "2027-01-01T00:00:00Z";

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

struct Built {
    dir: tempfile::TempDir,
    vms: Vec<String>,
}

fn build_every_form() -> Built {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("bundle");
    let result = ovplan(&[
        "build",
        "ok/every-form.json",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let vms = json_names(&out.join("runner"));
    assert_eq!(vms.len(), 17);
    Built { dir, vms }
}

impl Built {
    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join("bundle").join(relative)
    }

    /// The starts `ovrun due` lets through (exit 0), asked one start at a time, as a unit's
    /// `ovrun backup` asks.
    fn due_only(&self, vm: &str, starts: BTreeSet<DateTime<Utc>>) -> Vec<String> {
        let config = self.path(&format!("runner/{vm}.json"));
        let config = config.to_str().expect("utf-8");
        let bin = env!("CARGO_BIN_EXE_ovrun");
        starts
            .into_iter()
            .map(stamp)
            .filter(|at| {
                let verdict = run(bin, &["due", "--config", config, "--at", at], &fixtures());
                assert!(
                    verdict.code == 0 || verdict.code == 1,
                    "{vm} {at}: {}",
                    verdict.stderr
                );
                verdict.code == 0
            })
            .collect()
    }
}

/// `ovplan next` over the year, in UTC.
fn predicted(vm: &str) -> Vec<String> {
    let result = ovplan(&[
        "next",
        "ok/every-form.json",
        "--vm",
        vm,
        "--count",
        "2000",
        "--from",
        FROM,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    result
        .stdout
        .lines()
        .map(|line| utc(line.split_whitespace().next().expect("instant")))
        .filter(|t| *t <= utc(UNTIL))
        .map(stamp)
        .collect()
}

fn on_calendar_lines(timer: &Path) -> Vec<String> {
    std::fs::read_to_string(timer)
        .expect("timer")
        .lines()
        .filter_map(|l| l.strip_prefix("OnCalendar="))
        .map(str::to_owned)
        .collect()
}

/// Every instant systemd computes for the lines in (FROM, UNTIL].
fn systemd_instants(lines: &[String]) -> BTreeSet<DateTime<Utc>> {
    let mut found = BTreeSet::new();
    for line in lines {
        let out = Command::new("systemd-analyze")
            .env("TZ", "UTC")
            .args([
                "calendar",
                "--base-time=2026-01-01 00:00:00 UTC",
                "--iterations=800",
                line,
            ])
            .output()
            .expect("systemd-analyze runs (scripts/setup.sh installs systemd)");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for row in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((_, when)) = row.split_once("Next elapse: ").or_else(|| {
                row.split_once(": ")
                    .filter(|(k, _)| k.trim().starts_with("Iter."))
            }) else {
                continue;
            };
            let when = when.trim().trim_end_matches(" UTC");
            let naive = NaiveDateTime::parse_from_str(&when[4..], "%Y-%m-%d %H:%M:%S")
                .expect("systemd instant");
            let t = naive.and_utc();
            if t <= utc(UNTIL) {
                found.insert(t);
            }
        }
    }
    found
}

#[test]
fn systemd_timers_fire_as_ovplan_next_predicts() {
    let built = build_every_form();
    for vm in &built.vms {
        let escaped = ovbackup::plan::compile::systemd_escape(vm);
        let lines =
            on_calendar_lines(&built.path(&format!("systemd/ovrun-backup-{escaped}.timer")));
        let starts = systemd_instants(&lines);
        let expected = predicted(vm);
        assert!(
            expected.len() >= 4,
            "{vm}: {} runs in a year",
            expected.len()
        );
        assert_eq!(built.due_only(vm, starts), expected, "{vm}: {lines:?}");
    }
}

/// The cron lines of each VM in the compiled cron file, with the zone they run in.
fn cron_entries(file: &Path) -> Vec<(String, String, Vec<String>)> {
    let mut zone = "UTC".to_owned();
    let mut entries: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in std::fs::read_to_string(file).expect("cron file").lines() {
        if let Some(z) = line.strip_prefix("CRON_TZ=") {
            zone = z.to_owned();
            continue;
        }
        let Some(config) = line
            .split("/runner/")
            .nth(1)
            .and_then(|rest| rest.split(".json'").next())
        else {
            continue;
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let expression = if fields[0].starts_with('@') {
            fields[0].to_owned()
        } else {
            fields[..5].join(" ")
        };
        match entries.iter_mut().find(|(vm, _, _)| vm == config) {
            Some((_, _, lines)) => lines.push(expression),
            None => entries.push((config.to_owned(), zone.clone(), vec![expression])),
        }
    }
    entries
}

fn croniter_instants(zone: &str, expressions: &[String]) -> BTreeSet<DateTime<Utc>> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cron_instants.py");
    let mut args = vec![
        script.to_str().expect("utf-8").to_owned(),
        zone.to_owned(),
        FROM.replace('Z', "+00:00"),
        UNTIL.replace('Z', "+00:00"),
    ];
    args.extend(expressions.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(python.to_str().expect("utf-8"), &args, &fixtures());
    assert_eq!(
        out.code, 0,
        "croniter (scripts/setup.sh installs it into .venv): {}",
        out.stderr
    );
    out.stdout.lines().map(utc).collect()
}

#[test]
fn cron_lines_fire_as_ovplan_next_predicts() {
    let built = build_every_form();
    let entries = cron_entries(&built.path("cron/ovbackup"));
    assert_eq!(entries.len(), built.vms.len());
    for (vm, zone, expressions) in entries {
        let starts = croniter_instants(&zone, &expressions);
        assert_eq!(
            built.due_only(&vm, starts),
            predicted(&vm),
            "{vm}: {zone} {expressions:?}"
        );
    }
}

#[test]
fn ovrun_due_says_why_and_exits_by_the_guard() {
    let built = build_every_form();
    let config = built.path("runner/biweekly.json");
    let config = config.to_str().expect("utf-8");
    let bin = env!("CARGO_BIN_EXE_ovrun");
    // 2026-01-09 (anchor week) fires; 2026-01-16 is an off-week Friday.
    let on = run(
        bin,
        &["due", "--config", config, "--at", "2026-01-09T20:00:00Z"],
        &fixtures(),
    );
    assert_eq!(on.code, 0, "{}{}", on.stdout, on.stderr);
    assert!(
        on.stdout
            .contains("due: this start serves the run scheduled at 2026-01-09T20:00:00+00:00"),
        "{}",
        on.stdout
    );
    let off = run(
        bin,
        &["due", "--config", config, "--at", "2026-01-16T20:00:05Z"],
        &fixtures(),
    );
    assert_eq!(off.code, 1, "{}", off.stdout);
    assert!(off.stdout.contains("not due"), "{}", off.stdout);
    let late = run(
        bin,
        &["due", "--config", config, "--at", "2026-01-11T08:00:00Z"],
        &fixtures(),
    );
    assert_eq!(
        late.code, 0,
        "a start catching up the Friday run is due: {}",
        late.stdout
    );
    let bad = run(bin, &["due", "--config", "no-such.json"], &fixtures());
    assert_eq!(bad.code, 2);
}

#[test]
fn without_a_zone_next_uses_the_hosts_and_honours_tz() {
    let bin = env!("CARGO_BIN_EXE_ovplan");
    let run_in = |tz: &str| {
        let out = Command::new(bin)
            .args([
                "next",
                "ok/legacy.json",
                "--vm",
                "bare",
                "--count",
                "2",
                "--from",
                "2026-07-01T00:00:00Z",
            ])
            .current_dir(fixtures())
            .env("TZ", tz)
            .output()
            .expect("ovplan runs");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    assert_eq!(
        run_in("America/New_York"),
        "2026-07-05T21:30:00-04:00 full\n2026-07-06T21:30:00-04:00 incremental\n"
    );
    assert_eq!(
        run_in("UTC"),
        "2026-07-05T21:30:00+00:00 full\n2026-07-06T21:30:00+00:00 incremental\n"
    );
}
