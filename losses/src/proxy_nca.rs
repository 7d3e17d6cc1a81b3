//! ProxyNCA (Movshovitz-Attias et al. 2017; paper.md §2): one proxy per class, squared Euclidean
//! distance between scaled unit vectors.
use crate::centers::{l2_normalize, Centers};
use crate::{checks, LossError, LossOutput, MetricLoss};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Settings of ProxyNCA.
///
/// Default: `scale: 3`, `include_positive: true`. The paper's form leaves the positive proxy out of
/// the denominator, which makes the loss unbounded below (it keeps falling as negatives move away);
/// common re-implementations, pytorch-metric-learning's `ProxyNCALoss` among them, include it
/// (plain softmax cross-entropy over `−s²‖x − p‖²`) and scale both unit vectors by s = 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyNcaConfig {
    /// Scale s applied to both the unit embedding and the unit proxy before the distance.
    pub scale: f64,
    /// Whether the positive proxy's term is in the softmax denominator (see the type's doc).
    pub include_positive: bool,
}

impl Default for ProxyNcaConfig {
    fn default() -> Self {
        Self { scale: 3.0, include_positive: true }
    }
}

impl ProxyNcaConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), LossError> {
        checks::positive("scale", self.scale)
    }

    /// Builds the loss with its C proxies registered under `path` (as the variable `centers`).
    pub fn build(&self, path: &nn::Path, num_classes: i64, dim: i64) -> Result<ProxyNca, LossError> {
        self.validate()?;
        if !self.include_positive && num_classes < 2 {
            return Err(LossError::InvalidConfig {
                field: "include_positive",
                value: "false".into(),
                expected: "true when there is a single class (the denominator would be empty)",
            });
        }
        Ok(ProxyNca { config: self.clone(), proxies: Centers::new(path, num_classes, 1, dim)? })
    }
}

/// ProxyNCA: `−log( exp(−s²‖x_i − p_{y_i}‖²) / Σ_j exp(−s²‖x_i − p_j‖²) )` on unit x and p, with
/// j running over all classes or over j ≠ y_i (`include_positive`).
#[derive(Debug)]
pub struct ProxyNca {
    config: ProxyNcaConfig,
    proxies: Centers,
}

impl MetricLoss for ProxyNca {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<LossOutput, LossError> {
        checks::check_batch(embeddings, labels, self.proxies.dim, Some(self.proxies.num_classes))?;
        let x = l2_normalize(embeddings, 1)?;

        // For unit x and p, ‖s·x − s·p‖² = s²(2 − 2 x·p); the constant 2s² cancels in the softmax,
        // so the logits are 2s²·(x·p) and no N × C × dim tensor or norm pass is needed.
        let s2 = self.config.scale * self.config.scale;
        let logits = self.proxies.cosines(&x)?.0.f_mul_scalar(2.0 * s2)?;
        let idx = labels.f_unsqueeze(1)?;
        let loss = if self.config.include_positive {
            logits.f_cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, 0.0)?
        } else {
            let positive = logits.f_gather(1, &idx, false)?.f_squeeze_dim(1)?;
            let mask = logits.f_zeros_like()?.f_scatter_value(1, &idx, 1.0)?.f_to_kind(tch::Kind::Bool)?;
            let denominator = logits.f_masked_fill(&mask, f64::NEG_INFINITY)?.f_logsumexp([1].as_slice(), false)?;
            denominator.f_sub(&positive)?.f_mean(logits.kind())?
        };
        Ok(LossOutput::classification_only(loss))
    }

    fn centers(&self) -> Option<&Centers> {
        Some(&self.proxies)
    }
}
