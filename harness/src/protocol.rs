//! The fair-comparison protocol of a sweep file's `protocol:` block (Musgrave, Belongie & Lim,
//! *A Metric Learning Reality Check*, ECCV 2020): a class-disjoint validation split of the training
//! classes, model selection on it, and an equal-budget hyperparameter search per loss, with the
//! test split read in the final phase only. This module holds the settings and what each run of the
//! protocol records of them ([`RunProtocol`]); the search itself is planned by `sweep::search` and a
//! run's selection loop lives in `train`.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The score of a trial that failed or diverged: the worst a validation metric in % can be.
pub const WORST: f64 = 0.0;

/// A search run's contribution to its trial's score: its best validation value when it finished
/// with a finite one, [`WORST`] otherwise (failed, diverged, no score).
pub fn run_value(finished: bool, best_value: Option<f64>) -> f64 {
    best_value.filter(|v| finished && v.is_finite()).unwrap_or(WORST)
}

/// A trial's objective from its folds' values: the mean and its standard error (NaN for one fold).
pub fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let m = values.iter().sum::<f64>() / n.max(1.0);
    let se = (values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt();
    (m, se)
}

/// The best of a search: the first trial with the highest objective among those `eligible`
/// (a trial the final phase can take epochs from).
pub fn first_best(objectives: &[(bool, Option<f64>)]) -> Option<usize> {
    (0..objectives.len()).filter(|&i| objectives[i].0).fold(None, |b, i| match b {
        Some(b) if objectives[b].1 >= objectives[i].1 => Some(b),
        _ => Some(i),
    })
}

/// The `protocol:` block of a sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// How the validation classes are taken from the training classes.
    pub split: SplitConfig,
    /// Model selection on the validation split.
    #[serde(default)]
    pub selection: SelectionConfig,
    /// The search: sampler, budget and seed.
    pub search: SearchConfig,
    /// The search space of each loss kind of the sweep (`soft_triple: {la: {low: 5, high: 40}}`).
    #[serde(default)]
    pub spaces: BTreeMap<String, BTreeMap<String, ParamRange>>,
    /// `folds` only: also evaluate each seed's k fold models as one, MLRC's *concatenated*
    /// evaluation (each model's test embeddings L2-normalised, then concatenated), beside the
    /// average of the folds' separate test results.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub concatenated: bool,
}

impl ProtocolConfig {
    /// What the block's own settings rule out, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = vec![];
        if self.concatenated && !matches!(self.split, SplitConfig::Folds { .. }) {
            p.push("`protocol.concatenated`: concatenates the test embeddings of a seed's fold models, so it needs `protocol.split.kind: folds` (a holdout trains one model per seed); remove it or use folds".into());
        }
        p
    }
}

/// A class-disjoint validation split of the training classes (the test classes are never among them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitConfig {
    /// One split (ProxyNCA++): the first `round(validation_fraction × C)` of the sorted training
    /// classes validate; the final phase retrains on all training classes for the selected epochs.
    Holdout {
        /// Share of the training classes held out for validation.
        #[serde(default = "half")]
        validation_fraction: f64,
    },
    /// MLRC's k class-disjoint folds: fold p validates on the `C / k` sorted training classes that
    /// start at class `p·C/k` (wrapping round); the final phase trains one model per fold.
    Folds {
        /// Number of folds.
        k: u32,
    },
}

fn half() -> f64 {
    0.5
}

impl SplitConfig {
    /// The folds a trial is evaluated on (one for a holdout).
    pub fn folds(&self) -> u32 {
        match self {
            SplitConfig::Holdout { .. } => 1,
            SplitConfig::Folds { k } => *k,
        }
    }

    /// The validation classes of fold `fold` among `classes` training classes (positions in the
    /// sorted class list).
    pub fn validation_positions(&self, classes: usize, fold: u32) -> Vec<usize> {
        let (start, size) = match self {
            SplitConfig::Holdout { validation_fraction } => {
                (0, ((validation_fraction * classes as f64).round() as usize).min(classes))
            }
            SplitConfig::Folds { k } => {
                let k = (*k).max(1) as usize;
                (fold as usize * classes / k, classes / k)
            }
        };
        (0..size).map(|i| (start + i) % classes.max(1)).collect()
    }

    /// What this split rules out for `classes` training classes of `items_per_class` items each
    /// (`None`: not known before loading), each naming its key.
    pub fn problems(&self, classes: Option<usize>, items_per_class: Option<usize>) -> Vec<String> {
        let mut p = vec![];
        match self {
            SplitConfig::Holdout { validation_fraction: f } if !(*f > 0.0 && *f < 1.0) => {
                p.push(format!("`protocol.split.validation_fraction`: {f}: expected a share strictly between 0 and 1"));
            }
            SplitConfig::Folds { k } if *k < 2 => {
                p.push(format!("`protocol.split.k`: {k}: folds need k >= 2 (use `kind: holdout` for one split)"));
            }
            _ => {}
        }
        if let (Some(c), true) = (classes, p.is_empty()) {
            let val = self.validation_positions(c, 0).len();
            if val < 2 || c - val < 2 {
                p.push(format!("`protocol.split`: {c} training classes give {val} validation and {} training classes; each side needs at least 2", c - val));
            }
        }
        if let Some(n) = items_per_class.filter(|&n| n < 2) {
            p.push(format!("`protocol.split`: the data set has {n} item(s) per class; a validation class needs at least 2 (a query and its match)"));
        }
        p
    }
}

/// The metric model selection maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectMetric {
    /// MAP@R (MLRC's choice: it rewards a well-ordered neighbourhood, not only the first hit).
    #[serde(rename = "MAP@R")]
    MapAtR,
    /// Recall@1.
    #[serde(rename = "R@1")]
    RecallAt1,
    /// R-Precision.
    #[serde(rename = "RP")]
    RPrecision,
}

impl SelectMetric {
    /// Its column name.
    pub fn name(&self) -> &'static str {
        match self {
            SelectMetric::MapAtR => "MAP@R",
            SelectMetric::RecallAt1 => "R@1",
            SelectMetric::RPrecision => "RP",
        }
    }
}

/// Model selection: evaluate the validation split every `every` epochs, keep the best epoch by
/// `metric`, stop after `patience` evaluations without improvement or at `train.epochs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionConfig {
    /// The metric to maximise.
    pub metric: SelectMetric,
    /// Epochs between validation evaluations.
    pub every: u32,
    /// Evaluations without improvement before stopping.
    pub patience: u32,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self { metric: SelectMetric::MapAtR, every: 2, patience: 5 }
    }
}

impl SelectionConfig {
    /// What these settings rule out for runs of at most `max_epochs` epochs.
    pub fn problems(&self, max_epochs: u32) -> Vec<String> {
        let mut p = vec![];
        if self.every == 0 {
            p.push("`protocol.selection.every`: 0: evaluate at least every epoch (1 or more)".into());
        }
        if self.patience == 0 {
            p.push("`protocol.selection.patience`: 0: allow at least one evaluation without improvement".into());
        } else if u64::from(self.patience) * u64::from(self.every) >= u64::from(max_epochs) {
            p.push(format!(
                "`protocol.selection.patience`: {} evaluations every {} epochs is {} epochs, not shorter than the maximum `train.epochs` {max_epochs}: the rule could never stop a run early; lower it or raise `train.epochs`",
                self.patience,
                self.every,
                u64::from(self.patience) * u64::from(self.every)
            ));
        }
        p
    }
}

/// How trials are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Independent uniform draws in the unit cube.
    Random,
    /// An Owen-scrambled Sobol sequence (`sobol_burley`): even coverage for a small budget.
    Sobol,
    /// Tree-structured Parzen estimators (`tpe`), one per dimension, in synchronous generations;
    /// the first generation is Sobol.
    Tpe,
}

/// The search of every loss of the sweep: the same sampler and the same number of trials for each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The sampler (default `tpe`: it learns from earlier generations, and its first generation
    /// covers the space like Sobol does).
    #[serde(default = "default_sampler")]
    pub sampler: SamplerKind,
    /// Trials per loss (the equal budget).
    pub trials: u32,
    /// Trials asked together (TPE): every trial of a generation is asked from the same history,
    /// so results never depend on which worker finished first.
    #[serde(default = "default_generation")]
    pub generation: u32,
    /// Seed of the sampler and of every trial's training.
    #[serde(default)]
    pub seed: u64,
}

fn default_sampler() -> SamplerKind {
    SamplerKind::Tpe
}

fn default_generation() -> u32 {
    4
}

/// One dimension of a search space: a float range (optionally log or integer), or a list of choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamRange {
    /// Lowest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Highest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Sample the logarithm uniformly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
    /// Round to integers (both ends included).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int: bool,
    /// A list of values instead of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<serde_json::Value>>,
}

impl ParamRange {
    /// What makes this range unusable, naming `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        match (&self.choices, self.low, self.high) {
            (Some(c), None, None) if !self.log && !self.int => {
                if c.is_empty() {
                    vec![format!("`{key}.choices`: the list is empty")]
                } else {
                    vec![]
                }
            }
            (Some(_), ..) => {
                vec![format!("`{key}`: give either `choices` or `low`/`high` (with `log` or `int`), not both")]
            }
            (None, Some(lo), Some(hi)) => {
                let mut p = vec![];
                if lo >= hi || lo.is_nan() || hi.is_nan() {
                    p.push(format!("`{key}`: low {lo} must be below high {hi}"));
                }
                if self.log && lo <= 0.0 {
                    p.push(format!("`{key}`: a log range must lie above 0, but low is {lo}"));
                }
                p
            }
            _ => vec![format!(
                "`{key}`: expected `low` and `high` (with optional `log: true` or `int: true`) or `choices: [...]`"
            )],
        }
    }

    /// The value at `u` ∈ [0, 1) of the unit interval.
    pub fn value_at(&self, u: f64) -> serde_json::Value {
        let u = u.clamp(0.0, 1.0 - f64::EPSILON);
        if let Some(c) = &self.choices {
            return c[((u * c.len() as f64) as usize).min(c.len() - 1)].clone();
        }
        let (lo, hi) = (self.low.unwrap_or(0.0), self.high.unwrap_or(1.0));
        if self.int {
            let (a, b) = (lo.ceil(), hi.floor());
            return serde_json::json!((a + (u * (b - a + 1.0)).floor()).min(b) as i64);
        }
        let v = if self.log { (lo.ln() + u * (hi.ln() - lo.ln())).exp() } else { lo + u * (hi - lo) };
        serde_json::json!(v)
    }

    /// Whether `u` sits at an edge of the range (the outer 5 % of either end of a continuous range):
    /// the best setting there suggests the range was too narrow.
    pub fn at_edge(&self, u: f64) -> bool {
        self.choices.is_none() && !(0.05..=0.95).contains(&u)
    }

    /// The range in words: `[5, 40]`, `log [1e-4, 1e-2]`, `int [1, 8]`, `{a, b}`.
    pub fn describe(&self) -> String {
        if let Some(c) = &self.choices {
            return format!("{{{}}}", c.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "));
        }
        let prefix = if self.log {
            "log "
        } else if self.int {
            "int "
        } else {
            ""
        };
        format!("{prefix}[{}, {}]", self.low.unwrap_or(f64::NAN), self.high.unwrap_or(f64::NAN))
    }
}

/// Which phase of the protocol a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A trial (or the declared default setting) trained on a fold's training classes and scored on
    /// its validation classes; the test split is not loaded.
    Search,
    /// A selected setting trained with a sweep seed and evaluated once on the test split.
    Final,
}

/// Which setting a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// The loss and learning rates as the sweep file declares them.
    Default,
    /// A trial of the search.
    Trial,
    /// The best trial's setting.
    Tuned,
}

/// What a run of the protocol records of it: part of its config, and so of its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunProtocol {
    /// The search this run belongs to: `<data> d<dim> <loss label>` of the declared setting.
    pub study: String,
    /// Search or final.
    pub phase: Phase,
    /// Default, trial or tuned.
    pub setting: Setting,
    /// The trial's index (trials only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<u32>,
    /// The validation split.
    pub split: SplitConfig,
    /// The fold held out for validation; `None` in the final phase of a holdout (all training classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<u32>,
    /// Model selection.
    pub selection: SelectionConfig,
    /// Train exactly this many epochs without validation (a holdout's final phase: the epoch selected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_epochs: Option<u32>,
    /// The sampler and budget of the search.
    pub search: SearchConfig,
    /// The space searched for this loss.
    pub space: BTreeMap<String, ParamRange>,
    /// The values this run applied, by space key.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Its part in MLRC's concatenated evaluation (`protocol.concatenated`); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concatenation: Option<Concatenation>,
}

/// A final run's part in the concatenated evaluation of a seed's fold models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concatenation {
    /// A fold model: its test embeddings are kept for the evaluation.
    Member,
    /// The evaluation itself: no training; the seed's k members' test embeddings, each
    /// L2-normalised, concatenated and evaluated once.
    Evaluation,
}

impl RunProtocol {
    /// Whether this run is a concatenated evaluation (it trains nothing).
    pub fn is_concatenated_evaluation(&self) -> bool {
        self.concatenation == Some(Concatenation::Evaluation)
    }

    /// The fold runs whose models the concatenated evaluation `self` joins (the same setting and
    /// seed, fold 0 to k − 1), as protocol parts; empty unless `self` is such an evaluation.
    pub fn members(&self) -> Vec<RunProtocol> {
        match (self.concatenation, &self.split) {
            (Some(Concatenation::Evaluation), SplitConfig::Folds { k }) => (0..*k)
                .map(|f| RunProtocol { fold: Some(f), concatenation: Some(Concatenation::Member), ..self.clone() })
                .collect(),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_is_the_first_eligible_trial_with_the_highest_objective() {
        let t = [(true, Some(3.0)), (false, Some(9.0)), (true, Some(5.0)), (true, Some(5.0)), (true, None)];
        assert_eq!(first_best(&t), Some(2), "an ineligible trial is passed over and a later tie loses");
        assert_eq!(first_best(&[(false, Some(1.0))]), None);
        assert_eq!(run_value(false, Some(40.0)), WORST, "a run that did not finish scores the worst");
        assert_eq!(run_value(true, Some(f64::NAN)), WORST);
        let (m, se) = mean_and_se(&[1.0, 3.0]);
        assert_eq!((m, se), (2.0, 1.0));
    }

    #[test]
    fn folds_are_disjoint_cover_every_class_once_and_wrap_round() {
        let split = SplitConfig::Folds { k: 4 };
        let mut seen = vec![0; 100];
        for p in 0..4 {
            let v = split.validation_positions(100, p);
            assert_eq!(v.len(), 25);
            assert_eq!(v[0], p as usize * 25, "fold {p} starts at class p/k of the list");
            v.iter().for_each(|&c| seen[c] += 1);
        }
        assert!(seen.iter().all(|&n| n == 1), "every class validates in exactly one fold");
        // 10 classes, 3 folds: folds of 3 starting at 0, 3, 6; the last class never validates.
        assert_eq!(SplitConfig::Folds { k: 3 }.validation_positions(10, 2), vec![6, 7, 8]);
        let holdout = SplitConfig::Holdout { validation_fraction: 0.3 };
        assert_eq!(holdout.validation_positions(10, 0), vec![0, 1, 2]);
    }

    #[test]
    fn ranges_map_the_unit_interval_and_bad_ranges_are_named() {
        let r = |y: &str| serde_yaml::from_str::<ParamRange>(y).unwrap();
        assert_eq!(r("{low: 1, high: 3}").value_at(0.5), serde_json::json!(2.0));
        let log = r("{low: 0.001, high: 0.1, log: true}").value_at(0.5).as_f64().unwrap();
        assert!((log - 0.01).abs() < 1e-12, "{log}");
        let int = r("{low: 1, high: 4, int: true}");
        let got: Vec<i64> = [0.0, 0.26, 0.51, 0.99].iter().map(|&u| int.value_at(u).as_i64().unwrap()).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(r("{choices: [a, b]}").value_at(0.7), serde_json::json!("b"));
        assert!(r("{low: 2, high: 2}").problems("x")[0].contains("below high"));
        assert!(r("{low: 0, high: 1, log: true}").problems("x")[0].contains("above 0"));
        assert!(!r("{low: 1}").problems("x").is_empty());
        assert!(r("{choices: []}").problems("x")[0].contains("empty"));
    }

    #[test]
    fn a_patience_the_maximum_cannot_outlast_and_tiny_splits_are_refused() {
        let s = SelectionConfig { every: 2, patience: 5, ..Default::default() };
        assert!(s.problems(40).is_empty());
        assert!(s.problems(10)[0].contains("`protocol.selection.patience`"));
        let split = SplitConfig::Holdout { validation_fraction: 0.5 };
        assert!(split.problems(Some(100), Some(8)).is_empty());
        assert!(split.problems(Some(3), Some(8))[0].contains("at least 2"));
        assert!(split.problems(Some(100), Some(1))[0].contains("1 item(s) per class"));
        assert!(SplitConfig::Folds { k: 1 }.problems(None, None)[0].contains("k >= 2"));
    }
}
