//! Normalised mutual information with the arithmetic normaliser (paper.md §5):
//! `NMI = I(Y;Ω) / ((H(Y) + H(Ω)) / 2)`, scikit-learn's default since 0.22.
//! Sums run in a fixed (sorted) order, so the value is bit-identical from run to run.
use std::collections::BTreeMap;

/// NMI between two labelings of the same samples. Two labelings with a single group each (both
/// entropies zero) are identical partitions and score 1, as in scikit-learn.
pub fn normalized_mutual_info(truth: &[i64], clusters: &[i64]) -> f64 {
    assert_eq!(truth.len(), clusters.len(), "labelings must have the same length");
    let n = truth.len() as f64;
    if truth.is_empty() {
        return 1.0;
    }
    let mut joint: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    let mut a: BTreeMap<i64, f64> = BTreeMap::new();
    let mut b: BTreeMap<i64, f64> = BTreeMap::new();
    for (&y, &c) in truth.iter().zip(clusters) {
        *joint.entry((y, c)).or_default() += 1.0;
        *a.entry(y).or_default() += 1.0;
        *b.entry(c).or_default() += 1.0;
    }
    if a.len() == 1 && b.len() == 1 {
        return 1.0;
    }
    let entropy = |m: &BTreeMap<i64, f64>| -> f64 { -m.values().map(|&v| (v / n) * (v / n).ln()).sum::<f64>() };
    let mi: f64 = joint.iter().map(|(&(y, c), &v)| (v / n) * ((n * v) / (a[&y] * b[&c])).ln()).sum();
    let denom = (entropy(&a) + entropy(&b)) / 2.0;
    if denom <= 0.0 {
        return 0.0;
    }
    (mi.max(0.0) / denom).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_partitions_score_one_whatever_the_names() {
        assert!((normalized_mutual_info(&[0, 0, 1, 1, 2], &[7, 7, 3, 3, 9]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn independent_partitions_score_zero() {
        // Every cluster holds one sample of each class: I(Y;Ω) = 0.
        assert!(normalized_mutual_info(&[0, 1, 0, 1], &[0, 0, 1, 1]).abs() < 1e-12);
    }

    #[test]
    fn closed_form_on_a_small_case() {
        // Y = [0,0,0,1,1,1], Ω = [0,0,1,1,1,1]. Contingency: (0,0)=2, (0,1)=1, (1,1)=3.
        let y = [0, 0, 0, 1, 1, 1];
        let c = [0, 0, 1, 1, 1, 1];
        let n = 6.0_f64;
        let mi = (2.0 / n) * ((n * 2.0) / (3.0 * 2.0)).ln()
            + (1.0 / n) * ((n * 1.0) / (3.0 * 4.0)).ln()
            + (3.0 / n) * ((n * 3.0) / (3.0 * 4.0)).ln();
        let hy = -(0.5f64 * 0.5f64.ln()) * 2.0;
        let hc = -((2.0 / n) * (2.0 / n).ln() + (4.0 / n) * (4.0 / n).ln());
        let expected = mi / ((hy + hc) / 2.0);
        assert!((normalized_mutual_info(&y, &c) - expected).abs() < 1e-12);
    }

    #[test]
    fn the_normaliser_is_the_arithmetic_mean_not_the_geometric_one() {
        // Six singletons against two balanced classes: I = H(Y) = ln 2, H(Ω) = ln 6.
        // Arithmetic: ln2 / ((ln2 + ln6)/2) ≈ 0.5575; geometric: ln2 / √(ln2·ln6) ≈ 0.6218.
        let nmi = normalized_mutual_info(&[0, 0, 0, 1, 1, 1], &[0, 1, 2, 3, 4, 5]);
        let (l2, l6) = (2f64.ln(), 6f64.ln());
        assert!((nmi - l2 / ((l2 + l6) / 2.0)).abs() < 1e-12, "{nmi}");
        assert!((nmi - l2 / (l2 * l6).sqrt()).abs() > 0.05);
    }

    #[test]
    fn single_cluster_against_several_classes_scores_zero() {
        assert_eq!(normalized_mutual_info(&[0, 1, 2, 3], &[5, 5, 5, 5]), 0.0);
        assert_eq!(normalized_mutual_info(&[4, 4], &[5, 5]), 1.0);
    }
}
