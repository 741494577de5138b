//! Issue 12, item 5: each binary describes itself. `completions bash|zsh|fish` prints a script
//! that names the binary's subcommands (bash's parses with `bash -n`), and `man` prints a page
//! (`man --dir` one per command and subcommand) that `man -l` renders.

use std::path::Path;
use std::process::{Command, Output};

/// Each binary and its subcommands, as the completions and the man page must name them.
const BINARIES: [(&str, &[&str]); 3] = [
    (
        env!("CARGO_BIN_EXE_ovplan"),
        &[
            "validate",
            "normalize",
            "next",
            "build",
            "diff",
            "completions",
            "man",
        ],
    ),
    (
        env!("CARGO_BIN_EXE_ovrun"),
        &[
            "due",
            "backup",
            "verify",
            "status",
            "cert",
            "restore",
            "merge",
            "prune",
            "completions",
            "man",
        ],
    ),
    (
        env!("CARGO_BIN_EXE_ovsim"),
        &["serve", "admin", "completions", "man"],
    ),
];

/// Runs `program ARGS`; panics unless it exits 0.
fn succeed(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .env("MANWIDTH", "200")
        .env("MANPAGER", "cat")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The name a binary calls itself.
fn name(binary: &str) -> &str {
    Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a binary's file name")
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (binary, subcommands) in BINARIES {
        for shell in ["bash", "zsh", "fish"] {
            let script = succeed(binary, &["completions", shell]).stdout;
            let text = String::from_utf8(script).expect("a UTF-8 script");
            assert!(!text.trim().is_empty(), "{binary} {shell}: empty");
            for subcommand in subcommands {
                assert!(
                    text.contains(subcommand),
                    "{binary} {shell} names no {subcommand}:\n{text}"
                );
            }
            if shell == "bash" {
                let file = dir.path().join(format!("{}.bash", name(binary)));
                std::fs::write(&file, &text).expect("write the script");
                succeed("bash", &["-n", file.to_str().expect("utf-8")]);
            }
        }
    }
}

#[test]
fn man_pages_render_with_man_and_name_every_subcommand() {
    for (binary, subcommands) in BINARIES {
        let dir = tempfile::tempdir().expect("temp dir");
        let page = dir.path().join("stdout.1");
        std::fs::write(&page, succeed(binary, &["man"]).stdout).expect("write the page");
        let dir_arg = dir.path().to_str().expect("utf-8");
        succeed(binary, &["man", "--dir", dir_arg]);
        let main = dir.path().join(format!("{}.1", name(binary)));
        for rendered in [&page, &main] {
            let out = succeed(
                "man",
                &["-l", "-P", "cat", rendered.to_str().expect("utf-8")],
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("NAME"), "{}:\n{text}", rendered.display());
            for subcommand in subcommands {
                assert!(
                    text.contains(&format!("{}-{subcommand}", name(binary))),
                    "{} names no {subcommand}:\n{text}",
                    rendered.display()
                );
            }
        }
        // One page per subcommand, each rendering.
        for subcommand in subcommands {
            let page = dir.path().join(format!("{}-{subcommand}.1", name(binary)));
            let out = succeed("man", &["-l", "-P", "cat", page.to_str().expect("utf-8")]);
            assert!(String::from_utf8_lossy(&out.stdout).contains("NAME"));
        }
    }
}
