//! `ovplan diff --git REV [FILE]` (issue 17): the working file against itself at a revision of
//! its repository (`git show`), in a temporary git repository: the same review as `ovplan diff
//! OLD NEW` of the two texts, from the repository's top or from the file's folder, and a clear
//! error (exit 2) when git is missing, the file is in no repository, the revision does not exist
//! or has no such file.

use std::path::Path;
use std::process::Command;

use crate::support::{Run, git};

/// Runs `ovplan ARGS` in `dir` with `path` as PATH (git found there, or not).
fn ovplan_in(dir: &Path, args: &[&str], path: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ovplan"))
        .args(args)
        .current_dir(dir)
        .env("TZ", "UTC")
        .env("PATH", path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("ovplan runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ovplan(dir: &Path, args: &[&str]) -> Run {
    ovplan_in(dir, args, &std::env::var("PATH").expect("PATH"))
}

const FROM: &str = "2026-11-29T00:00:00Z";

/// A repository whose first commit holds the example as `policies/variables.json`, the working
/// file then changed (erp-db01 keeps 30 days); the committed text is also `committed.json`
/// outside the repository, for `ovplan diff OLD NEW`.
fn repository(root: &Path) -> std::path::PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("policies")).expect("folders");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/variables.json");
    let text = std::fs::read_to_string(example).expect("example");
    std::fs::write(repo.join("policies/variables.json"), &text).expect("write");
    std::fs::write(root.join("committed.json"), &text).expect("write");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "the example"]);
    let changed = text.replacen(r#""keep_daily": 14"#, r#""keep_daily": 30"#, 1);
    std::fs::write(repo.join("policies/variables.json"), changed).expect("write");
    repo
}

#[test]
fn diff_git_reviews_the_file_against_a_revision() {
    let root = tempfile::tempdir().expect("temp dir");
    let repo = repository(root.path());
    let direct = ovplan(
        root.path(),
        &[
            "diff",
            "committed.json",
            "repo/policies/variables.json",
            "--from",
            FROM,
        ],
    );
    assert_eq!(direct.code, 1, "{}", direct.stderr);
    let from_top = ovplan(
        &repo,
        &[
            "diff",
            "--git",
            "HEAD",
            "policies/variables.json",
            "--from",
            FROM,
        ],
    );
    assert_eq!(
        (from_top.code, &from_top.stdout),
        (1, &direct.stdout),
        "{}",
        from_top.stderr
    );
    let file = repo.join("policies/variables.json");
    let from_outside = ovplan(
        root.path(),
        &[
            "diff",
            "--git",
            "HEAD",
            file.to_str().expect("utf-8"),
            "--from",
            FROM,
        ],
    );
    assert_eq!(
        from_outside.stdout, direct.stdout,
        "{}",
        from_outside.stderr
    );
    let in_folder = ovplan(
        &repo.join("policies"),
        &[
            "diff", "--git", "HEAD", "--from", FROM, "--format", "markdown",
        ],
    );
    assert_eq!(in_folder.code, 1, "{}", in_folder.stderr);
    assert!(
        in_folder
            .stdout
            .starts_with("### ovplan diff: `HEAD:policies/variables.json` → `variables.json`\n"),
        "FILE defaults to variables.json: {}",
        in_folder.stdout
    );
    git(&repo, &["commit", "-q", "-a", "-m", "keep 30 days"]);
    let same = ovplan(&repo, &["diff", "--git", "HEAD", "policies/variables.json"]);
    assert_eq!((same.code, same.stderr.as_str()), (0, "no change\n"));
    let older = ovplan(
        &repo,
        &[
            "diff",
            "--git",
            "HEAD~1",
            "policies/variables.json",
            "--from",
            FROM,
        ],
    );
    assert_eq!(older.stdout, direct.stdout, "{}", older.stderr);
}

#[test]
fn diff_git_says_what_is_missing() {
    let root = tempfile::tempdir().expect("temp dir");
    let repo = repository(root.path());
    std::fs::write(repo.join("policies/new.json"), "{}").expect("write");
    let no_git = root.path().join("empty-bin");
    std::fs::create_dir(&no_git).expect("folder");
    let cases: [(&Path, &[&str], &str, &str); 6] = [
        (
            &repo,
            &["diff", "--git", "HEAD", "policies/variables.json"],
            no_git.to_str().expect("utf-8"),
            "git is not installed",
        ),
        (
            root.path(),
            &["diff", "--git", "HEAD", "committed.json"],
            "",
            "committed.json is not in a git repository",
        ),
        (
            &repo,
            &["diff", "--git", "no-such-branch", "policies/variables.json"],
            "",
            "no-such-branch is not a commit of the repository at",
        ),
        (
            &repo,
            &["diff", "--git", "HEAD", "policies/new.json"],
            "",
            "HEAD has no file policies/new.json",
        ),
        (
            &repo,
            &["diff", "--git", "HEAD", "a.json", "b.json"],
            "",
            "with --git, ovplan diff takes one file",
        ),
        (
            &repo,
            &["diff", "--git=-p", "policies/variables.json"],
            "",
            "`-p` is not a revision",
        ),
    ];
    let path = std::env::var("PATH").expect("PATH");
    for (dir, args, path_override, expected) in cases {
        let run = if path_override.is_empty() {
            ovplan_in(dir, args, &path)
        } else {
            ovplan_in(dir, args, path_override)
        };
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
}
