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
