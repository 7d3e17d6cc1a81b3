//! Retrieval metrics from a neighbour list (paper.md §5): Recall@K, R-Precision and MAP@R.
//!
//! Policy for queries whose class has no other member in the test set ("lone queries"): they can
//! never retrieve a match, so they are left out of every retrieval metric (as pytorch-metric-
//! learning's `AccuracyCalculator` does) and counted in `RetrievalMetrics::lone_queries`.
use tch::{Kind, Tensor};

/// Retrieval metrics over the non-lone queries. A metric missing from a stored record (written
/// before the metric existed) reads as NaN, or as no Recall@K, and reports leave it out.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RetrievalMetrics {
    /// `(K, Recall@K)` for every requested K, in the requested order.
    pub recall_at_k: Vec<(i64, f64)>,
    /// Mean over queries of the precision of the first R neighbours, R = others of the query's class.
    pub r_precision: f64,
    /// Mean over queries of `(1/R) Σ_{i≤R} P@i · rel(i)` (Musgrave et al. 2020).
    pub map_at_r: f64,
    /// Queries whose class has no other member, left out of the metrics above.
    pub lone_queries: i64,
}

impl Default for RetrievalMetrics {
    fn default() -> Self {
        Self { recall_at_k: vec![], r_precision: f64::NAN, map_at_r: f64::NAN, lone_queries: 0 }
    }
}

/// For every query, the number of other samples of its class (R), as a tensor on `labels`' device.
pub fn same_class_others(labels: &Tensor) -> Tensor {
    let (_, inverse, counts) = labels.unique_dim(0, true, true, true);
    counts.index_select(0, &inverse.view([-1])) - 1
}

/// Largest R over all queries: the neighbour depth MAP@R and R-Precision need.
pub fn max_same_class_others(labels: &Tensor) -> i64 {
    i64::try_from(same_class_others(labels).max()).unwrap_or(0)
}

/// Computes the metrics from `neighbours` (N × depth gallery indices, nearest first) and `labels`.
/// `depth` must be at least every K and every query's R (capped by N − 1).
pub fn retrieval_metrics(neighbours: &Tensor, labels: &Tensor, ks: &[i64]) -> RetrievalMetrics {
    let depth = neighbours.size()[1];
    let relevant = labels.index_select(0, &neighbours.view([-1])).view([-1, depth]).eq_tensor(&labels.unsqueeze(1));
    let r = same_class_others(labels);
    let counted = r.gt(0);
    let n_counted = i64::try_from(counted.sum(Kind::Int64)).unwrap();
    let lone_queries = labels.size()[0] - n_counted;
    let mean_over_counted = |per_query: &Tensor| -> f64 {
        if n_counted == 0 {
            return f64::NAN;
        }
        f64::try_from(per_query.to_kind(Kind::Double).masked_select(&counted).sum(Kind::Double)).unwrap()
            / n_counted as f64
    };
    let recall_at_k = ks
        .iter()
        .map(|&k| {
            let hit = relevant.narrow(1, 0, k.min(depth)).any_dim(1, false);
            (k, mean_over_counted(&hit))
        })
        .collect();
    // Positions 1..=depth; only the first R of each row count.
    let pos = Tensor::arange_start(1, depth + 1, (Kind::Int64, labels.device())).unsqueeze(0);
    let within_r = pos.le_tensor(&r.unsqueeze(1));
    let rel_r = relevant.logical_and(&within_r).to_kind(Kind::Double);
    let r_safe = r.clamp_min(1).to_kind(Kind::Double);
    let r_precision = rel_r.sum_dim_intlist([1].as_slice(), false, Kind::Double) / &r_safe;
    let precision_at_i = relevant.to_kind(Kind::Double).cumsum(1, Kind::Double) / pos.to_kind(Kind::Double);
    let map_r = (precision_at_i * &rel_r).sum_dim_intlist([1].as_slice(), false, Kind::Double) / &r_safe;
    RetrievalMetrics {
        recall_at_k,
        r_precision: mean_over_counted(&r_precision),
        map_at_r: mean_over_counted(&map_r),
        lone_queries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_recall_r_precision_map_at_r_and_lone_queries() {
        // Labels: class 0 has 3 samples (R = 2), class 1 two (R = 1), class 2 one (lone).
        let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 1, 2]);
        let nbrs: Vec<i64> = vec![
            3, 1, 2, // q0: rel 0,1,1 → R@1 0, R@2 1, RP 1/2, MAP (1/2)(0 + 1/2) = 1/4
            3, 4, 0, // q1: rel 0,0,1 → R@1 0, R@2 0, RP 0, MAP 0
            0, 1, 3, // q2: rel 1,1,0 → R@1 1, R@2 1, RP 1, MAP 1
            4, 0, 1, // q3: rel 1,0,0 → R@1 1, R@2 1, RP 1, MAP 1
            0, 3, 1, // q4: rel 0,1,0 → R@1 0, R@2 1, RP 0, MAP 0
            0, 1, 2, // q5: lone, left out
        ];
        let nbrs = Tensor::from_slice(&nbrs).view([6, 3]);
        let m = retrieval_metrics(&nbrs, &labels, &[1, 2, 3]);
        assert_eq!(m.lone_queries, 1);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(m.recall_at_k[0].1, 2.0 / 5.0), "{:?}", m.recall_at_k);
        assert!(close(m.recall_at_k[1].1, 4.0 / 5.0), "{:?}", m.recall_at_k);
        assert!(close(m.recall_at_k[2].1, 1.0), "{:?}", m.recall_at_k);
        assert!(close(m.r_precision, (0.5 + 0.0 + 1.0 + 1.0 + 0.0) / 5.0), "{}", m.r_precision);
        assert!(close(m.map_at_r, (0.25 + 0.0 + 1.0 + 1.0 + 0.0) / 5.0), "{}", m.map_at_r);
    }

    #[test]
    fn same_class_others_counts_the_rest_of_each_class() {
        let labels = Tensor::from_slice(&[5i64, 3, 5, 5, 9, 3]);
        assert_eq!(Vec::<i64>::try_from(same_class_others(&labels)).unwrap(), vec![2, 1, 2, 2, 0, 1]);
        assert_eq!(max_same_class_others(&labels), 2);
    }
}
