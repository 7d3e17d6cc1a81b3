//! From a sweep file to its runs: the typed axes, the shared sections merged with their overrides
//! (per data set, then per loss kind) into typed configs, and the expansion data × dims × losses ×
//! K × seeds in a fixed order. Every problem is collected with its key and reported together.
use super::PlannedRun;
use crate::config::{DataOverrides, LossOverrides, RunConfig, SweepFile, TrainConfig};
use crate::data::DatasetConfig;
use crate::eval::EvalConfig;
use crate::model::ModelConfig;
use crate::store;
use losses::{LossConfig, LOSS_KINDS};
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

/// The sweep's axes, typed.
pub(super) struct Axes {
    data: Vec<DatasetConfig>,
    losses: Vec<LossConfig>,
    dims: Vec<i64>,
    seeds: Vec<u64>,
    ks: Vec<i64>,
}

/// Each item of a list typed, problems named `key[i]`; a required list must be present and not empty.
fn typed_list<T: DeserializeOwned>(
    items: Option<&Vec<Value>>,
    key: &str,
    required: bool,
    p: &mut Vec<String>,
) -> Vec<T> {
    match items {
        None if required => p.push(format!("`{key}`: missing (a list)")),
        Some(v) if v.is_empty() && required => p.push(format!("`{key}`: the list is empty")),
        Some(v) => {
            return v
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    serde_yaml::from_value(item.clone()).map_err(|e| p.push(format!("`{key}[{i}]`: {e}"))).ok()
                })
                .collect()
        }
        None => {}
    }
    vec![]
}

/// K values of `key`, each at least 1.
fn k_list(items: Option<&Vec<Value>>, key: &str, p: &mut Vec<String>) -> Vec<i64> {
    let ks: Vec<i64> = typed_list(items, key, false, p);
    if ks.iter().any(|&k| k < 1) {
        p.push(format!("`{key}`: every K must be >= 1, got {ks:?}"));
    }
    ks
}

impl Axes {
    /// Types and checks the axes of `file`.
    pub fn read(file: &SweepFile, p: &mut Vec<String>) -> Self {
        let mut losses: Vec<LossConfig> = typed_list(file.losses.as_ref(), "losses", true, p);
        let dims: Vec<i64> = typed_list(file.dims.as_ref(), "dims", true, p);
        if dims.iter().any(|&d| d < 1) {
            p.push(format!("`dims`: every embedding size must be >= 1, got {dims:?}"));
        }
        // Plug-ins: the file's hash joins the config (and so the run id); one call per size.
        let sizes: Vec<i64> = dims.iter().copied().filter(|&d| d >= 1).collect();
        for (i, l) in losses.iter_mut().enumerate() {
            let checked = l.validate().and_then(|()| l.prepare(&sizes));
            if let Err(e) = checked {
                p.push(format!("`losses[{i}]`: {e}"));
            }
        }
        Axes {
            data: typed_list(file.data.as_ref(), "data", true, p),
            losses,
            dims,
            seeds: typed_list(file.seeds.as_ref(), "seeds", true, p),
            ks: k_list(file.centers_per_class.as_ref(), "centers_per_class", p),
        }
    }
}

/// The message for a key the sweep file's structure does not have.
pub(super) fn unknown_key(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let expected = match parts.as_slice() {
        [_] => SweepFile::KEYS.join(", "),
        ["overrides", _, _] => DataOverrides::KEYS.join(", "),
        ["loss_overrides", _, _] => LossOverrides::KEYS.join(", "),
        _ => return format!("`{path}`: unknown key"),
    };
    format!("`{path}`: unknown key (expected one of {expected})")
}

/// Overrides must name a data set of the sweep and a loss kind that exists.
pub(super) fn check_overrides(file: &SweepFile, axes: &Axes, p: &mut Vec<String>) {
    let names: Vec<&str> = axes.data.iter().map(DatasetConfig::name).collect();
    for ds in file.overrides.keys() {
        if !names.contains(&ds.as_str()) {
            p.push(format!("`overrides.{ds}`: no data set of that kind in `data` ({})", names.join(", ")));
        }
    }
    for kind in file.loss_overrides.keys() {
        if !LOSS_KINDS.contains(&kind.as_str()) {
            p.push(format!("`loss_overrides.{kind}`: unknown loss kind (expected one of {})", LOSS_KINDS.join(", ")));
        }
    }
}

/// Recursively merges `over` into `base` (mappings merge key by key; anything else replaces).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// One section (`model`, `train` or `eval`) for a data set and loss kind: the shared settings, then
/// the data set's overrides, then the loss kind's, typed; a problem names the layers involved.
fn resolve<T: DeserializeOwned>(
    file: &SweepFile,
    section: &str,
    data: &str,
    kind: Option<&str>,
    p: &mut Vec<String>,
) -> Option<T> {
    let pick = |m: Option<&Mapping>| m.cloned();
    let shared = match section {
        "model" => &file.model,
        "train" => &file.train,
        _ => &file.eval,
    };
    let by_data = file.overrides.get(data).and_then(|o| match section {
        "model" => pick(o.model.as_ref()),
        "train" => pick(o.train.as_ref()),
        _ => pick(o.eval.as_ref()),
    });
    let by_kind = kind.and_then(|k| file.loss_overrides.get(k)).and_then(|o| match section {
        "train" => pick(o.train.as_ref()),
        "eval" => pick(o.eval.as_ref()),
        _ => None,
    });
    let mut value = Value::Mapping(shared.clone());
    let mut place = format!("`{section}`");
    if let Some(o) = &by_data {
        merge(&mut value, &Value::Mapping(o.clone()));
        place.push_str(&format!(" (with overrides.{data})"));
    }
    if let (Some(o), Some(k)) = (&by_kind, kind) {
        merge(&mut value, &Value::Mapping(o.clone()));
        place.push_str(&format!(" (with loss_overrides.{k})"));
    }
    serde_yaml::from_value(value).map_err(|e| p.push(format!("{place}: {e}"))).ok()
}

/// Train and eval settings of every loss kind of the sweep on data set `data`, each checked once.
fn settings_per_kind(
    file: &SweepFile,
    data: &str,
    losses: &[LossConfig],
    p: &mut Vec<String>,
) -> BTreeMap<&'static str, Option<(TrainConfig, EvalConfig)>> {
    let mut settings = BTreeMap::new();
    for kind in losses.iter().map(LossConfig::kind) {
        if settings.contains_key(kind) {
            continue;
        }
        let train: Option<TrainConfig> = resolve(file, "train", data, Some(kind), p);
        let eval: Option<EvalConfig> = resolve(file, "eval", data, Some(kind), p);
        if train.as_ref().is_some_and(|t| t.epochs == 0 && t.max_steps.is_none()) {
            p.push(format!("`train` (loss {kind}): `epochs` must be at least 1"));
        }
        settings.insert(kind, train.zip(eval));
    }
    settings
}

/// A loss at every K of the axis (multi-centre losses), or as it is.
fn k_variants(loss: &LossConfig, ks: &[i64]) -> Vec<LossConfig> {
    if loss.centers_per_class().is_none() || ks.is_empty() {
        return vec![loss.clone()];
    }
    ks.iter()
        .map(|&k| {
            let mut l = loss.clone();
            l.set_centers_per_class(k);
            l
        })
        .collect()
}

/// Every run of the sweep, in expansion order: data, dims, losses, K, seeds.
pub(super) fn expand(file: &SweepFile, axes: &Axes, p: &mut Vec<String>) -> Vec<PlannedRun> {
    let mut runs = vec![];
    for d in &axes.data {
        let model: Option<ModelConfig> = resolve(file, "model", d.name(), None, p);
        let ks = match file.overrides.get(d.name()).and_then(|o| o.centers_per_class.as_ref()) {
            Some(v) => k_list(Some(v), &format!("overrides.{}.centers_per_class", d.name()), p),
            None => axes.ks.clone(),
        };
        let settings = settings_per_kind(file, d.name(), &axes.losses, p);
        let Some(model) = model else { continue };
        for &dim in &axes.dims {
            for loss in &axes.losses {
                let Some(Some((train, eval))) = settings.get(loss.kind()) else { continue };
                for l in k_variants(loss, &ks) {
                    for &seed in &axes.seeds {
                        let config = RunConfig {
                            data: d.clone(),
                            model: model.clone(),
                            loss: l.clone(),
                            dim,
                            seed,
                            train: train.clone(),
                            eval: eval.clone(),
                            protocol: None,
                        };
                        runs.push(PlannedRun { id: store::run_id(&config), slug: store::slug(&config), config });
                    }
                }
            }
        }
    }
    runs
}
