//! Softmax_norm (paper.md §2): normalised softmax with one centre per class, scale λ and margin δ.
use crate::centers::{l2_normalize, margin_cross_entropy, Centers};
use crate::{checks, LossError, LossOutput, MetricLoss};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Settings of Softmax_norm; defaults are the paper's (paper.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftmaxNormConfig {
    /// Scale λ applied to the logits.
    pub la: f64,
    /// Margin δ subtracted from the true class's similarity.
    pub margin: f64,
}

impl Default for SoftmaxNormConfig {
    fn default() -> Self {
        Self { la: 20.0, margin: 0.01 }
    }
}

impl SoftmaxNormConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), LossError> {
        checks::positive("la", self.la)?;
        checks::finite("margin", self.margin)
    }

    /// Builds the loss with its C centres registered under `path`.
    pub fn build(&self, path: &nn::Path, num_classes: i64, dim: i64) -> Result<SoftmaxNorm, LossError> {
        self.validate()?;
        Ok(SoftmaxNorm { config: self.clone(), centers: Centers::new(path, num_classes, 1, dim)? })
    }
}

/// Softmax_norm: cross-entropy on `λ(x_i·w_c − δ·[c = y_i])` with unit x and w.
#[derive(Debug)]
pub struct SoftmaxNorm {
    config: SoftmaxNormConfig,
    centers: Centers,
}

impl MetricLoss for SoftmaxNorm {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<LossOutput, LossError> {
        checks::check_batch(embeddings, labels, self.centers.dim, Some(self.centers.num_classes))?;
        let x = l2_normalize(embeddings, 1)?;
        let (sim, _) = self.centers.cosines(&x)?;
        let loss = margin_cross_entropy(&sim, labels, self.config.la, self.config.margin)?;
        Ok(LossOutput::classification_only(loss))
    }

    fn centers(&self) -> Option<&Centers> {
        Some(&self.centers)
    }
}
