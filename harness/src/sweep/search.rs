//! The equal-budget search of a sweep's `protocol:` block, planned from the records alone: every
//! loss variant of the sweep (at each data set and size) is a study with the same number of trials;
//! each trial's point is asked again from scratch each time (random and Sobol points depend on the
//! trial's index alone, TPE on the objectives of the earlier generations told in trial order), so a
//! search that is killed, resumed or shared by several processes asks exactly the same trials.
use super::{PlannedRun, Sweep};
use crate::config::RunConfig;
use crate::protocol::{Concatenation, ParamRange, Phase, ProtocolConfig, RunProtocol, SamplerKind, Setting};
use crate::rng::SplitMix64;
use crate::store::{self, RunRecord};
use crate::train::RunStatus;
use anyhow::{bail, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub use crate::protocol::WORST;

/// Space keys that set training settings rather than loss fields.
const TRAIN_KEYS: [&str; 4] = ["lr.backbone", "lr.head", "lr.centers", "weight_decay"];

/// One search: a loss variant at one data set and embedding size, with the sweep's seeds.
#[derive(Debug, Clone)]
pub struct Study {
    /// `<data> d<dim> <label>`.
    pub key: String,
    /// The declared setting (seed: the search's).
    pub base: RunConfig,
    /// The sweep's seeds (the final phase).
    pub seeds: Vec<u64>,
    /// The space searched, in key order.
    pub space: Vec<(String, ParamRange)>,
}

/// The studies of a sweep, in expansion order.
pub fn studies(sweep: &Sweep, protocol: &ProtocolConfig) -> Vec<Study> {
    let mut out: Vec<Study> = vec![];
    for r in &sweep.runs {
        let c = &r.config;
        let key = format!("{} d{} {}", c.data.name(), c.dim, c.loss.label());
        if let Some(s) = out.iter_mut().find(|s| s.key == key) {
            s.seeds.push(r.config.seed);
            continue;
        }
        let mut base = r.config.clone();
        base.seed = protocol.search.seed;
        let space = protocol.spaces.get(r.config.loss.kind()).cloned().unwrap_or_default().into_iter().collect();
        out.push(Study { key, base, seeds: vec![r.config.seed], space });
    }
    out
}

/// The keys a loss's search space may hold: its own fields and the training settings.
pub fn valid_keys(loss: &losses::LossConfig) -> Vec<String> {
    let v = serde_json::to_value(loss).unwrap_or_default();
    let mut keys: Vec<String> =
        v.as_object().map(|o| o.keys().filter(|k| *k != "kind").cloned().collect()).unwrap_or_default();
    keys.extend(TRAIN_KEYS.iter().map(|k| k.to_string()));
    keys
}

/// `base` with `params` applied (loss fields, learning rates, weight decay); an error names the key.
pub fn apply(base: &RunConfig, params: &BTreeMap<String, Value>) -> Result<RunConfig, String> {
    let mut c = base.clone();
    let mut loss = serde_json::to_value(&c.loss).map_err(|e| e.to_string())?;
    for (k, v) in params {
        let num = || v.as_f64().ok_or_else(|| format!("`{k}`: {v} is not a number"));
        match k.as_str() {
            "lr.backbone" => c.train.lr.backbone = num()?,
            "lr.head" => c.train.lr.head = num()?,
            "lr.centers" => c.train.lr.centers = num()?,
            "weight_decay" => c.train.weight_decay = num()?,
            _ => match loss.get_mut(k) {
                Some(slot) if k != "kind" => *slot = v.clone(),
                _ => {
                    return Err(format!(
                        "`{k}`: {} has no such setting (expected one of {})",
                        c.loss.kind(),
                        valid_keys(&c.loss).join(", ")
                    ))
                }
            },
        }
    }
    c.loss = serde_json::from_value(loss).map_err(|e| format!("{e}"))?;
    c.loss.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// A stable 64-bit number of a text (the first 16 hex digits of its SHA-256).
fn text_seed(text: &str) -> u64 {
    u64::from_str_radix(&crate::data::fingerprint_lines(&[text.to_string()]), 16).unwrap_or(0)
}

/// A generator for `rand`'s traits over the harness's own SplitMix64.
struct Draws(SplitMix64);

impl rand_core::TryRng for Draws {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.0.next_u64() >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let b = self.0.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        Ok(())
    }
}

/// The point in the unit cube of trial `index` of a study (`study` seeds it with the search's
/// `seed`), given the `(point, objective)` of every trial of the earlier generations in trial order.
/// TPE's first generation is Sobol; after it, one Parzen-estimator optimiser per dimension is told
/// the history (maximising the objective) and asked with a generator seeded by (seed, study, index).
pub fn ask(
    sampler: SamplerKind,
    seed: u64,
    study: &str,
    index: u32,
    dims: usize,
    history: &[(Vec<f64>, f64)],
) -> Vec<f64> {
    let stream = text_seed(study);
    let sobol = |d: usize| f64::from(sobol_burley::sample(index, d as u32, (seed ^ stream) as u32));
    match sampler {
        SamplerKind::Random => {
            let mut g = SplitMix64::derive(seed, &[stream, u64::from(index)]);
            (0..dims).map(|_| g.uniform()).collect()
        }
        SamplerKind::Sobol => (0..dims).map(sobol).collect(),
        SamplerKind::Tpe if history.is_empty() => (0..dims).map(sobol).collect(),
        SamplerKind::Tpe => (0..dims)
            .map(|d| {
                let range = tpe::range(0.0, 1.0).expect("the unit interval is a range");
                let mut opt = tpe::TpeOptimizer::new(tpe::parzen_estimator(), range);
                for (u, value) in history {
                    // The optimiser minimises; a told point is in [0, 1) by construction.
                    let _ = opt.tell(u[d].min(1.0 - f64::EPSILON), -value);
                }
                let mut g = Draws(SplitMix64::derive(seed, &[stream, u64::from(index), d as u64]));
                opt.ask(&mut g).unwrap_or_else(|_| sobol(d))
            })
            .collect(),
    }
}

/// One trial (or the default setting) of a study: its point, values and runs (one per fold).
#[derive(Debug, Clone)]
pub struct Trial {
    /// The trial's index (`None`: the declared setting).
    pub index: Option<u32>,
    /// Its point in the unit cube.
    pub u: Vec<f64>,
    /// The values applied, by space key.
    pub params: BTreeMap<String, Value>,
    /// One run per fold.
    pub runs: Vec<PlannedRun>,
    /// The validation score of each fold's run, once recorded (failed or diverged: [`WORST`]).
    pub values: Vec<Option<f64>>,
    /// The best epoch of each fold's run, once recorded and finished.
    pub best_epochs: Vec<Option<u32>>,
    /// Runs recorded as failed or diverged.
    pub failed: usize,
}

impl Trial {
    /// The mean validation score over folds, once every fold is recorded.
    pub fn objective(&self) -> Option<f64> {
        let v: Option<Vec<f64>> = self.values.iter().copied().collect();
        v.map(|v| crate::protocol::mean_and_se(&v).0)
    }
}

/// Where a study stands, from its records.
#[derive(Debug, Clone)]
pub struct SearchState {
    /// The study.
    pub study: Study,
    /// The declared setting on the validation split.
    pub default: Trial,
    /// The trials asked so far (every generation up to the first not fully recorded).
    pub trials: Vec<Trial>,
    /// The final phase's runs, once every trial is recorded: the best trial's setting and the
    /// default, at every seed.
    pub final_runs: Vec<PlannedRun>,
    /// The best trial (index into `trials`), once the search is complete.
    pub best: Option<usize>,
}

impl SearchState {
    /// Runs without a record that can start now.
    /// A concatenated evaluation can start once every fold run it joins is recorded.
    pub fn runnable<'a>(&'a self, recorded: &HashMap<String, &RunRecord>) -> Vec<&'a PlannedRun> {
        let search = std::iter::once(&self.default).chain(&self.trials).flat_map(|t| &t.runs);
        let ready =
            |r: &PlannedRun| r.config.concatenation_members().iter().all(|m| recorded.contains_key(&store::run_id(m)));
        search.chain(&self.final_runs).filter(|r| !recorded.contains_key(&r.id) && ready(r)).collect()
    }

    /// Final-phase runs recorded as failed or diverged (`--retry-failed` runs them again), in
    /// order; a concatenated evaluation only once every fold run it joins has finished.
    pub fn failed_final<'a>(&'a self, recorded: &HashMap<String, &RunRecord>) -> Vec<&'a PlannedRun> {
        let finished =
            |id: &str| recorded.get(id).is_some_and(|r| r.outcome.status == crate::train::RunStatus::Finished);
        let ready = |r: &PlannedRun| r.config.concatenation_members().iter().all(|m| finished(&store::run_id(m)));
        self.final_runs.iter().filter(|r| recorded.contains_key(&r.id) && !finished(&r.id) && ready(r)).collect()
    }

    /// Whether every run of the study is recorded.
    pub fn done(&self, recorded: &HashMap<String, &RunRecord>) -> bool {
        self.best.is_some() && self.default.objective().is_some() && self.runnable(recorded).is_empty()
    }
}

/// A planned run of `config` in the protocol.
fn planned(config: RunConfig) -> PlannedRun {
    PlannedRun { id: store::run_id(&config), slug: store::slug(&config), config }
}

/// The protocol part of a run's config.
fn run_protocol(study: &Study, p: &ProtocolConfig, phase: Phase, setting: Setting) -> RunProtocol {
    RunProtocol {
        study: study.key.clone(),
        phase,
        setting,
        trial: None,
        split: p.split.clone(),
        fold: None,
        selection: p.selection.clone(),
        fixed_epochs: None,
        search: p.search.clone(),
        space: study.space.iter().cloned().collect(),
        params: BTreeMap::new(),
        concatenation: None,
    }
}

/// A trial's runs (one per fold) and their recorded values.
fn trial(
    study: &Study,
    p: &ProtocolConfig,
    index: Option<u32>,
    u: Vec<f64>,
    recorded: &HashMap<String, &RunRecord>,
) -> Result<Trial> {
    let params: BTreeMap<String, Value> = match index {
        Some(_) => study.space.iter().zip(&u).map(|((k, r), &x)| (k.clone(), r.value_at(x))).collect(),
        None => BTreeMap::new(),
    };
    let config = apply(&study.base, &params).map_err(|e| anyhow::anyhow!("study {}: {e}", study.key))?;
    let setting = if index.is_some() { Setting::Trial } else { Setting::Default };
    let mut t =
        Trial { index, u, params: params.clone(), runs: vec![], values: vec![], best_epochs: vec![], failed: 0 };
    for fold in 0..p.split.folds() {
        let mut c = config.clone();
        let mut rp = run_protocol(study, p, Phase::Search, setting);
        (rp.trial, rp.fold, rp.params) = (index, Some(fold), params.clone());
        c.protocol = Some(rp);
        let run = planned(c);
        let rec = recorded.get(&run.id);
        let finished =
            rec.filter(|r| r.outcome.status == RunStatus::Finished).and_then(|r| r.outcome.selection.as_ref());
        t.failed += usize::from(rec.is_some() && finished.is_none());
        t.values.push(rec.map(|_| crate::protocol::run_value(finished.is_some(), finished.and_then(|s| s.best_value))));
        t.best_epochs.push(finished.map(|s| s.best_epoch));
        t.runs.push(run);
    }
    Ok(t)
}

/// The final runs of a setting at every seed: on all training classes for the epochs its search
/// runs selected (holdout), or one model per fold with model selection (folds).
fn final_runs(study: &Study, p: &ProtocolConfig, setting: Setting, from: &Trial) -> Result<Vec<PlannedRun>> {
    let config = apply(&study.base, &from.params).map_err(|e| anyhow::anyhow!("study {}: {e}", study.key))?;
    let epochs: Vec<u32> = from.best_epochs.iter().flatten().copied().collect();
    if epochs.is_empty() {
        return Ok(vec![]);
    }
    let fixed = (f64::from(epochs.iter().sum::<u32>()) / epochs.len() as f64).round() as u32;
    let folds: Vec<Option<u32>> = match p.split {
        crate::protocol::SplitConfig::Holdout { .. } => vec![None],
        crate::protocol::SplitConfig::Folds { k } => (0..k).map(Some).collect(),
    };
    let concatenated = p.concatenated && matches!(p.split, crate::protocol::SplitConfig::Folds { .. });
    let mut out = vec![];
    for &seed in &study.seeds {
        let mut c = config.clone();
        c.seed = seed;
        let mut rp = run_protocol(study, p, Phase::Final, setting);
        (rp.params, rp.trial) = (from.params.clone(), from.index);
        for &fold in &folds {
            let mut rp = rp.clone();
            rp.fold = fold;
            rp.fixed_epochs = fold.is_none().then_some(fixed.max(1));
            rp.concatenation = concatenated.then_some(Concatenation::Member);
            out.push(planned(RunConfig { protocol: Some(rp), ..c.clone() }));
        }
        if concatenated {
            rp.concatenation = Some(Concatenation::Evaluation);
            out.push(planned(RunConfig { protocol: Some(rp), ..c }));
        }
    }
    Ok(out)
}

/// The ask/tell loop of a search in synchronous generations: the points of trials `0..trials`,
/// generation by generation (`generation` trials each for TPE, all at once otherwise), each
/// generation asked from the `(point, objective)` of the earlier ones in trial order. `objective`
/// scores trial `i` at its point, or says it is not known yet (`None`): the loop stops after the
/// first generation with an unknown score. Returns every point asked.
pub fn replay(
    s: &crate::protocol::SearchConfig,
    study: &str,
    dims: usize,
    mut objective: impl FnMut(u32, &[f64]) -> Result<Option<f64>>,
) -> Result<Vec<Vec<f64>>> {
    let per_gen = if s.sampler == SamplerKind::Tpe { s.generation.max(1) } else { s.trials.max(1) };
    let (mut points, mut history) = (vec![], vec![]);
    let mut start = 0;
    while start < s.trials {
        let end = (start + per_gen).min(s.trials);
        let asked: Vec<Vec<f64>> = (start..end).map(|i| ask(s.sampler, s.seed, study, i, dims, &history)).collect();
        let mut scores = vec![];
        for (i, u) in (start..end).zip(&asked) {
            scores.push(objective(i, u)?);
        }
        points.extend(asked.iter().cloned());
        let Some(scores) = scores.into_iter().collect::<Option<Vec<f64>>>() else { break };
        history.extend(asked.into_iter().zip(scores));
        start = end;
    }
    Ok(points)
}

/// A study's state from the records: the trials generation by generation up to the first that is
/// not fully recorded, and the final runs once every trial is.
pub fn search_state(study: &Study, p: &ProtocolConfig, recorded: &HashMap<String, &RunRecord>) -> Result<SearchState> {
    let default = trial(study, p, None, vec![], recorded)?;
    let mut trials: Vec<Trial> = vec![];
    replay(&p.search, &study.key, study.space.len(), |i, u| {
        let t = trial(study, p, Some(i), u.to_vec(), recorded)?;
        let score = t.objective();
        trials.push(t);
        Ok(score)
    })?;
    let complete = trials.len() == p.search.trials as usize && trials.iter().all(|t| t.objective().is_some());
    let best = complete.then(|| best_trial(&trials)).flatten();
    let mut final_list = vec![];
    if let (Some(b), Some(_)) = (best, default.objective()) {
        final_list.extend(final_runs(study, p, Setting::Tuned, &trials[b])?);
        final_list.extend(final_runs(study, p, Setting::Default, &default)?);
    }
    Ok(SearchState { study: study.clone(), default, trials, final_runs: final_list, best })
}

/// The first trial with the highest objective that has a finished run to take its epochs from.
fn best_trial(trials: &[Trial]) -> Option<usize> {
    let scored: Vec<(bool, Option<f64>)> =
        trials.iter().map(|t| (t.best_epochs.iter().any(Option::is_some), t.objective())).collect();
    crate::protocol::first_best(&scored)
}

/// Every problem of a `protocol:` block against the sweep's runs, each naming its key.
pub fn problems(runs: &[PlannedRun], p: &ProtocolConfig) -> Vec<String> {
    let mut out = p.problems();
    if p.search.trials == 0 {
        out.push("`protocol.search.trials`: 0: the budget must be at least 1 trial per loss".into());
    }
    if p.search.generation == 0 {
        out.push("`protocol.search.generation`: 0: a generation holds at least 1 trial".into());
    }
    let kinds: Vec<&str> = runs.iter().map(|r| r.config.loss.kind()).collect();
    for (kind, space) in &p.spaces {
        let Some(run) = runs.iter().find(|r| r.config.loss.kind() == kind) else {
            let mut k = kinds.clone();
            k.dedup();
            out.push(format!(
                "`protocol.spaces.{kind}`: no loss of that kind in `losses` (the sweep has {})",
                k.join(", ")
            ));
            continue;
        };
        let keys = valid_keys(&run.config.loss);
        for (key, range) in space {
            if !keys.contains(key) {
                out.push(format!(
                    "`protocol.spaces.{kind}.{key}`: {kind} has no such setting (expected one of {})",
                    keys.join(", ")
                ));
            }
            out.extend(range.problems(&format!("protocol.spaces.{kind}.{key}")));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in runs {
        out.extend(p.selection.problems(r.config.train.epochs));
        let c = &r.config.data;
        if seen.insert(serde_json::to_string(c).unwrap_or_default()) {
            out.extend(p.split.problems(train_classes(c), items_per_class(c)));
        }
    }
    out
}

/// A generated data set's training classes (unknown for data read from files).
fn train_classes(c: &crate::data::DatasetConfig) -> Option<usize> {
    use crate::data::DatasetConfig as D;
    match c {
        D::Synthetic(s) => Some(s.classes.max(0) as usize),
        D::Views(v) => Some(v.classes.max(0) as usize),
        D::Parts(p) => Some(p.classes.max(0) as usize),
        _ => None,
    }
}

/// A generated data set's items per class.
fn items_per_class(c: &crate::data::DatasetConfig) -> Option<usize> {
    use crate::data::DatasetConfig as D;
    match c {
        D::Synthetic(s) => Some((s.modes_per_class * s.images_per_mode).max(0) as usize),
        D::Views(v) => Some((v.views_per_class * v.items_per_view).max(0) as usize),
        _ => None,
    }
}

/// The differences between two JSON values, as the paths where they differ (`search.trials`).
pub fn differences(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                differences(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), &p, out);
            }
        }
        (a, b) if a != b => out.push(format!("`{path}` was {a}, now {b}")),
        _ => {}
    }
}

/// Fails when `results` holds a search whose protocol or studies differ from this sweep's, naming
/// each difference.
pub fn check_unchanged(old: &Value, new: &Value, results: &std::path::Path) -> Result<()> {
    let mut diffs = vec![];
    differences(old, new, "protocol", &mut diffs);
    if !diffs.is_empty() {
        bail!(
            "the search in {} was started with another protocol, so its trials would not be comparable: {}. Use a new results folder (--results), or put the protocol back",
            results.display(),
            diffs.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SearchConfig;

    /// The best value a sampler finds in 40 trials (generations of 4) of a smooth objective with its
    /// optimum at a known point of the unit cube, through the search's own ask/tell loop.
    fn best_found(sampler: SamplerKind, seed: u64) -> f64 {
        let target = [0.23, 0.71, 0.42, 0.6];
        let f = |u: &[f64]| -100.0 * u.iter().zip(target).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
        let search = SearchConfig { sampler, trials: 40, generation: 4, seed };
        let mut best = f64::NEG_INFINITY;
        let points = replay(&search, "synthetic", 4, |_, u| {
            best = best.max(f(u));
            Ok(Some(f(u)))
        })
        .unwrap();
        assert_eq!(points.len(), 40);
        assert!(points.iter().flatten().all(|x| (0.0..1.0).contains(x)));
        best
    }

    #[test]
    fn tpe_gets_closer_to_a_known_optimum_than_random_search_at_equal_budget() {
        let seeds = 0..12;
        let tpe: f64 = seeds.clone().map(|s| best_found(SamplerKind::Tpe, s)).sum::<f64>() / 12.0;
        let random: f64 = seeds.clone().map(|s| best_found(SamplerKind::Random, s)).sum::<f64>() / 12.0;
        let sobol: f64 = seeds.map(|s| best_found(SamplerKind::Sobol, s)).sum::<f64>() / 12.0;
        assert!(tpe > random, "TPE's mean best {tpe:.3} is not above random search's {random:.3}");
        assert!(sobol.is_finite());
    }

    #[test]
    fn points_are_a_function_of_seed_study_and_index_alone() {
        for sampler in [SamplerKind::Random, SamplerKind::Sobol, SamplerKind::Tpe] {
            let history = vec![(vec![0.1, 0.2], 3.0), (vec![0.7, 0.4], 5.0)];
            let a = ask(sampler, 7, "views d64 ProxyNCA", 5, 2, &history);
            assert_eq!(a, ask(sampler, 7, "views d64 ProxyNCA", 5, 2, &history), "{sampler:?}");
            assert_ne!(
                a,
                ask(sampler, 7, "views d64 Softmax_norm", 5, 2, &history),
                "{sampler:?}: studies share points"
            );
            assert_ne!(a, ask(sampler, 7, "views d64 ProxyNCA", 6, 2, &history), "{sampler:?}: trials share points");
        }
    }
}
