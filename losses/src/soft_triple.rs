//! SoftTriple (paper.md §2): K centres per class pooled by a softmax, plus the centre regularizer.
use crate::centers::{l2_normalize, margin_cross_entropy, CenterPooling, Centers};
use crate::{checks, LossError, LossOutput, MetricLoss};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Settings of SoftTriple; defaults are the paper's (paper.md §3). `tau: 0` is "without regularizer".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftTripleConfig {
    /// Scale λ applied to the logits.
    pub la: f64,
    /// Temperature γ of the softmax over a class's centres (the softmax multiplies by 1/γ).
    pub gamma: f64,
    /// Weight τ of the centre regularizer; 0 switches it off.
    pub tau: f64,
    /// Margin δ subtracted from the true class's similarity.
    pub margin: f64,
    /// Centres per class K.
    pub centers_per_class: i64,
}

impl Default for SoftTripleConfig {
    fn default() -> Self {
        Self { la: 20.0, gamma: 0.1, tau: 0.2, margin: 0.01, centers_per_class: 10 }
    }
}

impl SoftTripleConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), LossError> {
        checks::positive("la", self.la)?;
        checks::positive("gamma", self.gamma)?;
        checks::non_negative("tau", self.tau)?;
        checks::finite("margin", self.margin)
    }

    /// Builds the loss with its C·K centres registered under `path`.
    pub fn build(&self, path: &nn::Path, num_classes: i64, dim: i64) -> Result<SoftTriple, LossError> {
        self.validate()?;
        let centers = Centers::new(path, num_classes, self.centers_per_class, dim)?;
        Ok(SoftTriple { config: self.clone(), centers })
    }
}

/// SoftTriple: cross-entropy on `λ(S'_{i,c} − δ·[c = y_i])` plus `τ·R/(C·K·(K−1))` when τ > 0 and K > 1.
#[derive(Debug)]
pub struct SoftTriple {
    config: SoftTripleConfig,
    centers: Centers,
}

impl SoftTriple {
    /// Whether the centre regularizer takes part (τ > 0 and K > 1).
    pub fn has_regularizer(&self) -> bool {
        self.config.tau > 0.0 && self.centers.per_class > 1
    }
}

impl MetricLoss for SoftTriple {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<LossOutput, LossError> {
        checks::check_batch(embeddings, labels, self.centers.dim, Some(self.centers.num_classes))?;
        let x = l2_normalize(embeddings, 1)?;
        let (sim, inverse_norms) = self.centers.similarities(&x)?;
        let class_sim = CenterPooling::Soft { gamma: self.config.gamma }.pool(&sim)?;
        let classification = margin_cross_entropy(&class_sim, labels, self.config.la, self.config.margin)?;
        if !self.has_regularizer() {
            return Ok(LossOutput::classification_only(classification));
        }
        let regularizer = self.centers.regularizer(&inverse_norms)?;
        let loss = classification.f_add(&regularizer.f_mul_scalar(self.config.tau)?)?;
        Ok(LossOutput { loss, classification, regularizer: Some(regularizer), active_fraction: None })
    }

    fn centers(&self) -> Option<&Centers> {
        Some(&self.centers)
    }
}
