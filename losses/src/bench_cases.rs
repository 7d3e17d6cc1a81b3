//! The benchmark grid shared by the criterion bench and the PyTorch peer comparison: every loss kind
//! at batch 32 and 128, dim 64 and 512, C ∈ {100, 11,318}, K ∈ {1, 2, 10} where K applies.
use crate::LossConfig;

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
