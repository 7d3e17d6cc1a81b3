//! Triplet margin loss with in-batch mining (paper.md §2), in pytorch-metric-learning's convention:
//! Euclidean distance between unit embeddings, mean over the mined triplets whose loss is > 0.
use crate::centers::l2_normalize;
use crate::{checks, LossError, LossOutput, MetricLoss};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which triplets of the batch the loss is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TripletMining {
    /// Every valid (anchor, positive, negative) triplet of the batch.
    #[default]
    All,
    /// Triplets whose negative is farther than the positive but within the margin:
    /// `0 < d(a,n) − d(a,p) ≤ margin` (pytorch-metric-learning's `TripletMarginMiner("semihard")`).
    Semihard,
    /// Batch-hard (Hermans et al. 2017): for each anchor, its farthest positive and nearest negative.
    Hard,
}

/// Settings of the triplet loss. Default margin 0.05 and `mining: all`, pytorch-metric-learning's
/// `TripletMarginLoss` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TripletConfig {
    /// Margin δ_t in `[d(a,p) − d(a,n) + δ_t]_+`.
    pub margin: f64,
    /// Mining strategy inside the batch.
    pub mining: TripletMining,
}

impl Default for TripletConfig {
    fn default() -> Self {
        Self { margin: 0.05, mining: TripletMining::All }
    }
}

impl TripletConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), LossError> {
        checks::non_negative("margin", self.margin)
    }

    /// Builds the loss (it has no learnable parameters; `dim` is used to check batches).
    pub fn build(&self, dim: i64) -> Result<Triplet, LossError> {
        self.validate()?;
        checks::build_sizes(1, dim)?;
        Ok(Triplet { config: self.clone(), dim })
    }
}

/// Triplet margin loss over triplets mined inside the batch.
#[derive(Debug)]
pub struct Triplet {
    config: TripletConfig,
    dim: i64,
}

/// Pairwise Euclidean distances of the rows of `x` (N × N), with a zero (and zero-gradient) diagonal.
pub fn pairwise_distances(x: &Tensor) -> Result<Tensor, LossError> {
    let sq = x.f_square()?.f_sum_dim_intlist([1].as_slice(), true, x.kind())?;
    let d2 = sq.f_add(&sq.f_transpose(0, 1)?)?;
    let d2 = d2.f_sub(&x.f_matmul(&x.f_transpose(0, 1)?)?.f_mul_scalar(2.0)?)?.f_clamp_min(0.0)?;
    // sqrt has an infinite derivative at 0: give exact zeros value 0 and gradient 0.
    let zero = d2.f_le(0.0)?;
    Ok(d2.f_masked_fill(&zero, 1.0)?.f_sqrt()?.f_masked_fill(&zero, 0.0)?)
}

impl MetricLoss for Triplet {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<LossOutput, LossError> {
        checks::check_batch(embeddings, labels, self.dim, None)?;
        let n = labels.size()[0];
        let x = l2_normalize(embeddings, 1)?;
        let dist = pairwise_distances(&x)?;
        let same = labels.f_unsqueeze(1)?.f_eq_tensor(&labels.f_unsqueeze(0)?)?;
        let eye = Tensor::f_eye(n, (Kind::Bool, labels.device()))?;
        let positive = same.f_logical_and(&eye.f_logical_not()?)?;
        let negative = same.f_logical_not()?;
        let margin = self.config.margin;
        let kind = dist.kind();

        // Every valid triplet is a positive pair (a, p) and a negative n of a: rows are the P
        // positive pairs, columns the N candidates, so the work is P × N rather than N³.
        let pairs = positive.f_nonzero()?;
        let anchors = pairs.f_select(1, 0)?;
        let negatives_of_pair = negative.f_index_select(0, &anchors)?; // P × N
        let valid_count = i64::try_from(negatives_of_pair.f_sum(Kind::Int64)?)?;
        if valid_count == 0 {
            let reason = if pairs.size()[0] == 0 {
                "no class has two images in the batch"
            } else {
                "every image of the batch has the same class"
            };
            return Err(LossError::NoValidTriplet { reason: reason.into() });
        }

        let (losses, mined, denominator) = match self.config.mining {
            TripletMining::All | TripletMining::Semihard => {
                let d_ap = dist.f_index(&[Some(&anchors), Some(&pairs.f_select(1, 1)?)])?.f_unsqueeze(1)?; // P × 1
                let d_an = dist.f_index_select(0, &anchors)?; // P × N
                let raw = d_ap.f_sub(&d_an)?.f_add_scalar(margin)?;
                let mined = if self.config.mining == TripletMining::Semihard {
                    let gap = d_an.f_sub(&d_ap)?;
                    negatives_of_pair.f_logical_and(&gap.f_gt(0.0)?)?.f_logical_and(&gap.f_le(margin)?)?
                } else {
                    negatives_of_pair
                };
                (raw.f_relu()?, mined, valid_count)
            }
            TripletMining::Hard => {
                let far_pos =
                    dist.f_masked_fill(&positive.f_logical_not()?, f64::NEG_INFINITY)?.f_amax([1].as_slice(), false)?;
                let near_neg = dist.f_masked_fill(&same, f64::INFINITY)?.f_amin([1].as_slice(), false)?;
                let has_pos = positive.f_any_dim(1, false)?;
                let has_neg = negative.f_any_dim(1, false)?;
                let mined = has_pos.f_logical_and(&has_neg)?;
                let anchors = i64::try_from(mined.f_sum(Kind::Int64)?)?;
                // Anchors without a positive or a negative hold ±inf; zero them before the relu.
                let raw = far_pos.f_sub(&near_neg)?.f_add_scalar(margin)?;
                let raw = raw.f_masked_fill(&mined.f_logical_not()?, 0.0)?;
                (raw.f_relu()?, mined, anchors)
            }
        };
        let losses = losses.f_mul(&mined.f_to_kind(kind)?)?;
        let active = losses.f_gt(0.0)?.f_sum(kind)?;
        let loss = losses.f_sum(kind)?.f_div(&active.f_clamp_min(1.0)?)?;
        let active_fraction = active.f_div_scalar(denominator as f64)?;
        Ok(LossOutput {
            loss: loss.shallow_clone(),
            classification: loss,
            regularizer: None,
            active_fraction: Some(active_fraction),
        })
    }

    fn centers(&self) -> Option<&crate::centers::Centers> {
        None
    }
}
