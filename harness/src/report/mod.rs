//! Markdown reports from run records: provenance, one table per data set × embedding size laid out
//! like the paper's (rows = methods, columns = R@K, NMI, MAP@R as `mean ± CI`), the paper's values
//! beside ours, bold only where the best is significantly best, paired comparisons against a
//! baseline variant, the K and regularizer ablations, and a plain verdict on the paper's claim.
mod calibration;
mod tuned;

pub use calibration::still_falling;

use crate::analysis::{metric_values, seeded_values};
use crate::stats::{self, holm, paired, summarize, PairedTest};
use crate::store::RunRecord;
use crate::train::RunStatus;
use losses::LossConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use tabled::{builder::Builder, settings::Style};

/// The paper's numbers, embedded from `harness/paper_numbers.yaml` (paper.md §5b).
pub const PAPER_NUMBERS: &str = include_str!("../../paper_numbers.yaml");

/// Significance level for bold entries and verdicts.
pub const ALPHA: f64 = 0.05;

/// Report options.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Title.
    pub title: String,
    /// Loss kind of the baseline the others are compared with.
    pub baseline: String,
    /// File-name stem of the plots written next to the report (`<stem>-k-sweep-<data>-d<dim>.svg`).
    pub plot_stem: String,
    /// The floor of each (data set, embedding size) table, where computed (`train::floor`).
    pub floors: BTreeMap<(String, i64), crate::train::Floor>,
}

/// A chart to write next to the report.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File name (no folder).
    pub file_name: String,
    /// SVG text.
    pub svg: String,
}

/// A table row: every seed's record of one variant in one data set × dim.
#[derive(Debug)]
struct Row<'a> {
    label: String,
    loss: &'a LossConfig,
    records: Vec<&'a RunRecord>,
}

fn values_of(row: &Row, metric: &str) -> Vec<(u64, f64)> {
    seeded_values(&row.records, metric)
}

/// Effective centres per class of each of a row's runs that has them.
fn effective_centres(row: &Row) -> Vec<f64> {
    row.records.iter().filter_map(|x| x.outcome.diagnostics.effective_centers_per_class).collect()
}

/// The plain mean, `None` for no values.
fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn fmt_summary(values: &[(u64, f64)]) -> String {
    let v: Vec<f64> = values.iter().map(|x| x.1).collect();
    if v.is_empty() {
        return "–".into();
    }
    let s = summarize(&v, 0.95);
    if s.n < 2 {
        format!("{:.2} (n=1)", s.mean)
    } else {
        format!("{:.2} ± {:.2}", s.mean, s.ci95)
    }
}

fn fmt_p(p: Option<f64>) -> String {
    match p {
        None => format!("n < {} seeds: no test", stats::MIN_PAIRS),
        Some(p) if p < 0.001 => "< 0.001".into(),
        Some(p) => format!("{p:.3}"),
    }
}

/// Everything in a run's config but the loss and the seed, as canonical JSON (to spot differences).
fn setting_key(r: &RunRecord) -> String {
    let mut v = crate::store::identity_json(&r.config);
    let o = v.as_object_mut().unwrap();
    o.remove("loss");
    o.remove("seed");
    v.to_string()
}

fn paper_value(paper: &serde_yaml::Value, data: &str, dim: i64, kind: &str, metric: &str) -> Option<f64> {
    paper.as_sequence()?.iter().find_map(|e| {
        (e["data"].as_str() == Some(data) && e["dim"].as_i64() == Some(dim) && e["method"].as_str() == Some(kind))
            .then(|| e[metric].as_f64())
            .flatten()
    })
}

/// Builds the report from records.
pub fn render(records: &[RunRecord], opts: &ReportOptions) -> String {
    render_with_plots(records, opts).0
}

/// Builds the report and the K-sweep charts it links to (a sweep run under a protocol: the
/// search, the default-against-tuned comparison and the fairness card first, see [`tuned`]).
pub fn render_with_plots(records: &[RunRecord], opts: &ReportOptions) -> (String, Vec<Plot>) {
    if records.iter().any(|r| r.config.protocol.is_some()) {
        return tuned::render(records, opts);
    }
    let mut plots = vec![];
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", opts.title);
    provenance(&mut s, records);
    let finished: Vec<&RunRecord> = records.iter().filter(|r| r.outcome.status == RunStatus::Finished).collect();
    let verdicts = tables(&mut s, &finished, opts, &mut plots);
    unfinished(&mut s, records);
    verdict_section(&mut s, &verdicts, &opts.baseline);
    (s, plots)
}

/// One table per data set × embedding size of `finished` with its comparisons, ablations, charts
/// and convergence; returns the verdict lines.
fn tables(s: &mut String, finished: &[&RunRecord], opts: &ReportOptions, plots: &mut Vec<Plot>) -> Vec<String> {
    let paper: serde_yaml::Value = serde_yaml::from_str(PAPER_NUMBERS).expect("paper numbers parse");
    let mut tables: BTreeMap<(String, i64), Vec<&RunRecord>> = BTreeMap::new();
    for r in finished {
        tables.entry((r.config.data.name().to_string(), r.config.dim)).or_default().push(r);
    }
    let mut verdicts = vec![];
    for ((data, dim), recs) in &tables {
        let mut rows: BTreeMap<String, Row> = BTreeMap::new();
        for r in recs {
            let key = serde_json::to_string(&serde_json::to_value(&r.config.loss).unwrap()).unwrap();
            rows.entry(key)
                .or_insert_with(|| Row { label: r.config.loss.label(), loss: &r.config.loss, records: vec![] })
                .records
                .push(r);
        }
        let mut rows: Vec<Row> = rows.into_values().collect();
        rows.sort_by_key(|r| r.loss.report_order());
        let metrics: Vec<String> = metric_values(recs[0]).into_iter().map(|(k, _)| k).filter(|k| k != "RP").collect();
        let _ = writeln!(s, "## {data}, embedding size {dim}\n");
        let settings: BTreeSet<String> = recs.iter().map(|r| setting_key(r)).collect();
        if settings.len() > 1 && recs.iter().all(|r| r.config.protocol.is_none()) {
            let _ = writeln!(s, "> **Note:** the runs in this table differ in more than the loss ({} distinct data/model/train/eval settings); differences between rows are not the loss's alone.\n", settings.len());
        }
        let table = metric_table(&rows, &metrics, &paper, data, *dim);
        let _ = writeln!(s, "{table}\n");
        let paper_note = if paper_columns(&rows, &paper, data, *dim) {
            " Paper: the value reported in the paper (BN-Inception on the real data set); Δ = ours − paper."
        } else {
            ""
        };
        let _ = writeln!(s, "Values in %, mean ± half-width of the 95% Student-t interval over seeds; **bold**: best in its column and better than every other row with Holm-adjusted paired t-test p < {ALPHA}.{paper_note}\n");
        calibration::calibration(s, &rows, opts.floors.get(&(data.clone(), *dim)));
        if let Some(v) = comparisons(s, &rows, &opts.baseline) {
            verdicts.extend(v.into_iter().map(|v| format!("- {data}, dim {dim}: {v}")));
        }
        let true_views = recs[0].config.data.views_per_class();
        ablation(s, &rows, true_views);
        plots.extend(k_charts(s, &rows, data, *dim, &opts.plot_stem, true_views));
        calibration::convergence(s, &rows);
    }
    verdicts
}

/// The charts against K of one table (R@1, NMI, effective centres beside the data's true M), each
/// linked from the report; a chart that could not be drawn says why.
fn k_charts(s: &mut String, rows: &[Row], data: &str, dim: i64, stem: &str, true_views: Option<i64>) -> Vec<Plot> {
    let mut plots = vec![];
    let charts = [(KChart::Metric("R@1"), None), (KChart::Metric("NMI"), None), (KChart::EffectiveCentres, true_views)];
    for (chart, reference) in charts {
        match k_plot(rows, data, dim, stem, chart, reference) {
            Some(Ok(p)) => {
                let _ = writeln!(s, "![{} against K, {data}, dim {dim}]({})\n", chart.names().0, p.file_name);
                plots.push(p);
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "(not drawn: {e})\n");
            }
            None => {}
        }
    }
    plots
}

/// The table of runs that failed or diverged, when there are any.
fn unfinished(s: &mut String, records: &[RunRecord]) {
    let failed: Vec<&RunRecord> = records.iter().filter(|r| r.outcome.status != RunStatus::Finished).collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Runs that did not finish\n");
    let mut b = Builder::default();
    b.push_record(["run", "status", "detail"]);
    for r in failed {
        let detail = match r.outcome.status {
            RunStatus::Diverged => {
                format!("loss not finite at step {}", r.outcome.diagnostics.diverged_at_step.unwrap_or(0))
            }
            _ => r.outcome.error.clone().unwrap_or_default().lines().next().unwrap_or("").to_string(),
        };
        b.push_record([r.slug.clone(), format!("{:?}", r.outcome.status).to_lowercase(), detail]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
}

/// The verdict lines of every table, and what *not converged* means when a line says so.
fn verdict_section(s: &mut String, verdicts: &[String], baseline: &str) {
    if verdicts.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Verdict: did SoftTriple with K > 1 beat {baseline}?\n");
    for v in verdicts {
        let _ = writeln!(s, "{v}");
    }
    s.push('\n');
    if verdicts.iter().any(|v| v.contains(calibration::NOT_CONVERGED)) {
        let _ = writeln!(s, "*Not converged*: a verdict between losses whose training loss was still falling when training stopped (each table's Convergence section) compares them at this training length; longer training can change it, in size or in sign.\n");
    }
}

/// What a chart against K shows.
#[derive(Clone, Copy)]
enum KChart {
    Metric(&'static str),
    EffectiveCentres,
}

impl KChart {
    fn values(self, r: &Row) -> Vec<f64> {
        match self {
            KChart::Metric(m) => values_of(r, m).iter().map(|x| x.1).collect(),
            KChart::EffectiveCentres => effective_centres(r),
        }
    }

    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            KChart::Metric("NMI") => ("NMI", "NMI (%), mean ± 95% CI", "nmi"),
            KChart::Metric(_) => ("R@1", "R@1 (%), mean ± 95% CI", "k-sweep"),
            KChart::EffectiveCentres => ("effective centres", "effective centres per class, mean ± 95% CI", "centres"),
        }
    }
}

/// A chart against K for every multi-centre variant, when the table holds at least two K values;
/// `reference` draws a flat line (the data's true number of views).
fn k_plot(
    rows: &[Row],
    data: &str,
    dim: i64,
    stem: &str,
    chart: KChart,
    reference: Option<i64>,
) -> Option<Result<Plot, crate::plot::PlotError>> {
    let multi: Vec<&Row> = rows.iter().filter(|r| r.loss.centers_per_class().is_some()).collect();
    let ks: BTreeSet<i64> = multi.iter().filter_map(|r| r.loss.centers_per_class()).collect();
    if ks.len() < 2 {
        return None;
    }
    let xs: Vec<String> = ks.iter().map(|k| k.to_string()).collect();
    let mut series: BTreeMap<String, crate::plot::Series> = BTreeMap::new();
    for r in multi {
        let v = chart.values(r);
        if v.is_empty() {
            continue;
        }
        let sm = summarize(&v, 0.95);
        let name = r.loss.family();
        let k = r.loss.centers_per_class().unwrap().to_string();
        series
            .entry(name.clone())
            .or_insert_with(|| crate::plot::Series { label: name, points: vec![], dashed: false })
            .points
            .push((k, sm.mean, sm.ci95));
    }
    let mut series: Vec<crate::plot::Series> = series.into_values().collect();
    for s in &mut series {
        s.points.sort_by_key(|p| p.0.parse::<i64>().unwrap_or(0));
    }
    if let Some(m) = reference {
        let label = format!("true views M = {m}");
        let points = xs.iter().map(|x| (x.clone(), m as f64, f64::NAN)).collect();
        series.push(crate::plot::Series { label, points, dashed: true });
    }
    let (what, y_label, file) = chart.names();
    let title = format!("{what} against K — {data}, dim {dim}");
    let svg = crate::plot::line_chart(&title, "centres per class K", y_label, &xs, &series);
    Some(svg.map(|svg| Plot { file_name: format!("{stem}-{file}-{data}-d{dim}.svg"), svg }))
}

/// Seconds from the earliest run start (its end less its training and evaluation) to the latest end.
fn wall_seconds(records: &[RunRecord]) -> Option<f64> {
    let spans: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| {
            let end = chrono::DateTime::parse_from_rfc3339(&r.finished_at).ok()?.timestamp_millis() as f64 / 1000.0;
            Some((end - r.outcome.train_seconds - r.outcome.eval_seconds, end))
        })
        .collect();
    let start = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let end = spans.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    (start.is_finite() && end.is_finite()).then_some(end - start)
}

fn provenance(s: &mut String, records: &[RunRecord]) {
    let set = |f: &dyn Fn(&RunRecord) -> String| -> String {
        records.iter().map(f).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")
    };
    let mut status: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        *status.entry(format!("{:?}", r.outcome.status).to_lowercase()).or_default() += 1;
    }
    let train_s: f64 = records.iter().map(|r| r.outcome.train_seconds + r.outcome.eval_seconds).sum();
    let mut b = Builder::default();
    b.push_record(["", ""]);
    b.push_record(["runs".to_string(), status.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")]);
    b.push_record(["harness commit".to_string(), set(&|r| r.provenance.git_commit.clone())]);
    b.push_record([
        "harness / tch / libtorch".to_string(),
        set(&|r| format!("{} / {} / {}", r.provenance.harness, r.provenance.tch, r.provenance.libtorch)),
    ]);
    b.push_record([
        "devices".to_string(),
        set(&|r| {
            format!(
                "{} (CUDA {})",
                r.provenance.device,
                if r.provenance.cuda_available { "available" } else { "unavailable" }
            )
        }),
    ]);
    b.push_record([
        "split fingerprints".to_string(),
        set(&|r| format!("{}: {}", r.config.data.name(), r.outcome.split_fingerprint)),
    ]);
    b.push_record([
        "config hash (all runs)".to_string(),
        crate::data::fingerprint_lines(
            &records.iter().map(|r| r.id.clone()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>(),
        ),
    ]);
    let protocol = if records.iter().any(|r| r.config.protocol.is_some()) {
        "fair comparison: a validation split of the training classes, model selection on it and an equal-budget search per loss; the test split read by the final phase alone (section Protocol)"
    } else {
        "none: every run trains for its set epochs at the settings written and is evaluated once on the test split (no validation split, no search; `make tune` runs the fair protocol)"
    };
    b.push_record(["protocol".to_string(), protocol.to_string()]);
    b.push_record(["compute".to_string(), format!("{:.0} s of training and evaluation in total", train_s)]);
    if let Some(wall) = wall_seconds(records) {
        b.push_record([
            "wall time".to_string(),
            format!("{wall:.0} s from the first run's start to the last run's end"),
        ]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
}

/// Whether a table shows the paper's columns: only where the paper has a value for some row of
/// this data set and embedding size.
fn paper_columns(rows: &[Row], paper: &serde_yaml::Value, data: &str, dim: i64) -> bool {
    rows.iter().any(|r| ["R@1", "NMI"].iter().any(|m| paper_value(paper, data, dim, r.loss.kind(), m).is_some()))
}

fn metric_table(rows: &[Row], metrics: &[String], paper: &serde_yaml::Value, data: &str, dim: i64) -> String {
    // Bold: the best mean of a column, if significantly better than every other row (Holm over them).
    let mut bold: BTreeSet<(usize, String)> = BTreeSet::new();
    for m in metrics {
        let means: Vec<f64> = rows
            .iter()
            .map(|r| summarize(&values_of(r, m).iter().map(|v| v.1).collect::<Vec<_>>(), 0.95).mean)
            .collect();
        let Some(best) = (0..rows.len()).max_by(|&a, &b| means[a].total_cmp(&means[b])) else { continue };
        let tests: Vec<PairedTest> = (0..rows.len())
            .filter(|&i| i != best)
            .map(|i| paired(&values_of(&rows[best], m), &values_of(&rows[i], m)))
            .collect();
        if tests.is_empty() || tests.iter().any(|t| t.t_p.is_none() || t.mean_diff <= 0.0) {
            continue;
        }
        let adj = holm(&tests.iter().map(|t| t.t_p.unwrap()).collect::<Vec<_>>());
        if adj.iter().all(|p| *p < ALPHA) {
            bold.insert((best, m.clone()));
        }
    }
    let with_paper = paper_columns(rows, paper, data, dim);
    let mut header = vec!["method".to_string(), "seeds".to_string()];
    header.extend(metrics.iter().cloned());
    if with_paper {
        header.extend(["paper R@1".to_string(), "Δ R@1".to_string(), "paper NMI".to_string(), "Δ NMI".to_string()]);
    }
    let mut b = Builder::default();
    b.push_record(header);
    for (i, row) in rows.iter().enumerate() {
        let mut rec = vec![row.label.clone(), row.records.len().to_string()];
        for m in metrics {
            let cell = fmt_summary(&values_of(row, m));
            rec.push(if bold.contains(&(i, m.clone())) { format!("**{cell}**") } else { cell });
        }
        for m in ["R@1", "NMI"].into_iter().filter(|_| with_paper) {
            let ours = summarize(&values_of(row, m).iter().map(|v| v.1).collect::<Vec<_>>(), 0.95);
            match paper_value(paper, data, dim, row.loss.kind(), m) {
                Some(p) if ours.n > 0 => {
                    rec.push(format!("{p:.1}"));
                    rec.push(format!("{:+.2}", ours.mean - p));
                }
                _ => {
                    rec.push("n/a".into());
                    rec.push("n/a".into());
                }
            }
        }
        b.push_record(rec);
    }
    b.build().with(Style::markdown()).to_string()
}

/// Power the minimum detectable difference is stated at.
pub const POWER: f64 = 0.8;

/// The smallest difference of interest, in metric points: a non-significant difference whose 95% CI
/// lies within ± this is reported as absent (the resolution the quickstart is sized for).
pub const RELEVANT_DIFFERENCE: f64 = 2.0;

/// One comparison of a row with the baseline on one metric, with its Holm-adjusted p-values.
struct Comparison<'a> {
    row: &'a Row<'a>,
    metric: &'static str,
    test: PairedTest,
    t_holm: Option<f64>,
    w_holm: Option<f64>,
    /// Smallest true difference the paired t-test detects with [`POWER`] at α/m (m: the family).
    mdd: Option<f64>,
}

/// Every row against the baseline on R@1, NMI and MAP@R; Holm over the whole family.
fn compare_all<'a>(rows: &'a [Row<'a>], base: &'a Row<'a>) -> Vec<Comparison<'a>> {
    let mut out = vec![];
    for r in rows.iter().filter(|r| !std::ptr::eq(*r, base)) {
        for metric in ["R@1", "NMI", "MAP@R"] {
            let (a, b) = (values_of(r, metric), values_of(base, metric));
            if !a.is_empty() && !b.is_empty() {
                let test = paired(&a, &b);
                out.push(Comparison { row: r, metric, test, t_holm: None, w_holm: None, mdd: None });
            }
        }
    }
    let with_p: Vec<usize> = (0..out.len()).filter(|&i| out[i].test.t_p.is_some()).collect();
    let adj_t = holm(&with_p.iter().map(|&i| out[i].test.t_p.unwrap()).collect::<Vec<_>>());
    let adj_w = holm(&with_p.iter().map(|&i| out[i].test.wilcoxon_p.unwrap()).collect::<Vec<_>>());
    let level = ALPHA / with_p.len().max(1) as f64;
    for (k, &i) in with_p.iter().enumerate() {
        let c = &mut out[i];
        (c.t_holm, c.w_holm) = (Some(adj_t[k]), Some(adj_w[k]));
        c.mdd = stats::min_detectable_difference(c.test.sd, c.test.n, level, POWER);
    }
    out
}

/// What a comparison shows: a real difference (significant after Holm), an absent one (the 95% CI
/// excludes any difference of [`RELEVANT_DIFFERENCE`] or more), or one below what the study can see.
fn finding(c: &Comparison) -> String {
    match c.t_holm {
        None => format!("not testable ({} shared seeds)", c.test.n),
        Some(p) if p < ALPHA && c.test.mean_diff > 0.0 => "**real: better**".into(),
        Some(p) if p < ALPHA => "**real: worse**".into(),
        Some(_) if c.test.mean_diff.abs() + c.test.ci95 < RELEVANT_DIFFERENCE => {
            format!("**absent** (CI within ±{RELEVANT_DIFFERENCE})")
        }
        Some(_) => "**below what this study can see**".into(),
    }
}

/// The Wilcoxon column: its Holm p-value, or why it cannot reach α with these seeds.
fn wilcoxon_cell(c: &Comparison, family: usize) -> String {
    let floor = stats::wilcoxon_min_p(c.test.n) * family as f64;
    match c.w_holm {
        Some(_) if floor >= ALPHA => format!("cannot reach α (n = {}: min p {:.3})", c.test.n, floor.min(1.0)),
        p => fmt_p(p),
    }
}

/// Paired comparisons of every row against the baseline kind, with what each can detect; returns
/// verdict lines for SoftTriple K > 1.
fn comparisons(s: &mut String, rows: &[Row], baseline: &str) -> Option<Vec<String>> {
    let base = rows.iter().find(|r| r.loss.kind() == baseline)?;
    let all = compare_all(rows, base);
    if all.is_empty() {
        return None;
    }
    let family = all.iter().filter(|c| c.t_holm.is_some()).count();
    // The Wilcoxon column only where some row's test can reach α with its seeds.
    let wilcoxon = all.iter().any(|c| c.w_holm.is_some() && stats::wilcoxon_min_p(c.test.n) * (family as f64) < ALPHA);
    let _ = writeln!(s, "### Paired comparisons against {}\n", base.label);
    let mut b = Builder::default();
    let header =
        ["method", "metric", "seeds", "Δ mean ± CI", "paired t p (Holm)", "Wilcoxon p (Holm)", "MDD", "finding"];
    b.push_record(header.into_iter().filter(|h| wilcoxon || !h.starts_with("Wilcoxon")));
    let mut verdicts = vec![];
    for c in &all {
        let ci = if c.test.ci95.is_nan() { String::new() } else { format!(" ± {:.2}", c.test.ci95) };
        let mdd = c.mdd.map_or("–".into(), |m| format!("{m:.2}"));
        let (delta, what) = (format!("{:+.2}{ci}", c.test.mean_diff), finding(c));
        let cells = [
            &c.row.label,
            c.metric,
            &c.test.n.to_string(),
            &delta,
            &fmt_p(c.t_holm),
            &wilcoxon_cell(c, family),
            &mdd,
            &what,
        ];
        b.push_record(cells.iter().enumerate().filter(|(i, _)| wilcoxon || *i != 5).map(|(_, x)| x.to_string()));
        let multi = matches!(c.row.loss, LossConfig::SoftTriple(l) if l.centers_per_class > 1 && l.tau > 0.0);
        if multi && c.metric == "R@1" {
            verdicts.push(format!(
                "{} vs {} on R@1: Δ = {delta} points (95% CI) over {} seeds, paired t p = {} (Holm), MDD {mdd}: {what}{}",
                c.row.label,
                base.label,
                c.test.n,
                fmt_p(c.t_holm),
                calibration::convergence_caveat(&[c.row, base])
            ));
        }
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
    if !wilcoxon && family > 0 {
        let n = all.iter().map(|c| c.test.n).max().unwrap_or(0);
        let floor = (stats::wilcoxon_min_p(n) * family as f64).min(1.0);
        let _ = writeln!(
            s,
            "The exact Wilcoxon signed-rank test is left out of this table: with {n} seeds its smallest possible p-value, Holm-adjusted over the {family} tests, is {floor:.3}, so no row could reach α = {ALPHA}. It appears once the seeds allow it.\n"
        );
    }
    let _ = writeln!(
        s,
        "Δ = method − {} in points, matched by seed; the Holm family is the {family} tests of this table. {}\n",
        base.label,
        mdd_summary(&all, family)
    );
    Some(verdicts)
}

/// The table's minimum detectable R@1 difference, in words.
fn mdd_summary(all: &[Comparison], family: usize) -> String {
    let mut r1: Vec<f64> = all.iter().filter(|c| c.metric == "R@1").filter_map(|c| c.mdd).collect();
    if r1.is_empty() {
        return "No minimum detectable difference: too few shared seeds.".into();
    }
    r1.sort_by(f64::total_cmp);
    format!(
        "**Minimum detectable difference (MDD)**: the smallest true difference the paired t-test would detect with {:.0}% power at α/m = {ALPHA}/{family}, from each comparison's observed paired spread; for R@1 the median is **{:.2} points** (range {:.2}–{:.2}). A finding is *real* when the Holm-adjusted p < {ALPHA}, *absent* when it is not and the 95% CI of Δ lies within ±{RELEVANT_DIFFERENCE} points (the smallest difference of interest), and *below what this study can see* otherwise (the MDD says how large a difference would have been needed).",
        100.0 * POWER,
        r1[r1.len() / 2],
        r1[0],
        r1[r1.len() - 1]
    )
}

/// The K sweep and regularizer ablation: multi-centre rows with their effective centres.
fn ablation(s: &mut String, rows: &[Row], true_views: Option<i64>) {
    let multi: Vec<&Row> = rows.iter().filter(|r| r.loss.centers_per_class().is_some()).collect();
    if multi.is_empty() {
        return;
    }
    let _ = writeln!(s, "### Centres per class and the regularizer\n");
    let mut b = Builder::default();
    b.push_record(["method", "K", "τ", "R@1", "NMI", "effective centres / class", "regularizer (last epoch)"]);
    for r in multi {
        let k = r.loss.centers_per_class().unwrap();
        let tau = r.loss.regularizer_weight().map_or("–".into(), |t| t.to_string());
        let reg: Vec<f64> =
            r.records.iter().filter_map(|x| x.outcome.diagnostics.epoch_regularizer.last().copied()).collect();
        let cell = |v: &[f64]| mean(v).map_or("–".to_string(), |m| format!("{m:.2}"));
        b.push_record([
            r.label.clone(),
            k.to_string(),
            tau,
            fmt_summary(&values_of(r, "R@1")),
            fmt_summary(&values_of(r, "NMI")),
            cell(&effective_centres(r)),
            cell(&reg),
        ]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
    let _ = writeln!(
        s,
        "Effective centres: a class's centres after merging those whose cosine exceeds {}.\n",
        losses::MERGED_CENTER_COSINE
    );
    if let Some(sentence) = calibration::recovered_views(rows, true_views) {
        let _ = writeln!(s, "{sentence}\n");
    } else if true_views.is_none() {
        let _ = writeln!(s, "This data set has no known number of views per class (real data: nobody labelled its classes' modes), so whether the regularizer recovers it cannot be checked here; the effective centres say how many distinct centres each class kept.\n");
    }
}
