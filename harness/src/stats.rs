//! Statistics over seeds: mean, standard deviation and a Student-t confidence interval per cell;
//! paired comparisons over shared seeds (paired t-test, exact Wilcoxon signed-rank) with Holm's
//! correction across a family. Only reads numbers; knows nothing of runs or files.
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, spread and 95% interval of one metric over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub std: f64,
    /// Half-width of the 95% Student-t interval; NaN below two values.
    pub ci95: f64,
}

/// Two-sided Student-t quantile t_{1−α/2, df}.
pub fn t_quantile(level: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).expect("df > 0").inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

/// Summarises `values` with a `level` (e.g. 0.95) Student-t interval for the mean.
pub fn summarize(values: &[f64], level: f64) -> Summary {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let std =
        if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let ci95 = if n > 1 { t_quantile(level, (n - 1) as f64) * std / (n as f64).sqrt() } else { f64::NAN };
    Summary { n, mean, std, ci95 }
}

/// A paired comparison of two variants over their shared seeds (differences a − b).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedTest {
    /// Shared seeds.
    pub n: usize,
    /// Mean difference a − b.
    pub mean_diff: f64,
    /// Half-width of its 95% interval (NaN below two pairs).
    pub ci95: f64,
    /// Sample standard deviation of the differences (0 below two pairs).
    pub sd: f64,
    /// Two-sided paired t-test p-value (None below 3 pairs).
    pub t_p: Option<f64>,
    /// Two-sided exact Wilcoxon signed-rank p-value (None below 3 pairs).
    pub wilcoxon_p: Option<f64>,
}

/// Minimum shared seeds for a p-value.
pub const MIN_PAIRS: usize = 3;

/// Two-sided paired t-test p-value of the differences `d`.
pub fn paired_t_p(d: &[f64]) -> f64 {
    let s = summarize(d, 0.95);
    if s.std == 0.0 {
        return if s.mean == 0.0 { 1.0 } else { 0.0 };
    }
    let t = s.mean / (s.std / (s.n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, (s.n - 1) as f64).unwrap();
    (2.0 * (1.0 - dist.cdf(t.abs()))).min(1.0)
}

/// One-sided Student-t quantile t_{level, df} (e.g. level 0.95: the critical value of a 5% one-sided test).
pub fn t_quantile_one_sided(level: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).expect("df > 0").inverse_cdf(level)
}

/// One-sided paired t-test p-value of H1 "E[d] < 0" against H0 "E[d] ≥ 0" (None below two values).
pub fn paired_t_p_below_zero(d: &[f64]) -> Option<f64> {
    if d.len() < 2 {
        return None;
    }
    let s = summarize(d, 0.95);
    if s.std == 0.0 {
        return Some(if s.mean < 0.0 { 0.0 } else { 1.0 });
    }
    let t = s.mean / (s.std / (s.n as f64).sqrt());
    Some(StudentsT::new(0.0, 1.0, (s.n - 1) as f64).unwrap().cdf(t))
}

/// Two-sided exact Wilcoxon signed-rank p-value: zero differences dropped, tied |d| given average
/// ranks, the null distribution of W⁺ enumerated over all 2ⁿ sign patterns of those ranks
/// (n ≤ 20; above that, the normal approximation with tie correction).
pub fn wilcoxon_p(d: &[f64]) -> f64 {
    let nz: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0).collect();
    let n = nz.len();
    if n == 0 {
        return 1.0;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| nz[a].abs().total_cmp(&nz[b].abs()));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[order[j + 1]].abs() == nz[order[i]].abs() {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = avg;
        }
        i = j + 1;
    }
    let w_plus: f64 = (0..n).filter(|&k| nz[k] > 0.0).map(|k| ranks[k]).sum();
    let total: f64 = ranks.iter().sum();
    let mean = total / 2.0;
    let observed = (w_plus - mean).abs();
    if n <= 20 {
        let mut extreme = 0u64;
        for mask in 0u64..(1u64 << n) {
            let w: f64 = (0..n).filter(|&k| mask >> k & 1 == 1).map(|k| ranks[k]).sum();
            if (w - mean).abs() >= observed - 1e-9 {
                extreme += 1;
            }
        }
        return extreme as f64 / (1u64 << n) as f64;
    }
    let var: f64 = ranks.iter().map(|r| r * r).sum::<f64>() / 4.0;
    let z = observed / var.sqrt();
    let normal = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
    (2.0 * (1.0 - normal.cdf(z))).min(1.0)
}

/// Compares `a` against `b` over the seeds both have: pairs are matched by seed.
pub fn paired(a: &[(u64, f64)], b: &[(u64, f64)]) -> PairedTest {
    let d: Vec<f64> = a.iter().filter_map(|(s, x)| b.iter().find(|(t, _)| t == s).map(|(_, y)| x - y)).collect();
    let s = summarize(&d, 0.95);
    let enough = d.len() >= MIN_PAIRS;
    PairedTest {
        n: d.len(),
        mean_diff: s.mean,
        ci95: s.ci95,
        sd: s.std,
        t_p: enough.then(|| paired_t_p(&d)),
        wilcoxon_p: enough.then(|| wilcoxon_p(&d)),
    }
}

/// Holm's step-down adjustment of a family of p-values (same order as given).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Power of the two-sided one-sample (paired) t-test at level `alpha` with `n` pairs when the true
/// mean difference is `effect` standard deviations of the differences: P(|T'| > t_crit) for the
/// noncentral t with n − 1 degrees of freedom and noncentrality effect·√n, computed exactly as
/// E_V[Φ(δ − c·√(V/df)) + Φ(−δ − c·√(V/df))] over V ~ χ²(df) (composite Simpson, 4,000 intervals).
pub fn paired_t_power(effect: f64, n: usize, alpha: f64) -> f64 {
    use statrs::distribution::{ChiSquared, Continuous, Normal};
    if n < 2 {
        return 0.0;
    }
    let df = (n - 1) as f64;
    let c = t_quantile(1.0 - alpha, df);
    let delta = effect * (n as f64).sqrt();
    let (chi, z) = (ChiSquared::new(df).expect("df > 0"), Normal::new(0.0, 1.0).expect("unit normal"));
    let upper = df + 60.0 * (2.0 * df).sqrt() + 60.0;
    let steps = 4000;
    let h = upper / steps as f64;
    let f = |v: f64| {
        let s = c * (v / df).sqrt();
        let density = if v <= 0.0 {
            if df < 2.0 {
                0.0
            } else {
                chi.pdf(1e-300)
            }
        } else {
            chi.pdf(v)
        };
        (z.cdf(delta - s) + z.cdf(-delta - s)) * density
    };
    let mut sum = f(0.0) + f(upper);
    for i in 1..steps {
        sum += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    (sum * h / 3.0).clamp(0.0, 1.0)
}

/// The smallest true mean difference (in the units of the differences, whose sample standard
/// deviation is `sd`) that a two-sided paired t-test at level `alpha` with `n` pairs detects with
/// probability `power`; `None` below two pairs or without spread.
pub fn min_detectable_difference(sd: f64, n: usize, alpha: f64, power: f64) -> Option<f64> {
    if n < 2 || sd.is_nan() || sd <= 0.0 {
        return None;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while paired_t_power(hi, n, alpha) < power {
        hi *= 2.0;
        if hi > 1e6 {
            return None;
        }
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if paired_t_power(mid, n, alpha) < power {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi * sd)
}

/// Least-squares line through `y` at x = 0, 1, 2, …: its slope per step, the slope's standard error
/// and the one-sided p-value of H1 "slope < 0" (Student t, n − 2 df). `None` below three points.
pub fn linear_trend(y: &[f64]) -> Option<Trend> {
    let n = y.len();
    if n < 3 {
        return None;
    }
    let x_mean = (n - 1) as f64 / 2.0;
    let y_mean = y.iter().sum::<f64>() / n as f64;
    let sxx: f64 = (0..n).map(|i| (i as f64 - x_mean).powi(2)).sum();
    let sxy: f64 = y.iter().enumerate().map(|(i, v)| (i as f64 - x_mean) * (v - y_mean)).sum();
    let slope = sxy / sxx;
    let rss: f64 = y.iter().enumerate().map(|(i, v)| (v - y_mean - slope * (i as f64 - x_mean)).powi(2)).sum();
    let se = (rss / (n - 2) as f64 / sxx).sqrt();
    let p_falling = if se == 0.0 {
        if slope < 0.0 {
            0.0
        } else {
            1.0
        }
    } else {
        StudentsT::new(0.0, 1.0, (n - 2) as f64).unwrap().cdf(slope / se)
    };
    Some(Trend { slope, se, mean: y_mean, p_falling })
}

/// A fitted straight-line trend (see [`linear_trend`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// Change per step.
    pub slope: f64,
    /// Standard error of the slope.
    pub se: f64,
    /// Mean of the values.
    pub mean: f64,
    /// One-sided p-value of a falling trend.
    pub p_falling: f64,
}

/// The smallest p-value the exact two-sided Wilcoxon signed-rank test can give with `n` non-zero
/// differences (all of one sign): 2 / 2ⁿ.
pub fn wilcoxon_min_p(n: usize) -> f64 {
    (2.0 / 2f64.powi(n as i32)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_by_hand() {
        // values 1, 2, 3, 4: mean 2.5, s² = 5/3, t_{0.975,3} = 3.182446305
        let s = summarize(&[1.0, 2.0, 3.0, 4.0], 0.95);
        assert_eq!(s.n, 4);
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.ci95 - 3.182_446_305_284_263 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-9);
        let one = summarize(&[7.0], 0.95);
        assert!(one.ci95.is_nan() && one.std == 0.0 && one.mean == 7.0, "{one:?}");
        let none = summarize(&[], 0.95);
        assert!(none.n == 0 && none.mean == 0.0 && none.std == 0.0 && none.ci95.is_nan(), "{none:?}");
    }

    #[test]
    fn identical_differences_are_certain_either_way() {
        // No spread: a constant non-zero difference is certain (p = 0), all zeros are no evidence (p = 1).
        assert_eq!(paired_t_p(&[2.0, 2.0, 2.0]), 0.0);
        assert_eq!(paired_t_p(&[0.0, 0.0, 0.0]), 1.0);
        assert_eq!(paired_t_p_below_zero(&[-1.0, -1.0]), Some(0.0));
        assert_eq!(paired_t_p_below_zero(&[1.0, 1.0]), Some(1.0));
        // Exactly at the boundary (the regression check's "worse by exactly the tolerance") is not below.
        assert_eq!(paired_t_p_below_zero(&[0.0, 0.0]), Some(1.0));
        assert_eq!(paired_t_p_below_zero(&[-1.0]), None, "one value has no spread to test against");
    }

    #[test]
    fn linear_trend_by_hand() {
        // y = 3, 1, 2, 0 at x = 0..3: x̄ = 1.5, ȳ = 1.5, Sxx = 5, Sxy = -4 → slope -0.8;
        // residuals 0.3, -0.9, 0.9, -0.3 → RSS = 1.8, se = sqrt(1.8 / 2 / 5) = sqrt(0.18).
        let t = linear_trend(&[3.0, 1.0, 2.0, 0.0]).unwrap();
        assert!((t.slope + 0.8).abs() < 1e-12 && (t.mean - 1.5).abs() < 1e-12, "{t:?}");
        assert!((t.se - 0.18f64.sqrt()).abs() < 1e-12, "{t:?}");
        // t = -0.8 / 0.4243 = -1.8856 with 2 df: one-sided p = 0.1 (t_{0.9, 2} = 1.8856).
        assert!((t.p_falling - 0.1).abs() < 1e-3, "{t:?}");
        let rising = linear_trend(&[0.0, 1.0, 2.0]).unwrap();
        assert_eq!((rising.slope, rising.p_falling), (1.0, 1.0));
        let falling = linear_trend(&[2.0, 1.0, 0.0]).unwrap();
        assert_eq!(falling.p_falling, 0.0);
        assert_eq!(linear_trend(&[1.0, 0.0]), None);
    }

    #[test]
    fn wilcoxon_exact_by_hand() {
        // d = 1, 2, 3 all positive: W+ = 6 is the most extreme of 8 patterns on each side → p = 2/8.
        assert!((wilcoxon_p(&[1.0, 2.0, 3.0]) - 0.25).abs() < 1e-12);
        // d = 1, -2, 3: W+ = 4, mean 3, |4-3| = 1; patterns with |W+ − 3| ≥ 1: all but W+ = 3 (two of 8) → 6/8.
        assert!((wilcoxon_p(&[1.0, -2.0, 3.0]) - 0.75).abs() < 1e-12);
        // zeros are dropped
        assert!((wilcoxon_p(&[0.0, 1.0, 2.0, 3.0]) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn holm_by_hand() {
        let adj = holm(&[0.01, 0.04, 0.03]);
        // sorted 0.01, 0.03, 0.04 → 0.03, 0.06, max(0.06, 0.04) = 0.06
        assert!((adj[0] - 0.03).abs() < 1e-12 && (adj[2] - 0.06).abs() < 1e-12 && (adj[1] - 0.06).abs() < 1e-12);
    }

    #[test]
    fn fewer_than_three_shared_seeds_give_no_p_value() {
        let t = paired(&[(0, 1.0), (1, 2.0), (5, 9.0)], &[(0, 0.5), (1, 1.0), (2, 3.0)]);
        assert_eq!(t.n, 2);
        assert!(t.t_p.is_none() && t.wilcoxon_p.is_none());
        assert!((t.mean_diff - 0.75).abs() < 1e-12);
    }
}
