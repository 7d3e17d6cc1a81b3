//! `harness regress` as CI uses it: a rerun of the baseline's sweep passes; a broken change fails
//! with a table naming the cells; results from another data split are refused. The broken change
//! comes in through real input: a test-labels file in another order than its features (the loader
//! bug the check must catch), with the same paths and the same features, so nothing but the
//! metrics can give it away.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SWEEP: &str = r#"
name: regress-test
data:
  - {kind: features, train_features: DIR/train_x.npy, train_labels: DIR/train_y.npy, test_features: DIR/test_x.npy, test_labels: DIR/test_y.npy}
losses:
  - {kind: softmax_norm}
  - {kind: soft_triple, centers_per_class: 2}
dims: [16]
seeds: [0, 1, 2]
model: {backbone: {kind: none}}
train: {device: cpu, epochs: 4, batch_size: 24, sampler: {kind: class_balanced, m: 4}, lr: {backbone: 0.01, head: 0.01}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
"#;

/// Gaussian classes in 24 dimensions: 12 training and 12 other test classes of 10 vectors each.
fn write_features(dir: &Path) {
    harness::rng::with_torch_seed(11, || {
        for (split, classes) in [("train", 0..12i64), ("test", 12..24i64)] {
            let n = classes.clone().count() as i64 * 10;
            let labels: Vec<i64> = classes.flat_map(|c| std::iter::repeat_n(c, 10)).collect();
            let labels = tch::Tensor::from_slice(&labels);
            let means = tch::Tensor::randn([24, 24], (tch::Kind::Float, tch::Device::Cpu)) * 1.5;
            let noise = tch::Tensor::randn([n, 24], (tch::Kind::Float, tch::Device::Cpu));
            let x = means.index_select(0, &labels) + noise;
            harness::npy::write(&dir.join(format!("{split}_x.npy")), &x).unwrap();
            harness::npy::write(&dir.join(format!("{split}_y.npy")), &labels).unwrap();
        }
    });
}

fn sweep(dir: &Path, results: &str) -> PathBuf {
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, SWEEP.replace("DIR", &dir.display().to_string())).unwrap();
    let out = dir.join(results);
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["sweep"])
        .arg(&file)
        .arg("--results")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The regressions section of a check's report (empty when there is none).
fn regressions_section(text: &str) -> &str {
    text.split("## Regressions").nth(1).map_or("", |rest| rest.split("\n## ").next().unwrap_or(""))
}

fn regress(baseline: &Path, current: &Path, extra: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["regress", "--baseline"])
        .arg(baseline)
        .arg("--current")
        .arg(current)
        .args(extra)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
}

/// The committed CI baseline (real records of the CI sweep).
fn ci_baseline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/baselines/ci")
}

/// Removes the records of `slug`'s cells except those of the seeds in `keep`.
fn keep_seeds(results: &Path, slug: &str, keep: &[u64]) {
    for e in std::fs::read_dir(results.join("runs")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.contains(slug) && !keep.iter().any(|s| name.contains(&format!("-s{s}-"))) {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn rerun_passes_broken_change_fails_other_split_is_refused() {
    let dir = common::scratch("regress", "rerun");
    write_features(&dir);
    let baseline = sweep(&dir, "baseline");

    let rerun = sweep(&dir, "rerun");
    let (ok, text) = regress(&baseline, &rerun, &[]);
    assert!(ok, "an honest rerun must pass:\n{text}");
    assert!(text.contains("PASS") && text.contains("0 regressions"), "{text}");
    assert!(regressions_section(&text).is_empty(), "{text}");

    // Test labels read in another order than the features: every cell must regress.
    let labels = dir.join("test_y.npy");
    let honest = std::fs::read(&labels).unwrap();
    let y = harness::npy::read_labels(&labels).unwrap();
    let order: Vec<i64> = (0..y.size()[0]).map(|i| (i * 7) % y.size()[0]).collect();
    harness::npy::write(&labels, &y.index_select(0, &tch::Tensor::from_slice(&order))).unwrap();
    let broken = sweep(&dir, "broken");
    std::fs::write(&labels, honest).unwrap();
    let (ok, text) = regress(&baseline, &broken, &[]);
    assert!(!ok, "test labels out of order must fail the check:\n{text}");
    for cell in ["features d16 Softmax_norm", "features d16 SoftTriple K=2"] {
        assert!(listed(&text, cell, "R@1", "drop"), "{cell} R@1 not among the regressions:\n{text}");
    }

    // The same configs over a changed data split: refused, never compared.
    let moved = dir.join("moved");
    copy_dir(&rerun, &moved);
    for e in std::fs::read_dir(moved.join("runs")).unwrap() {
        let p = e.unwrap().path();
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["outcome"]["split_fingerprint"] = serde_json::json!("features-0000000000000000");
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    }
    let (ok, text) = regress(&baseline, &moved, &[]);
    assert!(!ok);
    assert!(text.contains("split fingerprint differs") && text.contains("Not compared"), "{text}");

    // A cell missing from the current results is reported, not skipped silently.
    let partial = dir.join("partial");
    copy_dir(&rerun, &partial);
    keep_seeds(&partial, "softmaxnorm", &[]);
    let (ok, text) = regress(&baseline, &partial, &[]);
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

/// A copy of the committed CI baseline with `edit` applied to every record of the cells whose
/// file names contain `slug` (real records, moved as a faulty build would move them).
fn edited_baseline(to: &Path, slug: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    copy_dir(&ci_baseline(), to);
    for e in std::fs::read_dir(to.join("runs")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().contains(slug) {
            let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            edit(&mut v);
            std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        }
    }
    to.to_path_buf()
}

/// The cells of the "All comparisons" row of `cell`'s `quantity` (index 1 is the cell).
fn comparison(text: &str, cell: &str, quantity: &str) -> Vec<String> {
    let row = text.lines().find(|l| l.starts_with(&format!("| {cell} ")) && l.contains(&format!("| {quantity} ")));
    row.unwrap_or_else(|| panic!("no {cell} {quantity} row:\n{text}"))
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// Whether the regressions section lists `cell`'s `quantity` moving in `direction`.
fn listed(text: &str, cell: &str, quantity: &str, direction: &str) -> bool {
    regressions_section(text).lines().any(|l| {
        let cols: Vec<&str> = l.split('|').map(str::trim).collect();
        cols.len() > 6 && cols[1] == cell && cols[2] == quantity && cols[5] == direction
    })
}

#[test]
fn a_rise_fails_unless_drops_only_and_a_moved_diagnostic_fails_unless_within_its_tolerance() {
    let baseline = ci_baseline();
    let dir = common::scratch("regress", "moves");
    let cell = "views d64 SoftTriple K=4";

    // Every seed's R@1 3 points higher (what a kNN that finds the query itself looks like).
    let risen = edited_baseline(&dir.join("risen"), "softtriple", |v| {
        let r = &mut v["outcome"]["metrics"]["retrieval"]["recall_at_k"];
        for e in r.as_array_mut().unwrap().iter_mut().filter(|e| e[0] == 1) {
            e[1] = serde_json::json!(e[1].as_f64().unwrap() + 0.03);
        }
    });
    let (ok, text) = regress(&baseline, &risen, &[]);
    assert!(!ok && listed(&text, cell, "R@1", "rise"), "a 3-point rise must fail:\n{text}");
    assert!(text.starts_with("# Accuracy regression check: FAIL") && text.contains("0 refused"), "{text}");
    let (ok, text) = regress(&baseline, &risen, &["--drops-only"]);
    assert!(ok, "--drops-only ignores rises:\n{text}");

    // The final regularizer 10% lower (a term divided once too often), accuracy untouched.
    let scale = |f: f64| {
        move |v: &mut serde_json::Value| {
            let r = v["outcome"]["diagnostics"]["epoch_regularizer"].as_array_mut().unwrap();
            let last = r.last_mut().unwrap();
            *last = serde_json::json!(last.as_f64().unwrap() * f);
        }
    };
    let lower = edited_baseline(&dir.join("lower"), "softtriple", scale(0.9));
    let (ok, text) = regress(&baseline, &lower, &[]);
    assert!(!ok && listed(&text, cell, "final regularizer", "drop"), "a 10% move must fail:\n{text}");
    let (ok, text) = regress(&baseline, &lower, &["--no-diagnostics"]);
    assert!(ok, "--no-diagnostics leaves the diagnostics out:\n{text}");
    let (ok, text) = regress(&baseline, &lower, &["--diagnostics-tolerance", "15"]);
    assert!(ok, "a 10% move is within a 15% tolerance:\n{text}");
    // 2% is within the default 3% tolerance.
    let near = edited_baseline(&dir.join("near"), "softtriple", scale(0.98));
    let (ok, text) = regress(&baseline, &near, &[]);
    assert!(ok, "a 2% move is within the default tolerance:\n{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cell_whose_runs_all_diverged_is_refused_with_that_reason() {
    let baseline = ci_baseline();
    let dir = common::scratch("regress", "diverged");
    let diverged = edited_baseline(&dir, "softtriple", |v| {
        v["outcome"]["status"] = serde_json::json!("diverged");
        v["outcome"]["metrics"] = serde_json::Value::Null;
    });
    let (ok, text) = regress(&baseline, &diverged, &[]);
    assert!(!ok && text.contains("no finished run in the current results: 5 of 5 diverged"), "{text}");
    assert!(
        text.starts_with("# Accuracy regression check: FAIL") && text.contains(" 0 regressions, 1 refused"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_training_diagnostic_is_compared_in_both_directions() {
    let baseline = ci_baseline();
    let dir = common::scratch("regress", "diagnostics");
    let cell = "views d64 SoftTriple K=4";
    // (field of the record's diagnostics, quantity in the check's tables, factor, direction)
    let cases = [
        ("last_loss", "final loss", 1.1, "rise"),
        ("last_loss", "final loss", 0.9, "drop"),
        ("effective_centers_per_class", "effective centres", 0.5, "drop"),
        ("effective_centers_per_class", "effective centres", 1.25, "rise"),
    ];
    for (i, (field, quantity, factor, direction)) in cases.into_iter().enumerate() {
        let moved = edited_baseline(&dir.join(i.to_string()), "softtriple", |v| {
            let d = &mut v["outcome"]["diagnostics"][field];
            *d = serde_json::json!(d.as_f64().unwrap() * factor);
        });
        let (ok, text) = regress(&baseline, &moved, &[]);
        assert!(!ok && listed(&text, cell, quantity, direction), "{field} × {factor}:\n{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_resolved_config_is_refused_and_compared_cells_show_their_summaries() {
    let baseline = ci_baseline();
    let dir = common::scratch("regress", "config");
    // Same data split and cell, another learning rate: the numbers are not comparable.
    let other = edited_baseline(&dir.join("other"), "softtriple", |v| {
        v["config"]["train"]["lr"]["head"] = serde_json::json!(0.002);
    });
    let (ok, text) = regress(&baseline, &other, &[]);
    assert!(!ok && text.contains("resolved config differs from the baseline's"), "{text}");
    // A rerun: every compared row shows "mean ± half-width" on both sides, equal, and "ok".
    let same = edited_baseline(&dir.join("same"), "none", |_| {});
    let (ok, text) = regress(&baseline, &same, &[]);
    assert!(ok, "{text}");
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with("| views"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(
        rows.len(),
        3 * 3 + 3 * 2 + 1,
        "3 metrics and final loss + effective centres per cell, the regularizer once"
    );
    let summary = |s: &str| {
        let (m, h) = s.split_once(" ± ").unwrap_or_else(|| panic!("not mean ± CI: {s:?}"));
        m.parse::<f64>().is_ok() && h.parse::<f64>().is_ok()
    };
    for r in rows {
        assert!(summary(&r[3]) && r[3] == r[4] && r[9] == "ok", "{r:?}");
        // Metrics allow 1 point; a diagnostic allows 3 % of its baseline mean.
        let mean: f64 = r[3].split(" ± ").next().unwrap().parse().unwrap();
        let tol: f64 = r[6].parse().unwrap();
        let want = if ["R@1", "NMI", "MAP@R"].contains(&r[2].as_str()) { 1.0 } else { 0.03 * mean };
        assert!((tol - want).abs() <= 5e-5 + 1e-9 * want, "{r:?}: tolerance {tol}, want {want}");
    }
    assert!(!text.contains("Cells not in the baseline"), "a rerun has no extra cells:\n{text}");
    assert!(!text.contains("## Not compared") && !text.contains("## Regressions"), "nor empty sections:\n{text}");
    // A cell the baseline does not have is listed as not checked.
    let extra = edited_baseline(&dir.join("extra"), "softtriple", |v| {
        v["config"]["loss"]["centers_per_class"] = serde_json::json!(5);
    });
    let (_, text) = regress(&baseline, &extra, &[]);
    let listed_extra =
        text.split("## Cells not in the baseline (not checked)").nth(1).unwrap_or("").split("\n## ").next().unwrap();
    assert!(listed_extra.contains("- views d64 SoftTriple K=5") && !listed_extra.contains("K=4"), "{text}");
    // Two seeds left in one cell: still compared (2 pairs), and its summary still has an interval.
    let two = edited_baseline(&dir.join("two"), "none", |_| {});
    keep_seeds(&two, "softtriple", &[0, 1]);
    let (_, text) = regress(&baseline, &two, &[]);
    let cols = comparison(&text, "views d64 SoftTriple K=4", "R@1");
    assert!(summary(&cols[4]) && cols[5] == "2", "{cols:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_two_sided_check_spends_half_of_alpha_per_side_and_one_shared_seed_is_refused() {
    let baseline = ci_baseline();
    let dir = common::scratch("regress", "alpha");
    let cell = "views d64 SoftTriple K=4";
    // R@1 lower by 1.85 points on average (1 point of tolerance + 0.85), spread ±1 across seeds:
    // t = 0.85 / (0.79 / √5) ≈ 2.40 with 4 df, so the one-sided p ≈ 0.037, between α/2 and α.
    let dev = [0.0, 1.0, -1.0, 0.5, -0.5];
    let lower = edited_baseline(&dir.join("lower"), "softtriple", |v| {
        let seed = v["config"]["seed"].as_u64().unwrap() as usize;
        for e in v["outcome"]["metrics"]["retrieval"]["recall_at_k"].as_array_mut().unwrap() {
            if e[0] == 1 {
                e[1] = serde_json::json!(e[1].as_f64().unwrap() - (1.85 + dev[seed]) / 100.0);
            }
        }
    });
    let (ok, text) = regress(&baseline, &lower, &[]);
    let p: f64 = comparison(&text, cell, "R@1")[7].parse().unwrap();
    assert!(p > 0.025 && p < 0.05 && ok, "two-sided: p = {p} is not below α/2 = 0.025:\n{text}");
    let (ok, text) = regress(&baseline, &lower, &["--drops-only"]);
    assert!(!ok && listed(&text, cell, "R@1", "drop"), "one-sided: p = {p} is below α = 0.05:\n{text}");

    // One seed shared with the baseline: nothing to test, so the cell is refused, not passed.
    let one = edited_baseline(&dir.join("one"), "none", |_| {});
    keep_seeds(&one, "softtriple", &[0]);
    let (ok, text) = regress(&baseline, &one, &[]);
    assert!(!ok && text.contains("fewer than 2 seeds shared with the baseline"), "{text}");
    assert!(
        text.contains(" 0 regressions, 6 refused"),
        "R@1, NMI, MAP@R, two diagnostics and the regularizer:\n{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
