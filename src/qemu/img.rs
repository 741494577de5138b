//! `qemu-img` and `qemu-io` runs: a tool's output or its error, qcow2 images made (standalone
//! or as an overlay), and the extents of an image's backing chain.

use std::path::Path;
use std::process::Command;

use super::QemuError;

/// Runs a qemu tool; its standard output.
///
/// # Errors
/// It cannot start ([`QemuError::Io`]) or exits non-zero ([`QemuError::Tool`], with its
/// error output).
pub fn run(program: &str, args: &[&str]) -> Result<Vec<u8>, QemuError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(QemuError::io(format!(
            "running {program} (install qemu-utils)"
        )))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(QemuError::Tool {
        command: format!("{program} {}", args.join(" ")),
        why: failure_words(&out),
    })
}

/// What a failed tool said: its error output, else its output (`qemu-io` reports a failed
/// command on standard output), else its exit status.
fn failure_words(out: &std::process::Output) -> String {
    [&out.stderr, &out.stdout]
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .find(|words| !words.is_empty())
        .unwrap_or_else(|| out.status.to_string())
}

/// `path` as the UTF-8 argument a tool gets.
///
/// # Errors
/// It is not UTF-8 (`who` names the program that refuses it).
pub fn utf8<'a>(path: &'a Path, who: &str) -> Result<&'a str, QemuError> {
    path.to_str().ok_or_else(|| QemuError::Tool {
        command: who.into(),
        why: format!("{} is not UTF-8", path.display()),
    })
}

/// Creates a qcow2 image of `size` bytes at `path`; with `backing`, an overlay whose backing
/// file is named relative to `path`'s folder (so a catalog can be moved as a whole).
///
/// # Errors
/// `qemu-img` fails.
pub fn create(path: &Path, size: u64, backing: Option<&Path>) -> Result<(), QemuError> {
    let size = size.to_string();
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    let relative;
    if let Some(backing) = backing {
        relative = backing
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| QemuError::Tool {
                command: "ovrun".into(),
                why: format!("{} has no UTF-8 file name", backing.display()),
            })?
            .to_owned();
        args.extend(["-b", relative.as_str(), "-F", "qcow2"]);
    }
    args.push(utf8(path, "ovrun")?);
    args.push(&size);
    run("qemu-img", &args).map(|_| ())
}

/// One extent of `qemu-img map --output=json`: what a chain holds where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct MapExtent {
    /// Offset.
    pub start: u64,
    /// Length.
    pub length: u64,
    /// 0: in the image itself; 1: in its backing file; ...
    pub depth: u32,
    /// Allocated somewhere in the chain (false: reads as zero, nothing holds it).
    #[serde(default)]
    pub present: bool,
    /// Reads as zero.
    pub zero: bool,
    /// Holds data.
    pub data: bool,
}

/// The extents of `image` and its backing chain.
///
/// # Errors
/// `qemu-img` fails or answers something else than its JSON map.
pub fn map(image: &Path) -> Result<Vec<MapExtent>, QemuError> {
    let out = run(
        "qemu-img",
        &["map", "--output=json", "-f", "qcow2", utf8(image, "ovrun")?],
    )?;
    serde_json::from_slice(&out).map_err(|e| QemuError::Tool {
        command: format!("qemu-img map {}", image.display()),
        why: format!("unexpected output: {e}"),
    })
}
