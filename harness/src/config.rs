//! What a run is, as written in YAML and resolved: [`RunConfig`] (data, model, loss, embedding size,
//! seed, training and evaluation settings) with its [`TrainConfig`]. Typed with serde; unknown
//! fields are errors and missing ones take the paper's values (paper.md §3).
use crate::data::pipeline::{BadImagePolicy, TransformConfig};
use crate::data::sampler::SamplerConfig;
use crate::data::DatasetConfig;
use crate::eval::EvalConfig;
use crate::model::ModelConfig;
use crate::optim::OptimizerConfig;
use losses::LossConfig;
use serde::{Deserialize, Serialize};

/// Learning rates of the three parameter groups (paper.md §3: 1e-4 for the model, 1e-2 for centres).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningRates {
    /// Backbone.
    pub backbone: f64,
    /// Embedding head.
    pub head: f64,
    /// Loss centres or proxies.
    pub centers: f64,
}

impl Default for LearningRates {
    fn default() -> Self {
        Self { backbone: 1e-4, head: 1e-4, centers: 1e-2 }
    }
}

/// Training settings; defaults are the paper's (paper.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: u32,
    /// Stop after this many steps even if epochs remain.
    pub max_steps: Option<u64>,
    /// Images per batch.
    pub batch_size: usize,
    /// Update rule.
    pub optimizer: OptimizerConfig,
    /// Learning rates per parameter group.
    pub lr: LearningRates,
    /// L2 weight decay (all groups).
    pub weight_decay: f64,
    /// Multiply learning rates by `lr_gamma` every this many epochs (none: constant).
    pub lr_step_epochs: Option<u32>,
    /// The step schedule's factor.
    pub lr_gamma: f64,
    /// How batches are formed.
    pub sampler: SamplerConfig,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// bf16 autocast on CUDA.
    pub bf16: bool,
    /// Image decoding threads (image data sets).
    pub workers: usize,
    /// Image transforms (image data sets).
    pub transform: TransformConfig,
    /// What to do with unreadable images.
    pub on_bad_image: BadImagePolicy,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            max_steps: None,
            batch_size: 32,
            optimizer: OptimizerConfig::default(),
            lr: LearningRates::default(),
            weight_decay: 1e-4,
            lr_step_epochs: Some(20),
            lr_gamma: 0.1,
            sampler: SamplerConfig::Shuffled,
            grad_clip: None,
            device: "auto".into(),
            bf16: false,
            workers: 2,
            transform: TransformConfig::default(),
            on_bad_image: BadImagePolicy::Fail,
        }
    }
}

/// One cell of a sweep, fully resolved: everything a run depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The data set.
    pub data: DatasetConfig,
    /// The model.
    #[serde(default)]
    pub model: ModelConfig,
    /// The loss.
    pub loss: LossConfig,
    /// Embedding size.
    pub dim: i64,
    /// Seed of initialisation and batch order.
    pub seed: u64,
    /// Training settings.
    #[serde(default)]
    pub train: TrainConfig,
    /// Evaluation settings.
    #[serde(default)]
    pub eval: EvalConfig,
    /// The run's place in a fair-comparison protocol (`None`: a plain run, trained for its epochs
    /// and evaluated once on the test split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<crate::protocol::RunProtocol>,
}

impl RunConfig {
    /// The fold runs a concatenated evaluation joins ([`crate::protocol::RunProtocol::members`]),
    /// as whole configs; empty for any other run.
    pub fn concatenation_members(&self) -> Vec<RunConfig> {
        let members = self.protocol.as_ref().map(crate::protocol::RunProtocol::members).unwrap_or_default();
        members.into_iter().map(|m| RunConfig { protocol: Some(m), ..self.clone() }).collect()
    }

    /// Every setting that cannot work, each naming its key, found without loading any data (a
    /// generated data set's sizes are known from its settings). Checked before any run starts.
    pub fn problems(&self) -> Vec<String> {
        let mut p = vec![];
        let t = &self.train;
        if t.batch_size < 2 {
            p.push(format!("`train.batch_size`: {} is too small: a batch needs at least 2 images", t.batch_size));
        }
        if let SamplerConfig::ClassBalanced { m } = t.sampler {
            if m == 0 || !t.batch_size.is_multiple_of(m.max(1)) || t.batch_size / m.max(1) < 2 {
                p.push(format!("`train.sampler.m`: {m} with batch_size {}: the batch size must be a multiple of m holding at least two classes", t.batch_size));
            }
        }
        if self.dim < 1 {
            p.push(format!("`dim`: {} is not an embedding size (at least 1)", self.dim));
        }
        if self.model.frozen {
            if self.model.backbone.weights().is_none() {
                p.push("`model.frozen: true` needs a pretrained backbone with `weights:` (a frozen random network would make the features depend on the seed)".into());
            }
            let tr = &t.transform;
            if tr.flip != 0.0 || tr.scale != (1.0, 1.0) {
                p.push(format!(
                    "`model.frozen: true` computes each image's features once, through the evaluation transform (resize {}, centre crop {}): augmentation cannot be honoured (`train.transform.flip`: {}, `scale`: {:?}); set flip: 0 and scale: [1, 1], or train the backbone (frozen: false)",
                    tr.resize, tr.size, tr.flip, tr.scale
                ));
            }
        }
        let e = &self.eval;
        if e.recall_at.is_empty() || e.recall_at.iter().any(|&k| k < 1) {
            p.push(format!("`eval.recall_at`: {:?}: expected one or more K >= 1", e.recall_at));
        }
        if e.nmi && e.kmeans_restarts == 0 {
            p.push("`eval.kmeans_restarts`: 0: NMI needs at least one k-means restart".into());
        }
        if let DatasetConfig::Synthetic(s) = &self.data {
            p.extend(synthetic_problems(s, t, e));
        }
        if let DatasetConfig::Parts(c) = &self.data {
            p.extend(crate::data::parts::problems(c));
        }
        if let DatasetConfig::Views(v) = &self.data {
            p.extend(crate::data::views::problems(v));
        }
        p
    }
}

/// What a generated data set's sizes rule out: too few classes or images for the sampler, the
/// batch or the Recall@K asked for.
fn synthetic_problems(s: &crate::data::synthetic::SyntheticConfig, t: &TrainConfig, e: &EvalConfig) -> Vec<String> {
    let mut p = vec![];
    for (key, v, min) in [
        ("classes", s.classes, 2),
        ("modes_per_class", s.modes_per_class, 1),
        ("images_per_mode", s.images_per_mode, 1),
    ] {
        if v < min {
            p.push(format!("`data.{key}`: {v}: expected at least {min}"));
        }
    }
    let per_class = (s.modes_per_class * s.images_per_mode).max(0) as usize;
    let split = per_class * s.classes.max(0) as usize;
    if let SamplerConfig::ClassBalanced { m } = t.sampler {
        if m > per_class && per_class > 0 {
            p.push(format!("`train.sampler.m`: {m} images per class, but the data set has {per_class} per class (modes_per_class × images_per_mode)"));
        }
    }
    if split > 0 && t.batch_size > split {
        p.push(format!("`train.batch_size`: {} is larger than the training split ({split} images)", t.batch_size));
    }
    if let Some(k) = e.recall_at.iter().find(|&&k| split > 0 && k as usize >= split) {
        p.push(format!("`eval.recall_at`: R@{k} needs more than {k} test images; the test split has {split}"));
    }
    p
}

/// A sweep file as written (configs/README.md): the axes, the shared `model`/`train`/`eval`
/// sections, and their overrides per data set and per loss kind. Axis items and sections stay
/// YAML here; the sweep's planner resolves each into its typed config, so that every
/// problem of a file is reported together with its key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepFile {
    /// Names the default results folder `results/<name>`.
    #[serde(default = "default_sweep_name")]
    pub name: String,
    /// Data sets (a list of data configs).
    pub data: Option<Vec<serde_yaml::Value>>,
    /// Losses (a list of loss configs).
    pub losses: Option<Vec<serde_yaml::Value>>,
    /// Embedding sizes.
    pub dims: Option<Vec<serde_yaml::Value>>,
    /// K values applied to the multi-centre losses.
    pub centers_per_class: Option<Vec<serde_yaml::Value>>,
    /// Seeds.
    pub seeds: Option<Vec<serde_yaml::Value>>,
    /// Model settings shared by every run.
    #[serde(default)]
    pub model: serde_yaml::Mapping,
    /// Training settings shared by every run.
    #[serde(default)]
    pub train: serde_yaml::Mapping,
    /// Evaluation settings shared by every run.
    #[serde(default)]
    pub eval: serde_yaml::Mapping,
    /// Settings per data set kind, merged over the shared ones.
    #[serde(default)]
    pub overrides: std::collections::BTreeMap<String, DataOverrides>,
    /// Settings per loss kind, merged last.
    #[serde(default)]
    pub loss_overrides: std::collections::BTreeMap<String, LossOverrides>,
    /// The fair-comparison protocol (validation split, model selection, equal-budget search);
    /// absent: every run trains for its epochs and is evaluated once on the test split.
    #[serde(default)]
    pub protocol: Option<serde_yaml::Value>,
}

fn default_sweep_name() -> String {
    "sweep".into()
}

impl SweepFile {
    /// The keys of a sweep file, for messages.
    pub const KEYS: [&str; 12] = [
        "name",
        "data",
        "losses",
        "dims",
        "centers_per_class",
        "seeds",
        "model",
        "train",
        "eval",
        "overrides",
        "loss_overrides",
        "protocol",
    ];

    /// Reads the YAML structure; every key it does not know is returned by its path (`epochz`,
    /// `overrides.cub.tran`), so none is silently ignored.
    pub fn from_yaml(text: &str) -> Result<(Self, Vec<String>), serde_yaml::Error> {
        let mut unknown = vec![];
        let file = serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |path| {
            unknown.push(path.to_string())
        })?;
        Ok((file, unknown))
    }
}

/// Settings of one data set kind in a sweep's `overrides`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataOverrides {
    /// K values for this data set instead of the sweep's.
    pub centers_per_class: Option<Vec<serde_yaml::Value>>,
    /// Model settings merged over the shared ones.
    pub model: Option<serde_yaml::Mapping>,
    /// Training settings merged over the shared ones.
    pub train: Option<serde_yaml::Mapping>,
    /// Evaluation settings merged over the shared ones.
    pub eval: Option<serde_yaml::Mapping>,
}

impl DataOverrides {
    /// The keys of a data set's overrides, for messages.
    pub const KEYS: [&str; 4] = ["centers_per_class", "model", "train", "eval"];
}

/// Settings of one loss kind in a sweep's `loss_overrides`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LossOverrides {
    /// Training settings merged last.
    pub train: Option<serde_yaml::Mapping>,
    /// Evaluation settings merged last.
    pub eval: Option<serde_yaml::Mapping>,
}

impl LossOverrides {
    /// The keys of a loss kind's overrides, for messages.
    pub const KEYS: [&str; 2] = ["train", "eval"];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<T: Serialize>(v: &T) -> Vec<String> {
        let v = serde_yaml::to_value(v).unwrap();
        v.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn the_key_lists_in_messages_are_the_structs_fields() {
        assert_eq!(keys(&SweepFile::default()), SweepFile::KEYS);
        assert_eq!(keys(&DataOverrides::default()), DataOverrides::KEYS);
        assert_eq!(keys(&LossOverrides::default()), LossOverrides::KEYS);
    }
}
