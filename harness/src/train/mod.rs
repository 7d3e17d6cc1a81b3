//! One run: data → model → loss → optimiser → evaluation once after training (no test-set model
//! selection) → an outcome for the record. Checkpoints at the end of each epoch let a killed run
//! resume exactly where it stopped.
mod features;
mod floor;
mod selection;
mod splits;
mod trainer;

pub use crate::config::{LearningRates, RunConfig, TrainConfig};
use crate::eval::{evaluate, EvalReport};
use anyhow::{Context, Result};
pub use floor::{floor, Floor};
pub use selection::{SelectionOutcome, StopReason};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Kind;
use trainer::{EpochEnd, Trainer};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Trained and evaluated.
    Finished,
    /// The loss became NaN or infinite.
    Diverged,
    /// An error stopped it.
    Failed,
}

/// Loss-curve summary and centre diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Mean loss of each epoch.
    pub epoch_loss: Vec<f64>,
    /// Mean regularizer term of each epoch (SoftTriple with τ > 0).
    pub epoch_regularizer: Vec<f64>,
    /// Loss of the first step.
    pub first_loss: Option<f64>,
    /// Mean loss of the last epoch.
    pub last_loss: Option<f64>,
    /// Mean effective centres per class after training (centre-based losses).
    pub effective_centers_per_class: Option<f64>,
    /// Threshold used for that count.
    pub effective_centers_threshold: Option<f64>,
    /// Steps taken.
    pub steps: u64,
    /// Step at which the loss became non-finite.
    pub diverged_at_step: Option<u64>,
    /// Training images skipped under `on_bad_image: skip` (once per epoch they were drawn in).
    pub skipped_images: usize,
    /// Test images left out of evaluation under `on_bad_image: skip`.
    #[serde(default)]
    pub skipped_test_images: usize,
    /// The last epoch (counting from 0) held by the checkpoint this run resumed from; `None` when it
    /// trained from the start. (Progress messages count epochs from 1.)
    pub resumed_from_epoch: Option<u32>,
    /// Seconds the training loop waited for its next batch (decoding, augmentation, assembly), over
    /// the epochs this process trained; 0 in records older than the field.
    #[serde(default)]
    pub data_wait_seconds: f64,
    /// Wall seconds of each epoch this process trained (empty in records older than the field).
    #[serde(default)]
    pub epoch_seconds: Vec<f64>,
    /// `(epoch from 1, validation metric in %)` at each evaluation of model selection (protocol
    /// runs; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_curve: Vec<(u32, f64)>,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// How it ended.
    pub status: RunStatus,
    /// Test metrics (finished runs).
    pub metrics: Option<EvalReport>,
    /// Curves and centre diagnostics.
    pub diagnostics: Diagnostics,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
    /// Fingerprint of the data split.
    pub split_fingerprint: String,
    /// Device it ran on.
    pub device: String,
    /// Error message of a failed run.
    pub error: Option<String>,
    /// Model selection on the validation split (protocol runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionOutcome>,
    /// The frozen-feature cache entries the run read (`model.frozen`): each split's key, and
    /// whether this run computed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_cache: Vec<FeatureCache>,
}

/// One split's entry of the frozen-feature cache (`cache/features/<key>.safetensors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCache {
    /// `train` or `test`.
    pub split: String,
    /// The cache key: split items, weights SHA-256, backbone and evaluation transform.
    pub key: String,
    /// Whether this run computed the features (else it read them).
    pub computed: bool,
}

impl RunOutcome {
    /// The outcome of a run that an error stopped before it could finish.
    pub fn failed(device: &str, error: &str) -> Self {
        Self {
            status: RunStatus::Failed,
            metrics: None,
            diagnostics: Diagnostics::default(),
            train_seconds: 0.0,
            eval_seconds: 0.0,
            split_fingerprint: String::new(),
            device: device.into(),
            error: Some(error.into()),
            selection: None,
            feature_cache: vec![],
        }
    }
}

/// What a run reports while it works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunEvent {
    /// An epoch ended with this mean loss (`epoch` counts from 1).
    Epoch {
        /// The epoch just finished, from 1.
        epoch: u32,
        /// Epochs of the run.
        epochs: u32,
        /// Its mean loss.
        loss: f64,
    },
    /// The run resumed after this epoch (from 1) from its checkpoint.
    Resumed {
        /// The last epoch the checkpoint holds, from 1.
        epoch: u32,
    },
}

/// Where a run keeps its checkpoint, and whether it may resume from it.
#[derive(Debug, Clone)]
pub struct CheckpointPlan {
    /// The checkpoint file (written atomically at the end of each epoch).
    pub path: PathBuf,
    /// Hash of the run's config; a checkpoint of another config is not resumed from.
    pub config_hash: String,
}

/// The epoch to start from (from 0) and the diagnostics so far: restored from `checkpoint` when it
/// holds this run (reported as [`RunEvent::Resumed`]), else a fresh start.
fn resume(
    trainer: &mut Trainer,
    checkpoint: Option<&CheckpointPlan>,
    progress: &dyn Fn(RunEvent),
) -> Result<(u32, Diagnostics)> {
    let Some((epoch, mut diag)) = checkpoint.map(|p| trainer.restore(p)).transpose()?.flatten() else {
        return Ok((0, Diagnostics::default()));
    };
    diag.resumed_from_epoch = Some(epoch);
    progress(RunEvent::Resumed { epoch: epoch + 1 });
    Ok((epoch + 1, diag))
}

/// Whether the run has taken its `train.max_steps` steps (never without the limit).
fn steps_spent(t: &TrainConfig, diag: &Diagnostics) -> bool {
    t.max_steps.is_some_and(|m| diag.steps >= m)
}

/// Writes a run's test embeddings and labels as `embeddings.npy` and `labels.npy` into `dir`.
fn save_test_embeddings(dir: &Path, emb: &tch::Tensor, labels: &tch::Tensor) -> Result<()> {
    crate::npy::write(&dir.join("embeddings.npy"), &emb.to_kind(Kind::Float))?;
    crate::npy::write(&dir.join("labels.npy"), labels)?;
    Ok(())
}

/// Trains and evaluates one run. Errors in set-up are returned; a diverged loss is an outcome.
pub fn run(config: &RunConfig, checkpoint: Option<&CheckpointPlan>, progress: &dyn Fn(RunEvent)) -> Result<RunOutcome> {
    run_with(config, checkpoint, None, progress)
}

/// [`run`], also writing the test split's embeddings and labels as `embeddings.npy` and
/// `labels.npy` into `save_embeddings` (the folder `harness eval --run` reads).
pub fn run_with(
    config: &RunConfig,
    checkpoint: Option<&CheckpointPlan>,
    save_embeddings: Option<&Path>,
    progress: &dyn Fn(RunEvent),
) -> Result<RunOutcome> {
    let device = crate::device::resolve_device(&config.train.device)?;
    let t = &config.train;
    if t.batch_size < 2 {
        anyhow::bail!("train.batch_size must be at least 2, got {}", t.batch_size);
    }
    if let Some(p) = &config.protocol {
        return selection::run_protocol(config, p, device, checkpoint, save_embeddings, progress);
    }
    let mut data =
        splits::load_data(&config.data, t).with_context(|| format!("loading data set `{}`", config.data.name()))?;
    let mut cache = vec![];
    data.train = features::freeze(data.train, "train", config, device, &mut cache)?;
    data.test = features::freeze(data.test, "test", config, device, &mut cache)?;
    let (trained, features_dim) = features::trained(config)?;
    let config = trained.as_ref();
    data.input_dim = features_dim.or(data.input_dim);
    let test_size = data.test.len();
    if let Some(k) = config.eval.recall_at.iter().find(|&&k| k < 1 || k as usize >= test_size) {
        anyhow::bail!(
            "`eval.recall_at`: R@{k} needs 1 <= K < the test split's {test_size} images; checked before training"
        );
    }
    let mut trainer = Trainer::build(config, device, data.num_classes, data.input_dim)?;
    let train_labels = data.train.labels();
    let (start_epoch, mut diag) = resume(&mut trainer, checkpoint, progress)?;
    let started = Instant::now();
    let mut status = RunStatus::Finished;
    for epoch in start_epoch..t.epochs {
        // Before the epoch, so a run resumed from the checkpoint of its last step trains no more.
        if steps_spent(t, &diag) {
            break;
        }
        if let EpochEnd::Diverged = trainer.epoch(&data.train, &train_labels, epoch, &mut diag)? {
            status = RunStatus::Diverged;
            break;
        }
        progress(RunEvent::Epoch { epoch: epoch + 1, epochs: t.epochs, loss: diag.last_loss.unwrap_or(f64::NAN) });
        if let Some(plan) = checkpoint {
            trainer.save(plan, epoch, &diag)?;
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    if let Some(eff) = trainer.loss.effective_centers(losses::MERGED_CENTER_COSINE) {
        let eff = eff?;
        diag.effective_centers_per_class = Some(eff.mean());
        diag.effective_centers_threshold = Some(eff.threshold);
    }
    let mut outcome = RunOutcome {
        status,
        metrics: None,
        diagnostics: diag,
        train_seconds,
        eval_seconds: 0.0,
        split_fingerprint: data.fingerprint.clone(),
        device: format!("{device:?}"),
        error: None,
        selection: None,
        feature_cache: cache,
    };
    if status == RunStatus::Diverged {
        return Ok(outcome);
    }
    let eval_start = Instant::now();
    let (emb, labels, skipped) = splits::embed_test(&trainer.model, &data.test, device, t)?;
    outcome.diagnostics.skipped_test_images = skipped;
    if let Some(dir) = save_embeddings {
        save_test_embeddings(dir, &emb, &labels)?;
    }
    outcome.metrics = Some(evaluate(&emb, &labels, &config.eval)?);
    outcome.eval_seconds = eval_start.elapsed().as_secs_f64();
    Ok(outcome)
}
