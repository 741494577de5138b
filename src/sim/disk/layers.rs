//! A disk's snapshot layers, as vdsm keeps volumes: taking a snapshot turns the disk's active
//! volume into the snapshot's read-only layer (`<disk>.snap-<snapshot>.qcow2`) and puts a new,
//! empty active volume on top of it, which the guest writes from then on. Removing a snapshot
//! merges the layer above it (the next snapshot's, or the active volume) down into it with
//! `qemu-img commit`, and the merged layer takes that volume's place.
//!
//! Checkpoints follow the active volume: a new top gets a full copy of every bitmap of the
//! volume below it (what it recorded so far), and records the guest's writes from there, so the
//! active volume always holds complete bitmaps and a backup exports it alone. A merged layer
//! takes the bitmaps of the volume it replaces, so a checkpoint removed meanwhile stays removed.

use std::path::{Path, PathBuf};

use super::{DiskImage, path_str, qemu};
use crate::sim::SimError;

impl DiskImage {
    /// The read-only layer that snapshot `snapshot` made of this disk.
    pub fn layer_path(&self, snapshot: &str) -> PathBuf {
        self.path.with_extension(format!("snap-{snapshot}.qcow2"))
    }

    /// Takes snapshot `snapshot` of the disk: the active volume becomes its layer, and a new
    /// active volume over it carries the layer's bitmaps.
    ///
    /// # Errors
    /// A backup is running (its overlay sits on the active volume), or a step fails; a failed
    /// step after the rename puts the old active volume back.
    pub fn take_snapshot(&self, snapshot: &str) -> Result<(), SimError> {
        self.check_no_backup()?;
        let layer = self.layer_path(snapshot);
        fs_err::rename(&self.path, &layer).map_err(SimError::io("making a snapshot layer"))?;
        let made = overlay(&self.path, &layer).and_then(|()| copy_bitmaps(&layer, &self.path));
        if made.is_err() {
            let _ = fs_err::remove_file(&self.path);
            let _ = fs_err::rename(&layer, &self.path);
        }
        made
    }

    /// Removes snapshot `snapshot`'s layer: the volume above it (`child`'s layer, or the active
    /// volume when `child` is `None`) is committed into it, the layer takes that volume's
    /// bitmaps, and then its place.
    ///
    /// # Errors
    /// The layer is missing, or `qemu-img` fails (the chain is then left as it was).
    pub fn merge_layer(&self, snapshot: &str, child: Option<&str>) -> Result<(), SimError> {
        let layer = self.layer_path(snapshot);
        let above = child.map_or_else(|| self.path.clone(), |c| self.layer_path(c));
        let above_str = path_str(&above)?;
        qemu(
            "qemu-img",
            &["commit", "-q", "-d", "-f", "qcow2", above_str],
        )?;
        for bitmap in bitmap_names(&layer)? {
            qemu(
                "qemu-img",
                &["bitmap", "--remove", path_str(&layer)?, &bitmap],
            )?;
        }
        copy_bitmaps(&above, &layer)?;
        fs_err::rename(&layer, &above).map_err(SimError::io("putting a merged layer in place"))
    }

    /// Removes every file of the disk: its active volume, its layers, a backup's overlay.
    pub fn remove_files(&self) {
        let _ = fs_err::remove_file(self.overlay_path());
        let _ = fs_err::remove_file(&self.path);
        let (Some(dir), Some(stem)) = (self.path.parent(), self.path.file_stem()) else {
            return;
        };
        let prefix = format!("{}.snap-", stem.to_string_lossy());
        let Ok(entries) = fs_err::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs_err::remove_file(entry.path());
            }
        }
    }

    /// How `qemu-nbd` opens this layer alone, without its backing chain (a `shallow`
    /// transfer): what was written while it was the active volume; the rest reads as holes.
    ///
    /// # Errors
    /// The path is not UTF-8 or cannot be made absolute.
    pub fn shallow_view(layer: &Path) -> Result<PathBuf, SimError> {
        let absolute = std::path::absolute(layer).map_err(SimError::io("resolving a layer"))?;
        let spec = serde_json::json!({
            "driver": "qcow2", "backing": null,
            "file": {"driver": "file", "filename": path_str(&absolute)?},
        });
        Ok(PathBuf::from(format!("json:{spec}")))
    }
}

/// Creates an empty qcow2 at `top` backed by `backing` (named relative to its folder).
fn overlay(top: &Path, backing: &Path) -> Result<(), SimError> {
    let name = backing
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let top = path_str(top)?;
    let args = [
        "create", "-q", "-f", "qcow2", "-b", name, "-F", "qcow2", top,
    ];
    qemu("qemu-img", &args)
}

/// Gives `to` a copy of each usable bitmap of `from` (recording, with what `from`'s recorded);
/// a bitmap left `in-use` by a killed writer is not carried (its checkpoint is lost, as on an
/// engine host).
fn copy_bitmaps(from: &Path, to: &Path) -> Result<(), SimError> {
    let source = DiskImage::open(from);
    for bitmap in source.checkpoints()? {
        if bitmap.flags.iter().any(|f| f == "in-use") {
            continue;
        }
        let granularity = bitmap.granularity.to_string();
        let args = [
            "bitmap",
            "--add",
            "--granularity",
            &granularity,
            "--merge",
            &bitmap.name,
            "-b",
            path_str(from)?,
            "-F",
            "qcow2",
            path_str(to)?,
            &bitmap.name,
        ];
        qemu("qemu-img", &args)?;
    }
    Ok(())
}

fn bitmap_names(image: &Path) -> Result<Vec<String>, SimError> {
    let bitmaps = DiskImage::open(image).checkpoints()?;
    Ok(bitmaps.into_iter().map(|b| b.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn read(image: &Path, offset: u64, pattern: u8) -> bool {
        let command = format!("read -P 0x{pattern:02x} {offset} 65536");
        let args = ["-f", "qcow2", "-r", "-c", &command, image.to_str().unwrap()];
        crate::qemu::img::run("qemu-io", &args)
            .map(|out| !String::from_utf8_lossy(&out).contains("Pattern verification failed"))
            .unwrap_or(false)
    }

    /// The dirty bytes of `bitmap` in `image` (`qemu-img map` of the bitmap's export would
    /// need `qemu-nbd`; the checkpoints' presence and the data are what matter here).
    fn bitmaps(image: &DiskImage) -> Vec<String> {
        image
            .checkpoints()
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect()
    }

    #[test]
    fn a_snapshot_freezes_a_layer_and_its_removal_merges_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskImage::create(&dir.path().join("d.qcow2"), 16 * MIB).unwrap();
        disk.guest_write(0, MIB, 0x11).unwrap();
        qemu(
            "qemu-img",
            &["bitmap", "--add", disk.path().to_str().unwrap(), "chk1"],
        )
        .unwrap();
        disk.take_snapshot("s1").unwrap();
        disk.guest_write(MIB, MIB, 0x22).unwrap();
        let layer = disk.layer_path("s1");
        assert!(
            read(&layer, 0, 0x11) && !read(&layer, MIB, 0x22),
            "the layer holds still"
        );
        assert!(read(disk.path(), 0, 0x11) && read(disk.path(), MIB, 0x22));
        assert_eq!(bitmaps(&disk), ["chk1"], "the top carries the checkpoint");
        disk.take_snapshot("s2").unwrap();
        disk.guest_write(2 * MIB, MIB, 0x33).unwrap();
        disk.merge_layer("s1", Some("s2")).unwrap();
        assert!(!layer.exists(), "the merged layer took s2's place");
        let s2 = disk.layer_path("s2");
        assert!(read(&s2, 0, 0x11) && read(&s2, MIB, 0x22) && !read(&s2, 2 * MIB, 0x33));
        disk.merge_layer("s2", None).unwrap();
        assert!(!s2.exists());
        assert!(read(disk.path(), 0, 0x11) && read(disk.path(), 2 * MIB, 0x33));
        assert_eq!(bitmaps(&disk), ["chk1"]);
        let info =
            crate::qemu::img::run("qemu-img", &["info", "-U", disk.path().to_str().unwrap()])
                .unwrap();
        assert!(
            !String::from_utf8_lossy(&info).contains("backing file:"),
            "one volume again"
        );
    }
}
