//! `harness loss-check`: a smoke check that every loss kind builds, runs forward and backward, and
//! decreases under a few optimiser steps on a small random problem.
use anyhow::{bail, Context, Result};
use losses::LossConfig;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// One loss kind's result in the smoke check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LossCheck {
    /// The loss config, as YAML flow text.
    pub config: String,
    /// Loss before the first step.
    pub initial: f64,
    /// Loss after the last step.
    pub last: f64,
    /// Mean effective centres per class at the end, for losses with centres.
    pub effective_centers: Option<f64>,
}

/// The loss configs the smoke check covers (the losses crate's list): every kind, SoftTriple with
/// and without regularizer.
pub fn default_configs() -> Vec<LossConfig> {
    losses::check_variants()
}

/// Optimises free embeddings (8 classes × 4 samples, dim 16) and the loss's centres with Adam for
/// `steps` steps, and checks the loss is finite throughout and lower at the end.
pub fn check(config: &LossConfig, steps: usize, device: Device) -> Result<LossCheck> {
    let (classes, per_class, dim) = (8_i64, 4_i64, 16_i64);
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let (x, loss) = crate::rng::with_torch_seed(0, || {
        let x = root.var("embeddings", &[classes * per_class, dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        (x, config.build(&root.sub("loss"), classes, dim))
    });
    let loss = loss.with_context(|| format!("building {}", config.kind()))?;
    let y = Tensor::arange(classes, (Kind::Int64, device)).repeat_interleave_self_int(per_class, 0, None);
    let mut opt = nn::Adam::default().build(&vs, 0.05)?;
    let mut first = None;
    let mut last = f64::NAN;
    for step in 0..steps {
        let out = loss.forward(&x, &y).with_context(|| format!("{} forward at step {step}", config.kind()))?;
        last = f64::try_from(&out.loss)?;
        if !last.is_finite() {
            bail!("{}: non-finite loss {last} at step {step}", config.kind());
        }
        first.get_or_insert(last);
        opt.backward_step(&out.loss);
    }
    let initial = first.context("no steps were run")?;
    if last >= initial {
        bail!("{}: loss did not decrease in {steps} steps ({initial:.5} → {last:.5})", config.kind());
    }
    let effective_centers = loss.effective_centers(losses::MERGED_CENTER_COSINE).transpose()?.map(|e| e.mean());
    Ok(LossCheck {
        config: serde_yaml::to_string(config)?.trim().replace('\n', ", "),
        initial,
        last,
        effective_centers,
    })
}
