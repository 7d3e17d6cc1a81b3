//! The reproducibility harness for deep metric learning: configuration, data, training, evaluation,
//! records, statistics and reports, one module per stage (see `../shared/DESIGN.md`).
#![warn(missing_docs)]

pub mod analysis;
pub mod build_info;
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
pub mod protocol;
pub mod regress;
pub mod report;
pub mod rng;
pub mod slurm;
pub mod stats;
pub mod store;
pub mod sweep;
pub mod table;
pub mod train;

#[cfg(test)]
mod tests {
    #[test]
    fn tch_version_is_the_locked_one_and_the_manifests() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let version = crate::build_info::TCH_VERSION;
        assert!(version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()), "{version}");
        let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).unwrap();
        let needle = format!("name = \"tch\"\nversion = \"{version}\"");
        assert!(lock.contains(&needle), "Cargo.lock's tch version differs from TCH_VERSION {version}");
        let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
        assert!(manifest.contains(&format!("tch = \"{version}\"")), "the workspace does not ask for tch {version}");
    }
}
