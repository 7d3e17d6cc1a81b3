//! The reproducibility harness for deep metric learning: configuration, data, training, evaluation,
//! records, statistics and reports, one module per stage (see `../shared/DESIGN.md`).
#![warn(missing_docs)]

pub mod analysis;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod doctor;
pub mod eval;
pub mod execute;
pub mod fsio;
pub mod loss_check;
pub mod model;
pub mod npy;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod regress;
pub mod report;
pub mod rng;
pub mod slurm;
pub mod stats;
pub mod store;
pub mod sweep;
pub mod table;
pub mod train;

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

#[cfg(test)]
mod tests {
    #[test]
    fn tch_version_constant_matches_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let needle = format!("name = \"tch\"\nversion = \"{}\"", super::TCH_VERSION);
        assert!(lock.contains(&needle), "Cargo.lock's tch version differs from TCH_VERSION");
    }
}
