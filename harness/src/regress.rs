//! Accuracy regression check: for every cell of a baseline results folder, a one-sided test over
//! seeds that the current runs are worse than the baseline's by more than a tolerance. Cells missing
//! from either side, and cells whose resolved config or split fingerprint differ, are reported and
//! never silently compared.
use crate::analysis::{finished_cells, seeded_values};
use crate::stats::{paired_t_p_below_zero, summarize, t_quantile_one_sided};
use crate::store::RunRecord;
use tabled::{builder::Builder, settings::Style};

/// Options of the check.
#[derive(Debug, Clone)]
pub struct RegressOptions {
    /// Metrics to test (`R@1`, `NMI`, `MAP@R`, …).
    pub metrics: Vec<String>,
    /// One-sided significance level.
    pub alpha: f64,
    /// Allowed drop in metric points (%) before a drop counts.
    pub tolerance: f64,
}

/// The outcome: regressions, cells that could not be compared, and the full comparison.
#[derive(Debug, Default)]
pub struct RegressReport {
    /// Markdown text.
    pub markdown: String,
    /// Number of significant regressions.
    pub regressions: usize,
    /// Cells refused: missing from the current run, or with another config or split.
    pub refused: usize,
}

/// The config's identity form without the seed, canonical (where a run executed does not count).
fn config_key(r: &RunRecord) -> String {
    let mut v = crate::store::identity_json(&r.config);
    v.as_object_mut().unwrap().remove("seed");
    v.to_string()
}

fn fmt(v: &[(u64, f64)]) -> String {
    let s = summarize(&v.iter().map(|x| x.1).collect::<Vec<_>>(), 0.95);
    if s.n < 2 {
        format!("{:.2}", s.mean)
    } else {
        format!("{:.2} ± {:.2}", s.mean, s.ci95)
    }
}

/// One-sided p-value of H1 "current is worse than baseline by more than `tol`", paired by seed:
/// the paired t-test of d = current − baseline + tol, H1: E[d] < 0. `None` below two shared seeds.
pub fn one_sided_drop_p(base: &[(u64, f64)], cur: &[(u64, f64)], tol: f64) -> Option<(usize, f64)> {
    let d: Vec<f64> =
        cur.iter().filter_map(|(s, c)| base.iter().find(|(t, _)| t == s).map(|(_, b)| c - b + tol)).collect();
    paired_t_p_below_zero(&d).map(|p| (d.len(), p))
}

/// Why a baseline cell cannot be compared with the current one, if it cannot.
fn refusal(bc: &[&RunRecord], cc: Option<&Vec<&RunRecord>>) -> Option<String> {
    let Some(cc) = cc else { return Some("missing from the current results".into()) };
    let (bfp, cfp) = (&bc[0].outcome.split_fingerprint, &cc[0].outcome.split_fingerprint);
    if bfp != cfp {
        return Some(format!("split fingerprint differs (baseline {bfp}, current {cfp}): the data changed, so the numbers are not comparable; refresh the baseline on purpose if the new split is right"));
    }
    (config_key(bc[0]) != config_key(cc[0])).then(|| {
        "resolved config differs from the baseline's (a changed sweep file or defaults): refresh the baseline on purpose".into()
    })
}

/// The three tables of a check, filled cell by cell.
struct Tables {
    all: Builder,
    regressions: Builder,
    refused: Builder,
}

impl Tables {
    fn new() -> Self {
        let mut t = Self { all: Builder::default(), regressions: Builder::default(), refused: Builder::default() };
        t.all.push_record(["cell", "metric", "baseline", "current", "seeds", "p (one-sided)", "verdict"]);
        t.regressions.push_record(["cell", "metric", "baseline mean ± CI", "current mean ± CI", "p-value"]);
        t.refused.push_record(["cell", "problem"]);
        t
    }
}

/// Tests every metric of one comparable cell, adding rows and counts to `out`.
fn compare_cell(
    key: &str,
    bc: &[&RunRecord],
    cc: &[&RunRecord],
    opts: &RegressOptions,
    t: &mut Tables,
    out: &mut RegressReport,
) {
    for m in &opts.metrics {
        let (bv, cv) = (seeded_values(bc, m), seeded_values(cc, m));
        if bv.is_empty() {
            continue;
        }
        let Some((n, p)) = one_sided_drop_p(&bv, &cv, opts.tolerance) else {
            t.refused.push_record([key.to_string(), format!("{m}: fewer than 2 seeds shared with the baseline")]);
            out.refused += 1;
            continue;
        };
        let worse = p < opts.alpha;
        let verdict = if worse { "**regression**" } else { "ok" };
        let (b, c, p) = (fmt(&bv), fmt(&cv), format!("{p:.4}"));
        t.all.push_record([key, m, &b, &c, &n.to_string(), &p, verdict].map(String::from));
        if worse {
            out.regressions += 1;
            t.regressions.push_record([key, m, &b, &c, &p].map(String::from));
        }
    }
}

/// Compares `current` against `baseline`.
pub fn check(baseline: &[RunRecord], current: &[RunRecord], opts: &RegressOptions) -> RegressReport {
    let (b, c) = (finished_cells(baseline), finished_cells(current));
    let mut out = RegressReport::default();
    let mut t = Tables::new();
    for (key, bc) in &b {
        match refusal(bc, c.get(key)) {
            Some(why) => {
                t.refused.push_record([key.clone(), why]);
                out.refused += 1;
            }
            None => compare_cell(key, bc, &c[key], opts, &mut t, &mut out),
        }
    }
    let extra: Vec<&String> = c.keys().filter(|k| !b.contains_key(*k)).collect();
    out.markdown = render(b.len(), &out, t, &extra, opts);
    out
}

fn render(cells: usize, out: &RegressReport, t: Tables, extra: &[&String], opts: &RegressOptions) -> String {
    let mut s = String::new();
    let verdict = if out.regressions > 0 || out.refused > 0 { "FAIL" } else { "PASS" };
    s.push_str(&format!(
        "# Accuracy regression check: {verdict}\n\n{cells} baseline cells, {} regressions, {} refused; one-sided paired t-test over seeds, α = {}, tolerance {} points (critical t for 3 seeds: {:.3})\n\n",
        out.regressions,
        out.refused,
        opts.alpha,
        opts.tolerance,
        t_quantile_one_sided(1.0 - opts.alpha, 2.0)
    ));
    if out.regressions > 0 {
        s.push_str(&format!("## Regressions\n\n{}\n\n", t.regressions.build().with(Style::markdown())));
    }
    if out.refused > 0 {
        s.push_str(&format!("## Not compared\n\n{}\n\n", t.refused.build().with(Style::markdown())));
    }
    if !extra.is_empty() {
        let list: Vec<String> = extra.iter().map(|k| format!("- {k}")).collect();
        s.push_str(&format!("## Cells not in the baseline (not checked)\n\n{}\n\n", list.join("\n")));
    }
    s.push_str(&format!("## All comparisons\n\n{}\n", t.all.build().with(Style::markdown())));
    s
}
