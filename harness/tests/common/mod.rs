//! Helpers shared by the harness's integration tests.
use std::path::PathBuf;

/// An empty scratch folder `harness-<prefix>-<name>-<pid>` under the system's temporary folder.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("harness-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
