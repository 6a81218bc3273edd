//! Storage fault injection for the tests: a size-limited tmpfs mounted by the test (as root,
//! which CI is), remounted to free space or to turn it read-only, and always unmounted.
//!
//! Under `CI=true` a test that cannot inject its fault fails; elsewhere it is skipped with a
//! message saying why (as for PostgreSQL in `postgres.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process runs as root (needed to mount).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Panics under `CI=true`, otherwise prints why `test` is skipped.
pub fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} must run under CI=true but cannot: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// A tmpfs mounted on a fresh temporary directory; unmounted (lazily, so it never fails
/// because something still holds a file) when dropped, whatever the test did.
pub struct Tmpfs {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "3m"), or `None` after [`skip`] when that is impossible.
    pub fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            skip(test, "mounting a size-limited filesystem needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: Some(dir),
                path,
            }),
            Ok(o) => {
                skip(
                    test,
                    &format!("mount tmpfs: {}", String::from_utf8_lossy(&o.stderr).trim()),
                );
                None
            }
            Err(e) => {
                skip(test, &format!("run mount: {e}"));
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `mount -o remount,<options>`; panics if it fails.
    pub fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount {options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Bytes still free on the filesystem.
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = Command::new("umount").arg("-l").arg(&self.path).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: cannot unmount {}: {}",
                self.path.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("warning: cannot unmount {}: {e}", self.path.display()),
        }
        // The (now empty) mount point goes with the TempDir.
        drop(self.dir.take());
    }
}
