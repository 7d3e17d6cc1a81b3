//! File output that never leaves half a file: the one atomic writer of the harness (a temporary
//! file beside the target, synced, then renamed over it), and how to recognise a temporary file
//! that a killed writer left behind.
use std::path::{Path, PathBuf};

/// A write that did not happen; the target file is unchanged and no temporary file is left.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An operating-system error while `action` on `path` (a full disk reads "No space left on device").
    #[error("{action} {}: {error}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The error (shown in the message, so not also chained as a source).
        error: std::io::Error,
    },
    /// The content writer failed.
    #[error("writing {}: {error}", path.display())]
    Content {
        /// The target file.
        path: PathBuf,
        /// The writer's error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |error| FsError::Io { action, path: path.to_path_buf(), error }
}

/// The temporary file beside `path` that this process writes before renaming:
/// `.<name>.<host>.<pid>.tmp` (see [`is_abandoned_temp`]).
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    dir.join(format!(".{name}.{}.{}.tmp", host_name(), std::process::id()))
}

/// Writes `path` atomically: `write` fills the temporary file at the path it is given, which is
/// then synced and renamed over `path`. Readers see the old file or the new one, never half of
/// one; on any failure the temporary file is removed and `path` is left as it was.
pub fn write_atomic_with<E>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), FsError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating folder", dir))?;
    let tmp = temp_path(path);
    let result = write(&tmp)
        .map_err(|e| FsError::Content { path: path.to_path_buf(), error: e.into() })
        .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("syncing", &tmp)))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io("renaming a temporary file to", path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, |tmp| {
        use std::io::Write;
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.flush()
    })
}

/// An exclusive lock on a file (`flock`): held until dropped or until the process ends, however it
/// ends (a SIGKILL included), so a lock is never left behind by a dead process.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// Opens (creating it and its folder if missing) the file whose lock [`try_lock`] and [`lock`] take.
fn lock_file(path: &Path) -> Result<std::fs::File, FsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating folder", dir))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("opening lock file", path))
}

/// Takes the lock of `path` (the file is created if missing) without waiting; `None` when another
/// process (or another handle of this one) holds it.
pub fn try_lock(path: &Path) -> Result<Option<FileLock>, FsError> {
    let file = lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(FileLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io("locking", path)(e)),
    }
}

/// Takes the lock of `path` (the file is created if missing), waiting while another process holds it.
pub fn lock(path: &Path) -> Result<FileLock, FsError> {
    let file = lock_file(path)?;
    file.lock().map_err(io("locking", path))?;
    Ok(FileLock { _file: file })
}

/// This machine's host name ('.'-free, for temporary file names).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().replace('.', "_"))
        .unwrap_or_else(|_| "host".into())
}

/// Whether a temporary file of [`write_atomic_with`] was abandoned: its writer was a process of
/// this host that no longer exists, or it is over an hour old (a writer elsewhere that died).
pub fn is_abandoned_temp(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    if !(name.starts_with('.') && name.ends_with(".tmp")) {
        return false;
    }
    let parts: Vec<&str> = name.trim_end_matches(".tmp").rsplitn(3, '.').collect();
    if let [pid, host, _] = parts.as_slice() {
        if *host == host_name() && pid.parse::<u32>().is_ok() {
            return !Path::new("/proc").join(pid).exists();
        }
    }
    let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    age.is_some_and(|a| a.as_secs() > 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("harness-fsio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = scratch("fail");
        let target = dir.join("a.json");
        write_atomic(&target, b"old").unwrap();
        let e = write_atomic_with(&target, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk gone"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("a.json") && e.to_string().contains("disk gone"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(entries(&dir), ["a.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rename_that_fails_names_the_target_and_cleans_up() {
        let dir = scratch("rename");
        // A folder where the file should go: the rename fails after the content was written.
        let target = dir.join("taken");
        std::fs::create_dir_all(target.join("inside")).unwrap();
        let e = write_atomic(&target, b"new").unwrap_err();
        assert!(e.to_string().contains("renaming") && e.to_string().contains("taken"), "{e}");
        assert_eq!(entries(&dir), ["taken"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = scratch("lock");
        let path = dir.join("run").join("lock");
        let held = try_lock(&path).unwrap().expect("free at first");
        assert!(try_lock(&path).unwrap().is_none(), "a second handle must not get it");
        drop(held);
        assert!(try_lock(&path).unwrap().is_some(), "free again once dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_waiting_lock_is_taken_once_the_holder_drops_it() {
        let dir = scratch("lock-wait");
        let path = dir.join("lock");
        let held = lock(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let got = lock(&path).unwrap();
                tx.send(()).unwrap();
                drop(got);
            })
        };
        let early = rx.recv_timeout(std::time::Duration::from_millis(300));
        assert!(early.is_err(), "the lock was taken while held");
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("taken once dropped");
        waiter.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_files_of_live_writers_are_kept_and_of_dead_ones_dropped() {
        let live = temp_path(Path::new("/x/runs/r.json"));
        assert!(!is_abandoned_temp(&live), "this process is alive: {}", live.display());
        let dead = PathBuf::from(format!("/x/runs/.r.json.{}.{}.tmp", host_name(), u32::MAX));
        assert!(is_abandoned_temp(&dead));
        assert!(!is_abandoned_temp(Path::new("/x/runs/r.json")));
    }
}
