//! Statistics against scipy on committed fixtures (`fixtures/make_stats_fixtures.py`).
use harness::regress::one_sided_drop_p;
use harness::stats::{holm, paired};

#[derive(serde::Deserialize)]
struct Paired {
    a: Vec<f64>,
    b: Vec<f64>,
    mean_diff: f64,
    ci95: f64,
    t_p: f64,
    wilcoxon_p: f64,
    #[serde(rename = "one_sided_drop_p_tol_0.5")]
    one_sided: f64,
}

#[derive(serde::Deserialize)]
struct Holm {
    p: Vec<f64>,
    adjusted: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    paired: Vec<Paired>,
    holm: Holm,
}

#[test]
fn paired_tests_intervals_and_holm_match_scipy() {
    let f: Fixture = serde_json::from_str(include_str!("fixtures/stats_scipy.json")).unwrap();
    assert_eq!(f.paired.len(), 5);
    for (i, c) in f.paired.iter().enumerate() {
        let seeded = |v: &[f64]| v.iter().enumerate().map(|(s, x)| (s as u64, *x)).collect::<Vec<_>>();
        let t = paired(&seeded(&c.a), &seeded(&c.b));
        assert!((t.mean_diff - c.mean_diff).abs() < 1e-9, "case {i}: mean diff");
        assert!((t.ci95 - c.ci95).abs() < 1e-9, "case {i}: CI {} vs {}", t.ci95, c.ci95);
        assert!((t.t_p.unwrap() - c.t_p).abs() < 1e-9, "case {i}: t p {} vs scipy {}", t.t_p.unwrap(), c.t_p);
        assert!(
            (t.wilcoxon_p.unwrap() - c.wilcoxon_p).abs() < 1e-9,
            "case {i}: Wilcoxon p {} vs scipy {}",
            t.wilcoxon_p.unwrap(),
            c.wilcoxon_p
        );
        // The regression check's test: is b worse than a by more than 0.5?
        let (_, p) = one_sided_drop_p(&seeded(&c.a), &seeded(&c.b), 0.5).unwrap();
        assert!((p - c.one_sided).abs() < 1e-9, "case {i}: one-sided p {p} vs scipy {}", c.one_sided);
    }
    let adj = holm(&f.holm.p);
    for (a, b) in adj.iter().zip(&f.holm.adjusted) {
        assert!((a - b).abs() < 1e-12);
    }
}

/// A small deterministic normal generator (Box–Muller over a 64-bit LCG) for the simulations.
struct Gauss(u64);

impl Gauss {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Families of `m` paired comparisons of `n` seeds, differences N(shift, 1): the fraction of
/// families with at least one Holm-adjusted rejection (t-test, Wilcoxon), and of single tests.
fn simulate(families: usize, m: usize, n: usize, shift: f64, alpha: f64, seed: u64) -> (f64, f64, f64) {
    let mut g = Gauss(seed);
    let (mut any_t, mut any_w, mut single_t) = (0usize, 0usize, 0usize);
    for _ in 0..families {
        let (mut pt, mut pw) = (vec![], vec![]);
        for _ in 0..m {
            let a: Vec<(u64, f64)> = (0..n as u64).map(|s| (s, shift + g.normal())).collect();
            let b: Vec<(u64, f64)> = (0..n as u64).map(|s| (s, 0.0)).collect();
            let t = paired(&a, &b);
            pt.push(t.t_p.unwrap());
            pw.push(t.wilcoxon_p.unwrap());
        }
        single_t += usize::from(pt[0] < alpha);
        any_t += usize::from(holm(&pt).iter().any(|p| *p < alpha));
        any_w += usize::from(holm(&pw).iter().any(|p| *p < alpha));
    }
    let f = families as f64;
    (any_t as f64 / f, any_w as f64 / f, single_t as f64 / f)
}

#[test]
fn negative_control_null_pairs_are_rejected_at_most_at_alpha_after_holm() {
    let (alpha, families) = (0.05, 4000);
    let se = (alpha * (1.0 - alpha) / families as f64).sqrt();
    for (m, n) in [(1, 5), (5, 8), (15, 10)] {
        let (fw_t, fw_w, single) = simulate(families, m, n, 0.0, alpha, 17 + m as u64);
        // Holm controls the family-wise rate at alpha; a single t-test's size is alpha.
        assert!(fw_t <= alpha + 3.0 * se, "m {m}, n {n}: t family-wise rate {fw_t}");
        assert!(fw_w <= alpha + 3.0 * se, "m {m}, n {n}: Wilcoxon family-wise rate {fw_w}");
        assert!((single - alpha).abs() <= 3.0 * se, "m {m}, n {n}: single t-test rate {single}");
    }
}

#[test]
fn positive_control_a_shift_of_the_stated_mdd_is_detected_at_the_stated_power() {
    use harness::stats::{min_detectable_difference, paired_t_power};
    let families = 4000;
    for (n, alpha) in [(5, 0.05), (10, 0.05 / 15.0), (20, 0.01)] {
        let mdd = min_detectable_difference(1.0, n, alpha, 0.8).unwrap();
        assert!((paired_t_power(mdd, n, alpha) - 0.8).abs() < 1e-6);
        // Detection rate of single tests at level alpha with the true shift = MDD (sd 1).
        let mut g = Gauss(99 + n as u64);
        let hits = (0..families)
            .filter(|_| {
                let d: Vec<f64> = (0..n).map(|_| mdd + g.normal()).collect();
                harness::stats::paired_t_p(&d) < alpha
            })
            .count() as f64
            / families as f64;
        let se = (0.8f64 * 0.2 / families as f64).sqrt();
        assert!((hits - 0.8).abs() <= 3.0 * se, "n {n}, alpha {alpha}: detected {hits} at MDD {mdd}");
    }
    // Known values (G*Power, two-tailed one-sample t): d = 1.0 with n = 10 at alpha 0.05 has
    // power 0.803; the MDD at n = 5, alpha 0.05 is about 1.68 standard deviations.
    assert!((paired_t_power(1.0, 10, 0.05) - 0.803).abs() < 0.002, "{}", paired_t_power(1.0, 10, 0.05));
    let m5 = min_detectable_difference(1.0, 5, 0.05, 0.8).unwrap();
    assert!((m5 - 1.68).abs() < 0.02, "{m5}");
    assert_eq!(harness::stats::wilcoxon_min_p(5), 0.0625);
}
