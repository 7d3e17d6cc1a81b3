//! `harness regress` as CI uses it: a rerun of the baseline's sweep passes; a deliberately broken
//! change fails with a table; results from another data split are refused.
use std::path::{Path, PathBuf};
use std::process::Command;

const SWEEP: &str = r#"
name: regress-test
data:
  - {kind: synthetic, classes: 12, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 4, noise: 0.5, jitter: 0.15}
losses:
  - {kind: softmax_norm}
  - {kind: soft_triple, centers_per_class: 2}
dims: [16]
seeds: [0, 1, 2]
model: {backbone: {kind: small_cnn, channels: [8, 16]}}
train: {device: cpu, epochs: 6, batch_size: 16, sampler: {kind: class_balanced, m: 4}, lr: {backbone: 0.005, head: 0.005}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
"#;

fn sweep(dir: &Path, results: &str, fault: Option<&str>) -> PathBuf {
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, SWEEP).unwrap();
    let out = dir.join(results);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args(["sweep"]).arg(&file).arg("--results").arg(&out);
    if let Some(f) = fault {
        cmd.env("HARNESS_INJECT_FAULT", f);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn regress(baseline: &Path, current: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["regress", "--baseline"])
        .arg(baseline)
        .arg("--current")
        .arg(current)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
}

#[test]
fn rerun_passes_broken_change_fails_other_split_is_refused() {
    let dir = std::env::temp_dir().join(format!("harness-regress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let baseline = sweep(&dir, "baseline", None);

    let rerun = sweep(&dir, "rerun", None);
    let (ok, text) = regress(&baseline, &rerun);
    assert!(ok, "an honest rerun must pass:\n{text}");
    assert!(text.contains("PASS") && text.contains("0 regressions"), "{text}");

    let broken = sweep(&dir, "broken", Some("misordered_test_labels"));
    let (ok, text) = regress(&baseline, &broken);
    assert!(!ok, "test labels out of order must fail the check:\n{text}");
    assert!(text.contains("## Regressions") && text.contains("**regression**"), "{text}");
    assert!(text.contains("synthetic d16 SoftTriple K=2") || text.contains("synthetic d16 Softmax_norm"), "{text}");

    // The same configs over a changed data split: refused, never compared.
    let moved = dir.join("moved");
    copy_dir(&rerun, &moved);
    for e in std::fs::read_dir(moved.join("runs")).unwrap() {
        let p = e.unwrap().path();
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["outcome"]["split_fingerprint"] = serde_json::json!("synthetic-0000000000000000");
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    }
    let (ok, text) = regress(&baseline, &moved);
    assert!(!ok);
    assert!(text.contains("split fingerprint differs") && text.contains("Not compared"), "{text}");

    // A cell missing from the current results is reported, not skipped silently.
    let partial = dir.join("partial");
    copy_dir(&rerun, &partial);
    for e in std::fs::read_dir(partial.join("runs")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().contains("softmaxnorm") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let (ok, text) = regress(&baseline, &partial);
    assert!(!ok && text.contains("missing from the current results"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("runs")).unwrap();
    for e in std::fs::read_dir(from.join("runs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join("runs").join(p.file_name().unwrap())).unwrap();
    }
}
