//! Helpers shared by the losses crate's integration tests.
#![allow(dead_code)]
use losses::{LossConfig, MetricLoss};
use tch::{nn, Device, Kind, Tensor};

/// A loss built on the CPU in float64, with its var store.
pub struct Built {
    pub vs: nn::VarStore,
    pub loss: Box<dyn MetricLoss>,
}

/// Builds `config` in float64 on the CPU.
pub fn build(config: &LossConfig, num_classes: i64, dim: i64) -> Built {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let loss = config.build(&vs.root().sub("loss"), num_classes, dim).expect("build");
    vs.double();
    Built { vs, loss }
}

impl Built {
    /// Overwrites the centre variable (dim × C·K).
    pub fn set_centers(&self, values: &Tensor) {
        let centers = self.loss.centers().expect("loss has centres");
        tch::no_grad(|| centers.var.shallow_clone().copy_(values));
    }

    pub fn centers(&self) -> Tensor {
        self.loss.centers().expect("loss has centres").var.shallow_clone()
    }

    /// The loss value as f64.
    pub fn value(&self, x: &Tensor, y: &Tensor) -> f64 {
        f64::try_from(self.loss.forward(x, y).expect("forward").loss).unwrap()
    }
}

/// A float64 tensor from nested rows.
pub fn matrix(rows: &[Vec<f64>]) -> Tensor {
    let r = rows.len() as i64;
    let c = rows.first().map_or(0, |v| v.len()) as i64;
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([r, c])
}

pub fn labels(v: &[i64]) -> Tensor {
    Tensor::from_slice(v)
}

pub fn randn(shape: &[i64]) -> Tensor {
    Tensor::randn(shape, (Kind::Double, Device::Cpu))
}

/// Largest absolute difference between two tensors.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

/// Every loss kind with a small, gradient-friendly setting.
pub fn all_kinds() -> Vec<LossConfig> {
    let yaml = [
        "{kind: triplet, margin: 0.5, mining: all}",
        "{kind: triplet, margin: 0.5, mining: semihard}",
        "{kind: triplet, margin: 0.5, mining: hard}",
        "{kind: proxy_nca, scale: 3, include_positive: true}",
        "{kind: proxy_nca, scale: 3, include_positive: false}",
        "{kind: softmax_norm}",
        "{kind: hard_triple, centers_per_class: 3}",
        "{kind: soft_triple, centers_per_class: 3}",
        "{kind: soft_triple, centers_per_class: 3, tau: 0}",
    ];
    yaml.iter().map(|s| serde_yaml::from_str(s).unwrap()).collect()
}
