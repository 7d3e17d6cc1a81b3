//! From records to numbers: the metrics a record holds (one [`Metric`] list), a metric's
//! `(seed, value)` pairs, and the cells (data set × embedding size × loss variant) that report,
//! regress and table group runs into. Reads records; knows nothing of Markdown or files.
use crate::eval::EvalReport;
use crate::store::RunRecord;
use crate::train::RunStatus;
use std::collections::BTreeMap;

/// A metric of a run, in the order reports show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Recall@K (paper.md §5).
    RecallAt(i64),
    /// NMI of k-means on the embeddings (paper.md §5).
    Nmi,
    /// MAP@R (Musgrave et al. 2020).
    MapAtR,
    /// R-Precision.
    RPrecision,
}

impl Metric {
    /// Its column name: `R@1`, `NMI`, `MAP@R`, `RP`.
    pub fn name(&self) -> String {
        match self {
            Metric::RecallAt(k) => format!("R@{k}"),
            Metric::Nmi => "NMI".into(),
            Metric::MapAtR => "MAP@R".into(),
            Metric::RPrecision => "RP".into(),
        }
    }

    /// Parses a column name (`R@4`, `NMI`, `MAP@R`, `RP`).
    pub fn parse(name: &str) -> Option<Metric> {
        match name {
            "NMI" => Some(Metric::Nmi),
            "MAP@R" => Some(Metric::MapAtR),
            "RP" => Some(Metric::RPrecision),
            _ => name.strip_prefix("R@").and_then(|k| k.parse().ok()).filter(|k| *k > 0).map(Metric::RecallAt),
        }
    }

    /// Its value in % in an evaluation report, when the report measured it (a metric a record
    /// predates reads as NaN: not measured).
    pub fn value(&self, m: &EvalReport) -> Option<f64> {
        let v = match self {
            Metric::RecallAt(k) => m.retrieval.recall_at_k.iter().find(|(j, _)| j == k)?.1,
            Metric::Nmi => m.nmi.as_ref()?.nmi,
            Metric::MapAtR => m.retrieval.map_at_r,
            Metric::RPrecision => m.retrieval.r_precision,
        };
        v.is_finite().then_some(100.0 * v)
    }

    /// Every metric an evaluation report holds, in report order.
    pub fn all_in(m: &EvalReport) -> Vec<Metric> {
        let mut v: Vec<Metric> = m.retrieval.recall_at_k.iter().map(|(k, _)| Metric::RecallAt(*k)).collect();
        if m.nmi.is_some() {
            v.push(Metric::Nmi);
        }
        v.extend([Metric::MapAtR, Metric::RPrecision]);
        v
    }
}

/// The metric columns of a record, in %: R@K for each K, NMI, MAP@R, R-Precision.
pub fn metric_values(r: &RunRecord) -> Vec<(String, f64)> {
    let Some(m) = &r.outcome.metrics else { return vec![] };
    Metric::all_in(m).into_iter().filter_map(|x| Some((x.name(), x.value(m)?))).collect()
}

/// `(seed, value in %)` of one metric over records (records without the metric are skipped).
pub fn seeded_values(records: &[&RunRecord], metric: &str) -> Vec<(u64, f64)> {
    let Some(metric) = Metric::parse(metric) else { return vec![] };
    records
        .iter()
        .filter_map(|r| r.outcome.metrics.as_ref().and_then(|m| metric.value(m)).map(|v| (r.config.seed, v)))
        .collect()
}

/// The cell a run belongs to: `<data> d<dim> <loss label>`, e.g. `synthetic d64 SoftTriple K=4`.
/// A protocol run's cell is its study's, with its role: `… [search]`, `… [tuned]`, `… [default]`.
pub fn cell_key(r: &RunRecord) -> String {
    use crate::protocol::{Phase, Setting};
    let Some(p) = &r.config.protocol else {
        return format!("{} d{} {}", r.config.data.name(), r.config.dim, r.config.loss.label());
    };
    let role = match (p.phase, p.setting) {
        (Phase::Search, _) => "search",
        (Phase::Final, Setting::Tuned) => "tuned",
        (Phase::Final, _) => "default",
    };
    if p.is_concatenated_evaluation() {
        return format!("{} [{role} concatenated]", p.study);
    }
    format!("{} [{role}]", p.study)
}

/// Finished runs grouped by cell, cells in key order, runs in the order given.
/// Search runs of a protocol have no test metrics and are left out.
pub fn finished_cells(records: &[RunRecord]) -> BTreeMap<String, Vec<&RunRecord>> {
    let mut m: BTreeMap<String, Vec<&RunRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.outcome.status == RunStatus::Finished && r.outcome.metrics.is_some()) {
        m.entry(cell_key(r)).or_default().push(r);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::{metric_values, Metric};
    use crate::store::RunRecord;

    #[test]
    fn a_record_older_than_a_metric_loads_and_leaves_the_metric_out() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../results/baselines/ci/runs");
        let first = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap().path();
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(first).unwrap()).unwrap();
        v["outcome"]["metrics"]["retrieval"].as_object_mut().unwrap().remove("map_at_r");
        let r: RunRecord = serde_json::from_value(v).unwrap();
        let names: Vec<String> = metric_values(&r).into_iter().map(|(k, _)| k).collect();
        assert!(names.contains(&"R@1".to_string()) && !names.contains(&"MAP@R".to_string()), "{names:?}");
    }

    #[test]
    fn metric_names_round_trip_and_nonsense_is_refused() {
        for m in [Metric::RecallAt(1), Metric::RecallAt(100), Metric::Nmi, Metric::MapAtR, Metric::RPrecision] {
            assert_eq!(Metric::parse(&m.name()), Some(m));
        }
        for bad in ["R@0", "R@x", "nmi", "MAP", ""] {
            assert_eq!(Metric::parse(bad), None, "{bad}");
        }
    }
}
