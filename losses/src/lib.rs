//! Deep metric learning losses on tch tensors (paper.md §2): triplet, ProxyNCA, Softmax_norm,
//! HardTriple and SoftTriple with its centre regularizer, and losses written in PyTorch and
//! exported as TorchScript (plug-ins).
//!
//! A loss is described by a [`LossConfig`] (serde, tagged by `kind`) and built with
//! [`LossConfig::build`] under an `nn::Path`, where its learnable centres live as one variable named
//! `centers`. Every loss L2-normalises the embeddings it is given (paper.md §2: x_i is unit length).
#![warn(missing_docs)]

pub mod bench_cases;
pub mod centers;
pub mod checks;
mod config;
mod error;
mod hard_triple;
mod naming;
mod proxy_nca;
mod soft_triple;
mod softmax_norm;
mod torchscript;
mod triplet;

pub use centers::{effective_centers, Centers, EffectiveCenters, MERGED_CENTER_COSINE};
pub use config::LossConfig;
pub use error::LossError;
pub use hard_triple::{HardTriple, HardTripleConfig};
pub use naming::{check_variants, CHECK_VARIANTS, LOSS_KINDS, PLUGIN_KIND};
pub use proxy_nca::{ProxyNca, ProxyNcaConfig};
pub use soft_triple::{SoftTriple, SoftTripleConfig};
pub use softmax_norm::{SoftmaxNorm, SoftmaxNormConfig};
pub use torchscript::{TorchScriptConfig, TorchScriptLoss, RESERVED_PARAMS};
pub use triplet::{pairwise_distances, Triplet, TripletConfig, TripletMining};

use tch::Tensor;

/// Seeds libtorch's generator and runs `draw` while no other thread of this process can seed or
/// draw through this function. libtorch has one generator per process: two threads that seed it
/// and then initialise parameters (two runs, two tests) would otherwise interleave their draws and
/// each get numbers that depend on timing.
pub fn with_torch_seed<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    static TORCH_GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = TORCH_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    draw()
}

/// A loss's value on one batch, with its parts.
#[derive(Debug)]
pub struct LossOutput {
    /// The objective to minimise (scalar).
    pub loss: Tensor,
    /// The classification (or triplet) term alone (scalar).
    pub classification: Tensor,
    /// The centre regularizer `R/(C·K·(K−1))` before the τ weight, when it takes part (scalar).
    pub regularizer: Option<Tensor>,
    /// Triplet losses: fraction of the mined triplets with non-zero loss (scalar).
    pub active_fraction: Option<Tensor>,
}

impl LossOutput {
    /// An output whose objective is its classification term alone.
    pub fn classification_only(loss: Tensor) -> Self {
        Self { classification: loss.shallow_clone(), loss, regularizer: None, active_fraction: None }
    }
}

/// A metric-learning loss: embeddings and labels in, a scalar objective out.
pub trait MetricLoss: std::fmt::Debug + Send {
    /// The loss on one batch: `embeddings` N × dim (any float kind), `labels` N int64 in 0..C.
    fn forward(&self, embeddings: &tch::Tensor, labels: &tch::Tensor) -> Result<LossOutput, LossError>;

    /// The learnable centres (or proxies), when the loss has any.
    fn centers(&self) -> Option<&Centers>;

    /// Effective centres per class at a merge threshold (see [`effective_centers`]).
    fn effective_centers(&self, threshold: f64) -> Option<Result<EffectiveCenters, LossError>> {
        self.centers().map(|c| effective_centers(c, threshold))
    }
}
