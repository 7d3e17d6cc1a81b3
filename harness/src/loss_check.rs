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

/// One loss kind on the CPU and on another device, from the same parameters and inputs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Parity {
    /// The loss config, as YAML flow text.
    pub config: String,
    /// The loss on the CPU.
    pub loss_cpu: f64,
    /// The loss on the device.
    pub loss_device: f64,
    /// Largest |CPU − device| over every gradient element (embeddings and centres), divided by the
    /// largest |gradient| on the CPU.
    pub grad_rel_diff: f64,
}

impl Parity {
    /// The loss's relative difference |CPU − device| / max(|CPU|, 1e-12).
    pub fn loss_rel_diff(&self) -> f64 {
        (self.loss_cpu - self.loss_device).abs() / self.loss_cpu.abs().max(1e-12)
    }
}

/// Forward and backward of `config` on the CPU and on `device` with the same centres and the same
/// embeddings (16 classes × 4 samples, dim 64; the device's store is a copy of the CPU's).
pub fn parity(config: &LossConfig, device: Device) -> Result<Parity> {
    let (classes, per_class, dim) = (16_i64, 4_i64, 64_i64);
    let build = |device: Device| -> Result<(nn::VarStore, Box<dyn losses::MetricLoss>)> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let loss = crate::rng::with_torch_seed(0, || {
            let _ = root.var("embeddings", &[classes * per_class, dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
            config.build(&root.sub("loss"), classes, dim)
        });
        Ok((vs, loss.with_context(|| format!("building {} on {device:?}", config.kind()))?))
    };
    let (cpu_vs, cpu_loss) = build(Device::Cpu)?;
    let (mut dev_vs, dev_loss) = build(device)?;
    dev_vs.copy(&cpu_vs).context("copying the CPU parameters to the device")?;
    let y = Tensor::arange(classes, (Kind::Int64, Device::Cpu)).repeat_interleave_self_int(per_class, 0, None);
    let run = |vs: &nn::VarStore, loss: &dyn losses::MetricLoss| -> Result<f64> {
        let x = vs.variables()["embeddings"].shallow_clone();
        let out = loss.forward(&x, &y.to_device(vs.device())).with_context(|| format!("{} forward", config.kind()))?;
        out.loss.backward();
        Ok(f64::try_from(&out.loss)?)
    };
    let (loss_cpu, loss_device) = (run(&cpu_vs, cpu_loss.as_ref())?, run(&dev_vs, dev_loss.as_ref())?);
    let dev_vars = dev_vs.variables();
    let (mut diff, mut scale) = (0.0_f64, 0.0_f64);
    for (name, var) in cpu_vs.variables() {
        let (g_cpu, g_dev) = (var.grad(), dev_vars[&name].grad().to_device(Device::Cpu));
        if !g_cpu.defined() {
            continue;
        }
        scale = scale.max(f64::try_from(g_cpu.abs().max())?);
        diff = diff.max(f64::try_from((&g_cpu - &g_dev).abs().max())?);
    }
    Ok(Parity {
        config: serde_yaml::to_string(config)?.trim().replace('\n', ", "),
        loss_cpu,
        loss_device,
        grad_rel_diff: diff / scale.max(1e-12),
    })
}

/// Median seconds of one forward + backward of `config` with `classes` classes, batch `batch`
/// (classes drawn at random, as a shuffled sampler gives them) and embedding size `dim` on
/// `device`, over `iters` timed steps after one warm-up step.
pub fn time_step(config: &LossConfig, classes: i64, batch: i64, dim: i64, device: Device, iters: usize) -> Result<f64> {
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let (x, loss) = crate::rng::with_torch_seed(0, || {
        let x = root.var("embeddings", &[batch, dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        (x, config.build(&root.sub("loss"), classes, dim))
    });
    let loss = loss.with_context(|| format!("building {}", config.kind()))?;
    let y = crate::rng::with_torch_seed(1, || Tensor::randint(classes, [batch], (Kind::Int64, device)));
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let step = || -> Result<f64> {
        let t = std::time::Instant::now();
        let out = loss.forward(&x, &y)?;
        out.loss.backward();
        sync();
        Ok(t.elapsed().as_secs_f64())
    };
    step()?;
    let mut times = (0..iters.max(1)).map(|_| step()).collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
