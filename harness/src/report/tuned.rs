//! The report of a sweep run under a fair-comparison protocol (`crate::protocol`): per loss, the
//! space searched, the budget spent, the best setting (flagged where it sits at the edge of its
//! range), its validation score and its test result; a best-so-far chart per table; the default
//! against the tuned settings; a fairness card; then the usual tables and verdict on the tuned
//! settings' final runs.
use super::{provenance, tables, unfinished, verdict_section, Plot, ReportOptions};
use crate::protocol::{Phase, RunProtocol, Setting, SplitConfig};
use crate::stats::summarize;
use crate::store::RunRecord;
use crate::train::RunStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use tabled::{builder::Builder, settings::Style};

fn proto(r: &RunRecord) -> &RunProtocol {
    r.config.protocol.as_ref().expect("a protocol record")
}

/// The records of one study, by role.
struct Study<'a> {
    key: String,
    order: (usize, String, i64, bool),
    search: Vec<&'a RunRecord>,
    final_tuned: Vec<&'a RunRecord>,
    final_default: Vec<&'a RunRecord>,
    /// The concatenated evaluations of the tuned setting's fold models (`protocol.concatenated`).
    concatenated: Vec<&'a RunRecord>,
}

/// Mean validation score over folds of the runs of one trial (failed: 0) and its standard error.
fn score(runs: &[&RunRecord]) -> (f64, f64) {
    let v: Vec<f64> = runs
        .iter()
        .map(|r| {
            let best = r.outcome.selection.as_ref().and_then(|s| s.best_value);
            crate::protocol::run_value(r.outcome.status == RunStatus::Finished, best)
        })
        .collect();
    crate::protocol::mean_and_se(&v)
}

fn fmt_score((m, se): (f64, f64)) -> String {
    if se.is_finite() {
        format!("{m:.2} ± {se:.2}")
    } else {
        format!("{m:.2}")
    }
}

/// Each trial's runs by index (the default's under `None`), in order.
fn trials<'a>(search: &[&'a RunRecord]) -> BTreeMap<Option<u32>, Vec<&'a RunRecord>> {
    let mut m: BTreeMap<Option<u32>, Vec<&RunRecord>> = BTreeMap::new();
    for r in search {
        m.entry(proto(r).trial).or_default().push(r);
    }
    m
}

/// The test metric over the final runs, per seed (folds: the mean over a seed's fold models).
fn test_values(runs: &[&RunRecord], metric: &str) -> Vec<(u64, f64)> {
    let mut by_seed: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (seed, v) in crate::analysis::seeded_values(runs, metric) {
        by_seed.entry(seed).or_default().push(v);
    }
    by_seed.into_iter().map(|(s, v)| (s, v.iter().sum::<f64>() / v.len() as f64)).collect()
}

fn fmt_test(values: &[(u64, f64)]) -> String {
    let v: Vec<f64> = values.iter().map(|x| x.1).collect();
    let s = summarize(&v, 0.95);
    match v.len() {
        0 => "–".into(),
        1 => format!("{:.2}", s.mean),
        _ => format!("{:.2} ± {:.2}", s.mean, s.ci95),
    }
}

/// One record per study and seed: a seed's fold models (`folds`) as one, their test metrics averaged.
fn fold_means(records: &[&RunRecord]) -> Vec<RunRecord> {
    let mut groups: BTreeMap<(String, u64), Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        groups.entry((proto(r).study.clone(), r.config.seed)).or_default().push(r);
    }
    groups
        .into_values()
        .map(|g| {
            let mut one = g[0].clone();
            let n = g.len() as f64;
            let mean = |f: &dyn Fn(&crate::eval::EvalReport) -> f64| {
                g.iter().filter_map(|r| r.outcome.metrics.as_ref()).map(f).sum::<f64>() / n
            };
            if let (Some(m), true) = (one.outcome.metrics.as_mut(), g.len() > 1) {
                let ks: Vec<i64> = m.retrieval.recall_at_k.iter().map(|x| x.0).collect();
                for (i, k) in ks.into_iter().enumerate() {
                    m.retrieval.recall_at_k[i].1 =
                        mean(&|x| x.retrieval.recall_at_k.iter().find(|y| y.0 == k).map_or(f64::NAN, |y| y.1));
                }
                m.retrieval.map_at_r = mean(&|x| x.retrieval.map_at_r);
                m.retrieval.r_precision = mean(&|x| x.retrieval.r_precision);
                if let Some(nmi) = m.nmi.as_mut() {
                    nmi.nmi = mean(&|x| x.nmi.as_ref().map_or(f64::NAN, |y| y.nmi));
                }
            }
            one
        })
        .collect()
}

/// The best trial's index and runs: the first with the highest mean validation score.
fn best<'a>(t: &BTreeMap<Option<u32>, Vec<&'a RunRecord>>) -> Option<(u32, Vec<&'a RunRecord>)> {
    let trials: Vec<(u32, &Vec<&RunRecord>)> = t.iter().filter_map(|(i, r)| i.map(|i| (i, r))).collect();
    // As the search chose: among trials with a finished run, the first with the highest score.
    let scored: Vec<(bool, Option<f64>)> = trials
        .iter()
        .map(|(_, runs)| (runs.iter().any(|r| r.outcome.status == RunStatus::Finished), Some(score(runs).0)))
        .collect();
    crate::protocol::first_best(&scored).map(|b| (trials[b].0, trials[b].1.clone()))
}

/// Builds the protocol report and its best-so-far charts.
pub(super) fn render(records: &[RunRecord], opts: &ReportOptions) -> (String, Vec<Plot>) {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", opts.title);
    provenance(&mut s, records);
    let protocol: Vec<&RunRecord> = records.iter().filter(|r| r.config.protocol.is_some()).collect();
    let mut studies: BTreeMap<String, Study> = BTreeMap::new();
    for r in &protocol {
        let p = proto(r);
        let st = studies.entry(p.study.clone()).or_insert_with(|| Study {
            key: p.study.clone(),
            order: r.config.loss.report_order(),
            search: vec![],
            final_tuned: vec![],
            final_default: vec![],
            concatenated: vec![],
        });
        match (p.phase, p.setting) {
            (Phase::Final, _) if p.is_concatenated_evaluation() => {
                if p.setting == Setting::Tuned {
                    st.concatenated.push(r);
                }
            }
            (Phase::Search, _) => st.search.push(r),
            (Phase::Final, Setting::Tuned) => st.final_tuned.push(r),
            (Phase::Final, _) => st.final_default.push(r),
        }
        if p.setting == Setting::Default {
            st.order = r.config.loss.report_order();
        }
    }
    let mut studies: Vec<Study> = studies.into_values().collect();
    studies.sort_by(|a, b| {
        (a.key.split(' ').take(2).collect::<Vec<_>>(), &a.order).cmp(&(b.key.split(' ').take(2).collect(), &b.order))
    });
    let concatenated = studies.iter().any(|st| !st.concatenated.is_empty());
    protocol_section(&mut s, proto(protocol[0]), concatenated);
    let mut plots = vec![];
    for st in &studies {
        study_section(&mut s, st);
    }
    plots.extend(best_so_far(&mut s, &studies, &opts.plot_stem));
    default_vs_tuned(&mut s, &studies);
    fairness(&mut s, &studies);
    let _ = writeln!(s, "# The tuned settings on the test split\n");
    let _ = writeln!(s, "Each loss at its best setting, trained with every seed of the sweep and evaluated once on the test split; compared as in every report of the harness.\n");
    let tuned: Vec<&RunRecord> = studies
        .iter()
        .flat_map(|st| st.final_tuned.iter().copied())
        .filter(|r| r.outcome.status == RunStatus::Finished)
        .collect();
    let per_seed = fold_means(&tuned);
    let mut verdicts = tables(&mut s, &per_seed.iter().collect::<Vec<_>>(), opts, &mut plots);
    verdicts.extend(concatenated_section(&mut s, &studies, opts, &mut plots));
    verdicts.extend(studies.iter().filter_map(missing_final));
    unfinished(&mut s, records);
    verdict_section(&mut s, &verdicts, &opts.baseline);
    if !verdicts.is_empty() {
        let _ = writeln!(s, "This verdict is on the tuned settings: every loss had the same search budget on the validation classes, and its test result comes from its own best setting.\n");
    }
    (s, plots)
}

/// The verdict line of a study without any finished final run at its tuned setting: it is not
/// compared, and the line says why.
fn missing_final(st: &Study) -> Option<String> {
    if st.final_tuned.iter().any(|r| r.outcome.status == RunStatus::Finished) {
        return None;
    }
    Some(if st.final_tuned.is_empty() {
        format!("- {}: **no final result yet** (its final phase has not run): not compared", st.key)
    } else {
        format!(
            "- {}: **no final result**: its {} final run(s) on the test split failed or diverged (Runs that did not finish); not compared",
            st.key,
            st.final_tuned.len()
        )
    })
}

/// The tables and verdict lines of MLRC's concatenated evaluation, where the sweep asked for it.
fn concatenated_section(s: &mut String, studies: &[Study], opts: &ReportOptions, plots: &mut Vec<Plot>) -> Vec<String> {
    let runs: Vec<&RunRecord> = studies
        .iter()
        .flat_map(|st| st.concatenated.iter().copied())
        .filter(|r| r.outcome.status == RunStatus::Finished)
        .collect();
    if runs.is_empty() {
        return vec![];
    }
    let k = proto(runs[0]).split.folds();
    let _ = writeln!(
        s,
        "# The tuned settings on the test split, concatenated evaluation
"
    );
    let _ = writeln!(s, "MLRC's second evaluation: each seed's {k} fold models as one model, their test embeddings L2-normalised and concatenated ({k} × the embedding size), evaluated once. The tables above average the {k} models' separate results instead.
");
    let opts = ReportOptions { plot_stem: format!("{}-concatenated", opts.plot_stem), ..opts.clone() };
    tables(s, &runs, &opts, plots).into_iter().map(|v| format!("{v} (concatenated evaluation)")).collect()
}

fn sampler_name(p: &RunProtocol) -> String {
    serde_json::to_value(p.search.sampler).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// What the protocol did, in words.
fn protocol_section(s: &mut String, p: &RunProtocol, concatenated: bool) {
    let split = match p.split {
        SplitConfig::Holdout { validation_fraction } => format!(
            "holdout: {:.0} % of the training classes validate; the final phase retrains on all training classes for the epochs the search selected",
            validation_fraction * 100.0
        ),
        SplitConfig::Folds { k } => format!("{k} class-disjoint folds of the training classes; the final phase trains one model per fold (its best validation epoch) and averages the folds' test results per seed{}", if concatenated { ", and also evaluates the fold models concatenated" } else { "" }),
    };
    let q = &p.selection;
    let _ = writeln!(s, "## Protocol\n");
    let _ = writeln!(s, "- Validation split: {split}. The test classes are never among them.");
    let _ = writeln!(s, "- Model selection: {} on the validation classes every {} epochs; the best epoch is kept; a run stops after {} evaluations without improvement, or at its maximum epochs.", q.metric.name(), q.every, q.patience);
    let _ = writeln!(s, "- Search: {} sampler, {} trials per loss (TPE: generations of {}), seed {}; a failed or diverged trial scores {} and is counted.", sampler_name(p), p.search.trials, p.search.generation, p.search.seed, crate::protocol::WORST);
    let _ = writeln!(s, "- The test split is read by the final phase alone: a search run never loads it.\n");
}

/// One loss: its space and best setting, the budget spent, validation and test scores.
fn study_section(s: &mut String, st: &Study) {
    let t = trials(&st.search);
    let Some(first) = st.search.first() else { return };
    let p = proto(first);
    let _ = writeln!(s, "## {}\n", st.key);
    let asked = t.keys().filter(|i| i.is_some()).count();
    let failed = t
        .iter()
        .filter(|(i, runs)| i.is_some() && runs.iter().any(|r| r.outcome.status != RunStatus::Finished))
        .count();
    let epochs: usize = st.search.iter().map(|r| r.outcome.diagnostics.epoch_loss.len()).sum();
    let secs: f64 = st.search.iter().map(|r| r.outcome.train_seconds + r.outcome.eval_seconds).sum();
    let _ = writeln!(s, "Budget spent: {asked} of {} trials, {failed} failed or diverged; {epochs} epochs and {secs:.0} s of compute over the search runs (the default setting included).\n", p.search.trials);
    let best = best(&t);
    let mut b = Builder::default();
    b.push_record(["setting", "range", "default", "best"]);
    let default_params = t.get(&None).and_then(|r| r.first()).map(|r| crate::store::identity_json(&r.config));
    for (key, range) in &p.space {
        let best_value = best.as_ref().and_then(|(_, runs)| proto(runs[0]).params.get(key).cloned());
        let u = best.as_ref().and_then(|(_, runs)| edge_u(range, best_value.as_ref(), runs[0]));
        let flag = if u.is_some_and(|u| range.at_edge(u)) { " **(edge of range)**" } else { "" };
        let default = default_params.as_ref().map_or("–".into(), |d| declared(d, key));
        b.push_record([
            key.clone(),
            range.describe(),
            default,
            format!("{}{flag}", best_value.map_or("–".into(), |v| fmt_value(&v))),
        ]);
    }
    if !p.space.is_empty() {
        let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
    } else {
        let _ = writeln!(s, "No space was declared for this loss: its trials repeat the declared setting.\n");
    }
    let metric = &p.selection.metric.name();
    let default_score = t.get(&None).map_or("–".into(), |r| fmt_score(score(r)));
    let best_score = best.as_ref().map_or("–".into(), |(i, r)| format!("{} (trial {i})", fmt_score(score(r))));
    let _ = writeln!(
        s,
        "Validation {metric} (mean ± standard error over folds): default {default_score}; best {best_score}.\n"
    );
    let (tuned, default) = (test_values(&st.final_tuned, "R@1"), test_values(&st.final_default, "R@1"));
    let _ = writeln!(
        s,
        "Test R@1 (mean ± 95% CI over {} seeds): tuned {}; default {}.\n",
        tuned.len(),
        fmt_test(&tuned),
        fmt_test(&default)
    );
    if !st.concatenated.is_empty() {
        let c = test_values(&st.concatenated, "R@1");
        let _ =
            writeln!(s, "Test R@1 of the tuned fold models concatenated: {} over {} seeds.\n", fmt_test(&c), c.len());
    }
}

/// The unit-interval position of a chosen value in its range (log or linear).
fn edge_u(range: &crate::protocol::ParamRange, v: Option<&serde_json::Value>, _r: &RunRecord) -> Option<f64> {
    let x = v?.as_f64()?;
    let (lo, hi) = (range.low?, range.high?);
    Some(if range.log { (x.ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (x - lo) / (hi - lo) })
}

fn fmt_value(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() => significant(x, 4),
        _ => v.to_string(),
    }
}

/// `x` to `digits` significant digits: fixed notation from 0.001 to below 10^digits, scientific
/// outside it (a learning rate of 2e-5 reads `2.000e-5`, not `0.0000`).
pub(super) fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if (-3..digits).contains(&magnitude) {
        format!("{x:.*}", (digits - 1 - magnitude).max(0) as usize)
    } else {
        format!("{x:.*e}", (digits - 1) as usize)
    }
}

/// The declared value of a space key in a config's identity form (`lr.head`, a loss field).
fn declared(identity: &serde_json::Value, key: &str) -> String {
    let defaults = crate::store::default_sections(identity);
    let look = |v: &serde_json::Value| match key.split_once('.') {
        Some((a, b)) => v["train"][a][b].clone(),
        None if key == "weight_decay" => v["train"][key].clone(),
        None => v["loss"][key].clone(),
    };
    let v = look(identity);
    fmt_value(&if v.is_null() { look(&defaults) } else { v })
}

/// The best validation score so far against the trial number, one line per loss of each table.
fn best_so_far(s: &mut String, studies: &[Study], stem: &str) -> Vec<Plot> {
    let mut by_table: BTreeMap<String, Vec<crate::plot::Series>> = BTreeMap::new();
    let mut xs_len = 0;
    for st in studies {
        let t = trials(&st.search);
        let mut best = f64::NEG_INFINITY;
        let points: Vec<(String, f64, f64)> = t
            .iter()
            .filter_map(|(i, r)| i.map(|i| (i, r)))
            .map(|(i, r)| {
                best = best.max(score(r).0);
                (i.to_string(), best, f64::NAN)
            })
            .collect();
        xs_len = xs_len.max(points.len());
        let table: String = st.key.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let label = st.key.splitn(3, ' ').nth(2).unwrap_or("").to_string();
        by_table.entry(table).or_default().push(crate::plot::Series { label, points, dashed: false });
    }
    let xs: Vec<String> = (0..xs_len).map(|i| i.to_string()).collect();
    let mut plots = vec![];
    let _ = writeln!(s, "## Best so far against trials\n");
    for (table, series) in by_table {
        let name = format!("{stem}-best-so-far-{}.svg", table.replace(' ', "-"));
        let title = format!("{table}: best validation score so far");
        match crate::plot::line_chart(&title, "trial (from 0)", "best validation score so far (%)", &xs, &series) {
            Ok(svg) => {
                let _ = writeln!(s, "![{title}]({name})\n");
                plots.push(Plot { file_name: name, svg });
            }
            Err(e) => {
                let _ = writeln!(s, "(chart not drawn: {e})\n");
            }
        }
    }
    let _ = writeln!(s, "A line still rising at the last trial says the budget did not suffice for that loss.\n");
    plots
}

/// Default against tuned, on validation and on test.
fn default_vs_tuned(s: &mut String, studies: &[Study]) {
    let _ = writeln!(s, "## Default against tuned\n");
    let mut b = Builder::default();
    b.push_record([
        "loss",
        "validation: default",
        "validation: tuned",
        "test R@1: default",
        "test R@1: tuned",
        "Δ test R@1",
        "test MAP@R: default",
        "test MAP@R: tuned",
    ]);
    for st in studies {
        let t = trials(&st.search);
        let dv = t.get(&None).map_or("–".into(), |r| fmt_score(score(r)));
        let tv = best(&t).map_or("–".into(), |(_, r)| fmt_score(score(&r)));
        let (d1, t1) = (test_values(&st.final_default, "R@1"), test_values(&st.final_tuned, "R@1"));
        let mean = |v: &[(u64, f64)]| (!v.is_empty()).then(|| v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64);
        let delta = match (mean(&t1), mean(&d1)) {
            (Some(a), Some(b)) => format!("{:+.2}", a - b),
            _ => "–".into(),
        };
        let (dm, tm) = (test_values(&st.final_default, "MAP@R"), test_values(&st.final_tuned, "MAP@R"));
        b.push_record([st.key.clone(), dv, tv, fmt_test(&d1), fmt_test(&t1), delta, fmt_test(&dm), fmt_test(&tm)]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
    let _ = writeln!(s, "Validation: the selection metric, mean ± standard error over folds. Test: mean ± 95% CI over seeds. Default: the setting the sweep file declares, trained and selected under the same protocol.\n");
}

/// A setting of a run, as text, for the fairness card.
type Attribute = dyn Fn(&RunRecord) -> String;

/// The same budget, backbone, batch, sampler and evaluation for every row, or the differences named.
fn fairness(s: &mut String, studies: &[Study]) {
    let _ = writeln!(s, "## Fairness card\n");
    let attr: [(&str, &Attribute); 7] = [
        ("search budget", &|r| {
            let p = proto(r);
            format!("{} trials, {}, {} fold(s)", p.search.trials, sampler_name(p), p.split.folds())
        }),
        ("backbone and head", &|r| serde_json::to_string(&r.config.model).unwrap_or_default()),
        ("embedding size", &|r| r.config.dim.to_string()),
        ("batch and sampler", &|r| format!("{} per batch, {:?}", r.config.train.batch_size, r.config.train.sampler)),
        ("maximum epochs", &|r| r.config.train.epochs.to_string()),
        ("model selection", &|r| serde_json::to_string(&proto(r).selection).unwrap_or_default()),
        ("evaluation", &|r| serde_json::to_string(&r.config.eval).unwrap_or_default()),
    ];
    let mut b = Builder::default();
    b.push_record(["", "every row", "differences"]);
    for (name, f) in attr {
        let values: BTreeMap<String, BTreeSet<String>> = studies
            .iter()
            .flat_map(|st| st.search.iter().map(move |r| (f(r), st.key.clone())))
            .fold(BTreeMap::new(), |mut m, (v, k)| {
                m.entry(v).or_insert_with(BTreeSet::new).insert(k);
                m
            });
        let (same, diff) = match values.len() {
            1 => (values.keys().next().cloned().unwrap_or_default(), "none".to_string()),
            _ => (
                "–".to_string(),
                values
                    .iter()
                    .map(|(v, k)| format!("{v}: {}", k.iter().cloned().collect::<Vec<_>>().join(", ")))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        b.push_record([name.to_string(), same, diff]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
}

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn values_are_printed_to_four_significant_digits_whatever_their_size() {
        assert_eq!(significant(2e-5, 4), "2.000e-5", "the triplet loss's smallest lr.head printed 0.0000");
        assert_eq!(significant(0.000_123_4, 4), "1.234e-4");
        assert_eq!(significant(0.001_234_5, 4), "0.001234");
        assert_eq!(significant(0.2, 4), "0.2000");
        assert_eq!(significant(118.7, 4), "118.7");
        assert_eq!(significant(-4.56789, 4), "-4.568");
        assert_eq!(significant(12_346.0, 4), "1.235e4");
        assert_eq!(significant(0.0, 4), "0");
    }
}
