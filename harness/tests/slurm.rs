//! The real single-node Slurm test (`bench/slurm/test_slurm.sh`): installs slurm-wlm and munge,
//! starts a localhost cluster, runs configs/ci.yaml as a job array and compares the merged report
//! with a local run's. It needs root, apt and the release binary, so it runs only when asked:
//!   make build && cargo test -p harness --test slurm -- --ignored
#[test]
#[ignore = "needs root, apt and `make build`; run with --ignored"]
fn a_sweep_run_as_a_slurm_job_array_reports_like_a_local_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(root.join("target/debug/harness").is_file(), "run `make build` first");
    let out = std::process::Command::new("bash").arg("bench/slurm/test_slurm.sh").current_dir(root).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("PASS"), "{text}");
}
