//! The status page (`ovrun status --format html`, issue 15 item 3) for a catalog of several VMs:
//! healthy, late with a failed last run, a chain longer than its policy allows and damage
//! found, stale for two months, never backed up, on a cron schedule, and one whose name (and
//! error) is markup. The catalogs are written with the catalog API at fixed instants, and the
//! page rendered with `--now`, so its snapshot is stable; a second test renders the page of
//! points real `ovrun backup` runs made against ovsim.
//!
//! Then headless Chromium (Debian's `chromium`) reads the page as a browser does: with the
//! page's own Content-Security-Policy the sort script runs (its headers become buttons) and
//! nothing the VM names hold does; in a test-only copy with one more script, which reports the
//! layout into the DOM (`--dump-dom`), every VM's row is there and nothing overflows 1280 px;
//! a screenshot at that width is decoded and shows the three freshness colours.
//! `OVBACKUP_DOCS_SCREENSHOT=1` copies that screenshot to `docs/status-page.png`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use ovbackup::run::catalog::{
    Catalog, DiskEntry, HistoryEntry, MANIFEST_FORMAT, Manifest, MethodRecord, RunKind, RunResult,
    point_id,
};
use ovbackup::run::restore::{LogEntry, RestoreLog, Verdict};
use serde_json::{Value, json};

use crate::support::engine::{Sim, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};

/// The page's instant: a Tuesday.
const NOW: &str = "2026-12-01T06:00:00Z";

/// A VM name that is markup, quotes and an ampersand: on the page it must be text.
const HOSTILE: &str = "\"'&<img src=x onerror=alert(1)><script>alert(2)";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .to_utc()
}

/// Runner configs and catalogs in one folder: `runner/N.json`, `backup/`, `restore_logs/`.
struct Fixture {
    dir: tempfile::TempDir,
    configs: usize,
}

/// One VM of the fixture: its catalog and its restore log.
struct Vm {
    catalog: Catalog,
    restores: RestoreLog,
    last: Option<String>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("runner")).expect("runner folder");
        Self { dir, configs: 0 }
    }

    fn runner_dir(&self) -> PathBuf {
        self.dir.path().join("runner")
    }

    /// A VM backed up on `schedule` (the runner config's form), its chain limited to
    /// `max_incrementals` after a full, restored into DR when `restore`.
    fn vm(&mut self, name: &str, schedule: Value, max_incrementals: u32, restore: bool) -> Vm {
        let root = self.dir.path();
        let engine = json!({
            "url": "https://engine.example/ovirt-engine/api", "user": "admin@internal",
            "password_file": root.join("engine.password"),
            "password_credential": "engine-password", "ca_file": null,
        });
        let restore_settings = json!({
            "vm_name": format!("{name}_dr"), "target_cluster_name": "DR",
            "target_storage_domain_name": "data", "disk_interface": "virtio_scsi",
            "timeout_minutes": 10, "auto_start_restored_vm": false,
            "replace_existing_vm": false, "backup_old_vm": false,
            "restore_log_directory": root.join("restore_logs"),
        });
        let config = json!({
            "format": 1, "vm": name, "source": engine,
            "target": if restore { engine.clone() } else { Value::Null },
            "backup_directory": root.join("backup"),
            "checkpoints_file": root.join("backup/checkpoints.json"),
            "timezone": schedule["timezone"], "schedule": schedule, "due_guard": null,
            "backup": {
                "incremental_enabled": true, "full_backup_frequency": "never",
                "full_backup_day": "sunday", "anchor_date": "2024-01-01",
                "max_incremental_chain_length": max_incrementals, "force_full_backup_days": 0,
            },
            "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3, "max_backup_age_days": 0},
            "restore": if restore { restore_settings } else { Value::Null },
        });
        self.configs += 1;
        let path = self.runner_dir().join(format!("{}.json", self.configs));
        std::fs::write(&path, serde_json::to_string_pretty(&config).expect("JSON"))
            .expect("config");
        Vm {
            catalog: Catalog::open(&root.join("backup"), name).expect("catalog"),
            restores: RestoreLog::new(&root.join("restore_logs"), name),
            last: None,
        }
    }
}

fn daily(time: &str, zone: &str) -> Value {
    json!({"type": "simple", "pattern": "daily", "time": time, "timezone": zone})
}

impl Vm {
    /// A point taken at `taken` (RFC 3339) on top of the last one (a full when `full`), its one
    /// disk file `size` bytes; recorded as a successful run, in the status and the history.
    fn point(&mut self, taken: &str, full: bool, size: u64, method: &str) -> &mut Self {
        let taken_at = at(taken);
        let id = point_id(taken_at);
        let kind = if full { "full" } else { "incremental" };
        let parent = if full { None } else { self.last.clone() };
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            vm: self.catalog.vm().to_owned(),
            vm_id: "0b7c3d4e-0000-4000-8000-000000000001".into(),
            point: id.clone(),
            kind: kind.into(),
            reason: "fixture".into(),
            taken_at,
            backup_id: format!("backup-{id}"),
            from_checkpoint: parent.as_ref().map(|p| format!("cp-{p}")),
            parent,
            checkpoint: Some(format!("cp-{id}")),
            memory: None,
            method: Some(MethodRecord {
                name: method.into(),
                why: "fixture".into(),
                snapshot: None,
                vm_was_up: Some(true),
            }),
            config: None,
            disks: vec![DiskEntry {
                id: "disk-os".into(),
                alias: "os".into(),
                interface: "virtio_scsi".into(),
                bootable: true,
                provisioned_size: 20 << 30,
                mode: kind.into(),
                file: format!("{id}.{kind}.os.qcow2"),
                backing: None,
                bytes_transferred: size,
                file_size: size,
                sha256: None,
                content: None,
            }],
        };
        self.catalog.commit(&manifest).expect("commit");
        self.catalog.record_run(taken_at, Ok(&id)).expect("status");
        self.ran(RunKind::Backup, taken, RunResult::Ok, None);
        self.last = Some(id);
        self
    }

    /// A backup that failed at `started` with `error`, in the status and the history.
    fn failed(&mut self, started: &str, error: &str) -> &mut Self {
        self.catalog
            .record_run(at(started), Err(error))
            .expect("status");
        self.ran(RunKind::Backup, started, RunResult::Failed, Some(error))
    }

    /// A run of `kind` that started at `started`, took four minutes and ended `result`.
    fn ran(
        &mut self,
        kind: RunKind,
        started: &str,
        result: RunResult,
        error: Option<&str>,
    ) -> &mut Self {
        let mut entry = HistoryEntry::begin(kind, self.catalog.vm(), at(started));
        entry.error = error.map(String::from);
        entry.end(at(started) + chrono::Duration::minutes(4), result);
        self.catalog.end_run(&entry).expect("history");
        self
    }

    /// A restore into DR of the last point at `started`, failed with `error` if given.
    fn restored(&mut self, started: &str, error: Option<&str>) -> &mut Self {
        let point = self.last.clone().expect("a point to restore");
        let vm = self.catalog.vm().to_owned();
        self.restores
            .append(&LogEntry {
                started: at(started),
                seconds: 95.0,
                restored_as: format!("{vm}_dr"),
                vm,
                taken_at: at(&format!(
                    "{}-{}-{}T{}:{}:{}Z",
                    &point[..4],
                    &point[4..6],
                    &point[6..8],
                    &point[9..11],
                    &point[11..13],
                    &point[13..15]
                )),
                point,
                vm_id: error.is_none().then(|| "dr-vm-1".to_owned()),
                result: if error.is_some() {
                    Verdict::Failed
                } else {
                    Verdict::Ok
                },
                error: error.map(String::from),
                disks: Vec::new(),
                bytes: 0,
                replaced: None,
                started_vm: false,
            })
            .expect("restore log");
        self
    }
}

const GIB: u64 = 1 << 30;

/// The VMs of the page, in the order of their runner configs (and so of the rows).
fn seven_vms() -> (Fixture, Vec<&'static str>) {
    let mut f = Fixture::new();
    f.vm("web01", daily("02:00", "UTC"), 10, true)
        .point("2026-11-29T02:00:00Z", true, 12 * GIB, "backup_api")
        .point("2026-11-30T02:00:00Z", false, 300 << 20, "backup_api")
        .restored("2026-11-30T02:30:00Z", None)
        .ran(RunKind::Prune, "2026-11-30T02:10:00Z", RunResult::Ok, None)
        .point("2026-12-01T02:00:00Z", false, 280 << 20, "backup_api")
        .ran(RunKind::Verify, "2026-12-01T03:00:00Z", RunResult::Ok, None)
        .restored("2026-12-01T03:30:00Z", None);
    // Its 04:30 run failed: an hour and a half late at 06:00, within the alert's grace.
    f.vm("mail01", daily("04:30", "UTC"), 10, false)
        .point("2026-11-29T04:30:00Z", true, 40 * GIB, "snapshot")
        .point("2026-11-30T05:00:00Z", false, 2 * GIB, "snapshot")
        .failed(
            "2026-12-01T04:30:00Z",
            "engine: 503 Service Unavailable\nhelp: the engine is restarting or overloaded; the next run retries",
        );
    let weekly = json!({"type": "simple", "pattern": "weekly", "days": ["sunday"], "time": "03:00", "timezone": "Europe/Berlin"});
    f.vm("files", weekly, 2, false)
        .point("2026-11-08T02:00:00Z", true, 300 * GIB, "backup_api")
        .point("2026-11-15T02:00:00Z", false, 9 * GIB, "backup_api")
        .point("2026-11-22T02:00:00Z", false, 7 * GIB, "backup_api")
        .point("2026-11-29T02:00:00Z", false, 8 * GIB, "backup_api")
        .ran(
            RunKind::Verify,
            "2026-11-30T04:00:00Z",
            RunResult::Failed,
            Some("1 problem found"),
        );
    let monthly = json!({"type": "simple", "pattern": "monthly", "day_of_month": "last", "time": "01:00", "timezone": "UTC"});
    f.vm("archive", monthly, 10, true)
        .point("2026-09-30T01:00:00Z", true, 800 * GIB, "backup_api")
        .restored(
            "2026-09-30T06:00:00Z",
            Some("DR storage domain `data` has 120 GiB free, the disks need 800 GiB"),
        );
    f.vm("new-vm", daily("23:30", "Europe/Lisbon"), 10, false);
    let cron = json!({"type": "cron", "expression": "0 */6 * * *", "timezone": "UTC"});
    f.vm("db01", cron, 30, false)
        .point("2026-11-30T18:00:00Z", true, 60 * GIB, "backup_api")
        .ran(
            RunKind::Backup,
            "2026-11-30T23:58:00Z",
            RunResult::Killed,
            None,
        )
        .point("2026-12-01T00:00:00Z", false, GIB, "backup_api");
    f.vm(HOSTILE, daily("02:00", "UTC"), 10, true)
        .point("2026-12-01T02:00:00Z", true, 5 * GIB, "backup_api")
        .failed(
            "2026-12-01T04:00:00Z",
            "<script>alert(3)</script> & \"quoted\"",
        );
    let names = vec![
        "web01", "mail01", "files", "archive", "new-vm", "db01", HOSTILE,
    ];
    (f, names)
}

/// `ovrun ARGS` with the host's zone pinned; exit code, standard output and error.
fn ovrun_status(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .arg("status")
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("ovrun status");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn the_status_page_of_several_vms() {
    let (fixture, names) = seven_vms();
    let runner = fixture.runner_dir();
    let runner = runner.to_str().expect("utf-8");
    let page_path = fixture.dir.path().join("www/index.html");
    std::fs::create_dir_all(page_path.parent().expect("folder")).expect("www");
    let page_arg = page_path.to_str().expect("utf-8");
    let args = ["--config-dir", runner, "--now", NOW, "--format", "html"];
    let (code, out, err) = ovrun_status(&[&args[..], &["--output", page_arg]].concat());
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let page = std::fs::read_to_string(&page_path).expect("the page");
    let mode = std::fs::metadata(&page_path)
        .expect("page")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "a web server must be able to read it");
    let (_, stdout_page, _) = ovrun_status(&args);
    assert_eq!(stdout_page, page, "--output writes what stdout shows");

    check_self_contained(&page);
    insta::assert_snapshot!("page", page);

    let browser = Browser::new();
    let dom = browser.dump_dom(&page_path);
    assert_eq!(
        dom.matches("<th scope=\"col\" data-type=").count(),
        8,
        "{dom}"
    );
    assert_eq!(
        dom.matches("<button type=\"button\"").count(),
        8,
        "the sort script ran under the page's own policy: every header is a button"
    );
    assert!(!dom.contains("<img") && dom.matches("<script").count() == 1);

    let layout = browser.layout(&page, fixture.dir.path());
    layout.check(&names);
    let png = browser.screenshot(&page_path, layout.height());
    check_screenshot(&png, layout.height());
    if std::env::var_os("OVBACKUP_DOCS_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::copy(&png, docs).expect("docs screenshot");
    }
}

#[test]
fn output_replaces_the_file_and_names_a_folder_it_cannot_write() {
    let (fixture, _) = seven_vms();
    let runner = fixture.runner_dir();
    let runner = runner.to_str().expect("utf-8");
    let file = fixture.dir.path().join("status.txt");
    std::fs::write(
        &file,
        "an older, longer report than the new one ".repeat(100),
    )
    .expect("old");
    let file_arg = file.to_str().expect("utf-8");
    let args = ["--config-dir", runner, "--now", NOW];
    let (code, table, _) = ovrun_status(&args);
    assert_eq!(code, 0);
    assert!(table.starts_with("VM "), "{table}");
    let (code, out, _) = ovrun_status(&[&args[..], &["--output", file_arg]].concat());
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(std::fs::read_to_string(&file).expect("report"), table);

    let nowhere = fixture.dir.path().join("no/such/folder/index.html");
    let nowhere = nowhere.to_str().expect("utf-8");
    let (code, _, err) =
        ovrun_status(&[&args[..], &["--format", "html", "--output", nowhere]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(nowhere) && err.contains("help:"), "{err}");
}

/// Nothing on the page is fetched or linked: no URL, no `src`, no `href`, no stylesheet or
/// script file; one script, and the VM's name and error only as escaped text.
fn check_self_contained(page: &str) {
    for reference in [
        "http:", "https:", "src=\"", "href=", "url(", "@import", "<link",
    ] {
        assert!(!page.contains(reference), "the page holds {reference}");
    }
    assert_eq!(page.matches("<script").count(), 1);
    assert!(!page.contains("<img") && !page.contains("<script>alert"));
    assert!(
        page.contains("&quot;&#x27;&amp;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)")
    );
    assert!(page.contains("&lt;script&gt;alert(3)&lt;&#x2f;script&gt; &amp; &quot;quoted&quot;"));
}

/// Headless Chromium with the flags this machine needs, each run in a fresh profile.
struct Browser {
    profiles: tempfile::TempDir,
}

/// The page's width in the tests: the "no horizontal overflow at 1280 px".
const WIDTH: u32 = 1280;

impl Browser {
    fn new() -> Self {
        Self {
            profiles: tempfile::tempdir().expect("profiles"),
        }
    }

    /// Runs Chromium on `page` with `args`; its standard output.
    fn run(&self, page: &Path, args: &[String]) -> String {
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("profile");
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs (scripts/setup.sh installs Debian's chromium)");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 DOM")
    }

    /// The DOM after the page's scripts ran, at [`WIDTH`].
    fn dump_dom(&self, page: &Path) -> String {
        self.run(
            page,
            &[format!("--window-size={WIDTH},900"), "--dump-dom".into()],
        )
    }

    /// The layout of `page`, from a test-only copy of it in `dir` with one more script (allowed
    /// by its hash) that writes what it measures into the DOM.
    fn layout(&self, page: &str, dir: &Path) -> Layout {
        let measure = include_str!("status_page_measure.js");
        let hash = ovbackup::run::status::csp_hash(measure);
        // The policy is an attribute's value, its quotes escaped as every value is.
        let policy = "script-src &#x27;";
        assert!(page.contains(policy), "{page}");
        let wrapper = page
            .replacen(policy, &format!("{policy}{hash}&#x27; &#x27;"), 1)
            .replacen(
                "</body>",
                &format!("<script>{measure}</script>\n</body>"),
                1,
            );
        let path = dir.join("layout.html");
        std::fs::write(&path, wrapper).expect("wrapper");
        let dom = self.dump_dom(&path);
        let start = "<pre id=\"layout\">";
        let report = dom
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once("</pre>"))
            .unwrap_or_else(|| panic!("no layout report (did the script run?):\n{dom}"))
            .0;
        let json = percent_encoding::percent_decode_str(report)
            .decode_utf8()
            .expect("UTF-8");
        Layout(serde_json::from_str(&json).expect("the report is JSON"))
    }

    /// A screenshot of `page`, [`WIDTH`] by `height`: the PNG's path.
    fn screenshot(&self, page: &Path, height: u32) -> PathBuf {
        let png = self.profiles.path().join("status-page.png");
        self.run(
            page,
            &[
                format!("--window-size={WIDTH},{height}"),
                format!("--screenshot={}", png.display()),
            ],
        );
        png
    }
}

/// What the measuring script reports.
struct Layout(Value);

impl Layout {
    fn number(&self, key: &str) -> f64 {
        self.0[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {}", self.0))
    }

    /// The document's height, for a screenshot of all of it.
    fn height(&self) -> u32 {
        self.number("scrollHeight").ceil() as u32
    }

    /// The page fits [`WIDTH`] and shows one row per VM, in order, each with its name as text.
    fn check(&self, names: &[&str]) {
        let report = &self.0;
        assert_eq!(self.number("clientWidth"), f64::from(WIDTH), "{report}");
        assert!(
            self.number("scrollWidth") <= f64::from(WIDTH),
            "horizontal overflow: {report}"
        );
        assert!(
            self.number("tableWidth") <= self.number("mainWidth"),
            "the table is wider than the page's column: {report}"
        );
        let rows = report["rows"].as_array().expect("rows");
        let shown: Vec<&str> = rows
            .iter()
            .map(|r| r["name"].as_str().expect("name"))
            .collect();
        assert_eq!(shown, names, "{report}");
        for row in rows {
            assert_eq!(row["vm"], row["name"], "{row}");
            assert!(row["height"].as_f64().expect("height") > 20.0, "{row}");
            assert!(
                row["right"].as_f64().expect("right") <= f64::from(WIDTH),
                "{row}"
            );
            assert_eq!(row["timelines"], 1, "{row}");
        }
        assert_eq!(
            report["images"], 0,
            "no image, and no markup from a VM's name"
        );
        assert_eq!(
            report["scripts"], 2,
            "the sort script and the measuring one"
        );
        assert_eq!(report["buttons"], 8, "{report}");
    }
}

/// The screenshot is a PNG of the asked size, not blank, showing the three freshness colours.
fn check_screenshot(png: &Path, height: u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    assert_eq!((info.width, info.height), (WIDTH, height));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let rgb: std::collections::HashSet<[u8; 3]> = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    assert!(rgb.len() > 50, "a blank page: {} colours", rgb.len());
    // The badges' backgrounds (templates/status/page.css): fresh, late, overdue.
    for colour in [[0xd9, 0xf2, 0xdf], [0xff, 0xee, 0xba], [0xf9, 0xd6, 0xd6]] {
        assert!(rgb.contains(&colour), "no {colour:02x?} in the screenshot");
    }
}

/// The page of real points: `ovrun backup` against ovsim, then a backup that fails on an
/// injected fault; the row shows the point the run made, on time, and the failed run.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_real_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    backup_ok(&config, &[]);
    sim.admin(
        "faults",
        json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers", "count": 1,
               "status": 500, "fault": {"reason": "Operation Failed", "detail": "[Internal Engine Error]"}}),
    )
    .await;
    let text = config.to_str().expect("utf-8");
    let (code, log) = tokio::task::block_in_place(|| ovrun(&["backup", "--config", text]));
    assert_eq!(code, 1, "{log}");
    sim.running.shutdown().await;

    let page_path = dir.path().join("index.html");
    let page_arg = page_path.to_str().expect("utf-8");
    let (code, _, err) = tokio::task::block_in_place(|| {
        ovrun_status(&["--config", text, "--format", "html", "--output", page_arg])
    });
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&page_path).expect("page");
    check_real_row(&page, &manifests(&dir.path().join("backup/web 01")));
    let layout = tokio::task::block_in_place(|| Browser::new().layout(&page, dir.path()));
    layout.check(&["web 01"]);
}

/// The one row: the run's point (full, chain 1), on time, a successful and a failed backup on
/// the timeline, the failure's error.
fn check_real_row(page: &str, manifests: &[Value]) {
    assert_eq!(manifests.len(), 1);
    let point = manifests[0]["point"].as_str().expect("point");
    assert!(page.contains("<tr data-vm=\"web 01\">"), "{page}");
    assert!(
        page.contains(&format!("<small>{point} (full)</small>")),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"badge fresh\">on time</span>"),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"num\">1</span><small>at most 11</small>"),
        "{page}"
    );
    assert_eq!(page.matches("<circle class=\"ok\"").count(), 1, "{page}");
    assert_eq!(page.matches("<rect class=\"failed\"").count(), 1, "{page}");
    assert!(page.contains("1 of 2 ok (50%)"), "{page}");
    assert!(page.contains("<li>last run failed: "), "{page}");
    assert!(page.contains("no DR restore"), "{page}");
}
