//! Build script shared by every crate that links libtorch: embeds an rpath to the libtorch library
//! folder so binaries, tests and benches run without `LD_LIBRARY_PATH`. `libtorch_cuda.so` is not
//! kept linked (`--as-needed` drops it): `make setup` installs torch without the CUDA libraries it
//! needs, and the binary loads it at start-up where it can (`harness::device::load_cuda_library`).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../torch_rpath.rs");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // A build from a tree whose sources differ from HEAD says so: its records are not HEAD's. Cargo
    // reruns this script when anything under these paths changes (directories are scanned).
    let sources = [
        "../harness/src",
        "../losses/src",
        "../harness/Cargo.toml",
        "../losses/Cargo.toml",
        "../Cargo.toml",
        "../Cargo.lock",
        "../torch_rpath.rs",
    ];
    for path in sources {
        println!("cargo:rerun-if-changed={path}");
    }
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no", "--"])
        .args(sources)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let commit = if dirty && commit != "unknown" { format!("{commit}-dirty") } else { commit };
    println!("cargo:rustc-env=HARNESS_GIT_COMMIT={commit}");
    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let tch = locked_version(&lock, "tch").unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HARNESS_TCH_VERSION={tch}");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: no rpath to libtorch was embedded");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    println!("cargo:rustc-env=HARNESS_LIBTORCH_LIB={lib_dir}");
    println!("cargo:rustc-env=HARNESS_LIBTORCH_VERSION={}", libtorch_version(Path::new(&lib_dir)));
}

/// The version of package `name` in a Cargo.lock's text: the `version` line of its `[[package]]` block.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    lock.split("[[package]]").find_map(|block| {
        let mut lines = block.lines().map(str::trim);
        lines.clone().any(|l| l == wanted).then_some(())?;
        let line = lines.find(|l| l.starts_with("version = "))?;
        Some(line.trim_start_matches("version = ").trim_matches('"').to_string())
    })
}

/// The libtorch version: `build-version` of a libtorch archive, or `version.py` of a PyTorch install.
fn libtorch_version(lib_dir: &Path) -> String {
    let root = lib_dir.parent().unwrap_or(lib_dir);
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return v.trim().to_string();
    }
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                let value = rest.rsplit('=').next().unwrap_or(rest);
                return value.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
            }
        }
    }
    "unknown".to_string()
}
