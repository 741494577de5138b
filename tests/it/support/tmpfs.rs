//! A small tmpfs of its own, for the cases where the backup directory's disk is full or
//! read-only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a folder for as long as it lives (unmounted on drop, also when a test
/// fails).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`) at `path`, created first.
    pub fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("mount");
        assert!(
            mounted.success(),
            "a small tmpfs for the full-disk case (needs root, as CI has)"
        );
        Self {
            path: path.to_owned(),
        }
    }

    /// Makes it read-only (`remount,ro`).
    pub fn read_only(&self) {
        let remounted = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .expect("mount");
        assert!(remounted.success(), "remounted read-only");
    }

    /// Bytes free for files now.
    pub fn free(&self) -> u64 {
        let stat = rustix::fs::statvfs(&self.path).expect("statvfs");
        stat.f_bavail * stat.f_frsize
    }

    /// Takes all free space but `keep` bytes with a filler file (fallocate: real pages).
    pub fn fill_leaving(&self, keep: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let file = std::fs::File::create(&filler).expect("filler");
        let take = self.free() - keep;
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, take)
            .expect("fallocate");
        assert_eq!(self.free(), keep, "the free space ends where wanted");
        filler
    }

    /// Removes everything in it.
    pub fn clear(&self) {
        for entry in std::fs::read_dir(&self.path).expect("tmpfs") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("remove");
            } else {
                std::fs::remove_file(&path).expect("remove");
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
