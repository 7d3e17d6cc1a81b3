//! The benchmark grid shared by the criterion bench and the PyTorch peer comparison: every loss kind
//! at batch 32 and 128, dim 64 and 512, C ∈ {100, 11,318}, K ∈ {1, 2, 10} where K applies.
use crate::{LossConfig, MetricLoss};
use tch::{nn, Device, Kind, Tensor};

/// One benchmark case: a loss config and the sizes it runs at.
#[derive(Debug, Clone)]
pub struct BenchCase {
    /// The loss, K already applied.
    pub config: LossConfig,
    /// Batch size N.
    pub batch: i64,
    /// Embedding size.
    pub dim: i64,
    /// Number of classes C.
    pub num_classes: i64,
}

impl BenchCase {
    /// A readable id: `soft_triple/K10/C11318/d512/b128`.
    pub fn id(&self) -> String {
        let k = self.config.centers_per_class().map_or(String::new(), |k| format!("K{k}/"));
        format!("{}/{k}C{}/d{}/b{}", self.config.kind(), self.num_classes, self.dim, self.batch)
    }
}

/// Every case of the grid. Triplet has no classes or centres, so it runs once per (batch, dim).
pub fn bench_cases() -> Vec<BenchCase> {
    let kinds =
        ["{kind: triplet}", "{kind: proxy_nca}", "{kind: softmax_norm}", "{kind: hard_triple}", "{kind: soft_triple}"];
    let mut cases = vec![];
    for kind in kinds {
        let base: LossConfig = serde_yaml::from_str(kind).expect("built-in config");
        for batch in [32, 128] {
            for dim in [64, 512] {
                let classes: &[i64] = if base.has_centers() { &[100, 11_318] } else { &[100] };
                for &num_classes in classes {
                    let ks: &[i64] = if base.centers_per_class().is_some() { &[1, 2, 10] } else { &[1] };
                    for &k in ks {
                        let mut config = base.clone();
                        config.set_centers_per_class(k);
                        cases.push(BenchCase { config, batch, dim, num_classes });
                    }
                }
            }
        }
    }
    cases
}

/// A case made ready to time: the built loss, a random batch with class-balanced labels (4 per
/// class, so every triplet variant has triplets), and the inputs the gradients are taken of.
pub struct PreparedCase {
    /// Holds the loss's centres.
    pub vs: nn::VarStore,
    /// The loss.
    pub loss: Box<dyn MetricLoss>,
    /// Embeddings (batch × dim).
    pub x: Tensor,
    /// Labels.
    pub y: Tensor,
    /// Centres and embeddings: what one step differentiates.
    pub inputs: Vec<Tensor>,
}

impl BenchCase {
    /// Builds the loss and a batch on the CPU.
    pub fn prepare(&self) -> PreparedCase {
        let vs = nn::VarStore::new(Device::Cpu);
        let loss = self.config.build(&vs.root(), self.num_classes, self.dim).expect("build");
        let x = Tensor::randn([self.batch, self.dim], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = Tensor::arange(self.batch, (Kind::Int64, Device::Cpu))
            .divide_scalar_mode(4, "floor")
            .remainder(self.num_classes);
        let mut inputs = vs.trainable_variables();
        inputs.push(x.shallow_clone());
        PreparedCase { vs, loss, x, y, inputs }
    }
}

impl PreparedCase {
    /// One forward + backward; gradients are returned (not accumulated into `.grad`) and dropped.
    pub fn step(&self) {
        let out = self.loss.forward(&self.x, &self.y).expect("forward");
        let grads = Tensor::run_backward(&[&out.loss], &self.inputs, false, false);
        assert_eq!(grads.len(), self.inputs.len());
    }
}
