//! The fair-comparison protocol end to end: its bad inputs, the test split out of reach of the
//! search phase, a search killed and resumed against an uninterrupted one, and its report.
mod common;

use harness::store::RunRecord;
use harness::sweep::Sweep;
use harness::train::{CheckpointPlan, StopReason};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small search: two losses, 6 TPE trials each in generations of 2, a holdout split, 2 seeds.
const SWEEP: &str = r#"
name: tiny-tune
data:
  - {kind: views, classes: 12, views_per_class: 2, items_per_view: 4, input_dim: 16, map_hidden: 32, latent_dim: 4, nuisance_dim: 4}
losses:
  - {kind: softmax_norm}
  - {kind: soft_triple, centers_per_class: 2}
dims: [16]
seeds: [0, 1]
model: {backbone: {kind: mlp, hidden: [32]}}
train: {device: cpu, epochs: 8, batch_size: 16, sampler: {kind: class_balanced, m: 4}, lr: {backbone: 0.003, head: 0.003}, lr_step_epochs: null}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
protocol:
  split: {kind: holdout, validation_fraction: 0.5}
  selection: {metric: MAP@R, every: 2, patience: 2}
  search: {sampler: tpe, trials: 6, generation: 2, seed: 3}
  spaces:
    softmax_norm:
      la: {low: 5, high: 40}
      lr.centers: {low: 0.001, high: 0.1, log: true}
    soft_triple:
      la: {low: 5, high: 40}
      gamma: {low: 0.02, high: 0.5, log: true}
"#;

fn errors_of(yaml: &str) -> String {
    format!("{:#}", Sweep::parse(yaml).expect_err("the sweep must be refused"))
}

#[test]
fn bad_protocol_input_is_refused_before_any_run_naming_the_key() {
    let with = |from: &str, to: &str| {
        assert!(SWEEP.contains(from), "{from}");
        SWEEP.replacen(from, to, 1)
    };
    let cases = [
        (
            with(
                "      la: {low: 5, high: 40}\n      lr.centers",
                "      lambda: {low: 5, high: 40}\n      lr.centers",
            ),
            vec!["`protocol.spaces.softmax_norm.lambda`", "expected one of la, margin"],
        ),
        (
            with("gamma: {low: 0.02, high: 0.5, log: true}", "gamma: {low: 0.5, high: 0.5}"),
            vec!["`protocol.spaces.soft_triple.gamma`", "below high"],
        ),
        (
            with("gamma: {low: 0.02, high: 0.5, log: true}", "gamma: {low: 0, high: 0.5, log: true}"),
            vec!["log range", "above 0"],
        ),
        (with("trials: 6", "trials: 0"), vec!["`protocol.search.trials`", "at least 1"]),
        (with("patience: 2", "patience: 4"), vec!["`protocol.selection.patience`", "`train.epochs` 8"]),
        (with("classes: 12", "classes: 3"), vec!["`protocol.split`", "at least 2"]),
        (
            with(
                "    soft_triple:\n      la",
                "    proxy_nca:\n      scale: {low: 1, high: 3}\n    soft_triple:\n      la",
            ),
            vec!["`protocol.spaces.proxy_nca`", "no loss of that kind"],
        ),
        (with("patience: 2", "pateince: 2"), vec!["`protocol`", "pateince", "patience"]),
        (
            with("validation_fraction: 0.5}", "validation_fraction: 0.5}\n  concatenated: true"),
            vec!["`protocol.concatenated`", "folds"],
        ),
    ];
    for (yaml, needles) in cases {
        let e = errors_of(&yaml);
        for n in needles {
            assert!(e.contains(n), "expected {n:?} in: {e}");
        }
    }
    assert!(Sweep::parse(SWEEP).is_ok());
}

fn sweep_cmd(file: &Path, results: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.arg("sweep").arg(file).arg("--results").arg(results).env("OMP_NUM_THREADS", "1");
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// (slug, the protocol part, the validation curve and test metrics as JSON) of every record.
fn outcomes(results: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = harness::store::read_records(results)
        .unwrap()
        .into_iter()
        .map(|r| {
            let what = (&r.config.protocol, &r.outcome.selection.as_ref().map(|s| &s.curve), &r.outcome.metrics);
            (r.slug.clone(), serde_json::to_string(&what).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// Runs `harness report` on `results` into `out` and returns the report.
fn report_text(results: &Path, out: &Path) -> String {
    let st =
        Command::new(env!("CARGO_BIN_EXE_harness")).arg("report").arg(results).arg("-o").arg(out).status().unwrap();
    assert!(st.success());
    std::fs::read_to_string(out).unwrap()
}

fn records(results: &Path) -> Vec<RunRecord> {
    harness::store::read_records(results).unwrap()
}

#[test]
fn a_killed_search_resumes_to_the_same_trials_and_best_setting() {
    let dir = common::scratch("protocol", "resume");
    let file = dir.join("tune.yaml");
    std::fs::write(&file, SWEEP).unwrap();
    let clean = dir.join("clean");
    assert!(sweep_cmd(&file, &clean).status().unwrap().success());
    let done = records(&clean);
    // 2 studies × (1 default + 6 trials) search runs + 2 settings × 2 seeds final runs.
    assert_eq!(done.len(), 2 * 7 + 2 * 4, "{:?}", done.iter().map(|r| &r.slug).collect::<Vec<_>>());

    // Killed between the checkpoint of the epoch that stopped it on patience and its record: the
    // run resumes stopped (it trained on, past its patience, and its curve grew a point).
    let stopped = done
        .iter()
        .find(|r| r.outcome.selection.as_ref().is_some_and(|s| s.stop == StopReason::Patience))
        .expect("a search run that stopped on patience");
    let plan = CheckpointPlan { path: dir.join("stopped").join("checkpoint.ot"), config_hash: stopped.id.clone() };
    let first = harness::train::run(&stopped.config, Some(&plan), &|_| {}).unwrap();
    let first_selection = first.selection.clone().unwrap();
    assert_eq!(first_selection.stop, StopReason::Patience, "{first_selection:?}");
    assert!(first_selection.curve.last().unwrap().0 < stopped.config.train.epochs, "{first_selection:?}");
    let again = harness::train::run(&stopped.config, Some(&plan), &|_| {}).unwrap();
    assert!(again.diagnostics.resumed_from_epoch.is_some());
    assert_eq!(again.selection, first.selection);
    assert_eq!(again.diagnostics.steps, first.diagnostics.steps);

    // Kill the search three times, each time after a few more records exist, then let it finish.
    let killed = dir.join("killed");
    for stop_at in [3, 8, 13] {
        let mut child = sweep_cmd(&file, &killed).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while killed.join("runs").read_dir().map_or(0, |d| d.count()) < stop_at && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(records(&killed).len() < done.len(), "the kills came too late to interrupt the search");
    assert!(sweep_cmd(&file, &killed).status().unwrap().success());
    assert_eq!(
        outcomes(&killed),
        outcomes(&clean),
        "the resumed search asked other trials or trained them differently"
    );

    // Two processes sharing one folder run no trial twice and end at the same records.
    let shared = dir.join("shared");
    let mut a = sweep_cmd(&file, &shared).spawn().unwrap();
    let mut b = sweep_cmd(&file, &shared).spawn().unwrap();
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    assert_eq!(outcomes(&shared), outcomes(&clean));

    // The report has every section, and a changed space is refused with the difference named.
    let text = report_text(&clean, &dir.join("report.md"));
    for heading in [
        "## Protocol",
        "## views d16 SoftTriple K=2",
        "Budget spent: 6 of 6 trials",
        "## Best so far against trials",
        "## Default against tuned",
        "## Fairness card",
        "# The tuned settings on the test split",
        "## Verdict",
    ] {
        assert!(text.contains(heading), "the report lacks {heading:?}:\n{text}");
    }
    assert!(dir.join("report-best-so-far-views-d16.svg").is_file());
    std::fs::write(&file, SWEEP.replace("la: {low: 5, high: 40}\n      gamma", "la: {low: 5, high: 30}\n      gamma"))
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("sweep")
        .arg(&file)
        .arg("--results")
        .arg(&clean)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("spaces.soft_triple.la.high") && err.contains("was 40"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a PNG of `size`² pixels whose colour depends on `class` and `i`.
fn png(path: &Path, class: u8, i: u8) {
    let img =
        image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([class.wrapping_mul(40), (x as u8) * 8 + i, (y as u8) * 8]));
    img.save(path).unwrap();
}

#[test]
fn the_search_phase_never_reads_the_test_split() {
    // An image folder whose test classes (the second half of the sorted class folders) hold files
    // that are not images: any code that decodes a test item fails on them.
    let dir = common::scratch("protocol", "no-test");
    for c in 0..8u8 {
        let class = dir.join(format!("c{c}"));
        std::fs::create_dir_all(&class).unwrap();
        for i in 0..4u8 {
            let p = class.join(format!("im{i}.png"));
            if c < 4 {
                png(&p, c, i);
            } else {
                std::fs::write(&p, b"not an image").unwrap();
            }
        }
    }
    let yaml = format!(
        r#"
data: {{kind: folder, root: {root}}}
model: {{backbone: {{kind: small_cnn, channels: [8]}}}}
loss: {{kind: softmax_norm}}
dim: 8
seed: 0
train: {{device: cpu, epochs: 2, batch_size: 4, sampler: {{kind: class_balanced, m: 2}}, workers: 1, transform: {{size: 16, resize: 20}}}}
eval: {{recall_at: [1], nmi: false}}
protocol:
  study: folder d8 Softmax_norm
  phase: search
  setting: default
  split: {{kind: holdout, validation_fraction: 0.5}}
  fold: 0
  selection: {{metric: MAP@R, every: 1, patience: 1}}
  search: {{sampler: random, trials: 1}}
  space: {{}}
  params: {{}}
"#,
        root = dir.display()
    );
    let search: harness::train::RunConfig = serde_yaml::from_str(&yaml).unwrap();
    let out = harness::train::run(&search, None, &|_| {}).expect("the search phase runs without the test split");
    let sel = out.selection.expect("a selection outcome");
    assert_eq!((sel.training_classes, sel.validation_classes, sel.validation_items), (2, 2, 8));
    assert!(out.metrics.is_none(), "a search run has no test metrics");
    assert!(!sel.curve.is_empty() && sel.best_value.is_some_and(f64::is_finite));

    let mut fin = search.clone();
    let p = fin.protocol.as_mut().unwrap();
    p.phase = harness::protocol::Phase::Final;
    let e =
        format!("{:#}", harness::train::run(&fin, None, &|_| {}).expect_err("the final phase reads the test split"));
    assert!(e.contains("c4") || e.contains("c5") || e.contains("c6") || e.contains("c7"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// R@1 of the L2-normalised `parts` concatenated, by brute force in f64 (cosine of every pair).
fn concatenated_recall_at_1(parts: &[Vec<Vec<f32>>], labels: &[i64]) -> f64 {
    let unit = |v: &[f32]| {
        let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        v.iter().map(|x| f64::from(*x) / n).collect::<Vec<f64>>()
    };
    let rows: Vec<Vec<f64>> = (0..labels.len()).map(|i| parts.iter().flat_map(|p| unit(&p[i])).collect()).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let hits = (0..rows.len())
        .filter(|&i| {
            let nearest = (0..rows.len())
                .filter(|&j| j != i)
                .max_by(|&a, &b| dot(&rows[i], &rows[a]).total_cmp(&dot(&rows[i], &rows[b])))
                .unwrap();
            labels[nearest] == labels[i]
        })
        .count();
    hits as f64 / rows.len() as f64
}

#[test]
fn folds_with_the_concatenated_evaluation_join_each_seeds_fold_models() {
    let dir = common::scratch("protocol", "concatenated");
    let file = dir.join("tune.yaml");
    let yaml = SWEEP
        .replace("split: {kind: holdout, validation_fraction: 0.5}", "split: {kind: folds, k: 3}\n  concatenated: true")
        .replace("trials: 6, generation: 2", "trials: 2, generation: 2")
        .replace("epochs: 8", "epochs: 4")
        .replace("patience: 2", "patience: 1");
    std::fs::write(&file, &yaml).unwrap();
    let results = dir.join("results");
    assert!(sweep_cmd(&file, &results).status().unwrap().success());
    let all = records(&results);
    let concat: Vec<&RunRecord> = all.iter().filter(|r| r.slug.ends_with("-concatenated")).collect();
    // 2 studies × ((1 default + 2 trials) × 3 folds + 2 settings × 2 seeds × (3 folds + 1 concatenated)).
    assert_eq!(all.len(), 2 * (3 * 3 + 2 * 2 * 4));
    assert_eq!(concat.len(), 2 * 2 * 2, "{:?}", all.iter().map(|r| &r.slug).collect::<Vec<_>>());

    // Each concatenated evaluation is the brute-force R@1 of its seed's three fold models' kept
    // test embeddings, normalised and joined.
    for c in &concat {
        let m = c.outcome.metrics.as_ref().expect("a finished evaluation has metrics");
        assert_eq!(m.dim, 3 * 16, "{}: three models of size 16 side by side", c.slug);
        // Its members found from the records alone: the same study, setting and seed, one per fold.
        let cp = c.config.protocol.as_ref().unwrap();
        let mut members: Vec<&RunRecord> = all
            .iter()
            .filter(|r| {
                let p = r.config.protocol.as_ref().unwrap();
                (p.study == cp.study && p.setting == cp.setting && r.config.seed == c.config.seed)
                    && p.phase == harness::protocol::Phase::Final
                    && p.fold.is_some()
            })
            .collect();
        members.sort_by_key(|r| r.config.protocol.as_ref().unwrap().fold);
        assert_eq!(members.len(), 3);
        let (mut parts, mut labels) = (vec![], vec![]);
        for r in members {
            let folder = harness::execute::embeddings_dir(&results, &r.id);
            let e = harness::npy::read_embeddings(&folder.join("embeddings.npy")).unwrap();
            let l = harness::npy::read_labels(&folder.join("labels.npy")).unwrap();
            parts.push(Vec::<Vec<f32>>::try_from(&e).unwrap());
            labels = Vec::<i64>::try_from(&l).unwrap();
        }
        let r1 = m.retrieval.recall_at_k[0];
        assert_eq!(r1.0, 1);
        let expected = concatenated_recall_at_1(&parts, &labels);
        assert!((r1.1 - expected).abs() < 1e-9, "{}: R@1 {} against brute force {expected}", c.slug, r1.1);
    }

    // Deleted, an evaluation is made again from the kept embeddings, identically; with a fold's
    // embeddings gone, it is recorded as failed, naming the missing file.
    let one = concat.iter().find(|r| r.slug.contains("final-default")).unwrap();
    let path = results.join("runs").join(harness::store::record_file_name(&one.id, &one.slug));
    std::fs::remove_file(&path).unwrap();
    assert!(sweep_cmd(&file, &results).status().unwrap().success());
    let again: RunRecord = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(again.outcome.metrics, one.outcome.metrics);
    let member = one.config.protocol.as_ref().unwrap().members().remove(1);
    let config = harness::train::RunConfig { protocol: Some(member), ..one.config.clone() };
    let gone = harness::execute::embeddings_dir(&results, &harness::store::run_id(&config)).join("embeddings.npy");
    std::fs::remove_file(&gone).unwrap();
    std::fs::remove_file(&path).unwrap();
    // A final-phase run that failed leaves its loss without a result: the sweep exits 1.
    assert_eq!(sweep_cmd(&file, &results).status().unwrap().code(), Some(1));
    let failed: RunRecord = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let err = failed.outcome.error.unwrap_or_default();
    assert!(failed.outcome.metrics.is_none() && err.contains("fold 1") && err.contains("embeddings.npy"), "{err}");

    let text = report_text(&results, &dir.join("report.md"));
    for needle in [
        "# The tuned settings on the test split, concatenated evaluation",
        "also evaluates the fold models concatenated",
        "Test R@1 of the tuned fold models concatenated",
        "(concatenated evaluation)",
    ] {
        assert!(text.contains(needle), "the report lacks {needle:?}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A folder data set of 8 classes × 4 images: c0–c3 train, c4–c7 test; with `broken`, every test
/// image is bytes that are not an image.
fn image_folder(dir: &Path, broken: bool) {
    for c in 0..8u8 {
        let class = dir.join(format!("c{c}"));
        std::fs::create_dir_all(&class).unwrap();
        for i in 0..4u8 {
            let p = class.join(format!("im{i}.png"));
            if c >= 4 && broken {
                std::fs::write(&p, b"not an image").unwrap();
            } else {
                png(&p, c, i);
            }
        }
    }
}

/// `harness sweep FILE --results RESULTS ARGS…`: (exit code, standard error).
fn sweep_status(file: &Path, results: &Path, args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("sweep")
        .arg(file)
        .arg("--results")
        .arg(results)
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).to_string())
}

/// (slug, what it recorded as JSON) of some records.
type Outcomes = Vec<(String, String)>;

/// (slug, test metrics as JSON) of the final-phase records, and (slug, validation curve) of the trials.
fn finals_and_trials(results: &Path) -> (Outcomes, Outcomes) {
    let (mut finals, mut trials) = (vec![], vec![]);
    for r in records(results) {
        let p = r.config.protocol.as_ref().unwrap();
        if p.phase == harness::protocol::Phase::Final {
            finals.push((r.slug.clone(), serde_json::to_string(&r.outcome.metrics).unwrap()));
        } else {
            trials.push((r.slug.clone(), serde_json::to_string(&r.outcome.selection).unwrap()));
        }
    }
    finals.sort();
    trials.sort();
    (finals, trials)
}

#[test]
fn a_failed_final_phase_exits_1_and_retry_failed_recovers_the_uninterrupted_results_bit_for_bit() {
    let dir = common::scratch("protocol", "final-fails");
    let data = dir.join("images");
    image_folder(&data, true);
    let file = dir.join("tune.yaml");
    let yaml = format!(
        r#"
name: final-fails
data: [{{kind: folder, root: '{}'}}]
losses: [{{kind: softmax_norm}}]
dims: [8]
seeds: [0, 1]
model: {{backbone: {{kind: small_cnn, channels: [8]}}}}
train: {{device: cpu, epochs: 2, batch_size: 4, sampler: {{kind: class_balanced, m: 2}}, workers: 1, transform: {{size: 16, resize: 16}}}}
eval: {{recall_at: [1], kmeans_restarts: 1}}
protocol:
  split: {{kind: holdout, validation_fraction: 0.5}}
  selection: {{metric: MAP@R, every: 1, patience: 1}}
  search: {{sampler: random, trials: 2, seed: 1}}
  spaces: {{softmax_norm: {{la: {{low: 10, high: 30}}}}}}
"#,
        data.display()
    );
    std::fs::write(&file, yaml).unwrap();
    let broken = dir.join("broken");
    let report = dir.join("report.md");
    let (code, err) = sweep_status(&file, &broken, &["--report", report.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("0 trial(s) did not finish") && err.contains("4 final-phase run(s)"), "{err}");
    assert!(err.contains("the final phase did not finish: 4 run(s)") && err.contains("cannot read image"), "{err}");
    assert!(err.contains("rerun with --retry-failed"), "{err}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("**no final result**: its 2 final run(s) on the test split failed"), "{text}");
    let (_, trials_before) = finals_and_trials(&broken);

    image_folder(&data, false); // repaired
    let (code, err) = sweep_status(&file, &broken, &[]);
    assert_eq!(code, 1, "a plain rerun runs nothing and still says the final phase failed: {err}");
    let (code, err) = sweep_status(&file, &broken, &["--retry-failed"]);
    assert_eq!(code, 0, "{err}");
    let (finals, trials_after) = finals_and_trials(&broken);
    assert_eq!(trials_after, trials_before, "the retry never changes a trial");

    let clean = dir.join("clean");
    let (code, err) = sweep_status(&file, &clean, &[]);
    assert_eq!(code, 0, "{err}");
    let (clean_finals, clean_trials) = finals_and_trials(&clean);
    assert_eq!(clean_trials, trials_after);
    assert_eq!(finals.len(), 4);
    assert_eq!(finals, clean_finals, "retried final runs equal an uninterrupted sweep's, bit for bit");
    let _ = std::fs::remove_dir_all(&dir);
}
