//! The loss configuration enum (tagged by `kind`) and the one `build` that turns it into a loss.
use crate::{
    HardTripleConfig, LossError, MetricLoss, ProxyNcaConfig, SoftTripleConfig, SoftmaxNormConfig, TorchScriptConfig,
    TripletConfig,
};
use serde::{Deserialize, Serialize};
use tch::nn;

/// A loss and its settings, as written in YAML: `{kind: soft_triple, la: 20, gamma: 0.1, ...}`.
///
/// Unknown fields are errors; missing fields take the paper's values (paper.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossConfig {
    /// Triplet margin loss with in-batch mining.
    Triplet(TripletConfig),
    /// ProxyNCA, one proxy per class.
    ProxyNca(ProxyNcaConfig),
    /// Normalised softmax with margin (one centre per class).
    SoftmaxNorm(SoftmaxNormConfig),
    /// K centres per class, max pooling.
    HardTriple(HardTripleConfig),
    /// K centres per class, softmax pooling, centre regularizer.
    SoftTriple(SoftTripleConfig),
    /// A loss written in PyTorch and exported as TorchScript; the harness owns its centres.
    #[serde(rename = "torchscript")]
    TorchScript(TorchScriptConfig),
}

impl LossConfig {
    /// Centres per class for the multi-centre losses (HardTriple, SoftTriple, plug-ins with
    /// centres); `None` for the others.
    pub fn centers_per_class(&self) -> Option<i64> {
        match self {
            LossConfig::HardTriple(c) => Some(c.centers_per_class),
            LossConfig::SoftTriple(c) => Some(c.centers_per_class),
            LossConfig::TorchScript(c) if c.centers_per_class > 0 => Some(c.centers_per_class),
            _ => None,
        }
    }

    /// Sets K on the multi-centre losses and returns whether it applied (a sweep's K axis).
    pub fn set_centers_per_class(&mut self, k: i64) -> bool {
        match self {
            LossConfig::HardTriple(c) => c.centers_per_class = k,
            LossConfig::SoftTriple(c) => c.centers_per_class = k,
            LossConfig::TorchScript(c) if c.centers_per_class > 0 => c.centers_per_class = k,
            _ => return false,
        }
        true
    }

    /// Weight τ of a centre regularizer, for the losses that have one (SoftTriple; 0 when off).
    pub fn regularizer_weight(&self) -> Option<f64> {
        match self {
            LossConfig::SoftTriple(c) => Some(c.tau),
            _ => None,
        }
    }

    /// Whether the loss learns class centres or proxies (and so wants its own learning rate).
    pub fn has_centers(&self) -> bool {
        self.centers_per_class().is_some() || matches!(self, LossConfig::ProxyNca(_) | LossConfig::SoftmaxNorm(_))
    }

    /// Plug-ins: records the file's SHA-256 in the config (or checks it against the recorded one)
    /// and calls the script once on a random batch at each embedding size of `dims`. Built-ins:
    /// nothing.
    pub fn prepare(&mut self, dims: &[i64]) -> Result<(), LossError> {
        if let LossConfig::TorchScript(c) = self {
            c.validate()?;
            c.pin()?;
            dims.iter().try_for_each(|&d| c.probe(d))?;
        }
        Ok(())
    }

    /// Checks every field's range without building anything.
    pub fn validate(&self) -> Result<(), LossError> {
        let k = self.centers_per_class().unwrap_or(1);
        if k < 1 {
            return Err(LossError::InvalidConfig {
                field: "centers_per_class",
                value: k.to_string(),
                expected: "at least 1 centre per class",
            });
        }
        match self {
            LossConfig::Triplet(c) => c.validate(),
            LossConfig::ProxyNca(c) => c.validate(),
            LossConfig::SoftmaxNorm(c) => c.validate(),
            LossConfig::HardTriple(c) => c.validate(),
            LossConfig::SoftTriple(c) => c.validate(),
            LossConfig::TorchScript(c) => c.validate(),
        }
    }

    /// Builds the loss for `num_classes` classes and `dim`-sized embeddings; learnable centres are
    /// registered under `path` as one variable named `centers` (dim × C·K, class-major).
    pub fn build(&self, path: &nn::Path, num_classes: i64, dim: i64) -> Result<Box<dyn MetricLoss>, LossError> {
        self.validate()?;
        Ok(match self {
            LossConfig::Triplet(c) => Box::new(c.build(dim)?),
            LossConfig::ProxyNca(c) => Box::new(c.build(path, num_classes, dim)?),
            LossConfig::SoftmaxNorm(c) => Box::new(c.build(path, num_classes, dim)?),
            LossConfig::HardTriple(c) => Box::new(c.build(path, num_classes, dim)?),
            LossConfig::SoftTriple(c) => Box::new(c.build(path, num_classes, dim)?),
            LossConfig::TorchScript(c) => Box::new(c.build(path, num_classes, dim)?),
        })
    }
}
