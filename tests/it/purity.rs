//! `src/plan/` is the pure core: it never touches files, clocks, the environment, processes or
//! the network (style guide rule 1). This keeps it that way, and keeps the executor (`src/run`)
//! apart from the simulator (`src/sim`, behind the `sim` feature).

use std::path::Path;

#[test]
fn the_plan_core_does_no_io() {
    let forbidden = [
        "std::fs",
        "fs_err",
        "std::env",
        "Utc::now",
        "Local::now",
        "std::process",
        "std::net",
        "SystemTime",
        "Instant::now",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/plan") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        for word in forbidden {
            if text.contains(word) {
                found.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "I/O in the pure core: {found:?}");
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `text` names the module `path` (`crate::sim`, not `crate::simple`).
fn names_module(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(at, _)| {
        let next = text[at + path.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The executor does not depend on the simulator (issue 12): the qemu tools both use live in
/// `crate::qemu`, and `ovrun` builds without the `sim` feature.
#[test]
fn the_executor_does_not_import_the_simulator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/run");
    let files = rust_files(&dir);
    assert!(files.len() > 5, "src/run has files: {files:?}");
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("source");
        for module in [
            "crate::sim",
            "super::sim",
            "super::super::sim",
            "ovbackup::sim",
        ] {
            if names_module(&text, module) {
                found.push(format!("{}: {module}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "src/run imports the simulator: {found:?}");
}

/// The crates of the package's normal dependency graph with `features` (offline: the lock
/// file and the local registry cache are enough), one `name vX.Y.Z` a line.
fn normal_dependencies(features: &[&str]) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "-p",
            "ovbackup",
        ])
        .args([
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--no-default-features",
        ])
        .args(features)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("cargo tree runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

fn has_crate(tree: &[String], name: &str) -> bool {
    tree.iter()
        .any(|line| line.starts_with(&format!("{name} v")))
}

/// `ovrun` (and `ovplan`) link the library without `sim`: the simulator's web server and
/// certificate maker are not in that graph, and only the feature brings them in.
#[test]
fn the_simulator_dependencies_need_the_sim_feature() {
    let without = normal_dependencies(&[]);
    assert!(
        has_crate(&without, "reqwest"),
        "the graph lists crates: {without:?}"
    );
    for name in ["axum", "axum-server", "rcgen"] {
        assert!(!has_crate(&without, name), "{name} is linked without `sim`");
    }
    let with = normal_dependencies(&["--features", "sim"]);
    for name in ["axum", "axum-server", "rcgen"] {
        assert!(
            has_crate(&with, name),
            "{name} is missing with `sim`: {with:?}"
        );
    }
}

/// `text` without its comment lines (a doc may name the routes that use a module).
fn code_lines(text: &str) -> String {
    let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
    code.collect::<Vec<_>>().join("\n")
}

/// The simulator's routes depend on the engine's state and not the other way round: nothing
/// under `src/sim/state` (nor the answers in `reply.rs`) names `api` or a route module.
#[test]
fn the_simulator_state_knows_no_route() {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
    let routes = [
        "api",
        "login",
        "resources",
        "transfers",
        "backups",
        "vms",
        "snapshots",
        "jobs",
        "faults",
    ];
    let mut files = rust_files(&sim.join("state"));
    files.push(sim.join("reply.rs"));
    let mut found = Vec::new();
    for path in files {
        let text = code_lines(&std::fs::read_to_string(&path).expect("source"));
        // From state/mod.rs and reply.rs, `super::` is `sim`; from state/*.rs, `super::super::`.
        let parent = if path.ends_with("state/mod.rs") || path.ends_with("reply.rs") {
            "super::"
        } else {
            "super::super::"
        };
        for route in routes {
            for prefix in ["crate::sim::", parent] {
                if names_module(&text, &format!("{prefix}{route}")) {
                    found.push(format!("{}: {prefix}{route}", path.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine state imports routes: {found:?}"
    );
}
