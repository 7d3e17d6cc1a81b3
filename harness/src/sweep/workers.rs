//! Several sweep processes on one machine: how `--jobs N` divides the cores among its workers, and
//! a registry of the live workers of a results folder (`workers/<host>.<pid>`, each holding its
//! libtorch thread count under a lock held for the process's life), so a sweep can see that the
//! processes sharing its folder ask for more threads than the machine has. libtorch gives every
//! process a thread pool as large as the machine: two such processes on 2 cores took 739 s for a
//! sweep one process did in 38 s (and two one-thread processes too).
use crate::fsio::{self, FileLock};
use std::path::{Path, PathBuf};

/// Threads of each of `jobs` workers on `cores` cores: the cores divided evenly, at least one.
pub fn threads_per_worker(cores: usize, jobs: usize) -> usize {
    (cores / jobs.max(1)).max(1)
}

/// Whether live workers with these thread counts oversubscribe `cores`: more than one worker, and
/// more threads in all than cores (one worker's own pool is libtorch's business).
pub fn oversubscribed(cores: usize, threads: &[usize]) -> bool {
    threads.len() > 1 && threads.iter().sum::<usize>() > cores
}

/// This process's entry in a results folder's worker registry; removed when dropped (and its lock
/// released however the process ends, so a killed worker's entry is seen as stale).
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
    _lock: FileLock,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn registry(results: &Path) -> PathBuf {
    results.join("workers")
}

/// Registers this process as a worker of `results` with `threads` libtorch threads.
pub fn register(results: &Path, threads: usize) -> Result<Registration, fsio::FsError> {
    let path = registry(results).join(format!("{}.{}", fsio::host_name(), std::process::id()));
    let lock = fsio::try_lock(&path)?.ok_or_else(|| fsio::FsError::Io {
        action: "registering a worker (its entry is locked by another process)",
        path: path.clone(),
        error: std::io::ErrorKind::WouldBlock.into(),
    })?;
    std::fs::write(&path, threads.to_string()).map_err(|error| fsio::FsError::Io {
        action: "writing",
        path: path.clone(),
        error,
    })?;
    Ok(Registration { path, _lock: lock })
}

/// The thread counts of the live workers of `results` on this host (this process included when it
/// is registered); entries whose lock is free belong to ended processes and are removed.
pub fn live_threads(results: &Path) -> Vec<usize> {
    let host = format!("{}.", fsio::host_name());
    let Ok(entries) = std::fs::read_dir(registry(results)) else { return vec![] };
    let mut out = vec![];
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with(&host) {
            continue;
        }
        match fsio::try_lock(&e.path()) {
            Ok(None) => {
                out.push(std::fs::read_to_string(e.path()).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(1))
            }
            Ok(Some(_stale)) => {
                let _ = std::fs::remove_file(e.path());
            }
            Err(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_divide_the_cores_and_each_worker_keeps_at_least_one_thread() {
        assert_eq!(threads_per_worker(2, 1), 2);
        assert_eq!(threads_per_worker(2, 2), 1);
        assert_eq!(threads_per_worker(2, 4), 1, "more workers than cores: one thread each");
        assert_eq!(threads_per_worker(16, 3), 5, "the rest of the division stays idle");
        assert_eq!(threads_per_worker(8, 0), 8);
        for (cores, jobs) in [(2, 2), (4, 2), (16, 4), (16, 5)] {
            let t = threads_per_worker(cores, jobs);
            assert!(!oversubscribed(cores, &vec![t; jobs]), "--jobs {jobs} on {cores} cores");
        }
        assert!(oversubscribed(2, &[2, 2]), "the issue's case: two processes of libtorch's default pool");
        assert!(!oversubscribed(2, &[2]), "one process is libtorch's own business");
        assert!(oversubscribed(2, &[1, 1, 1]));
    }

    #[test]
    fn the_registry_counts_live_workers_and_forgets_ended_ones() {
        let dir = std::env::temp_dir().join(format!("harness-workers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let me = register(&dir, 2).unwrap();
        assert_eq!(live_threads(&dir), vec![2]);
        // An entry left by a killed process: the file is there, nobody holds its lock.
        let stale = registry(&dir).join(format!("{}.999999999", fsio::host_name()));
        std::fs::write(&stale, "4").unwrap();
        // Another host's worker shares the folder, not the cores.
        std::fs::write(registry(&dir).join("elsewhere.12"), "8").unwrap();
        assert_eq!(live_threads(&dir), vec![2]);
        assert!(!stale.exists(), "a stale entry is removed");
        drop(me);
        assert!(live_threads(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
