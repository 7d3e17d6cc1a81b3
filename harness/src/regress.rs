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

/// Compares `current` against `baseline`.
pub fn check(baseline: &[RunRecord], current: &[RunRecord], opts: &RegressOptions) -> RegressReport {
    let (b, c) = (finished_cells(baseline), finished_cells(current));
    let mut out = RegressReport::default();
    let mut refused = Builder::default();
    refused.push_record(["cell", "problem"]);
    let mut table = Builder::default();
    table.push_record(["cell", "metric", "baseline", "current", "seeds", "p (one-sided)", "verdict"]);
    let mut regress = Builder::default();
    regress.push_record(["cell", "metric", "baseline mean ± CI", "current mean ± CI", "p-value"]);
    for (key, bc) in &b {
        let Some(cc) = c.get(key) else {
            refused.push_record([key.clone(), "missing from the current results".into()]);
            out.refused += 1;
            continue;
        };
        let (bfp, cfp) = (&bc[0].outcome.split_fingerprint, &cc[0].outcome.split_fingerprint);
        if bfp != cfp {
            refused.push_record([key.clone(), format!("split fingerprint differs (baseline {bfp}, current {cfp}): the data changed, so the numbers are not comparable; refresh the baseline on purpose if the new split is right")]);
            out.refused += 1;
            continue;
        }
        if config_key(bc[0]) != config_key(cc[0]) {
            refused.push_record([key.clone(), "resolved config differs from the baseline's (a changed sweep file or defaults): refresh the baseline on purpose".into()]);
            out.refused += 1;
            continue;
        }
        for m in &opts.metrics {
            let (bv, cv) = (seeded_values(bc, m), seeded_values(cc, m));
            if bv.is_empty() {
                continue;
            }
            let Some((n, p)) = one_sided_drop_p(&bv, &cv, opts.tolerance) else {
                refused.push_record([key.clone(), format!("{m}: fewer than 2 seeds shared with the baseline")]);
                out.refused += 1;
                continue;
            };
            let worse = p < opts.alpha;
            table.push_record([
                key.clone(),
                m.clone(),
                fmt(&bv),
                fmt(&cv),
                n.to_string(),
                format!("{p:.4}"),
                if worse { "**regression**".into() } else { "ok".to_string() },
            ]);
            if worse {
                out.regressions += 1;
                regress.push_record([key.clone(), m.clone(), fmt(&bv), fmt(&cv), format!("{p:.4}")]);
            }
        }
    }
    let extra: Vec<&String> = c.keys().filter(|k| !b.contains_key(*k)).collect();
    let mut s = String::new();
    let verdict = if out.regressions > 0 || out.refused > 0 { "FAIL" } else { "PASS" };
    s.push_str(&format!(
        "# Accuracy regression check: {verdict}\n\n{} baseline cells, {} regressions, {} refused; one-sided paired t-test over seeds, α = {}, tolerance {} points (critical t for 3 seeds: {:.3})\n\n",
        b.len(),
        out.regressions,
        out.refused,
        opts.alpha,
        opts.tolerance,
        t_quantile_one_sided(1.0 - opts.alpha, 2.0)
    ));
    if out.regressions > 0 {
        s.push_str(&format!("## Regressions\n\n{}\n\n", regress.build().with(Style::markdown())));
    }
    if out.refused > 0 {
        s.push_str(&format!("## Not compared\n\n{}\n\n", refused.build().with(Style::markdown())));
    }
    if !extra.is_empty() {
        s.push_str(&format!(
            "## Cells not in the baseline (not checked)\n\n{}\n\n",
            extra.iter().map(|k| format!("- {k}")).collect::<Vec<_>>().join("\n")
        ));
    }
    s.push_str(&format!("## All comparisons\n\n{}\n", table.build().with(Style::markdown())));
    out.markdown = s;
    out
}
