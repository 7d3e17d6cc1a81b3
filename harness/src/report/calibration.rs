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

/// A fitted fall of the curve's tail larger than this fraction of its level counts as still falling.
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

/// The tail of a per-epoch curve that the convergence check fits: the last fifth of the epochs,
/// at least [`MIN_TAIL`] of them.
pub const TAIL_FRACTION: usize = 5;
/// Fewest epochs in the fitted tail.
pub const MIN_TAIL: usize = 3;
/// One-sided level at which the tail's fall must be significant (epoch means are noisy: a single
/// epoch's mean loss moves by several percent from one epoch to the next).
pub const TREND_ALPHA: f64 = 0.05;

/// How a curve ended: the straight line fitted to its tail.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    /// Epochs in the tail.
    pub epochs: usize,
    /// The fitted change across the tail relative to the tail's mean (−0.02: fell by 2 %).
    pub change: f64,
    /// Still falling: a fall larger than [`STILL_FALLING`] of the mean and significant at [`TREND_ALPHA`].
    pub falling: bool,
}

/// Fits a line to the last fifth of a per-epoch curve (at least three epochs): `None` for a
/// shorter curve.
pub fn tail_trend(curve: &[f64]) -> Option<Tail> {
    let epochs = (curve.len() / TAIL_FRACTION).max(MIN_TAIL);
    if curve.len() < epochs {
        return None;
    }
    let t = crate::stats::linear_trend(&curve[curve.len() - epochs..])?;
    let change = t.slope * (epochs - 1) as f64 / t.mean.abs().max(1e-12);
    Some(Tail { epochs, change, falling: change < -STILL_FALLING && t.p_falling < TREND_ALPHA })
}

/// Whether a per-epoch curve was still falling when it stopped (see [`tail_trend`]).
pub fn still_falling(curve: &[f64]) -> Option<bool> {
    tail_trend(curve).map(|t| t.falling)
}

/// Whether a variant's curves were still falling, judged over its seeds: the fitted tail changes of
/// its runs (see [`tail_trend`]) fall on average by more than [`STILL_FALLING`], and significantly
/// (one-sided t-test over seeds at [`TREND_ALPHA`]; one run: its slope's own test). Returns the
/// verdict, the mean change and its 95% half-width over seeds (NaN for one run); `None` without a tail.
pub fn variant_still_falling(tails: &[Tail]) -> Option<(bool, f64, f64)> {
    let changes: Vec<f64> = tails.iter().map(|t| t.change).collect();
    let s = crate::stats::summarize(&changes, 0.95);
    let falling = match tails {
        [] => return None,
        [one] => one.falling,
        _ => s.mean < -STILL_FALLING && crate::stats::paired_t_p_below_zero(&changes).is_some_and(|p| p < TREND_ALPHA),
    };
    Some((falling, s.mean, s.ci95))
}

/// The fitted tails of a row's runs for one per-epoch curve (runs too short for a tail are left out).
fn row_tails(row: &Row, curve: impl Fn(&crate::store::RunRecord) -> &Vec<f64>) -> Vec<Tail> {
    row.records.iter().filter_map(|r| tail_trend(curve(r))).collect()
}

/// "**yes** (−7.8 ± 1.2 %)" style summary of a row's curves (see [`variant_still_falling`]), or "–".
fn falling_cell(row: &Row, curve: impl Fn(&crate::store::RunRecord) -> &Vec<f64>) -> String {
    let Some((falling, mean, ci)) = variant_still_falling(&row_tails(row, curve)) else {
        return "–".into();
    };
    let word = if falling { "**yes**" } else { "no" };
    if ci.is_finite() {
        format!("{word} ({:+.1} ± {:.1} %)", mean * 100.0, ci * 100.0)
    } else {
        format!("{word} ({:+.1} %, one run)", mean * 100.0)
    }
}

/// The mark of a verdict whose losses had not converged (see [`convergence_caveat`]).
pub(super) const NOT_CONVERGED: &str = "**not converged**";

/// The words a verdict between `rows` gets when the training loss of any of them was still falling
/// when training stopped (see [`variant_still_falling`]): "; **not converged**: …, so it holds at this
/// training length". Empty when every one had flattened (or no curve has a tail).
pub(super) fn convergence_caveat(rows: &[&Row]) -> String {
    let falling: Vec<String> = rows
        .iter()
        .filter_map(|r| match variant_still_falling(&row_tails(r, |x| &x.outcome.diagnostics.epoch_loss)) {
            Some((true, mean, _)) => Some(format!("{} {:+.1} %", r.label, mean * 100.0)),
            _ => None,
        })
        .collect();
    if falling.is_empty() {
        return String::new();
    }
    // Under a protocol, training length is what model selection on the validation classes chose:
    // a stated stopping rule. The training-loss trend stays a diagnostic (the Convergence table).
    if rows.iter().all(|r| r.records.iter().all(|x| x.config.protocol.is_some())) {
        return format!("; training stopped where model selection on the validation classes put it (the training loss was still falling for {}: see Convergence)", falling.join(", "));
    }
    format!(
        "; {NOT_CONVERGED}: the training loss was still falling over the last fifth of training ({}), so it holds at this training length",
        falling.join(", ")
    )
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
    let _ = writeln!(
        s,
        "Still falling: a straight line is fitted to each run's mean loss per epoch over the last fifth of the epochs (at least {MIN_TAIL}); the cell gives its change across them relative to its level, averaged over seeds (± the 95% interval). A variant is still falling, that is stopped before it converged, when that mean fall exceeds {:.0}% and is significant across seeds (one-sided t-test, p < {TREND_ALPHA}; for a single run, its slope's own test). A line, not two single epochs: an epoch's mean loss moves by several percent from one epoch to the next.\n",
        STILL_FALLING * 100.0
    );
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
    fn a_curve_is_still_falling_when_its_tail_falls_by_more_than_one_percent_beyond_its_noise() {
        assert_eq!(still_falling(&[2.0, 1.0]), None, "too short for a fitted tail");
        let flat: Vec<f64> = (0..20).map(|i| 1.0 + 0.5f64.powi(i)).collect();
        assert_eq!(still_falling(&flat), Some(false));
        let falling: Vec<f64> = (0..20).map(|i| 2.0 - 0.05 * i as f64).collect();
        let tail = tail_trend(&falling).unwrap();
        assert_eq!(tail.epochs, 4, "a fifth of 20 epochs");
        // The last four epochs 1.20, 1.15, 1.10, 1.05: −0.15 across them, mean 1.125.
        assert!((tail.change + 0.15 / 1.125).abs() < 1e-12 && tail.falling, "{tail:?}");
        // Noise around a flat level: the last single epoch is 5 % below an earlier one, the line is flat.
        let noisy: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { 1.05 } else { 1.0 }).collect();
        assert_eq!(still_falling(&noisy), Some(false));
        // A steady fall smaller than 1 % across the tail is flat enough, however significant.
        let slow: Vec<f64> = (0..40).map(|i| 1.0 - 0.0005 * i as f64).collect();
        assert_eq!(still_falling(&slow), Some(false));
        // A 4 % fall hidden in ±3 % noise is not significant on 8 points...
        let hidden: Vec<f64> =
            (0..40).map(|i| 1.0 - 0.005 * i as f64 + if i % 2 == 0 { 0.03 } else { -0.03 }).collect();
        assert!(!tail_trend(&hidden).unwrap().falling, "{:?}", tail_trend(&hidden));
        // ... a 1.5 % fall in ±0.3 % noise is.
        let clear: Vec<f64> =
            (0..40).map(|i| 1.0 - 0.002 * i as f64 + if i % 2 == 0 { 0.003 } else { -0.003 }).collect();
        assert!(tail_trend(&clear).unwrap().falling, "{:?}", tail_trend(&clear));
    }

    #[test]
    fn a_variant_is_still_falling_when_its_seeds_agree_on_a_fall_beyond_one_percent() {
        let tail = |change: f64, falling: bool| Tail { epochs: 8, change, falling };
        assert_eq!(variant_still_falling(&[]), None);
        // Five seeds, each fall alone too noisy to be significant, together clearly falling.
        let seeds = [tail(-0.08, false), tail(-0.06, false), tail(-0.09, true), tail(-0.07, false), tail(-0.08, false)];
        let (falling, mean, ci) = variant_still_falling(&seeds).unwrap();
        assert!(falling && (mean + 0.076).abs() < 1e-12 && ci > 0.0 && ci < 0.02, "{mean} ± {ci}");
        // Consistent but below 1 %: flat enough.
        let small = [tail(-0.004, true), tail(-0.006, true), tail(-0.005, true)];
        assert!(!variant_still_falling(&small).unwrap().0);
        // Large but of either sign: not a fall.
        let mixed = [tail(-0.08, true), tail(0.07, false), tail(-0.02, false), tail(0.05, false)];
        assert!(!variant_still_falling(&mixed).unwrap().0);
        // One run: its own test decides, and there is no interval.
        let (one, _, ci) = variant_still_falling(&[tail(-0.05, true)]).unwrap();
        assert!(one && ci.is_nan());
    }
}
