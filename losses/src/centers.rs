//! Learnable class centres shared by the centre-based losses (paper.md §2): storage, normalisation,
//! pooling of a class's K similarities, the margin cross-entropy, the centre regularizer and the
//! effective-centres diagnostic.
use crate::checks;
use crate::LossError;
use tch::{nn, Kind, Tensor};

/// Name of the learnable centre variable under the loss's `nn::Path`.
pub const CENTERS_VAR: &str = "centers";

/// Cosine above which two centres of one class count as merged in [`effective_centers`].
///
/// 0.95 is an angle of about 18°: far tighter than two random unit vectors in 64 or 512 dimensions
/// (cosine about 0), loose enough that centres the regularizer has pulled together count as one.
pub const MERGED_CENTER_COSINE: f64 = 0.95;

/// ε inside the regularizer's square root, as in the official code (paper.md §2).
pub const REGULARIZER_EPS: f64 = 1e-5;

/// Learnable centres: one matrix of shape dim × (C·K), class-major (column c·K + k is centre k of
/// class c). The stored columns are not unit vectors; every forward pass normalises them.
#[derive(Debug)]
pub struct Centers {
    /// The variable, registered as `centers` under the path given to [`Centers::new`].
    pub var: Tensor,
    /// Number of classes C.
    pub num_classes: i64,
    /// Centres per class K.
    pub per_class: i64,
    /// Embedding size.
    pub dim: i64,
}

impl Centers {
    /// Registers `centers` under `path`, initialised as the official code does: PyTorch's
    /// `kaiming_uniform_(a = √5)` on a dim × (C·K) tensor, i.e. uniform in ±1/√(C·K).
    pub fn new(path: &nn::Path, num_classes: i64, per_class: i64, dim: i64) -> Result<Self, LossError> {
        checks::build_sizes(num_classes, dim)?;
        if per_class < 1 {
            return Err(LossError::InvalidConfig {
                field: "centers_per_class",
                value: per_class.to_string(),
                expected: "at least 1 centre per class",
            });
        }
        let bound = 1.0 / ((num_classes * per_class) as f64).sqrt();
        let var =
            path.f_var(CENTERS_VAR, &[dim, num_classes * per_class], nn::Init::Uniform { lo: -bound, up: bound })?;
        Ok(Self { var, num_classes, per_class, dim })
    }

    /// The centres with every column scaled to unit length (dim × C·K).
    pub fn normalized(&self) -> Result<Tensor, LossError> {
        Ok(l2_normalize(&self.var, 0)?)
    }

    /// Cosine of every embedding to every centre (N × C·K) and the centres' inverse norms (1 × C·K),
    /// in the embeddings' kind. The centres are not normalised as a matrix: `x·(w/‖w‖)` is computed
    /// as `(x·w)/‖w‖`, so forward and backward touch the dim × C·K matrix in the product and in its
    /// squared norms only (reports/perf.md measures it).
    pub fn cosines(&self, unit_embeddings: &Tensor) -> Result<(Tensor, Tensor), LossError> {
        let w = self.var.f_to_kind(unit_embeddings.kind())?;
        let inverse = inverse_column_norms(&w)?;
        Ok((unit_embeddings.f_matmul(&w)?.f_mul(&inverse)?, inverse))
    }

    /// [`Centers::cosines`] shaped N × C × K, with the inverse norms.
    pub fn similarities(&self, unit_embeddings: &Tensor) -> Result<(Tensor, Tensor), LossError> {
        let n = unit_embeddings.size()[0];
        let (cosines, inverse) = self.cosines(unit_embeddings)?;
        Ok((cosines.f_view([n, self.num_classes, self.per_class])?, inverse))
    }

    /// The centre regularizer `R / (C·K·(K−1))` with `R = Σ_c Σ_{t<s} √(2 + ε − 2 w_c^t·w_c^s)` over
    /// unit centres (paper.md §2), computed in K × K blocks, given the inverse norms from
    /// [`Centers::cosines`]. Needs K ≥ 2.
    pub fn regularizer(&self, inverse_norms: &Tensor) -> Result<Tensor, LossError> {
        let (c, k) = (self.num_classes, self.per_class);
        let w = self.var.f_to_kind(inverse_norms.kind())?;
        let inverse = inverse_norms.f_view([c, k])?;
        // w_t·w_s/(‖w_t‖‖w_s‖) per class: the raw K × K blocks scaled by both inverse norms.
        let cos = class_center_cosines(&w, c, k)?.f_mul(&inverse.f_unsqueeze(2)?)?.f_mul(&inverse.f_unsqueeze(1)?)?;
        regularizer_of_cosines(&cos, c, k)
    }
}

/// `1 / max(‖w_j‖, 1e-12)` of every column of `w` as a 1 × columns row (the clamp of
/// `torch.nn.functional.normalize`, applied to the squared norm as `1e-24`).
pub fn inverse_column_norms(w: &Tensor) -> Result<Tensor, tch::TchError> {
    w.f_square()?.f_sum_dim_intlist([0].as_slice(), true, w.kind())?.f_clamp_min(1e-24)?.f_rsqrt()
}

/// Scales `t` to unit L2 norm along `dim`, as `torch.nn.functional.normalize` (norm clamped at 1e-12).
pub fn l2_normalize(t: &Tensor, dim: i64) -> Result<Tensor, tch::TchError> {
    // `linalg_norm` over one dim is ATen's `linalg_vector_norm`, as F.normalize uses; the legacy
    // `norm.ScalarOpt_dim` kernel is about 10% slower forward + backward on a 512 × 113,180 matrix.
    let norm = t.f_linalg_norm(2, [dim].as_slice(), true, None::<tch::Kind>)?.f_clamp_min(1e-12)?;
    // Times the reciprocal rather than divided by the norm (F.normalize divides): the same value to
    // float rounding, and a multiplication's backward is cheaper than a division's on the large
    // operand (one product instead of a quotient and a second quotient times the output).
    t.f_mul(&norm.f_reciprocal()?)
}

/// How the K similarities of a class are pooled into one class similarity (paper.md §2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CenterPooling {
    /// HardTriple: `S_{i,c} = max_k x_i·w_c^k`.
    Max,
    /// SoftTriple: `S'_{i,c} = Σ_k softmax_k(x_i·w_c^k / γ) · x_i·w_c^k`.
    Soft {
        /// The temperature γ (the softmax multiplies by 1/γ).
        gamma: f64,
    },
}

impl CenterPooling {
    /// Pools N × C × K similarities into N × C class similarities.
    pub fn pool(self, similarities: &Tensor) -> Result<Tensor, LossError> {
        Ok(match self {
            CenterPooling::Max => similarities.f_max_dim(2, false)?.0,
            CenterPooling::Soft { gamma } => {
                // Over an N × K × C copy: ATen's CPU softmax over a short last dimension (K) is about
                // 6× slower, forward + backward, than over the middle one (measured at K = 8, C = 100).
                let kind = similarities.kind();
                let by_centre = similarities.f_transpose(1, 2)?.f_contiguous()?;
                let weights = by_centre.f_div_scalar(gamma)?.f_softmax(1, kind)?;
                weights.f_mul(&by_centre)?.f_sum_dim_intlist([1].as_slice(), false, kind)?
            }
        })
    }
}

/// Mean cross-entropy on logits `λ(S_{i,c} − δ·[c = y_i])` (paper.md §2, shared by Softmax_norm,
/// HardTriple and SoftTriple).
pub fn margin_cross_entropy(class_sim: &Tensor, labels: &Tensor, la: f64, margin: f64) -> Result<Tensor, LossError> {
    let margins = class_sim.f_zeros_like()?.f_scatter_value(1, &labels.f_unsqueeze(1)?, margin)?;
    let logits = class_sim.f_sub(&margins)?.f_mul_scalar(la)?;
    Ok(logits.f_cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, 0.0)?)
}

/// Products between the centres of each class (cosines for unit centres): C × K × K, computed
/// per class (no (C·K)² matrix).
pub fn class_center_cosines(centers: &Tensor, num_classes: i64, per_class: i64) -> Result<Tensor, LossError> {
    let dim = centers.size()[0];
    let blocks = centers.f_view([dim, num_classes, per_class])?.f_permute([1, 2, 0])?; // C × K × dim
    Ok(blocks.f_bmm(&blocks.f_transpose(1, 2)?)?)
}

/// The regularizer from the C × K × K cosines of each class's centres.
fn regularizer_of_cosines(cos: &Tensor, num_classes: i64, per_class: i64) -> Result<Tensor, LossError> {
    let k = per_class;
    let upper = Tensor::f_ones([k, k], (Kind::Bool, cos.device()))?.f_triu(1)?;
    let pairs = cos.f_masked_select(&upper)?;
    let distances = pairs.f_mul_scalar(-2.0)?.f_add_scalar(2.0 + REGULARIZER_EPS)?.f_sqrt()?;
    let denom = (num_classes * k * (k - 1)) as f64;
    Ok(distances.f_sum(distances.kind())?.f_div_scalar(denom)?)
}

/// Effective number of centres of each class: the number of groups left when centres whose cosine
/// exceeds `threshold` are merged (connected components of the "merged" relation).
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveCenters {
    /// Cosine above which two centres count as merged.
    pub threshold: f64,
    /// Effective centres of each class, in class order.
    pub per_class: Vec<u32>,
}

impl EffectiveCenters {
    /// Mean effective centres per class.
    pub fn mean(&self) -> f64 {
        self.per_class.iter().map(|&v| v as f64).sum::<f64>() / self.per_class.len().max(1) as f64
    }
}

/// Measures [`EffectiveCenters`] of a centre variable (stored, not normalised, dim × C·K).
pub fn effective_centers(centers: &Centers, threshold: f64) -> Result<EffectiveCenters, LossError> {
    let (c, k) = (centers.num_classes, centers.per_class);
    let cos = tch::no_grad(|| -> Result<Tensor, LossError> {
        let unit = centers.normalized()?.f_to_kind(Kind::Double)?;
        Ok(class_center_cosines(&unit, c, k)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?)
    })?;
    let flat = Vec::<f64>::try_from(&cos.f_view([-1])?)?;
    let k = k as usize;
    let per_class = flat
        .chunks_exact(k * k)
        .map(|block| {
            let mut parent: Vec<usize> = (0..k).collect();
            fn find(parent: &mut [usize], mut i: usize) -> usize {
                while parent[i] != i {
                    parent[i] = parent[parent[i]];
                    i = parent[i];
                }
                i
            }
            for t in 0..k {
                for s in t + 1..k {
                    if block[t * k + s] > threshold {
                        let (a, b) = (find(&mut parent, t), find(&mut parent, s));
                        parent[a] = b;
                    }
                }
            }
            (0..k).filter(|&i| find(&mut parent, i) == i).count() as u32
        })
        .collect();
    Ok(EffectiveCenters { threshold, per_class })
}
