//! Run identity: what a run computes, not where it runs, and stable across upgrades. `train` and
//! `sweep` give one run one id whatever `--device` says; a new option with a default moves no id;
//! the committed results folders (written under record schema 1) are still found by today's
//! sweeps; a copied record is counted once.
mod common;

use harness::store::{default_sections, id_of, identity_of, run_id, run_id_v1};
use harness::sweep::Sweep;
use std::path::{Path, PathBuf};
use std::process::Command;

const TINY: &str = r#"
name: tiny-id
data:
  - {kind: synthetic, classes: 4, modes_per_class: 1, images_per_mode: 4, resolution: 12, seed: 1}
losses:
  - {kind: soft_triple, centers_per_class: 2}
dims: [8]
seeds: [3]
model: {backbone: {kind: small_cnn, channels: [4]}}
train: {device: cpu, epochs: 1, batch_size: 8, sampler: {kind: class_balanced, m: 2}}
eval: {recall_at: [1], kmeans_restarts: 1}
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    common::scratch("identity", name)
}

fn harness(args: &[&str], paths: &[&Path]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_harness")).args(args).args(paths).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
}

#[test]
fn placement_is_not_identity_and_every_computing_field_is() {
    let run = &Sweep::parse(TINY).unwrap().runs[0];
    let mut moved = run.config.clone();
    moved.train.device = "cuda:1".into();
    moved.train.workers = 7;
    assert_eq!(run_id(&moved), run.id, "device and workers say where a run executes");
    for change in [
        |c: &mut harness::train::RunConfig| c.train.lr_gamma = 0.5,
        |c: &mut harness::train::RunConfig| c.train.epochs = 2,
        |c: &mut harness::train::RunConfig| c.seed = 4,
        |c: &mut harness::train::RunConfig| c.eval.kmeans_restarts = 2,
        |c: &mut harness::train::RunConfig| {
            c.loss.set_centers_per_class(3);
        },
    ] {
        let mut c = run.config.clone();
        change(&mut c);
        assert_ne!(run_id(&c), run.id, "{c:?}");
    }
}

#[test]
fn a_new_option_with_a_default_moves_no_id() {
    // A newer harness that has `train.new_option` (default 7) and `loss.new_weight` (default 0.5):
    // its JSON holds them, and so do its defaults.
    let run = &Sweep::parse(TINY).unwrap().runs[0];
    let json = serde_json::to_value(&run.config).unwrap();
    let mut defaults = default_sections(&json);
    assert_eq!(id_of(&identity_of(json.clone(), &defaults)), run.id);
    let mut newer = json.clone();
    newer["train"]["new_option"] = 7.into();
    newer["loss"]["new_weight"] = 0.5.into();
    defaults["train"]["new_option"] = 7.into();
    defaults["loss"]["new_weight"] = 0.5.into();
    assert_eq!(id_of(&identity_of(newer.clone(), &defaults)), run.id, "left at its default: same run");
    newer["train"]["new_option"] = 8.into();
    assert_ne!(id_of(&identity_of(newer, &defaults)), run.id, "set to another value: another run");
}

#[test]
fn train_and_sweep_give_one_run_one_id_with_or_without_a_device() {
    let dir = tmp("paths");
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, TINY).unwrap();
    let run = &Sweep::parse(TINY).unwrap().runs[0];
    let (ok, log) = harness(&["sweep", "--device", "cpu", "--results"], &[&dir.join("swept"), &file]);
    assert!(ok, "{log}");
    let run_file = dir.join("run.yaml");
    std::fs::write(&run_file, serde_yaml::to_string(&run.config).unwrap()).unwrap();
    let (ok, log) =
        harness(&["train", "--device", "cpu", "--save-embeddings", "--out"], &[&dir.join("trained"), &run_file]);
    assert!(ok, "{log}");
    let swept = harness::store::read_records(&dir.join("swept")).unwrap();
    let trained = harness::store::read_records(&dir.join("trained")).unwrap();
    assert_eq!((swept.len(), trained.len()), (1, 1));
    assert_eq!(swept[0].id, run.id);
    assert_eq!(trained[0].id, run.id);
    assert_eq!(run_id(&swept[0].config), swept[0].id, "a record's config hashes to its own id");
    assert_eq!(swept[0].schema_version, harness::store::RECORD_SCHEMA);
    assert_eq!(swept[0].outcome.metrics, trained[0].outcome.metrics, "one run path, one result");
    // `--save-embeddings` writes what `eval --run` reads, and the same numbers come out.
    let saved = harness::execute::embeddings_dir(&dir.join("trained"), &run.id);
    let (ok, json) = harness(&["eval", "--no-nmi", "--recall-at", "1", "--format", "json", "--run"], &[&saved]);
    assert!(ok, "{json}");
    let start = json.find('{').expect("JSON on standard output");
    let report: harness::eval::EvalReport =
        serde_json::Deserializer::from_str(&json[start..]).into_iter().next().unwrap().unwrap();
    let recorded = trained[0].outcome.metrics.as_ref().unwrap();
    assert_eq!(report.retrieval.recall_at_k, recorded.retrieval.recall_at_k);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The committed results folders (the CI baseline was written under record schema 1): today's
/// sweep of the same file finds every run recorded, so nothing is orphaned or run again.
#[test]
fn committed_results_are_found_by_todays_sweeps() {
    for (config, results) in [
        ("configs/ci.yaml", "results/baselines/ci"),
        ("configs/quickstart.yaml", "reports/quickstart"),
        ("configs/study.yaml", "reports/study"),
        ("configs/study-images.yaml", "reports/study-images"),
        ("configs/power-d64.yaml", "reports/power-d64"),
        ("configs/power-d512.yaml", "reports/power-d512"),
        ("configs/ablations/fresh-items.yaml", "reports/fresh-items"),
        ("configs/ablations/training-length.yaml", "reports/training-length"),
        ("configs/ablations/fresh-items-4000.yaml", "reports/fresh-items-4000"),
        ("configs/ablations/fresh-items-8000.yaml", "reports/fresh-items-8000"),
        ("configs/ablations/fresh-items-32000.yaml", "reports/fresh-items-32000"),
    ] {
        let sweep = Sweep::load(&repo().join(config)).unwrap();
        let records = harness::store::read_records(&repo().join(results)).unwrap();
        let mut planned: Vec<&str> = sweep.runs.iter().map(|r| r.id.as_str()).collect();
        let mut found: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        planned.sort();
        found.sort();
        assert_eq!(planned, found, "{results}");
        // The lock file lists the ids of its schema (1: every field hashed) for the same sweep.
        let lock: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join(results).join("sweep.json")).unwrap()).unwrap();
        let ids: Vec<String> = match lock["schema_version"].as_u64() {
            None | Some(1) => sweep.runs.iter().map(|r| run_id_v1(&r.config)).collect(),
            Some(_) => sweep.runs.iter().map(|r| r.id.clone()).collect(),
        };
        assert_eq!(lock["run_ids"], serde_json::json!(ids), "{results}");
    }
    // And a sweep over a copy runs nothing.
    let dir = tmp("committed");
    let copy = dir.join("ci");
    std::fs::create_dir_all(copy.join("runs")).unwrap();
    let src = repo().join("results/baselines/ci");
    std::fs::copy(src.join("sweep.json"), copy.join("sweep.json")).unwrap();
    for e in std::fs::read_dir(src.join("runs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copy.join("runs").join(p.file_name().unwrap())).unwrap();
    }
    let (ok, log) = harness(&["sweep"], &[&repo().join("configs/ci.yaml"), Path::new("--results"), &copy]);
    assert!(ok, "{log}");
    let n = Sweep::load(&repo().join("configs/ci.yaml")).unwrap().runs.len();
    assert!(log.contains(&format!("{n} already recorded, 0 to run")), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The quickstart is a part of the full study: each of its runs is one of the study's (same id, so
/// `make quickstart` and `make study` take over each other's records), with both embedding sizes,
/// a K axis and a τ axis.
#[test]
fn the_quickstart_is_a_part_of_the_study() {
    let quickstart = Sweep::load(&repo().join("configs/quickstart.yaml")).unwrap();
    let study = Sweep::load(&repo().join("configs/study.yaml")).unwrap();
    for q in &quickstart.runs {
        assert!(study.runs.iter().any(|s| s.id == q.id), "the study lacks the quickstart's {}", q.slug);
    }
    assert!(quickstart.runs.len() < study.runs.len());
    let set = |f: &dyn Fn(&harness::sweep::PlannedRun) -> Option<String>| {
        quickstart.runs.iter().filter_map(f).collect::<std::collections::BTreeSet<String>>()
    };
    assert_eq!(set(&|r| Some(r.config.dim.to_string())).len(), 2, "both embedding sizes");
    assert!(set(&|r| r.config.loss.centers_per_class().map(|k| k.to_string())).len() >= 2, "a K axis");
    assert_eq!(set(&|r| r.config.loss.regularizer_weight().map(|t| t.to_string())).len(), 2, "a τ axis");
}

/// The power study is the full study's K × τ grid with more seeds: every run of the study at that
/// embedding size and seed is the same run (same id, so `make power` takes its record over), and
/// every loss variant of one is in the other.
#[test]
fn the_power_study_is_the_full_study_with_more_seeds() {
    let quickstart = Sweep::load(&repo().join("configs/study.yaml")).unwrap();
    for (config, dim, seeds) in [("configs/power-d64.yaml", 64, 24), ("configs/power-d512.yaml", 512, 10)] {
        let power = Sweep::load(&repo().join(config)).unwrap();
        assert!(power.runs.iter().all(|r| r.config.dim == dim), "{config}");
        let mut power_seeds: Vec<u64> = power.runs.iter().map(|r| r.config.seed).collect();
        power_seeds.sort();
        power_seeds.dedup();
        assert_eq!(power_seeds, (0..seeds).collect::<Vec<u64>>(), "{config}");
        let shared: Vec<_> = quickstart.runs.iter().filter(|r| r.config.dim == dim).collect();
        assert!(!shared.is_empty());
        for q in &shared {
            assert!(power.runs.iter().any(|p| p.id == q.id), "{config} lacks the study's {}", q.slug);
        }
        let variants = |runs: &[harness::sweep::PlannedRun]| {
            let mut v: Vec<String> = runs.iter().map(|r| format!("{:?}", r.config.loss)).collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(variants(&power.runs), variants(&quickstart.runs), "{config}");
        assert_eq!(power.runs.len(), shared.len() / 5 * seeds as usize, "{config}");
    }
}

#[test]
fn a_copied_record_is_counted_once() {
    let dir = tmp("copied");
    let src = repo().join("results/baselines/ci");
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    let mut first = None;
    for e in std::fs::read_dir(src.join("runs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join("runs").join(p.file_name().unwrap())).unwrap();
        first.get_or_insert(p);
    }
    let before = harness::store::read_records(&dir).unwrap();
    std::fs::copy(first.unwrap(), dir.join("runs").join("backup.json")).unwrap();
    let after = harness::store::read_records(&dir).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(after, before);
    std::fs::remove_dir_all(&dir).unwrap();
}
