//! HardTriple (paper.md §2): K centres per class, the class similarity is the largest of the K.
use crate::centers::{l2_normalize, margin_cross_entropy, CenterPooling, Centers};
use crate::{checks, LossError, LossOutput, MetricLoss};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Settings of HardTriple; defaults are the paper's (paper.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardTripleConfig {
    /// Scale λ applied to the logits.
    pub la: f64,
    /// Margin δ subtracted from the true class's similarity.
    pub margin: f64,
    /// Centres per class K.
    pub centers_per_class: i64,
}

impl Default for HardTripleConfig {
    fn default() -> Self {
        Self { la: 20.0, margin: 0.01, centers_per_class: 10 }
    }
}

impl HardTripleConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), LossError> {
        checks::positive("la", self.la)?;
        checks::finite("margin", self.margin)
    }

    /// Builds the loss with its C·K centres registered under `path`.
    pub fn build(&self, path: &nn::Path, num_classes: i64, dim: i64) -> Result<HardTriple, LossError> {
        self.validate()?;
        let centers = Centers::new(path, num_classes, self.centers_per_class, dim)?;
        Ok(HardTriple { config: self.clone(), centers })
    }
}

/// HardTriple: cross-entropy on `λ(max_k x_i·w_c^k − δ·[c = y_i])`.
#[derive(Debug)]
pub struct HardTriple {
    config: HardTripleConfig,
    centers: Centers,
}

impl MetricLoss for HardTriple {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<LossOutput, LossError> {
        checks::check_batch(embeddings, labels, self.centers.dim, Some(self.centers.num_classes))?;
        let x = l2_normalize(embeddings, 1)?;
        let (sim, _) = self.centers.similarities(&x)?;
        let class_sim = CenterPooling::Max.pool(&sim)?;
        let loss = margin_cross_entropy(&class_sim, labels, self.config.la, self.config.margin)?;
        Ok(LossOutput::classification_only(loss))
    }

    fn centers(&self) -> Option<&Centers> {
        Some(&self.centers)
    }
}
