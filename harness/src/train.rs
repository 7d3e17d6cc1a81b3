//! One run: data → model → loss → optimiser → evaluation once after training (no test-set model
//! selection) → an outcome for the record. Checkpoints at the end of each epoch let a killed run
//! resume exactly where it stopped.
use crate::data::pipeline::{BadImagePolicy, BatchStream, ImageSource, TransformConfig};
use crate::data::sampler::{epoch_batches, SamplerConfig};
use crate::data::{reindex, synthetic, DatasetConfig};
use crate::eval::{evaluate, EvalConfig, EvalReport};
use crate::model::{EmbeddingModel, ModelConfig};
use crate::optim::{Optimizer, OptimizerConfig, ParamGroup};
use anyhow::{bail, Context, Result};
use losses::LossConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

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
    /// Images skipped under `on_bad_image: skip`.
    pub skipped_images: usize,
    /// Whether the run resumed from a checkpoint.
    pub resumed_from_epoch: Option<u32>,
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

enum Split {
    Memory { x: Tensor, y: Tensor },
    Images(Arc<ImageSource>),
}

impl Split {
    fn labels(&self) -> Vec<i64> {
        match self {
            Split::Memory { y, .. } => Vec::<i64>::try_from(y).unwrap(),
            Split::Images(s) => s.labels.clone(),
        }
    }
}

struct LoadedData {
    train: Split,
    test: Split,
    num_classes: i64,
    input_dim: Option<i64>,
    fingerprint: String,
}

fn load_data(cfg: &DatasetConfig, train: &TrainConfig) -> Result<LoadedData> {
    match cfg {
        DatasetConfig::Synthetic(s) => {
            let (a, b) = (synthetic::generate(s, false), synthetic::generate(s, true));
            let mut names: Vec<String> = a
                .names
                .iter()
                .map(|n| format!("train\t{n}"))
                .chain(b.names.iter().map(|n| format!("test\t{n}")))
                .collect();
            names.sort();
            Ok(LoadedData {
                fingerprint: format!("synthetic-{}", crate::data::fingerprint_lines(&names)),
                num_classes: s.classes,
                input_dim: None,
                train: Split::Memory { x: a.images, y: a.labels },
                test: Split::Memory { x: b.images, y: b.labels },
            })
        }
        DatasetConfig::Features(f) => {
            let load = |x: &Path, y: &Path| -> Result<(Tensor, Tensor)> {
                let xs = crate::npy::read_embeddings(x)?;
                let ys = crate::npy::read_labels(y)?;
                if xs.size()[0] != ys.size()[0] {
                    bail!("{} has {} rows but {} has {} labels", x.display(), xs.size()[0], y.display(), ys.size()[0]);
                }
                let items: Vec<crate::data::ImageItem> = Vec::<i64>::try_from(&ys)?
                    .into_iter()
                    .map(|c| crate::data::ImageItem { path: PathBuf::new(), class: c })
                    .collect();
                Ok((xs, Tensor::from_slice(&reindex(&items))))
            };
            let (tx, ty) = load(&f.train_features, &f.train_labels)?;
            let (vx, vy) = load(&f.test_features, &f.test_labels)?;
            if tx.size()[1] != vx.size()[1] {
                bail!("train features have {} columns, test features {}", tx.size()[1], vx.size()[1]);
            }
            let num_classes = i64::try_from(ty.max())? + 1;
            let mut h = sha2_hex(&tx);
            h.push_str(&sha2_hex(&vx));
            Ok(LoadedData {
                fingerprint: format!("features-{}", &h[..16]),
                num_classes,
                input_dim: Some(tx.size()[1]),
                train: Split::Memory { x: tx, y: ty },
                test: Split::Memory { x: vx, y: vy },
            })
        }
        DatasetConfig::Cub(_) | DatasetConfig::Cars196(_) | DatasetConfig::Sop(_) | DatasetConfig::Folder(_) => {
            let list = cfg.image_list().context("an image data set lists its images")??;
            let fingerprint = list.fingerprint();
            let source = |items: &[crate::data::ImageItem], is_train: bool| ImageSource {
                paths: items.iter().map(|i| list.root.join(&i.path)).collect(),
                labels: reindex(items),
                transform: train.transform.clone(),
                train: is_train,
                on_bad_image: train.on_bad_image,
            };
            let num_classes = crate::data::class_count(&list.train) as i64;
            Ok(LoadedData {
                train: Split::Images(Arc::new(source(&list.train, true))),
                test: Split::Images(Arc::new(source(&list.test, false))),
                num_classes,
                input_dim: None,
                fingerprint,
            })
        }
    }
}

fn sha2_hex(t: &Tensor) -> String {
    use sha2::{Digest, Sha256};
    let v = Vec::<f32>::try_from(t.view([-1])).unwrap_or_default();
    let mut h = Sha256::new();
    for x in v {
        h.update(x.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a run keeps its checkpoint, and whether it may resume from it.
#[derive(Debug, Clone)]
pub struct CheckpointPlan {
    /// The checkpoint file (written atomically at the end of each epoch).
    pub path: PathBuf,
    /// Hash of the run's config; a checkpoint of another config is not resumed from.
    pub config_hash: String,
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
        bail!("train.batch_size must be at least 2, got {}", t.batch_size);
    }
    let data = load_data(&config.data, t).with_context(|| format!("loading data set `{}`", config.data.name()))?;
    tch::manual_seed(config.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = EmbeddingModel::build(&config.model, &mut vs, "backbone", "head", config.dim, data.input_dim)?;
    let loss = config.loss.build(&vs.root().sub("loss"), data.num_classes, config.dim)?;
    // Groups named as `train.lr` names them; each takes the variables under its path in the store.
    let groups =
        [("backbone", "backbone", t.lr.backbone), ("head", "head", t.lr.head), ("centers", "loss", t.lr.centers)];
    let mut groups: Vec<ParamGroup> = groups
        .into_iter()
        .map(|(name, path, lr)| {
            let mut vars: Vec<(String, Tensor)> =
                vs.variables().into_iter().filter(|(k, _)| k.starts_with(&format!("{path}."))).collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            ParamGroup {
                name: name.into(),
                params: vars.into_iter().map(|(_, v)| v).filter(|v| v.requires_grad()).collect(),
                lr,
                weight_decay: t.weight_decay,
            }
        })
        .collect();
    groups.retain(|g| !g.params.is_empty());
    let mut opt = Optimizer::new(t.optimizer.clone(), groups);

    let train_labels = data.train.labels();
    let mut diag = Diagnostics::default();
    let mut start_epoch = 0;
    if let Some(plan) = checkpoint {
        if let Some((epoch, d)) = load_checkpoint(plan, &vs, &mut opt)? {
            start_epoch = epoch + 1;
            diag = d;
            diag.resumed_from_epoch = Some(epoch);
            progress(RunEvent::Resumed { epoch: epoch + 1 });
        }
    }
    let started = Instant::now();
    let mut status = RunStatus::Finished;
    'epochs: for epoch in start_epoch..t.epochs {
        let lr_scale = t.lr_step_epochs.map_or(1.0, |s| t.lr_gamma.powi((epoch / s.max(1)) as i32));
        let batches = epoch_batches(&t.sampler, &train_labels, t.batch_size, config.seed, epoch as u64)
            .map_err(anyhow::Error::msg)?;
        if batches.is_empty() {
            bail!("the training split ({} images) is smaller than one batch ({})", train_labels.len(), t.batch_size);
        }
        let (mut sum, mut reg_sum, mut n) = (0.0, 0.0, 0usize);
        let mut step_batch = |x: Tensor, y: Tensor, opt: &mut Optimizer, diag: &mut Diagnostics| -> Result<bool> {
            let (x, y) = (x.to_device(device), y.to_device(device));
            let emb = if t.bf16 && device.is_cuda() {
                tch::autocast(true, || model.forward(&x, true)).to_kind(Kind::Float)
            } else {
                model.forward(&x, true)
            };
            diag.steps += 1;
            let out = match loss.forward(&emb, &y) {
                Ok(o) => o,
                // The model's output blew up before the loss could: that is divergence too.
                Err(losses::LossError::NonFiniteEmbeddings) => {
                    diag.diverged_at_step = Some(diag.steps);
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            };
            let value = f64::try_from(&out.loss)?;
            if !value.is_finite() {
                diag.diverged_at_step = Some(diag.steps);
                return Ok(false);
            }
            diag.first_loss.get_or_insert(value);
            sum += value;
            if let Some(r) = &out.regularizer {
                reg_sum += f64::try_from(r)?;
            }
            n += 1;
            opt.zero_grad();
            out.loss.backward();
            if let Some(c) = t.grad_clip {
                opt.clip_grad_norm(c);
            }
            opt.step(lr_scale);
            Ok(true)
        };
        match &data.train {
            Split::Memory { x, y } => {
                for b in &batches {
                    let idx = Tensor::from_slice(&b.iter().map(|&i| i as i64).collect::<Vec<_>>());
                    if !step_batch(x.index_select(0, &idx), y.index_select(0, &idx), &mut opt, &mut diag)? {
                        status = RunStatus::Diverged;
                        break 'epochs;
                    }
                    if t.max_steps.is_some_and(|m| diag.steps >= m) {
                        break;
                    }
                }
            }
            Split::Images(src) => {
                for batch in BatchStream::start(src.clone(), batches, t.workers, 2, config.seed, epoch as u64) {
                    let batch = batch?;
                    diag.skipped_images += batch.skipped.len();
                    if batch.labels.size()[0] < 2 {
                        continue;
                    }
                    if !step_batch(batch.images, batch.labels, &mut opt, &mut diag)? {
                        status = RunStatus::Diverged;
                        break 'epochs;
                    }
                    if t.max_steps.is_some_and(|m| diag.steps >= m) {
                        break;
                    }
                }
            }
        }
        let mean = sum / n.max(1) as f64;
        diag.epoch_loss.push(mean);
        if reg_sum > 0.0 {
            diag.epoch_regularizer.push(reg_sum / n.max(1) as f64);
        }
        diag.last_loss = Some(mean);
        progress(RunEvent::Epoch { epoch: epoch + 1, epochs: t.epochs, loss: mean });
        if let Some(plan) = checkpoint {
            save_checkpoint(plan, &vs, &opt, epoch, &diag)?;
        }
        if t.max_steps.is_some_and(|m| diag.steps >= m) {
            break;
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    if let Some(eff) = loss.effective_centers(losses::MERGED_CENTER_COSINE) {
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
    };
    if status == RunStatus::Diverged {
        return Ok(outcome);
    }
    let eval_start = Instant::now();
    let (emb, labels) = embed_test(&model, &data.test, device, t)?;
    if let Some(dir) = save_embeddings {
        crate::npy::write(&dir.join("embeddings.npy"), &emb.to_kind(Kind::Float))?;
        crate::npy::write(&dir.join("labels.npy"), &labels)?;
    }
    outcome.metrics = Some(evaluate(&emb, &labels, &config.eval)?);
    outcome.eval_seconds = eval_start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Embeds the test split in order, in evaluation mode.
fn embed_test(model: &EmbeddingModel, test: &Split, device: Device, t: &TrainConfig) -> Result<(Tensor, Tensor)> {
    tch::no_grad(|| match test {
        Split::Memory { x, y } => {
            let chunks: Vec<Tensor> =
                x.split(256, 0).iter().map(|c| model.forward(&c.to_device(device), false)).collect();
            Ok((Tensor::cat(&chunks, 0), y.to_device(device)))
        }
        Split::Images(src) => {
            let n = src.paths.len();
            let batches: Vec<Vec<usize>> =
                (0..n).collect::<Vec<_>>().chunks(t.batch_size.max(1) * 2).map(<[usize]>::to_vec).collect();
            let (mut embs, mut labels) = (vec![], vec![]);
            for b in BatchStream::start(src.clone(), batches, t.workers, 2, 0, 0) {
                let b = b?;
                embs.push(model.forward(&b.images.to_device(device), false));
                labels.push(b.labels.to_device(device));
            }
            Ok((Tensor::cat(&embs, 0), Tensor::cat(&labels, 0)))
        }
    })
}

fn save_checkpoint(
    plan: &CheckpointPlan,
    vs: &nn::VarStore,
    opt: &Optimizer,
    epoch: u32,
    diag: &Diagnostics,
) -> Result<()> {
    // Every named tensor of the store, BatchNorm running statistics included.
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (format!("var.{k}"), v)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.extend(opt.state());
    // One file holds everything, metadata included: a kill leaves the old checkpoint or the new one.
    let meta = CheckpointMeta { config_hash: plan.config_hash.clone(), epoch, diagnostics: diag.clone() };
    named.push(("meta.json".into(), Tensor::from_slice(&serde_json::to_vec(&meta)?)));
    let tensors: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    crate::fsio::write_atomic_with(&plan.path, |tmp| Tensor::save_multi(&tensors, tmp))?;
    Ok(())
}

/// What a checkpoint holds besides tensors.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointMeta {
    config_hash: String,
    epoch: u32,
    diagnostics: Diagnostics,
}

/// The checkpoint's epoch and diagnostics after loading its tensors, or `None` to start afresh:
/// no checkpoint, another run's, or one that cannot be read (discarded with a warning naming it).
fn load_checkpoint(
    plan: &CheckpointPlan,
    vs: &nn::VarStore,
    opt: &mut Optimizer,
) -> Result<Option<(u32, Diagnostics)>> {
    if !plan.path.is_file() {
        return Ok(None);
    }
    let discard = |why: String| {
        tracing::warn!("{}: {why}; discarding it and training this run from the start", plan.path.display());
        Ok(None)
    };
    let named: std::collections::HashMap<String, Tensor> = match Tensor::load_multi_with_device(&plan.path, vs.device())
    {
        Ok(v) => v.into_iter().collect(),
        Err(e) => return discard(format!("unreadable checkpoint ({})", e.to_string().lines().next().unwrap_or(""))),
    };
    let meta = named.get("meta.json").map(|t| Vec::<u8>::try_from(t).map(|b| serde_json::from_slice(&b)));
    let meta: CheckpointMeta = match meta {
        Some(Ok(Ok(m))) => m,
        _ => return discard("checkpoint without readable metadata (an older harness wrote it?)".into()),
    };
    if meta.config_hash != plan.config_hash {
        return Ok(None);
    }
    for (k, mut v) in vs.variables() {
        let saved = named.get(&format!("var.{k}")).with_context(|| format!("checkpoint lacks variable {k}"))?;
        tch::no_grad(|| v.copy_(saved));
    }
    opt.load_state(&named).map_err(anyhow::Error::msg)?;
    Ok(Some((meta.epoch, meta.diagnostics)))
}
