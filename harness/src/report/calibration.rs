//! Sections that say whether a table can show anything: the calibration against the data's floor,
//! whether each variant's loss was still falling when training stopped, and whether the centre
//! regularizer recovered the data's true number of views.
use super::{effective_centres, mean, values_of, Row};
use crate::stats::summarize;
use crate::train::Floor;
use std::fmt::Write as _;
use tabled::{builder::Builder, settings::Style};

/// Calibration targets (issue: a benchmark that can tell losses apart).
pub const MIN_GAIN_OVER_FLOOR: f64 = 30.0;
/// No variant may reach this R@1 (a ceiling hides differences).
pub const CEILING: f64 = 90.0;
/// The best-to-worst spread must exceed this many typical CI half-widths.
pub const SPREAD_IN_CIS: f64 = 3.0;

/// A relative fall of the loss over the last tenth of the epochs above this counts as still falling.
pub const STILL_FALLING: f64 = 0.01;

fn mean_of(row: &Row, metric: &str) -> Option<(f64, f64)> {
    let v: Vec<f64> = values_of(row, metric).iter().map(|x| x.1).collect();
    (!v.is_empty()).then(|| {
        let s = summarize(&v, 0.95);
        (s.mean, s.ci95)
    })
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// The calibration block: floor, best and worst trained variant, and the three targets.
pub(super) fn calibration(s: &mut String, rows: &[Row], floor: Option<&Floor>) {
    let means: Vec<(&Row, f64, f64)> =
        rows.iter().filter_map(|r| mean_of(r, "R@1").map(|(m, ci)| (r, m, ci))).collect();
    let (Some(best), Some(worst)) =
        (means.iter().max_by(|a, b| a.1.total_cmp(&b.1)), means.iter().min_by(|a, b| a.1.total_cmp(&b.1)))
    else {
        return;
    };
    let _ = writeln!(s, "### Calibration\n");
    let mut b = Builder::default();
    b.push_record(["", "R@1", "NMI"]);
    let pct = |r: &crate::eval::EvalReport| -> [String; 2] {
        let r1 = r.retrieval.recall_at_k.first().map_or(f64::NAN, |x| x.1 * 100.0);
        [format!("{r1:.2}"), r.nmi.as_ref().map_or("–".into(), |n| format!("{:.2}", n.nmi * 100.0))]
    };
    if let Some(f) = floor {
        let [r, n] = pct(&f.raw);
        b.push_record(["floor: raw inputs".into(), r, n]);
        let [r, n] = pct(&f.untrained);
        b.push_record(["floor: untrained model".into(), r, n]);
    }
    for (tag, (row, _, _)) in [("best trained", best), ("worst trained", worst)] {
        let cell = |metric| super::fmt_summary(&values_of(row, metric));
        b.push_record([format!("{tag}: {}", row.label), cell("R@1"), cell("NMI")]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
    let mut cis: Vec<f64> = means.iter().map(|m| m.2).filter(|c| c.is_finite()).collect();
    cis.sort_by(f64::total_cmp);
    let typical_ci = cis.get(cis.len() / 2).copied().unwrap_or(f64::NAN);
    let spread = best.1 - worst.1;
    let max_nmi = rows.iter().filter_map(|r| mean_of(r, "NMI")).map(|x| x.0).fold(f64::NAN, f64::max);
    let mut lines = vec![];
    if let Some(f) = floor {
        let floor_r1 = [&f.raw, &f.untrained]
            .iter()
            .filter_map(|r| r.retrieval.recall_at_k.first().map(|x| x.1 * 100.0))
            .fold(f64::NAN, f64::max);
        let gain = best.1 - floor_r1;
        lines.push(format!(
            "best trained R@1 − the higher floor = {gain:.1} points (target ≥ {MIN_GAIN_OVER_FLOOR}): {}",
            met(gain >= MIN_GAIN_OVER_FLOOR)
        ));
    } else {
        lines.push(
            "floor: not computed (only for data sets generated in memory, from the records' own settings)".into(),
        );
    }
    lines.push(format!("highest R@1 = {:.1} % (target ≤ {CEILING}): {}", best.1, met(best.1 <= CEILING)));
    lines
        .push(format!("highest NMI = {max_nmi:.1} % (target ≤ {CEILING}, not saturated): {}", met(max_nmi <= CEILING)));
    lines.push(format!(
        "best − worst R@1 = {spread:.1} points against {SPREAD_IN_CIS} × the median 95% CI half-width ({typical_ci:.2}) = {:.1}: {}",
        SPREAD_IN_CIS * typical_ci,
        met(spread > SPREAD_IN_CIS * typical_ci)
    ));
    for l in lines {
        let _ = writeln!(s, "- {l}");
    }
    s.push('\n');
}

/// Whether a per-epoch curve still fell over its last tenth (at least one epoch): `None` when the
/// curve has fewer than two epochs.
pub fn still_falling(curve: &[f64]) -> Option<bool> {
    let n = curve.len();
    if n < 2 {
        return None;
    }
    let back = (n / 10).max(1);
    let (earlier, last) = (curve[n - 1 - back], curve[n - 1]);
    Some((earlier - last) / earlier.abs().max(1e-12) > STILL_FALLING)
}

/// "yes (3/5 seeds)" style summary of `still_falling` over a row's runs, or "–".
fn falling_cell(row: &Row, curve: impl Fn(&crate::store::RunRecord) -> &Vec<f64>) -> String {
    let flags: Vec<bool> = row.records.iter().filter_map(|r| still_falling(curve(r))).collect();
    if flags.is_empty() {
        return "–".into();
    }
    let yes = flags.iter().filter(|&&f| f).count();
    let word = if yes * 2 > flags.len() { "**yes**" } else { "no" };
    format!("{word} ({yes}/{} seeds)", flags.len())
}

/// The convergence table: each variant's last-epoch loss and whether loss and regularizer were
/// still falling when training stopped.
pub(super) fn convergence(s: &mut String, rows: &[Row]) {
    let _ = writeln!(s, "### Convergence\n");
    let mut b = Builder::default();
    b.push_record(["method", "epochs", "last-epoch loss", "loss still falling?", "regularizer still falling?"]);
    for r in rows {
        let last: Vec<f64> =
            r.records.iter().filter_map(|x| x.outcome.diagnostics.epoch_loss.last().copied()).collect();
        let epochs = r.records.first().map_or(0, |x| x.outcome.diagnostics.epoch_loss.len());
        b.push_record([
            r.label.clone(),
            epochs.to_string(),
            mean(&last).map_or("–".into(), |m| format!("{m:.4}")),
            falling_cell(r, |x| &x.outcome.diagnostics.epoch_loss),
            falling_cell(r, |x| &x.outcome.diagnostics.epoch_regularizer),
        ]);
    }
    let _ = writeln!(s, "{}\n", b.build().with(Style::markdown()));
    let _ = writeln!(s, "Still falling: the mean loss of the last epoch is more than {:.0}% below that of the epoch a tenth of the run earlier (in most seeds); such a variant was stopped before it converged.\n", STILL_FALLING * 100.0);
}

/// Whether the regularizer recovered the data's true number of views M: compares the effective
/// centres of SoftTriple with τ > 0 at the largest K > M with those at τ = 0.
pub(super) fn recovered_views(rows: &[Row], true_views: Option<i64>) -> Option<String> {
    let m = true_views?;
    let eff = |r: &Row| mean(&effective_centres(r));
    let with_tau = |positive: bool| {
        rows.iter()
            .filter(|r| r.loss.regularizer_weight().is_some_and(|t| (t > 0.0) == positive))
            .filter(|r| r.loss.centers_per_class().is_some_and(|k| k > m))
            .max_by_key(|r| r.loss.centers_per_class())
    };
    let reg = with_tau(true)?;
    let k = reg.loss.centers_per_class()?;
    let e = eff(reg)?;
    let plain = with_tau(false).filter(|r| r.loss.centers_per_class() == Some(k)).and_then(eff);
    let against = plain.map_or(String::new(), |p| format!(" (τ = 0: {p:.2})"));
    let verdict = if (e - m as f64).abs() <= 0.5 {
        "the regularizer **recovered** M"
    } else if e < k as f64 - 0.5 {
        "the regularizer merged some centres, but **not down to** M"
    } else {
        "the regularizer **did not merge** centres: M was not recovered"
    };
    Some(format!(
        "The data has M = {m} views per class. {} at K = {k} ends with {e:.2} effective centres per class{against}: {verdict}.",
        reg.label
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_is_still_falling_when_its_last_tenth_drops_more_than_one_percent() {
        assert_eq!(still_falling(&[1.0]), None);
        assert_eq!(still_falling(&[2.0, 1.0]), Some(true));
        let flat: Vec<f64> = (0..20).map(|i| 1.0 + 0.5f64.powi(i)).collect();
        assert_eq!(still_falling(&flat), Some(false));
        let falling: Vec<f64> = (0..20).map(|i| 2.0 - 0.05 * i as f64).collect();
        assert_eq!(still_falling(&falling), Some(true));
    }
}
