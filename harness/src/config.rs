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
}
