//! Loss plug-ins through the whole harness: planned with their file's hash in the run id, checked
//! before any run, trained, recorded and reported beside the built-ins.
mod common;

use harness::sweep::Sweep;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in SoftTriple and the scripted one (plugins/soft_triple.pt) with the same settings, plus
/// the Multi-Similarity plug-in: 3 runs of a few seconds.
const SWEEP: &str = r#"
name: plugins-tiny
data:
  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}
losses:
  - {kind: soft_triple}
  - {kind: torchscript, path: SOFTPATH, name: SoftTriple-TS, centers_per_class: 4, params: {la: 20, gamma: 0.1, tau: 0.2, margin: 0.01}}
  - {kind: torchscript, path: MSPATH, name: MS, params: {alpha: 2, beta: 50, base: 0.5}}
centers_per_class: [2]
dims: [16]
seeds: [0]
model: {backbone: {kind: small_cnn, channels: [8]}}
train: {device: cpu, epochs: 2, batch_size: 12, sampler: {kind: class_balanced, m: 2}, lr: {backbone: 0.003, head: 0.003}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
"#;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// The sweep with plug-in paths `soft` and `ms`.
fn sweep_text(soft: &Path, ms: &Path) -> String {
    SWEEP.replace("SOFTPATH", &soft.display().to_string()).replace("MSPATH", &ms.display().to_string())
}

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

#[test]
fn a_scripted_soft_triple_trains_like_the_built_in_and_every_plugin_is_recorded_and_reported() {
    let dir = common::scratch("plugins", "run");
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, sweep_text(&repo("plugins/soft_triple.pt"), &repo("plugins/ms_loss.pt"))).unwrap();
    let results = dir.join("results");
    let o = harness().arg("sweep").arg(&file).arg("--results").arg(&results).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = harness::store::read_records(&results).unwrap();
    let slugs: Vec<&str> = records.iter().map(|r| r.slug.as_str()).collect();
    assert_eq!(slugs.len(), 3, "{slugs:?}");
    let by_slug = |s: &str| records.iter().find(|r| r.slug == s).unwrap_or_else(|| panic!("no {s} in {slugs:?}"));
    let built_in = by_slug("synthetic-softtriple-k2-d16-s0");
    let scripted = by_slug("synthetic-softtriple-ts-k2-d16-s0");
    by_slug("synthetic-ms-d16-s0");
    // Same initial centres (the harness owns them), same batches: the same run up to float noise.
    let (a, b) = (&built_in.outcome.diagnostics.epoch_loss, &scripted.outcome.diagnostics.epoch_loss);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "epoch losses {a:?} vs scripted {b:?}");
    }
    let r1 = |r: &harness::store::RunRecord| r.outcome.metrics.as_ref().unwrap().retrieval.recall_at_k[0].1;
    assert!((r1(built_in) - r1(scripted)).abs() < 0.02, "R@1 {} vs scripted {}", r1(built_in), r1(scripted));
    let o = harness().arg("report").arg(&results).arg("-o").arg(dir.join("report.md")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for label in ["SoftTriple K=2", "SoftTriple-TS K=2", "| MS"] {
        assert!(report.contains(label), "no `{label}` row in the report:\n{report}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_run_id_follows_the_file_s_content_not_its_name() {
    let dir = common::scratch("plugins", "hash");
    let (soft, ms) = (dir.join("soft.pt"), dir.join("ms.pt"));
    std::fs::copy(repo("plugins/soft_triple.pt"), &soft).unwrap();
    std::fs::copy(repo("plugins/ms_loss.pt"), &ms).unwrap();
    let ids =
        || -> Vec<String> { Sweep::parse(&sweep_text(&soft, &ms)).unwrap().runs.into_iter().map(|r| r.id).collect() };
    let before = ids();
    assert_eq!(before, ids(), "planning twice gives the same ids");
    let sha = |r: &harness::sweep::PlannedRun| match &r.config.loss {
        losses::LossConfig::TorchScript(c) => c.sha256.clone(),
        _ => None,
    };
    let planned = Sweep::parse(&sweep_text(&soft, &ms)).unwrap();
    assert_eq!(sha(&planned.runs[2]).map(|s| s.len()), Some(64), "the plan records the file's SHA-256");
    // Another valid loss under the same file name and the same config: the MS run becomes a
    // different run; the others stay.
    std::fs::copy(repo("losses/tests/fixtures/plugins/mean_square.pt"), &ms).unwrap();
    let after = ids();
    assert_eq!(before[..2], after[..2]);
    assert_ne!(before[2], after[2]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_plugin_stops_the_sweep_before_any_run_naming_the_loss_and_the_file() {
    let dir = common::scratch("plugins", "broken");
    let nan = repo("losses/tests/fixtures/plugins/nan_loss.pt");
    let file = dir.join("sweep.yaml");
    std::fs::write(
        &file,
        sweep_text(&repo("plugins/soft_triple.pt"), &dir.join("missing.pt")).replace(
            "  - {kind: soft_triple}\n",
            &format!("  - {{kind: torchscript, path: {}, name: Broken}}\n", nan.display()),
        ),
    )
    .unwrap();
    let results = dir.join("results");
    let o = harness().arg("sweep").arg(&file).arg("--results").arg(&results).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`losses[0]`") && err.contains("nan_loss.pt") && err.contains("returned NaN"), "{err}");
    assert!(err.contains("`losses[2]`") && err.contains("missing.pt") && err.contains("cannot read it"), "{err}");
    assert!(!results.join("runs").exists(), "no run may start");
    std::fs::remove_dir_all(&dir).unwrap();
}
