//! Accuracy regression check: for every cell of a baseline results folder, paired tests over seeds
//! that the current runs' metrics moved by more than a tolerance (drops, and by default rises), and
//! that their training diagnostics (final loss, regularizer, effective centres) moved by more than a
//! relative tolerance, which react to a loss bug before accuracy does. Cells missing from either
//! side, and cells whose resolved config or split fingerprint differ, are reported and never
//! silently compared.
use crate::analysis::{cell_key, finished_cells, seeded_values};
use crate::stats::{paired_t_p_below_zero, summarize};
use crate::store::RunRecord;
use crate::train::RunStatus;
use tabled::{builder::Builder, settings::Style};

/// Options of the check.
#[derive(Debug, Clone)]
pub struct RegressOptions {
    /// Metrics to test (`R@1`, `NMI`, `MAP@R`, …).
    pub metrics: Vec<String>,
    /// Significance level of each comparison (split α/2 per side when two-sided).
    pub alpha: f64,
    /// Allowed move of a metric, in points (%), before it counts.
    pub tolerance: f64,
    /// Also fail on a significant rise beyond the tolerance (an evaluation leak looks like progress).
    pub two_sided: bool,
    /// Allowed move of each training diagnostic (final loss, final regularizer, effective centres),
    /// in % of its baseline mean, tested two-sided; `None` leaves the diagnostics unchecked.
    pub diagnostics_tolerance: Option<f64>,
}

/// The training diagnostics the check can compare, as named in its tables.
pub const DIAGNOSTICS: [(&str, Diagnostic); 3] = [
    ("final loss", |d| d.last_loss),
    ("final regularizer", |d| d.epoch_regularizer.last().copied()),
    ("effective centres", |d| d.effective_centers_per_class),
];

/// Reads one diagnostic from a run's training diagnostics (`None` when the run does not have it,
/// e.g. no regularizer).
pub type Diagnostic = fn(&crate::train::Diagnostics) -> Option<f64>;

/// (seed, value) of one diagnostic over a cell's records.
fn diagnostic_values(records: &[&RunRecord], read: Diagnostic) -> Vec<(u64, f64)> {
    records.iter().filter_map(|r| read(&r.outcome.diagnostics).map(|v| (r.config.seed, v))).collect()
}

/// The outcome: findings, cells that could not be compared, and the full comparison.
#[derive(Debug, Default)]
pub struct RegressReport {
    /// Markdown text.
    pub markdown: String,
    /// Number of significant moves (metric drops or rises, diagnostic moves).
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

fn fmt(v: &[(u64, f64)], decimals: usize) -> String {
    let s = summarize(&v.iter().map(|x| x.1).collect::<Vec<_>>(), 0.95);
    if s.n < 2 {
        format!("{:.*}", decimals, s.mean)
    } else {
        format!("{:.*} ± {:.*}", decimals, s.mean, decimals, s.ci95)
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
fn refusal(key: &str, bc: &[&RunRecord], cc: Option<&Vec<&RunRecord>>, current: &[RunRecord]) -> Option<String> {
    let Some(cc) = cc else { return Some(missing(key, current)) };
    let (bfp, cfp) = (&bc[0].outcome.split_fingerprint, &cc[0].outcome.split_fingerprint);
    if bfp != cfp {
        return Some(format!("split fingerprint differs (baseline {bfp}, current {cfp}): the data changed, so the numbers are not comparable; refresh the baseline on purpose if the new split is right"));
    }
    (config_key(bc[0]) != config_key(cc[0])).then(|| {
        "resolved config differs from the baseline's (a changed sweep file or defaults): refresh the baseline on purpose".into()
    })
}

/// Why a cell has no finished run in the current results: absent, or every run diverged or failed.
fn missing(key: &str, current: &[RunRecord]) -> String {
    let ended: Vec<&RunRecord> = current.iter().filter(|r| cell_key(r) == key).collect();
    if ended.is_empty() {
        return "missing from the current results".into();
    }
    let diverged = ended.iter().filter(|r| r.outcome.status == RunStatus::Diverged).count();
    format!(
        "no finished run in the current results: {diverged} of {} diverged (loss not finite), the others failed",
        ended.len()
    )
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
        let head = ["cell", "quantity", "baseline", "current", "seeds", "tolerance", "p (drop)", "p (rise)", "verdict"];
        t.all.push_record(head);
        t.regressions.push_record([
            "cell",
            "quantity",
            "baseline mean ± CI",
            "current mean ± CI",
            "direction",
            "p-value",
        ]);
        t.refused.push_record(["cell", "problem"]);
        t
    }
}

/// One quantity of one cell: its values by seed on both sides, how far it may move, which sides
/// are tested and how many decimals it is shown with.
struct Quantity<'a> {
    name: &'a str,
    base: Vec<(u64, f64)>,
    cur: Vec<(u64, f64)>,
    tolerance: f64,
    two_sided: bool,
    decimals: usize,
}

/// Tests one quantity of a comparable cell (each side at α/2 when two-sided), adding its rows and
/// counts to `t` and `out`.
fn compare(key: &str, q: Quantity, alpha: f64, t: &mut Tables, out: &mut RegressReport) {
    let Some((n, p_drop)) = one_sided_drop_p(&q.base, &q.cur, q.tolerance) else {
        t.refused.push_record([key.to_string(), format!("{}: fewer than 2 seeds shared with the baseline", q.name)]);
        out.refused += 1;
        return;
    };
    // A rise of the current over the baseline is a drop of the baseline below the current.
    let p_rise = q.two_sided.then(|| one_sided_drop_p(&q.cur, &q.base, q.tolerance).map_or(1.0, |x| x.1));
    let level = if q.two_sided { alpha / 2.0 } else { alpha };
    let (b, c) = (fmt(&q.base, q.decimals), fmt(&q.cur, q.decimals));
    let tol = format!("{:.*}", q.decimals, q.tolerance);
    let found =
        if p_drop < level { Some(("drop", p_drop)) } else { p_rise.filter(|p| *p < level).map(|p| ("rise", p)) };
    let verdict = found.map_or("ok".to_string(), |(d, _)| format!("**{d}**"));
    let p_rise = p_rise.map_or("–".to_string(), |p| format!("{p:.4}"));
    let row = [key, q.name, &b, &c, &n.to_string(), &tol, &format!("{p_drop:.4}"), &p_rise, &verdict];
    t.all.push_record(row.map(String::from));
    if let Some((direction, p)) = found {
        out.regressions += 1;
        t.regressions.push_record([key, q.name, &b, &c, direction, &format!("{p:.4}")].map(String::from));
    }
}

/// Tests every metric and, when asked, every training diagnostic of one comparable cell.
fn compare_cell(
    key: &str,
    bc: &[&RunRecord],
    cc: &[&RunRecord],
    opts: &RegressOptions,
    t: &mut Tables,
    out: &mut RegressReport,
) {
    for m in &opts.metrics {
        let (base, cur) = (seeded_values(bc, m), seeded_values(cc, m));
        if base.is_empty() {
            continue;
        }
        let q = Quantity { name: m, base, cur, tolerance: opts.tolerance, two_sided: opts.two_sided, decimals: 2 };
        compare(key, q, opts.alpha, t, out);
    }
    let Some(rel) = opts.diagnostics_tolerance else { return };
    for (name, read) in DIAGNOSTICS {
        let (base, cur) = (diagnostic_values(bc, read), diagnostic_values(cc, read));
        if base.is_empty() {
            continue;
        }
        let mean = base.iter().map(|x| x.1).sum::<f64>() / base.len() as f64;
        let tolerance = rel / 100.0 * mean.abs();
        compare(key, Quantity { name, base, cur, tolerance, two_sided: true, decimals: 4 }, opts.alpha, t, out);
    }
}

/// Compares `current` against `baseline`.
pub fn check(baseline: &[RunRecord], current: &[RunRecord], opts: &RegressOptions) -> RegressReport {
    let (b, c) = (finished_cells(baseline), finished_cells(current));
    let mut out = RegressReport::default();
    let mut t = Tables::new();
    for (key, bc) in &b {
        match refusal(key, bc, c.get(key), current) {
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
    let sides = if opts.two_sided {
        format!("two-sided (a drop or a rise of more than {} points fails; α/2 per side)", opts.tolerance)
    } else {
        format!("one-sided (a drop of more than {} points fails)", opts.tolerance)
    };
    let diag = opts.diagnostics_tolerance.map_or("training diagnostics not checked".to_string(), |r| {
        format!(
            "training diagnostics ({}): two-sided, a move of more than {r}% of the baseline mean fails",
            DIAGNOSTICS.map(|d| d.0).join(", ")
        )
    });
    s.push_str(&format!(
        "# Accuracy regression check: {verdict}\n\n{cells} baseline cells, {} regressions, {} refused. Paired t-test over seeds at α = {}; metrics ({}): {sides}; {diag}. A rise or a diagnostic move is a change nobody made on purpose: if it is intended, refresh the baseline.\n\n",
        out.regressions,
        out.refused,
        opts.alpha,
        opts.metrics.join(", "),
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
