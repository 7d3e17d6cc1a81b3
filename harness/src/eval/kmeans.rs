//! k-means on the device, chunked like the kNN (no N × clusters matrix at once): seeded k-means++
//! (or uniform) initialisation, Lloyd iterations with a fixed budget and tolerance, restarts.
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How the initial centroids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KMeansInit {
    /// k-means++ (Arthur & Vassilvitskii 2007): each next centroid drawn with probability ∝ D².
    #[default]
    #[serde(rename = "kmeans++")]
    KMeansPlusPlus,
    /// Distinct samples drawn uniformly (faiss's default).
    Random,
}

impl std::str::FromStr for KMeansInit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kmeans++" | "k-means++" => Ok(KMeansInit::KMeansPlusPlus),
            "random" => Ok(KMeansInit::Random),
            _ => Err(format!("unknown k-means init `{s}`: expected `kmeans++` or `random`")),
        }
    }
}

/// Settings of k-means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansConfig {
    /// Number of clusters.
    pub clusters: i64,
    /// Independent restarts; restart r is seeded with `seed + r`.
    pub restarts: u32,
    /// Iteration budget of each restart.
    pub max_iter: u32,
    /// Stop when the inertia falls by less than this fraction in an iteration.
    pub tol: f64,
    /// Base seed.
    pub seed: u64,
    /// Initialisation.
    pub init: KMeansInit,
}

/// One restart's outcome.
#[derive(Debug, Clone)]
pub struct KMeansRun {
    /// The seed it used.
    pub seed: u64,
    /// Cluster of every sample.
    pub assignments: Vec<i64>,
    /// Sum of squared distances of samples to their centroids.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: u32,
    /// Whether it stopped on the tolerance (or a fixed point) before the budget ran out.
    pub converged: bool,
}

/// Nearest centroid of rows `start..start+len` of `x` and the squared distance to it, from one
/// matrix product: argmin ‖x − c‖² = argmax (x·c − ‖c‖²/2), so no distance matrix is formed.
fn nearest_centroids(x: &Tensor, xx: &Tensor, ct: &Tensor, half_cc: &Tensor, start: i64, len: i64) -> (Tensor, Tensor) {
    let score = half_cc.addmm(&x.narrow(0, start, len), ct); // len × k: x·c − ‖c‖²/2
    let (best, arg) = score.max_dim(1, false);
    ((xx.narrow(0, start, len) - best * 2.0).clamp_min(0.0), arg)
}

fn row_sq_norms(x: &Tensor) -> Tensor {
    x.square().sum_dim_intlist([1].as_slice(), false, x.kind())
}

/// Initial centroid indices.
fn initial_indices(x: &Tensor, xx: &Tensor, k: i64, init: KMeansInit, rng: &mut SplitMix64) -> Tensor {
    let n = x.size()[0];
    let device = x.device();
    match init {
        KMeansInit::Random => {
            // Partial Fisher–Yates on the host: k distinct indices.
            let mut idx: Vec<i64> = (0..n).collect();
            for i in 0..k as usize {
                let j = i + (rng.uniform() * (n as usize - i) as f64) as usize;
                idx.swap(i, j.min(n as usize - 1));
            }
            Tensor::from_slice(&idx[..k as usize]).to_device(device)
        }
        KMeansInit::KMeansPlusPlus => {
            let draws: Vec<f64> = (0..k).map(|_| rng.uniform()).collect();
            let draws = Tensor::from_slice(&draws).to_device(device).to_kind(Kind::Double);
            let chosen = Tensor::zeros([k], (Kind::Int64, device));
            let first = ((f64::try_from(draws.get(0)).unwrap() * n as f64) as i64).min(n - 1);
            let _ = chosen.get(0).fill_(first);
            let centre = x.narrow(0, first, 1);
            let mut d2 = (xx + row_sq_norms(&centre) - x.matmul(&centre.transpose(0, 1)).squeeze_dim(1) * 2.0)
                .clamp_min(0.0)
                .to_kind(Kind::Double);
            for i in 1..k {
                // Draw index ∝ D² on the device: the first index whose running sum exceeds u·ΣD².
                let cdf = d2.cumsum(0, Kind::Double);
                let total = cdf.narrow(0, n - 1, 1);
                let target = draws.narrow(0, i, 1) * &total;
                let idx = target.searchsorted(&cdf, false, true, "right", None::<Tensor>).clamp_max(n - 1);
                chosen.narrow(0, i, 1).copy_(&idx);
                let centre = x.index_select(0, &idx);
                let d_new = (xx + row_sq_norms(&centre) - x.matmul(&centre.transpose(0, 1)).squeeze_dim(1) * 2.0)
                    .clamp_min(0.0)
                    .to_kind(Kind::Double);
                d2 = d2.minimum(&d_new);
            }
            chosen
        }
    }
}

/// Runs `config.restarts` independent k-means on the rows of `x` (N × d, any device).
pub fn kmeans(x: &Tensor, config: &KMeansConfig, memory_budget: usize) -> Vec<KMeansRun> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let k = config.clusters;
    assert!(k >= 1 && k <= n, "k-means needs 1 <= clusters ({k}) <= samples ({n})");
    let device = x.device();
    let xx = row_sq_norms(x);
    let rows = super::knn::chunk_rows(k, memory_budget).min(n);
    (0..config.restarts)
        .map(|r| {
            let seed = config.seed.wrapping_add(r as u64);
            let mut rng = SplitMix64(seed);
            let mut centroids = x.index_select(0, &initial_indices(x, &xx, k, config.init, &mut rng));
            let mut assign = Tensor::full([n], -1, (Kind::Int64, device));
            let mut prev_inertia = f64::INFINITY;
            let mut iterations = 0;
            let mut converged = false;
            let inertia = loop {
                // Assignment step, chunked over samples.
                let half_cc = (row_sq_norms(&centroids) * -0.5).unsqueeze(0);
                let ct = centroids.transpose(0, 1).contiguous();
                let mut mins = vec![];
                let mut args = vec![];
                let mut start = 0;
                while start < n {
                    let len = rows.min(n - start);
                    let (m, a) = nearest_centroids(x, &xx, &ct, &half_cc, start, len);
                    mins.push(m);
                    args.push(a);
                    start += len;
                }
                let min_d = Tensor::cat(&mins, 0);
                let new_assign = Tensor::cat(&args, 0);
                let inertia = f64::try_from(min_d.sum(Kind::Double)).unwrap();
                let unchanged = new_assign.equal(&assign);
                assign = new_assign;
                if unchanged || (prev_inertia.is_finite() && prev_inertia - inertia <= config.tol * prev_inertia) {
                    converged = true;
                    break inertia;
                }
                if iterations == config.max_iter {
                    break inertia;
                }
                prev_inertia = inertia;
                iterations += 1;
                // Update step: means of the assigned samples.
                let sums = Tensor::zeros([k, d], (x.kind(), device)).index_add(0, &assign, x);
                let counts = Tensor::zeros([k], (Kind::Int64, device)).index_add(
                    0,
                    &assign,
                    &Tensor::ones([n], (Kind::Int64, device)),
                );
                let mut next = sums / counts.clamp_min(1).to_kind(x.kind()).unsqueeze(1);
                // Empty clusters take the samples farthest from their centroids (deterministic).
                let empty = counts.eq(0).nonzero().squeeze_dim(1);
                let n_empty = empty.size()[0];
                if n_empty > 0 {
                    let (_, far) = min_d.topk(n_empty, 0, true, true);
                    next = next.index_copy(0, &empty, &x.index_select(0, &far));
                }
                centroids = next;
            };
            KMeansRun {
                seed,
                assignments: Vec::<i64>::try_from(&assign.to_device(tch::Device::Cpu)).unwrap(),
                inertia,
                iterations,
                converged,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(per: i64, centres: &[[f32; 3]], jitter: f64) -> Tensor {
        let c = Tensor::from_slice(&centres.iter().flatten().copied().collect::<Vec<f32>>()).view([-1, 3]);
        let x = c.repeat_interleave_self_int(per, 0, None);
        &x + Tensor::randn(x.size(), tch::kind::FLOAT_CPU) * jitter
    }

    fn config(k: i64, init: KMeansInit, restarts: u32) -> KMeansConfig {
        KMeansConfig { clusters: k, restarts, max_iter: 50, tol: 1e-6, seed: 11, init }
    }

    #[test]
    fn separated_blobs_are_recovered_by_both_inits_and_restarts_differ_by_seed() {
        tch::manual_seed(0);
        let x = blobs(20, &[[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [5.0, 5.0, 5.0]], 0.1);
        let truth: Vec<i64> = (0..80).map(|i| i / 20).collect();
        for init in [KMeansInit::KMeansPlusPlus, KMeansInit::Random] {
            let runs = kmeans(&x, &config(4, init, 3), 1 << 20);
            assert_eq!(runs.len(), 3);
            assert_eq!(runs.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![11, 12, 13]);
            let best = runs.iter().min_by(|a, b| a.inertia.total_cmp(&b.inertia)).unwrap();
            assert!(best.converged);
            let nmi = crate::eval::nmi::normalized_mutual_info(&truth, &best.assignments);
            assert!((nmi - 1.0).abs() < 1e-12, "{init:?}: NMI {nmi}");
        }
    }

    #[test]
    fn same_seed_same_clustering_and_chunking_does_not_change_it() {
        tch::manual_seed(1);
        let x = Tensor::randn([200, 5], tch::kind::FLOAT_CPU);
        let a = kmeans(&x, &config(7, KMeansInit::KMeansPlusPlus, 1), 1 << 20);
        let b = kmeans(&x, &config(7, KMeansInit::KMeansPlusPlus, 1), 7 * 8 * 13); // 13 rows a chunk
        assert_eq!(a[0].assignments, b[0].assignments);
        assert!((a[0].inertia - b[0].inertia).abs() < 1e-3 * a[0].inertia);
        let c = kmeans(&x, &KMeansConfig { seed: 99, ..config(7, KMeansInit::KMeansPlusPlus, 1) }, 1 << 20);
        assert_ne!(a[0].assignments, c[0].assignments, "a different seed should give a different start");
    }

    #[test]
    fn inertia_is_the_sum_of_squared_distances_to_the_assigned_means() {
        tch::manual_seed(2);
        let x = Tensor::randn([60, 4], tch::kind::DOUBLE_CPU);
        let run = &kmeans(&x, &config(5, KMeansInit::KMeansPlusPlus, 1), 1 << 20)[0];
        let mut total = 0.0;
        for c in 0..5 {
            let members: Vec<i64> = (0..60).filter(|&i| run.assignments[i as usize] == c).collect();
            assert!(!members.is_empty(), "cluster {c} is empty");
            let m = x.index_select(0, &Tensor::from_slice(&members));
            total += f64::try_from(
                (&m - m.mean_dim([0].as_slice(), true, tch::Kind::Double)).square().sum(tch::Kind::Double),
            )
            .unwrap();
        }
        // At convergence the centroids are the means of their members.
        assert!(run.converged);
        assert!((run.inertia - total).abs() < 1e-6 * total, "{} vs {total}", run.inertia);
    }
}
