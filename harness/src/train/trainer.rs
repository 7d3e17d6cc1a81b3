//! The training loop's parts: a [`Trainer`] holds the model, the loss, their variables and the
//! optimiser; it takes steps, runs epochs, and saves or restores a checkpoint (variables, optimiser
//! state and metadata in one file).
use super::splits::Split;
use super::{CheckpointPlan, Diagnostics};
use crate::config::{RunConfig, TrainConfig};
use crate::data::sampler::epoch_batches;
use crate::model::EmbeddingModel;
use crate::optim::{Optimizer, ParamGroup};
use anyhow::{bail, Context, Result};
use losses::MetricLoss;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// Model, loss, variables and optimiser of one run.
pub(super) struct Trainer<'a> {
    pub config: &'a RunConfig,
    pub device: Device,
    pub vs: nn::VarStore,
    pub model: EmbeddingModel,
    pub loss: Box<dyn MetricLoss>,
    opt: Optimizer,
    /// A copy of every variable at the best validation epoch so far (model selection), saved with
    /// the checkpoint so a resumed run keeps it.
    pub best: Option<Vec<(String, Tensor)>>,
}

/// How an epoch ended.
pub(super) enum EpochEnd {
    /// Every batch stepped (or `max_steps` was reached).
    Done,
    /// The loss or the embeddings stopped being finite.
    Diverged,
}

impl<'a> Trainer<'a> {
    /// Seeds libtorch, builds model and loss under one store, and one optimiser group per
    /// `train.lr` entry (backbone, head, centers).
    pub fn build(config: &'a RunConfig, device: Device, num_classes: i64, input_dim: Option<i64>) -> Result<Self> {
        let mut vs = nn::VarStore::new(device);
        let (model, loss) = crate::rng::with_torch_seed(config.seed as i64, || -> Result<_> {
            let model = EmbeddingModel::build(&config.model, &mut vs, "backbone", "head", config.dim, input_dim)?;
            let loss = config.loss.build(&vs.root().sub("loss"), num_classes, config.dim)?;
            Ok((model, loss))
        })?;
        let t = &config.train;
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
        let opt = Optimizer::new(t.optimizer.clone(), groups);
        Ok(Self { config, device, vs, model, loss, opt, best: None })
    }

    /// Remembers the variables as they are now as the best so far.
    pub fn keep_best(&mut self) {
        let mut vars: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        self.best = Some(vars);
    }

    /// Puts the best variables kept by [`Trainer::keep_best`] back (nothing when none was kept).
    pub fn restore_best(&mut self) {
        let Some(best) = &self.best else { return };
        let best: std::collections::HashMap<&str, &Tensor> = best.iter().map(|(k, v)| (k.as_str(), v)).collect();
        for (k, mut v) in self.vs.variables() {
            if let Some(b) = best.get(k.as_str()) {
                tch::no_grad(|| v.copy_(b));
            }
        }
    }

    fn train_config(&self) -> &TrainConfig {
        &self.config.train
    }

    /// One optimiser step on a batch; `None` when the loss (or the embeddings) is not finite.
    /// Returns the loss and the regularizer term.
    fn step(&mut self, x: Tensor, y: Tensor, lr_scale: f64, diag: &mut Diagnostics) -> Result<Option<(f64, f64)>> {
        let t = &self.config.train;
        let (x, y) = (x.to_device(self.device), y.to_device(self.device));
        let emb = if t.bf16 && self.device.is_cuda() {
            tch::autocast(true, || self.model.forward(&x, true)).to_kind(Kind::Float)
        } else {
            self.model.forward(&x, true)
        };
        diag.steps += 1;
        let out = match self.loss.forward(&emb, &y) {
            Ok(o) => o,
            // The model's output blew up before the loss could: that is divergence too.
            Err(losses::LossError::NonFiniteEmbeddings) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let value = f64::try_from(&out.loss)?;
        if !value.is_finite() {
            return Ok(None);
        }
        let reg = out.regularizer.as_ref().map(f64::try_from).transpose()?.unwrap_or(0.0);
        self.opt.backward(&out.loss)?;
        if let Some(c) = t.grad_clip {
            self.opt.clip_grad_norm(c);
        }
        self.opt.step(lr_scale);
        Ok(Some((value, reg)))
    }

    /// One pass over the training split (epoch from 0), recording its mean loss and regularizer.
    pub fn epoch(&mut self, train: &Split, labels: &[i64], epoch: u32, diag: &mut Diagnostics) -> Result<EpochEnd> {
        let t = self.train_config().clone();
        let lr_scale = t.lr_step_epochs.map_or(1.0, |s| t.lr_gamma.powi((epoch / s.max(1)) as i32));
        let batches = epoch_batches(&t.sampler, labels, t.batch_size, self.config.seed, epoch as u64)
            .map_err(anyhow::Error::msg)?;
        if batches.is_empty() {
            bail!("the training split ({} images) is smaller than one batch ({})", labels.len(), t.batch_size);
        }
        let (mut sum, mut reg_sum, mut n) = (0.0, 0.0, 0usize);
        let started = std::time::Instant::now();
        let mut source = train.batches(batches, t.workers, self.config.seed, epoch as u64);
        loop {
            let waited = std::time::Instant::now();
            let Some(batch) = source.next() else { break };
            diag.data_wait_seconds += waited.elapsed().as_secs_f64();
            let batch = batch?;
            diag.skipped_images += batch.skipped;
            if batch.y.size()[0] < 2 {
                continue;
            }
            let Some((value, reg)) = self.step(batch.x, batch.y, lr_scale, diag)? else {
                diag.diverged_at_step = Some(diag.steps);
                return Ok(EpochEnd::Diverged);
            };
            diag.first_loss.get_or_insert(value);
            (sum, reg_sum, n) = (sum + value, reg_sum + reg, n + 1);
            if t.max_steps.is_some_and(|m| diag.steps >= m) {
                break;
            }
        }
        let mean = sum / n.max(1) as f64;
        diag.epoch_loss.push(mean);
        diag.epoch_seconds.push(started.elapsed().as_secs_f64());
        if reg_sum > 0.0 {
            diag.epoch_regularizer.push(reg_sum / n.max(1) as f64);
        }
        diag.last_loss = Some(mean);
        Ok(EpochEnd::Done)
    }

    /// Writes the checkpoint after `epoch` (from 0): every named tensor of the store (BatchNorm
    /// statistics included), the optimiser state and the metadata, in one file written atomically,
    /// so a kill leaves the old checkpoint or the new one.
    pub fn save(&self, plan: &CheckpointPlan, epoch: u32, diag: &Diagnostics) -> Result<()> {
        let mut named: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().map(|(k, v)| (format!("var.{k}"), v)).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named.extend(self.opt.state());
        for (k, v) in self.best.iter().flatten() {
            named.push((format!("best.{k}"), v.shallow_clone()));
        }
        let meta = CheckpointMeta { config_hash: plan.config_hash.clone(), epoch, diagnostics: diag.clone() };
        named.push(("meta.json".into(), Tensor::from_slice(&serde_json::to_vec(&meta)?)));
        // libtorch serialises into memory and our writer puts it on disk: a full disk is then an
        // ordinary error naming the file (libtorch's own file writer aborts the process on it).
        let buffer = SharedBuffer::default();
        Tensor::save_multi_to_stream(&named, buffer.clone())?;
        let bytes = std::mem::take(&mut *buffer.0.lock().unwrap_or_else(|e| e.into_inner()));
        crate::fsio::write_atomic(&plan.path, &bytes)?;
        Ok(())
    }

    /// Restores the checkpoint of `plan`; returns its epoch (from 0) and diagnostics, or `None` to
    /// start afresh: no checkpoint, another run's, or one that cannot be read (discarded with a
    /// warning naming it).
    pub fn restore(&mut self, plan: &CheckpointPlan) -> Result<Option<(u32, Diagnostics)>> {
        if !plan.path.is_file() {
            return Ok(None);
        }
        let discard = |why: String| {
            tracing::warn!("{}: {why}; discarding it and training this run from the start", plan.path.display());
            Ok(None)
        };
        let named: std::collections::HashMap<String, Tensor> =
            match Tensor::load_multi_with_device(&plan.path, self.vs.device()) {
                Ok(v) => v.into_iter().collect(),
                Err(e) => {
                    let first = e.to_string().lines().next().unwrap_or("").to_string();
                    return discard(format!("unreadable checkpoint ({first})"));
                }
            };
        let meta = named.get("meta.json").map(|t| Vec::<u8>::try_from(t).map(|b| serde_json::from_slice(&b)));
        let meta: CheckpointMeta = match meta {
            Some(Ok(Ok(m))) => m,
            _ => return discard("checkpoint without readable metadata (an older harness wrote it?)".into()),
        };
        if meta.config_hash != plan.config_hash {
            return Ok(None);
        }
        for (k, mut v) in self.vs.variables() {
            let saved = named.get(&format!("var.{k}")).with_context(|| format!("checkpoint lacks variable {k}"))?;
            tch::no_grad(|| v.copy_(saved));
        }
        self.opt.load_state(&named).map_err(anyhow::Error::msg)?;
        let mut best: Vec<(String, Tensor)> = named
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("best.").map(|k| (k.to_string(), v.shallow_clone())))
            .collect();
        best.sort_by(|a, b| a.0.cmp(&b.0));
        self.best = (!best.is_empty()).then_some(best);
        Ok(Some((meta.epoch, meta.diagnostics)))
    }
}

/// A byte buffer libtorch can write into (its stream writer wants an owned `Write`).
#[derive(Clone, Default)]
struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a checkpoint holds besides tensors.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointMeta {
    config_hash: String,
    epoch: u32,
    diagnostics: Diagnostics,
}
