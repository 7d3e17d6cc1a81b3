//! What this binary was built from: versions, commit and the libtorch folder (set by the build script).

/// The harness's version (from Cargo).
pub const HARNESS_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The tch crate version the harness is built against, read from Cargo.lock by the build script.
pub const TCH_VERSION: &str = match option_env!("HARNESS_TCH_VERSION") {
    Some(v) => v,
    None => "unknown",
};
/// The libtorch version found at build time.
pub const LIBTORCH_VERSION: &str = match option_env!("HARNESS_LIBTORCH_VERSION") {
    Some(v) => v,
    None => "unknown",
};
/// The git commit the harness was built from.
pub const GIT_COMMIT: &str = match option_env!("HARNESS_GIT_COMMIT") {
    Some(v) => v,
    None => "unknown",
};
/// The libtorch library folder embedded as rpath at build time.
pub const LIBTORCH_LIB_DIR: &str = match option_env!("HARNESS_LIBTORCH_LIB") {
    Some(v) => v,
    None => "unknown",
};

/// The libtorch this process loaded: the folder of the `libtorch_cpu.so` mapped into it (which
/// `LD_LIBRARY_PATH` can make another than [`LIBTORCH_LIB_DIR`]) and the version beside it.
pub fn loaded_libtorch() -> Option<(std::path::PathBuf, String)> {
    // Make sure libtorch is loaded (it is on first use of a tensor).
    let _ = tch::get_num_threads();
    let dir = mapped_libtorch_dir()?;
    let version = std::fs::read_to_string(dir.parent()?.join("version.py"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("__version__")
                    .map(|r| r.rsplit('=').next().unwrap_or(r).trim().trim_matches(['\'', '"']).to_string())
            })
        })
        .or_else(|| std::fs::read_to_string(dir.parent()?.join("build-version")).ok().map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    Some((dir, version))
}

/// The folder of the `libtorch_cpu.so` mapped into this process, read from `/proc/self/maps`
/// without calling libtorch (the binary links it, so it is mapped from start-up on).
pub fn mapped_libtorch_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with("/libtorch_cpu.so"))?;
    Some(std::path::Path::new(lib).parent()?.to_path_buf())
}

/// The libtorch version this process runs with: the loaded one's when it can be read, else the
/// build's.
pub fn libtorch_version() -> String {
    match loaded_libtorch() {
        Some((_, v)) if v != "unknown" => v,
        _ => LIBTORCH_VERSION.to_string(),
    }
}
