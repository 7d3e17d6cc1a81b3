//! Sweeps as a user runs them: expansion, stable ids, a sweep killed mid-way and resumed, shards
//! writing into one folder, a changed sweep file, and the report.
mod common;

use harness::sweep::Sweep;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tiny sweep: 2 losses (one with K ∈ {1, 2}) × 1 dim × 2 seeds = 6 runs of a few seconds.
const TINY: &str = r#"
name: tiny
data:
  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}
losses:
  - {kind: softmax_norm}
  - {kind: soft_triple}
centers_per_class: [1, 2]
dims: [16]
seeds: [0, 1]
model: {backbone: {kind: small_cnn, channels: [8]}}
train: {device: cpu, epochs: 2, batch_size: 12, sampler: {kind: class_balanced, m: 2}, lr: {backbone: 0.003, head: 0.003}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
"#;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn tmp(name: &str) -> PathBuf {
    common::scratch("sweep", name)
}

fn write_sweep(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("sweep.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// (slug, metrics JSON) of every record, timings and provenance left out.
fn outcomes(results: &Path) -> Vec<(String, String)> {
    harness::store::read_records(results)
        .unwrap()
        .into_iter()
        .map(|r| {
            (r.slug.clone(), serde_json::to_string(&(&r.outcome.metrics, &r.outcome.diagnostics.epoch_loss)).unwrap())
        })
        .collect()
}

#[test]
fn expansion_count_order_and_golden_ids() {
    let s = Sweep::parse(TINY).unwrap();
    let slugs: Vec<&str> = s.runs.iter().map(|r| r.slug.as_str()).collect();
    assert_eq!(
        slugs,
        [
            "synthetic-softmaxnorm-d16-s0",
            "synthetic-softmaxnorm-d16-s1",
            "synthetic-softtriple-k1-d16-s0",
            "synthetic-softtriple-k1-d16-s1",
            "synthetic-softtriple-k2-d16-s0",
            "synthetic-softtriple-k2-d16-s1",
        ]
    );
    // Ids are SHA-256 of the canonical identity form: the same on every machine and every run.
    let ids: Vec<&str> = s.runs.iter().map(|r| r.id.as_str()).collect();
    let golden: Vec<&str> = include_str!("fixtures/tiny_sweep_ids.txt").lines().collect();
    assert_eq!(ids, golden);
    // Record schema 1's ids (every field hashed), by which old results folders are recognised.
    let v1: Vec<String> = s.runs.iter().map(|r| harness::store::run_id_v1(&r.config)).collect();
    let golden_v1: Vec<&str> = include_str!("fixtures/tiny_sweep_ids_v1.txt").lines().collect();
    assert_eq!(v1, golden_v1);
}

#[test]
fn every_problem_in_a_sweep_file_is_reported_together() {
    let bad = TINY
        .replace("dims: [16]", "dims: [16]\nepochz: 3")
        .replace("{kind: softmax_norm}", "{kind: softmax_norm, lamda: 2}")
        .replace("epochs: 2", "epochs: 2, lr_schedule: 1");
    let e = Sweep::parse(&bad).unwrap_err().to_string();
    for needle in ["3 problem(s)", "`epochz`: unknown key", "`losses[0]`", "lamda", "`train`", "lr_schedule"] {
        assert!(e.contains(needle), "`{needle}` missing in:\n{e}");
    }
    let e = Sweep::parse(&TINY.replace("seeds: [0, 1]", "seeds: [0, 0]")).unwrap_err().to_string();
    assert!(e.contains("appears twice"), "{e}");
    // Nested keys, kinds and the folder name are checked too, all in one report.
    let nested = format!(
        "{}overrides: {{synthetic: {{tran: {{epochs: 1}}}}}}\nloss_overrides: {{soft_tripel: {{train: {{epochs: 1}}}}, softmax_norm: {{evl: {{}}}}}}\n",
        TINY.replace("name: tiny", "name: ..")
    );
    let e = Sweep::parse(&nested).unwrap_err().to_string();
    for needle in [
        "4 problem(s)",
        "`overrides.synthetic.tran`: unknown key (expected one of centers_per_class, model, train, eval)",
        "`loss_overrides.softmax_norm.evl`: unknown key (expected one of train, eval)",
        "`loss_overrides.soft_tripel`: unknown loss kind",
        "`name`: `..` must be",
    ] {
        assert!(e.contains(needle), "`{needle}` missing in:\n{e}");
    }
    let e = Sweep::parse(&TINY.replace("dims: [16]", "dims: 16")).unwrap_err();
    assert!(format!("{e:#}").contains("dims: invalid type"), "{e:#}");
    let e = Sweep::parse(&format!("{TINY}overrides: {{cub: {{centers_per_class: [2]}}}}")).unwrap_err().to_string();
    assert!(e.contains("overrides.cub") && e.contains("no data set of that kind"), "{e}");
}

#[test]
fn per_data_set_and_per_loss_overrides_apply_where_they_should() {
    let text = format!("{TINY}overrides:\n  synthetic: {{centers_per_class: [3], train: {{lr: {{centers: 0.1}}}}}}\nloss_overrides:\n  softmax_norm: {{train: {{epochs: 1}}}}\n");
    let s = Sweep::parse(&text).unwrap();
    assert_eq!(s.runs.len(), 4);
    for r in &s.runs {
        assert_eq!(r.config.train.lr.centers, 0.1);
        let expected_epochs = if r.config.loss.kind() == "softmax_norm" { 1 } else { 2 };
        assert_eq!(r.config.train.epochs, expected_epochs, "{}", r.slug);
        assert_eq!(r.config.train.batch_size, 12, "shared settings survive the merge");
    }
    assert!(s.runs.iter().any(|r| r.config.loss.centers_per_class() == Some(3)));
}

#[test]
fn a_killed_sweep_resumes_and_ends_with_exactly_the_records_of_an_uninterrupted_one() {
    let dir = tmp("kill");
    let file = write_sweep(&dir, TINY);
    let whole = dir.join("whole");
    let st = harness().args(["sweep"]).arg(&file).arg("--results").arg(&whole).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));

    let killed = dir.join("killed");
    let mut child = harness()
        .args(["sweep"])
        .arg(&file)
        .arg("--results")
        .arg(&killed)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runs = killed.join("runs");
    let count_records = |dir: &Path| -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n.ends_with(".json") && !n.starts_with('.')
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count_records(&runs) < 2 {
        assert!(std::time::Instant::now() < deadline, "no records appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, mid-run
    child.wait().unwrap();
    let before = count_records(&runs);
    assert!(before < 6, "the sweep finished before it could be killed");
    for e in std::fs::read_dir(&runs).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with('.') {
            continue; // a temporary file the kill interrupted: never read as a record
        }
        assert!(
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&p).unwrap()).is_ok(),
            "half-written {}",
            p.display()
        );
    }
    let again = harness().args(["sweep"]).arg(&file).arg("--results").arg(&killed).output().unwrap();
    assert!(again.status.success());
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains(&format!("{before} already recorded")), "{log}");
    assert_eq!(outcomes(&killed), outcomes(&whole));
    let leftovers = std::fs::read_dir(&runs)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0, "stale temporary files are cleared when the sweep starts again");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_shards_into_one_folder_make_the_whole_sweep_and_a_changed_sweep_is_refused() {
    let dir = tmp("shards");
    let file = write_sweep(&dir, TINY);
    let results = dir.join("results");
    let shards: Vec<_> = (0..2)
        .map(|i| {
            harness()
                .args(["sweep"])
                .arg(&file)
                .arg("--results")
                .arg(&results)
                .args(["--shard", &format!("{i}/2")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut s in shards {
        assert!(s.wait().unwrap().success());
    }
    let records = harness::store::read_records(&results).unwrap();
    assert_eq!(records.len(), 6);
    let whole = Sweep::parse(TINY).unwrap();
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let mut want: Vec<String> = whole.runs.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);

    let changed = write_sweep(&dir, &TINY.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"));
    let out = harness().args(["sweep"]).arg(&changed).arg("--results").arg(&results).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the sweep file changed") && err.contains("3 run(s) are new"), "{err}");

    let report = dir.join("report.md");
    let out = harness().arg("report").arg(&results).arg("-o").arg(&report).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("## synthetic, embedding size 16") && text.contains("SoftTriple K=2"), "{text}");
    assert!(results.join("runs.csv").is_file() && results.join("runs.parquet").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shard_parsing() {
    assert_eq!(harness::sweep::parse_shard("1/4").unwrap(), (1, 4));
    assert!(harness::sweep::parse_shard("4/4").is_err());
    assert!(harness::sweep::parse_shard("x").is_err());
}

/// A sweep inside a Slurm job array takes its shard from the array's variables (a 1-based array
/// here: task 2 of 2 is shard 1/2), in a child process so no other test sees the variables.
#[test]
fn a_sweep_in_a_slurm_array_runs_its_task_s_shard() {
    let dir = tmp("slurm-array");
    let file = write_sweep(&dir, TINY);
    let sweep = |id: &str, results: &str| {
        harness()
            .args(["sweep"])
            .arg(&file)
            .arg("--results")
            .arg(dir.join(results))
            .envs([("SLURM_ARRAY_TASK_ID", id), ("SLURM_ARRAY_TASK_COUNT", "2"), ("SLURM_ARRAY_TASK_MIN", "1")])
            .output()
            .unwrap()
    };
    let out = sweep("2", "results");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut ids: Vec<String> =
        harness::store::read_records(&dir.join("results")).unwrap().into_iter().map(|r| r.id).collect();
    let mut want: Vec<String> = Sweep::parse(TINY).unwrap().runs.into_iter().skip(1).step_by(2).map(|r| r.id).collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want, "task 2 of a 1-based array of 2 runs runs 1, 3 and 5");
    let out = sweep("3", "none");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard `2/2`: needs 0 <= i < n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_snapshot() {
    // Fixture records: five seeds of Softmax_norm and SoftTriple K=4 from the quickstart, and one
    // crafted diverged run. Regenerate the snapshot on purpose from the text this test prints when
    // it differs (`harness report` on these records would add the floors, which the test leaves out).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
    let records = harness::store::read_records(&dir).unwrap();
    assert_eq!(records.len(), 11);
    let opts = harness::report::ReportOptions {
        title: "Report: records".into(),
        baseline: "softmax_norm".into(),
        plot_stem: "report_snapshot".into(),
        floors: Default::default(),
    };
    let text = harness::report::render(&records, &opts);
    let snapshot = include_str!("fixtures/report_snapshot.md");
    if text != snapshot {
        let first = text.lines().zip(snapshot.lines()).position(|(a, b)| a != b);
        panic!("the report differs from the snapshot (first differing line: {first:?}):\n{text}");
    }
}

#[test]
fn a_verdict_says_not_converged_exactly_when_a_side_was_still_falling() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
    let mut records = harness::store::read_records(&dir).unwrap();
    let opts = harness::report::ReportOptions {
        title: "Report: records".into(),
        baseline: "softmax_norm".into(),
        plot_stem: "report_caveat".into(),
        floors: Default::default(),
    };
    let verdict = |records: &[harness::store::RunRecord]| {
        let text = harness::report::render(records, &opts);
        text[text.find("## Verdict").expect("a verdict section")..].to_string()
    };
    // The fixture's quickstart runs stopped while both losses were still falling.
    let as_recorded = verdict(&records);
    assert!(as_recorded.contains("**not converged**") && as_recorded.contains("*Not converged*"), "{as_recorded}");
    assert!(as_recorded.contains("(SoftTriple K=4 -") && as_recorded.contains(", Softmax_norm -"), "{as_recorded}");
    // Flat curves: no caveat.
    for r in &mut records {
        let n = r.outcome.diagnostics.epoch_loss.len();
        r.outcome.diagnostics.epoch_loss = vec![1.0; n];
    }
    let flat = verdict(&records);
    assert!(!flat.to_lowercase().contains("not converged"), "{flat}");
    // Only the baseline still falling: it alone is named.
    for r in records.iter_mut().filter(|r| r.config.loss.kind() == "softmax_norm") {
        let n = r.outcome.diagnostics.epoch_loss.len();
        r.outcome.diagnostics.epoch_loss = (0..n).map(|i| 2.0 - 1.5 * i as f64 / n as f64).collect();
    }
    let baseline_only = verdict(&records);
    assert!(baseline_only.contains("(Softmax_norm -"), "{baseline_only}");
    assert!(!baseline_only.contains("SoftTriple K=4 -"), "{baseline_only}");
}

#[test]
fn the_records_table_round_trips_through_parquet_and_csv() {
    use polars::prelude::*;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
    let records = harness::store::read_records(&dir).unwrap();
    let df = harness::table::dataframe(&records).unwrap();
    assert_eq!(df.height(), 11);
    let r1 = df.column("R@1").unwrap().f64().unwrap().clone();
    assert_eq!(r1.null_count(), 1, "the diverged run has no metrics");
    let first = records.iter().position(|r| r.outcome.metrics.is_some()).unwrap();
    let want = harness::analysis::metric_values(&records[first]).into_iter().find(|(k, _)| k == "R@1").unwrap().1;
    assert_eq!(r1.get(first), Some(want));

    let out = tmp("table");
    std::fs::create_dir_all(&out).unwrap();
    let (csv, parquet) = harness::table::export(&out, &records).unwrap();
    let back = ParquetReader::new(std::fs::File::open(&parquet).unwrap()).finish().unwrap();
    assert!(back.equals_missing(&df), "Parquet round trip changed the table");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 12, "a header and 11 rows");
    assert!(text.lines().next().unwrap().starts_with("id,slug,data,dim,loss"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_sweep_with_failed_runs_exits_non_zero_and_says_so_again_on_a_rerun() {
    let dir = tmp("failed");
    // Files that exist (so the sweep starts) but are not .npy arrays: every run fails at loading.
    let bad = dir.join("gone");
    std::fs::create_dir_all(&bad).unwrap();
    for f in ["a", "b", "c", "d"] {
        std::fs::write(bad.join(format!("{f}.npy")), "not an array").unwrap();
    }
    let text = TINY.replace(
        "  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}",
        &format!(
            "  - {{kind: features, train_features: {0}/a.npy, train_labels: {0}/b.npy, test_features: {0}/c.npy, test_labels: {0}/d.npy}}",
            bad.display()
        ),
    );
    let file = write_sweep(&dir, &text);
    let results = dir.join("results");
    for (attempt, want) in [
        (1, "6 run(s) of this shard are recorded as failed (6 now, 0 by an earlier invocation)"),
        (2, "(0 now, 6 by an earlier invocation)"),
    ] {
        let out = harness().args(["sweep"]).arg(&file).arg("--results").arg(&results).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "attempt {attempt}: {err}");
        assert!(err.contains(want) && err.contains("--retry-failed"), "attempt {attempt}: {err}");
    }
    let records = harness::store::read_records(&results).unwrap();
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r.outcome.error.as_deref().is_some_and(|e| e.contains("gone/a.npy"))));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn settings_that_cannot_run_are_refused_before_any_run_and_long_lists_are_capped() {
    let bad = TINY
        .replace("classes: 6,", "classes: 0,")
        .replace(
            "batch_size: 12, sampler: {kind: class_balanced, m: 2}",
            "batch_size: 0, sampler: {kind: class_balanced, m: 0}",
        )
        .replace("recall_at: [1, 2]", "recall_at: [1, 1000]");
    let e = format!("{:#}", Sweep::parse(&bad).unwrap_err());
    for needle in [
        "`data.classes`: 0",
        "`train.batch_size`: 0 is too small",
        "`train.sampler.m`: 0",
        "(6 run(s), e.g. synthetic-",
    ] {
        assert!(e.contains(needle), "`{needle}` missing in:\n{e}");
    }
    // m larger than a class's images, and R@K beyond the test split: known from the settings.
    let bad = TINY
        .replace("m: 2}", "m: 12}")
        .replace("batch_size: 12", "batch_size: 24")
        .replace("recall_at: [1, 2]", "recall_at: [1, 48]");
    let e = format!("{:#}", Sweep::parse(&bad).unwrap_err());
    assert!(e.contains("`train.sampler.m`: 12 images per class, but the data set has 8 per class"), "{e}");
    assert!(e.contains("`eval.recall_at`: R@48 needs more than 48 test images; the test split has 48"), "{e}");
    // Thousands of unknown keys: all counted, 50 shown.
    let many: String = (0..5000).map(|i| format!("junk{i}: 1\n")).collect();
    let e = format!("{:#}", Sweep::parse(&format!("{TINY}{many}")).unwrap_err());
    assert!(e.contains("5000 problem(s)") && e.contains("… and 4950 more"), "{}", &e[..300]);
    assert!(e.lines().count() < 60, "{} lines", e.lines().count());
}

#[test]
fn a_views_sweep_reports_its_floor_convergence_and_whether_the_regularizer_recovered_m() {
    let dir = tmp("views");
    let sweep = write_sweep(
        &dir,
        r#"
name: views-tiny
data:
  - {kind: views, classes: 8, views_per_class: 2, items_per_view: 4, input_dim: 16, map_hidden: 16}
losses:
  - {kind: softmax_norm}
  - {kind: soft_triple}
centers_per_class: [2, 4]
dims: [8]
seeds: [0, 1, 2]
model: {backbone: {kind: mlp, hidden: [16]}}
train: {device: cpu, epochs: 4, batch_size: 16, sampler: {kind: class_balanced, m: 2}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
"#,
    );
    let results = dir.join("results");
    let o = harness().arg("sweep").arg(&sweep).arg("--results").arg(&results).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("report.md");
    let o = harness().arg("report").arg(&results).arg("-o").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(&out).unwrap();
    for expected in [
        "### Calibration",
        "| floor: raw inputs ",
        "| floor: untrained model ",
        "best trained R@1 − the higher floor",
        "### Convergence",
        "The data has M = 2 views per class. SoftTriple K=4 at K = 4 ends with",
        "![effective centres against K, views, dim 8](report-centres-views-d8.svg)",
    ] {
        assert!(report.contains(expected), "no `{expected}` in:\n{report}");
    }
    assert!(dir.join("report-centres-views-d8.svg").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sweep_whose_data_is_missing_stops_before_any_run_and_records_nothing() {
    let dir = tmp("missing-data");
    let root = dir.join("not-downloaded");
    let text = TINY.replace(
        "  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}",
        &format!("  - {{kind: cub, root: {}}}", root.display()),
    );
    assert_ne!(text, TINY);
    let file = write_sweep(&dir, &text);
    let results = dir.join("results");
    for args in [vec!["plan"], vec!["sweep", "--results", results.to_str().unwrap()]] {
        let out = harness().args(&args[..1]).arg(&file).args(&args[1..]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert_eq!(text.matches("images.txt is missing").count(), 1, "{args:?}: the message once:\n{text}");
        assert!(text.contains("data set `cub`"), "{text}");
    }
    assert!(!results.join("runs").exists(), "no run was recorded");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `harness sweep FILE --results RESULTS --report REPORT` started, its standard error piped.
fn spawn_with_report(file: &Path, results: &Path, report: &Path) -> std::process::Child {
    let mut cmd = harness();
    cmd.arg("sweep").arg(file).arg("--results").arg(results).arg("--report").arg(report);
    cmd.stderr(std::process::Stdio::piped()).spawn().unwrap()
}

#[test]
fn runs_go_seed_by_seed_and_the_report_is_rewritten_after_each_round() {
    let dir = tmp("rounds");
    let file = write_sweep(&dir, TINY);
    let (results, report) = (dir.join("results"), dir.join("early.md"));
    let child = spawn_with_report(&file, &results, &report);
    // The first round (3 runs of seed 0) ends well before the second: its report appears meanwhile.
    let start = std::time::Instant::now();
    while !report.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let early = std::fs::read_to_string(&report).unwrap();
    let recorded_then = std::fs::read_dir(results.join("runs")).unwrap().count();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        early.starts_with("# Report: tiny, round 1 of 2 (seeds [0] of [0, 1]"),
        "{}",
        &early[..200.min(early.len())]
    );
    assert!(recorded_then < 6, "the sweep had finished before the early report was read");
    // The metric table (the first to name a row) counts one seed: the complete round alone.
    let row = early.lines().find(|l| l.starts_with("| Softmax_norm ")).unwrap_or_default();
    assert_eq!(row.split('|').nth(2).map(str::trim), Some("1"), "one seed: {row}\n{early}");
    let last = std::fs::read_to_string(&report).unwrap();
    assert!(last.starts_with("# Report: tiny, every round"), "{}", &last[..100.min(last.len())]);
    // The runs started seed by seed: every seed-0 run before any seed-1 run.
    let log = String::from_utf8_lossy(&out.stderr);
    let started: Vec<&str> =
        log.lines().filter_map(|l| l.split_once("] synthetic-")).filter_map(|(_, l)| l.split(' ').next()).collect();
    assert_eq!(started.len(), 6, "{log}");
    assert!(
        started[..3].iter().all(|s| s.ends_with("-s0")) && started[3..].iter().all(|s| s.ends_with("-s1")),
        "{started:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_processes_sharing_a_folder_write_each_rounds_report_once() {
    // Each round's report is written by the process whose run completed the round; before, both
    // processes wrote every round they saw complete (here about 7 reports for 4 rounds).
    let dir = tmp("rounds-shared");
    let file = write_sweep(&dir, &TINY.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]"));
    let (results, report) = (dir.join("results"), dir.join("early.md"));
    let (a, b) = (spawn_with_report(&file, &results, &report), spawn_with_report(&file, &results, &report));
    let logs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stderr).into_owned()
        })
        .collect();
    let all = logs.concat();
    // Each run is announced once, by the process that ran it; the other's skip is a debug line.
    let mut started: Vec<&str> =
        all.lines().filter_map(|l| l.split_once("] synthetic-")).filter_map(|(_, l)| l.split(' ').next()).collect();
    started.sort();
    let announced = started.len();
    started.dedup();
    assert_eq!((announced, started.len()), (12, 12), "{all}");
    assert!(!all.contains("not run here"), "{all}");
    let written: Vec<&str> = all.lines().filter_map(|l| l.split_once("INFO report of ").map(|(_, r)| r)).collect();
    // Rounds that complete together (one process's last run of a round outlasting the other's runs
    // of the next) are one report; the last is of every round.
    assert!(written.iter().any(|w| w.starts_with("every round")), "no final report: {written:?}");
    // No round twice, even where both processes finished a round's last runs at once.
    let labels: std::collections::BTreeSet<&str> = written.iter().map(|w| w.split(':').next().unwrap()).collect();
    assert_eq!(written.len(), labels.len(), "a round reported twice: {written:?}");
    assert!(written.len() <= 4, "{} reports for 4 rounds: {written:?}", written.len());
    assert_eq!(std::fs::read_dir(results.join("runs")).unwrap().count(), 12);
    // Never an older round's report over a newer one: the file holds every round.
    let last = std::fs::read_to_string(&report).unwrap();
    assert!(last.starts_with("# Report: tiny, every round"), "{written:?}\n{}", &last[..100.min(last.len())]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resumed_sweep_writes_the_report_of_its_complete_rounds_before_its_first_run() {
    let dir = tmp("rounds-resumed");
    let file = write_sweep(&dir, TINY);
    let (results, report) = (dir.join("results"), dir.join("early.md"));
    let first = harness().arg("sweep").arg(&file).arg("--results").arg(&results).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(!report.exists());
    // One run of the second round lost: round 1 is complete, round 2 is not.
    let lost = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("-s1"))
        .expect("a seed-1 record");
    std::fs::remove_file(&lost).unwrap();
    let out =
        harness().arg("sweep").arg(&file).arg("--results").arg(&results).arg("--report").arg(&report).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{log}"));
    assert!(at("INFO report of round 1 of 2") < at("[1/1] synthetic-"), "{log}");
    assert!(at("INFO report of every round") > at("[1/1] synthetic-"), "{log}");
    assert_eq!(log.matches("INFO report of ").count(), 2, "{log}");
    // Every round recorded and its report written: a third invocation rewrites nothing ...
    let before = std::fs::read_to_string(&report).unwrap();
    let again = |extra: &[&str]| {
        let mut cmd = harness();
        cmd.arg("sweep").arg(&file).arg("--results").arg(&results).arg("--report").arg(&report).args(extra);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = again(&[]);
    assert_eq!(log.matches("INFO report of ").count(), 0, "{log}");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), before);
    // ... until the file is another report (here one without the records' mark) ...
    std::fs::write(&report, before.lines().next().unwrap()).unwrap();
    let log = again(&[]);
    assert_eq!(log.matches("INFO report of every round").count(), 1, "{log}");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), before);
    // ... or another baseline is asked for.
    let log = again(&["--baseline", "soft_triple"]);
    assert_eq!(log.matches("INFO report of every round").count(), 1, "{log}");
    assert_ne!(std::fs::read_to_string(&report).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_process_that_finds_a_run_recorded_leaves_no_lock_folder_behind() {
    // Two processes on one folder: the second locks a run the first has just recorded, finds the
    // record and moves on. Its lock made `work/<id>/`; nothing may stay there.
    let dir = tmp("lock-left");
    let sweep = Sweep::parse(TINY).unwrap();
    let run = &sweep.runs[0];
    let results = dir.join("results");
    let opts = harness::execute::ExecuteOptions::default();
    let first = harness::execute::execute_run(&run.config, &results, &opts, &|_| {}).unwrap();
    assert!(matches!(first, harness::execute::Executed::Ran(..)));
    let work = harness::execute::work_dir(&results, &run.id);
    assert!(!work.exists(), "the run's own work folder is removed with its record");
    let second = harness::execute::execute_run(&run.config, &results, &opts, &|_| {}).unwrap();
    assert!(matches!(second, harness::execute::Executed::AlreadyRecorded(..)));
    assert!(!work.exists(), "{} is left behind", work.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn jobs_start_workers_that_divide_the_cores_and_oversubscribing_processes_are_warned() {
    let dir = tmp("jobs");
    let file = write_sweep(&dir, TINY);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_worker = harness::sweep::workers::threads_per_worker(cores, 2);
    let jobs = dir.join("jobs");
    let out = harness().args(["sweep"]).arg(&file).arg("--results").arg(&jobs).args(["--jobs", "2"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("--jobs 2: 2 worker(s) of {per_worker} libtorch thread(s) on {cores} cores")),
        "{err}"
    );
    assert!(err.contains("[worker 1]") && err.contains("[worker 2]"), "{err}");
    assert!(err.contains(&format!("libtorch threads: {per_worker} (--threads)")) && !err.contains("WARN"), "{err}");
    let records = harness::store::read_records(&jobs).unwrap();
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r.provenance.threads == per_worker as i32), "the record stores the threads");
    let shards: std::collections::BTreeSet<&str> = records.iter().map(|r| r.provenance.host.as_str()).collect();
    assert_eq!(shards.len(), 1);
    // One process with the same threads records the same results.
    let one = dir.join("one");
    let out = harness()
        .args(["sweep"])
        .arg(&file)
        .arg("--results")
        .arg(&one)
        .args(["--threads", &per_worker.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(outcomes(&one), outcomes(&jobs));
    // Two processes that each take every core: each sees the other and one of them says so.
    let over = dir.join("over");
    let procs: Vec<_> = (0..2)
        .map(|_| {
            harness()
                .args(["sweep"])
                .arg(&file)
                .arg("--results")
                .arg(&over)
                .args(["--threads", &cores.to_string()])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logs: Vec<String> =
        procs.into_iter().map(|p| String::from_utf8_lossy(&p.wait_with_output().unwrap().stderr).to_string()).collect();
    let warned: Vec<&String> = logs.iter().filter(|l| l.contains("oversubscribe the cores")).collect();
    assert!(!warned.is_empty(), "{logs:?}");
    assert!(warned.iter().all(|l| l.matches("oversubscribe the cores").count() == 1), "warned once per process");
    assert!(warned[0].contains("2 sweep processes share") && warned[0].contains("--jobs 2"), "{}", warned[0]);
    std::fs::remove_dir_all(&dir).unwrap();
}
