//! The data-directory lock: one running node per data directory. A second node on the same
//! directory would share the identity and the database, fight the first for connections and
//! remove its `admin.url` on exit; instead it is refused, with a message naming the first.
//!
//! The lock is an OS file lock (`flock` on Unix) on `<data-dir>/node.lock`, held for the
//! node's lifetime and released by the OS when the process ends however it ends, so a crash
//! never leaves a stale lock behind. The file holds the holder's process ID, for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::identity::ADMIN_URL_FILE;

/// The lock file in the data directory.
pub(crate) const LOCK_FILE: &str = "node.lock";
/// Most bytes of the lock file read back to name its holder (it holds one process ID).
const MAX_LOCK_TEXT: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {dir} is in use by another running node ({holder}); stop that node first, or give this one its own --data-dir"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot lock data directory {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    file: File,
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Unlocked explicitly rather than by closing: a child process forked by another thread
        // (before it execs) holds a copy of the descriptor, and the lock would outlive this
        // node until that copy closed.
        if let Err(e) = self.file.unlock() {
            tracing::warn!("cannot release the data-directory lock: {e}");
        }
    }
}

impl DataDirLock {
    /// Takes the lock on `dir` (which must exist) and records this process's ID in it, or says
    /// who holds it. Writes nothing else, so it can come before any other file is touched.
    pub(crate) fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::InUse {
                    dir: dir.to_path_buf(),
                    holder: describe_holder(dir, &mut file),
                });
            }
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                tracing::warn!(
                    "the file system of {} does not support file locks; nothing stops a second node from using this data directory",
                    dir.display()
                );
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(DataDirLock { file })
    }
}

/// "pid 1234, admin API http://127.0.0.1:5080", from the lock file and `admin.url`, as far as
/// they can be read (the holder may be starting and not have written them yet).
fn describe_holder(dir: &Path, file: &mut File) -> String {
    let mut text = String::new();
    let pid = file
        .take(MAX_LOCK_TEXT)
        .read_to_string(&mut text)
        .ok()
        .and_then(|_| text.trim().parse::<u32>().ok());
    let url = std::fs::read_to_string(dir.join(ADMIN_URL_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 200 && !s.chars().any(char::is_control));
    let pid = match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    };
    match url {
        Some(url) => format!("{pid}, admin API {url}"),
        None => format!("{pid}, admin API not recorded yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_lock_releases_it_even_while_a_copy_of_the_descriptor_lives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        // What a fork in another thread leaves behind until the child execs.
        let inherited = first.file.try_clone().expect("dup");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("released although a copy is open");
        drop(inherited);
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        std::fs::write(dir.path().join(ADMIN_URL_FILE), "http://127.0.0.1:5999\n").expect("url");
        let err = DataDirLock::acquire(dir.path()).expect_err("second lock refused");
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id()))
                && message.contains("admin API http://127.0.0.1:5999"),
            "{message}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once released");
    }
}
