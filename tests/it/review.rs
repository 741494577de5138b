//! `ovplan diff --format markdown|json` and `--catalog` (issue 17): the review of a realistic
//! change of the example (three VMs changed, one added, one removed, a retention cut over a
//! catalog) is a reviewed Markdown snapshot whose tables parse as GitHub reads them
//! (pulldown-cmark with tables), its JSON says the same, and the points it says the new retention
//! deletes are those `ovrun prune --dry-run` deletes under the new bundle and not the old.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde_json::{Value, json};

use crate::support::Run;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a binary in `dir` with the host's zone fixed to UTC (schedules without their own).
fn run_utc(bin: &str, args: &[&str], dir: &Path) -> Run {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("TZ", "UTC")
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ovplan(args: &[&str], dir: &Path) -> Run {
    run_utc(env!("CARGO_BIN_EXE_ovplan"), args, dir)
}

/// The example with `replacements` made (each must be found).
fn example_with(replacements: &[(&str, &str)]) -> String {
    let mut text =
        std::fs::read_to_string(repo().join("examples/variables.json")).expect("example");
    for (from, to) in replacements {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// The realistic change: erp-db01 keeps far fewer points, ldap01 moves to Wednesdays, mail01 is
/// no longer restored into DR, crm01 is added and legacy-print01 removed.
const CHANGE: [(&str, &str); 5] = [
    (
        r#""keep_daily": 14, "keep_weekly": 8, "keep_monthly": 12"#,
        r#""keep_daily": 3, "keep_weekly": 2, "keep_monthly": 1"#,
    ),
    (
        r#""pattern": "weekly", "day": "tuesday", "time": "04:45""#,
        r#""pattern": "weekly", "day": "wednesday", "time": "05:00""#,
    ),
    (
        r#""full_backup_day": "monday" },
      "auto_restore": true"#,
        r#""full_backup_day": "monday" },
      "auto_restore": false"#,
    ),
    (r#""legacy-print01": "1111100","#, ""),
    (
        r#""old-test-vm": {"#,
        r#""crm01": { "schedule": { "type": "simple", "pattern": "daily", "time": "02:00" } },
    "old-test-vm": {"#,
    ),
];

/// The old and new policies, with `backup_directory` set to `backups`, written into `dir`.
fn policies(dir: &Path, backups: &str) -> (PathBuf, PathBuf) {
    let backup_dir = (r#""backup_directory": "/backup""#, "");
    let original = std::fs::read_to_string(repo().join("examples/variables.json")).expect("x");
    assert!(
        original.contains(backup_dir.0),
        "the example's backup_directory"
    );
    let here = format!(r#""backup_directory": "{backups}""#);
    let (old, new) = (dir.join("old.json"), dir.join("new.json"));
    std::fs::write(&old, example_with(&[(backup_dir.0, &here)])).expect("write");
    let mut change = CHANGE.to_vec();
    change.push((backup_dir.0, &here));
    std::fs::write(&new, example_with(&change)).expect("write");
    (old, new)
}

/// A manifest as `ovrun` writes it: one disk, the point's files named by the catalog's scheme.
fn manifest(
    vm: &str,
    point: &str,
    kind: &str,
    taken_at: DateTime<Utc>,
    parent: Option<(&str, &str)>,
) -> Value {
    json!({
        "format": 1, "vm": vm, "vm_id": "id-1", "point": point, "kind": kind,
        "reason": "test", "taken_at": taken_at, "parent": parent.map(|(p, _)| p),
        "backup_id": "b", "from_checkpoint": null, "checkpoint": null,
        "disks": [{
            "id": "disk-1", "alias": "os", "interface": "virtio_scsi", "bootable": true,
            "provisioned_size": 1, "mode": kind, "file": format!("{point}.{kind}.os.qcow2"),
            "backing": parent.map(|(p, k)| format!("{p}.{k}.os.qcow2")),
            "bytes_transferred": 0, "file_size": 1,
        }],
    })
}

/// `days` daily points of `vm` at 01:30 UTC up to `last`, a full on Sundays and incrementals
/// between, each building on the one before.
fn write_points(catalog: &Path, vm: &str, last: DateTime<Utc>, days: i64) {
    let folder = catalog.join(vm);
    std::fs::create_dir_all(&folder).expect("folder");
    let mut previous: Option<(String, &str)> = None;
    for ago in (0..days).rev() {
        let at = last - Duration::days(ago);
        let point = at.format("%Y%m%dT%H%M%SZ").to_string();
        let full = at.format("%a").to_string() == "Sun" || previous.is_none();
        let kind = if full { "full" } else { "incremental" };
        let parent = previous
            .as_ref()
            .filter(|_| !full)
            .map(|(p, k)| (p.as_str(), *k));
        let text = manifest(vm, &point, kind, at, parent).to_string();
        std::fs::write(folder.join(format!("{point}.{kind}.manifest.json")), text).expect("write");
        previous = Some((point, kind));
    }
}

/// A catalog: 35 daily points of erp-db01 up to `last`, 4 of mail01, no folder for ldap01.
fn write_catalog(dir: &Path, last: DateTime<Utc>) -> PathBuf {
    let catalog = dir.join("backups");
    write_points(&catalog, "erp-db01", last, 35);
    write_points(&catalog, "mail01", last, 4);
    catalog
}

const FROM: &str = "2026-11-29T00:00:00Z";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// `ovplan diff OLD NEW --from FROM --catalog DIR --format FORMAT` on the realistic change.
fn realistic(dir: &Path, format: &str) -> Run {
    let catalog = write_catalog(dir, at("2026-11-28T01:30:00Z"));
    policies(dir, catalog.to_str().expect("utf-8"));
    let args = [
        "diff",
        "old.json",
        "new.json",
        "--from",
        FROM,
        "--catalog",
        "backups",
    ];
    ovplan(&[&args[..], &["--format", format]].concat(), dir)
}

#[test]
fn the_review_of_a_realistic_change_in_markdown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = realistic(dir.path(), "markdown");
    assert_eq!(run.code, 1, "a change exits 1: {}", run.stderr);
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!(run.stdout);
}

/// A table as pulldown-cmark reads it: its header cells and its rows of cells, as text.
#[derive(Debug, Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Every GitHub Flavored Markdown table of `markdown`.
fn tables(markdown: &str) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    let (mut in_head, mut cell) = (false, None::<String>);
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Table(_)) => tables.push(Table::default()),
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => in_head = false,
            Event::Start(Tag::TableRow) => tables.last_mut().expect("table").rows.push(Vec::new()),
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(cell) = cell.as_mut() {
                    cell.push_str(&text);
                }
            }
            Event::End(TagEnd::TableCell) => {
                let table = tables.last_mut().expect("table");
                let text = cell.take().expect("in a cell");
                match (in_head, table.rows.last_mut()) {
                    (true, _) | (false, None) => table.header.push(text),
                    (false, Some(row)) => row.push(text),
                }
            }
            _ => {}
        }
    }
    tables
}

#[test]
fn the_markdown_review_renders_as_tables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = realistic(dir.path(), "markdown");
    let found = tables(&run.stdout);
    let headers: Vec<String> = found.iter().map(|t| t.header.join(" | ")).collect();
    let facts = " | before | after";
    let runs = "next run | before | after";
    let cut = "point | kind | taken at";
    // Per VM, by name: crm01, erp-db01 (with its retention cut), ldap01, legacy-print01, mail01.
    let expected = [
        facts, runs, facts, runs, cut, facts, runs, facts, runs, facts, runs,
    ];
    assert_eq!(headers, expected, "{}", run.stdout);
    for table in &found {
        assert!(!table.rows.is_empty(), "{table:?}");
        assert!(table.rows.iter().all(|r| r.len() == 3), "{table:?}");
    }
    let next_runs = &found[3];
    assert_eq!(next_runs.rows.len(), 5, "five runs each side");
    for row in &next_runs.rows {
        for side in &row[1..] {
            assert!(
                side.ends_with(" full") || side.ends_with(" incremental"),
                "{side}"
            );
        }
    }
    let json = realistic(dir.path(), "json");
    let review: Value = serde_json::from_str(&json.stdout).expect("JSON");
    let erp = &review["vms"][1];
    let cut_ids: Vec<&str> = erp["retention_cut"]
        .as_array()
        .expect("a cut")
        .iter()
        .filter_map(|p| p["point"].as_str())
        .collect();
    let table_ids: Vec<&str> = found[4].rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(table_ids, cut_ids, "the Markdown shows the JSON's points");
}

#[test]
fn the_json_review_says_the_same() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = realistic(dir.path(), "json");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let review: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        review["summary"],
        json!({"added": 1, "removed": 1, "changed": 3, "schedules": 1, "retention": 1, "restore": 1})
    );
    let vms: Vec<(&str, &str)> = review["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .map(|vm| {
            (
                vm["name"].as_str().expect("name"),
                vm["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        vms,
        [
            ("crm01", "added"),
            ("erp-db01", "changed"),
            ("ldap01", "changed"),
            ("legacy-print01", "removed"),
            ("mail01", "changed"),
        ]
    );
    assert_eq!(review["from"], FROM);
    assert_eq!(review["catalog"], true);
    let ldap = &review["vms"][2];
    assert_eq!(ldap["retention_cut"], json!([]), "no folder, no points");
    let next = ovplan(
        &[
            "next", "new.json", "--vm", "ldap01", "--count", "5", "--from", FROM,
        ],
        dir.path(),
    );
    let runs: Vec<String> = ldap["runs_after"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            format!(
                "{} {}\n",
                r["at"].as_str().expect("at"),
                r["kind"].as_str().expect("kind")
            )
        })
        .collect();
    assert_eq!(runs.concat(), next.stdout, "the planner `ovplan next` uses");
    let markdown = realistic(dir.path(), "markdown").stdout;
    for vm in review["vms"].as_array().expect("vms") {
        assert!(markdown.contains(&format!(
            "#### `{}`: {}",
            vm["name"].as_str().expect("n"),
            vm["status"].as_str().expect("s")
        )));
    }
}

/// The ids `ovrun prune --dry-run` would delete with `config`.
fn prune_would_delete(config: &Path) -> BTreeSet<String> {
    let run = run_utc(
        env!("CARGO_BIN_EXE_ovrun"),
        &[
            "prune",
            "--dry-run",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        config.parent().expect("folder"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .filter_map(|l| l.split_once(": would delete ").map(|(_, id)| id.to_owned()))
        .collect()
}

/// The cut is computed as `ovrun prune` decides: the points the new bundle's prune deletes and
/// the old one's keeps (points from today back, so `ovrun`'s own clock agrees).
#[test]
fn the_retention_cut_is_what_ovrun_prune_deletes_under_the_new_policy_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = write_catalog(dir.path(), Utc::now() - Duration::hours(1));
    let (old, new) = policies(dir.path(), catalog.to_str().expect("utf-8"));
    let mut deleted = Vec::new();
    for (policy, out) in [(&old, "old-out"), (&new, "new-out")] {
        let build = ovplan(
            &[
                "build",
                policy.to_str().expect("utf-8"),
                "--out",
                out,
                "--target",
                "cron",
            ],
            dir.path(),
        );
        assert_eq!(build.code, 0, "{}", build.stderr);
        deleted.push(prune_would_delete(
            &dir.path().join(out).join("runner/erp-db01.json"),
        ));
    }
    let expected: BTreeSet<String> = deleted[1].difference(&deleted[0]).cloned().collect();
    assert!(
        !expected.is_empty(),
        "the change cuts something: {deleted:?}"
    );
    let run = ovplan(
        &[
            "diff",
            "old.json",
            "new.json",
            "--catalog",
            "backups",
            "--format",
            "json",
        ],
        dir.path(),
    );
    let review: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let cut: BTreeSet<String> = review["vms"][1]["retention_cut"]
        .as_array()
        .expect("cut")
        .iter()
        .filter_map(|p| p["point"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(cut, expected);
}

#[test]
fn a_catalog_without_the_vm_or_with_a_misnamed_manifest_is_read_as_ovrun_reads_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = dir.path().join("backups");
    write_points(&catalog, "erp-db01", at("2026-11-28T01:30:00Z"), 3);
    let stray = manifest(
        "erp-db01",
        "20261101T013000Z",
        "full",
        at("2026-11-01T01:30:00Z"),
        None,
    );
    let misnamed = catalog.join("erp-db01/20261101T013000Z.incremental.manifest.json");
    std::fs::write(&misnamed, stray.to_string()).expect("write");
    policies(dir.path(), catalog.to_str().expect("utf-8"));
    let run = ovplan(
        &[
            "diff",
            "old.json",
            "new.json",
            "--from",
            FROM,
            "--catalog",
            "backups",
            "--format",
            "markdown",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("20261101T013000Z.incremental.manifest.json: ignored"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("The new retention deletes no point of the catalog that the old one keeps."),
        "{}",
        run.stdout
    );
    let missing = ovplan(
        &["diff", "old.json", "new.json", "--catalog", "no-such-dir"],
        dir.path(),
    );
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no-such-dir: no such folder"),
        "{}",
        missing.stderr
    );
}

#[test]
fn no_change_is_said_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = repo().join("examples/variables.json");
    let example = example.to_str().expect("utf-8");
    let text = ovplan(&["diff", example, example], dir.path());
    assert_eq!(
        (text.code, text.stdout.as_str(), text.stderr.as_str()),
        (0, "", "no change\n")
    );
    let markdown = ovplan(
        &["diff", example, example, "--format", "markdown"],
        dir.path(),
    );
    assert_eq!(markdown.code, 0);
    assert!(
        markdown.stdout.contains("**No change:**"),
        "{}",
        markdown.stdout
    );
    let json = ovplan(&["diff", example, example, "--format", "json"], dir.path());
    let review: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        (json.code, &review["vms"], &review["settings"]),
        (0, &json!([]), &json!([]))
    );
}
