//! What this binary was built from: versions, commit and the libtorch folder (set by the build script).

/// The harness's version (from Cargo).
pub const HARNESS_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The tch crate version the harness is built against (checked against Cargo.lock by a test).
pub const TCH_VERSION: &str = "0.26.0";
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
