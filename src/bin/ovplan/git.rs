//! `ovplan diff --git REV [FILE]`: the policy file as a git revision has it, read with `git
//! show` in the file's own repository (no git library): `git -C <its folder> show REV:<path>`,
//! the path being the file's within the repository (`rev-parse --show-prefix`).

use std::path::Path;
use std::process::{Command, Output};

use ovbackup::plan::source::Source;

use crate::Failure;

/// `file` as revision `rev` has it, named `REV:PATH`.
///
/// # Errors
/// git is missing, `file` is not in a git work tree, `rev` is no commit there, or the commit has
/// no such file.
pub(crate) fn show(rev: &str, file: &Path) -> Result<Source, Failure> {
    if rev.starts_with('-') || rev.is_empty() {
        return Err(Failure::usage(format!(
            "`{rev}` is not a revision\nhelp: name a commit, branch or tag, e.g. --git origin/main"
        )));
    }
    let dir = folder(file);
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (top, prefix) = in_repository(&dir, file)?;
    let path = format!("{prefix}{name}");
    commit(&dir, rev, &top)?;
    let shown = git(&dir, &["show", &format!("{rev}:{path}")])?;
    if !shown.status.success() {
        return Err(Failure::usage(format!(
            "{rev} has no file {path}: {}\nhelp: check the path, or that the file was committed \
             at {rev} (a new policy file has no old side: compare it with `ovplan diff OLD NEW`)",
            stderr(&shown)
        )));
    }
    let text = String::from_utf8(shown.stdout)
        .map_err(|_| Failure::usage(format!("{rev}:{path} is not UTF-8 text")))?;
    Ok(Source::new(format!("{rev}:{path}"), text))
}

/// The folder git runs in: the file's, `.` for a bare file name.
fn folder(file: &Path) -> std::path::PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => ".".into(),
    }
}

/// The repository's top folder, and the file's folder within it (`policies/`, or empty).
fn in_repository(dir: &Path, file: &Path) -> Result<(String, String), Failure> {
    let out = git(dir, &["rev-parse", "--show-toplevel", "--show-prefix"])?;
    if !out.status.success() {
        return Err(Failure::usage(format!(
            "{} is not in a git repository: {}\nhelp: run it on a file inside a git work tree, \
             or compare two files with `ovplan diff OLD NEW`",
            file.display(),
            stderr(&out)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(str::to_owned);
    let top = lines.next().unwrap_or_default();
    Ok((top, lines.next().unwrap_or_default()))
}

/// Fails unless `rev` names a commit of the repository at `top`.
fn commit(dir: &Path, rev: &str, top: &str) -> Result<(), Failure> {
    let out = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )?;
    if out.status.success() {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{rev} is not a commit of the repository at {top}\nhelp: name a commit, branch or tag \
         (e.g. origin/main); a CI checkout may need it fetched first (`git fetch origin main`)"
    )))
}

/// Runs `git -C dir ARGS`, capturing its output.
fn git(dir: &Path, args: &[&str]) -> Result<Output, Failure> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "git is not installed (or not on PATH)".to_owned()
            } else {
                format!("git cannot be run: {e}")
            };
            Failure::usage(format!(
                "{why}\nhelp: install git, or compare two files with `ovplan diff OLD NEW`"
            ))
        })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}
