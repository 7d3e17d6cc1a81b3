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
/// matrix product: argmin ‖x − c‖² = argmax (x·c − ‖c‖²/2), so no distance matrix is formed. The
/// len × k scores go into `scores` (reused across chunks: a fresh allocation per chunk would be
/// page-faulted in each time).
fn nearest_centroids(
    x: &Tensor,
    xx: &Tensor,
    ct: &Tensor,
    half_cc: &Tensor,
    scores: &Tensor,
    start: i64,
    len: i64,
) -> (Tensor, Tensor) {
    let k = ct.size()[1];
    let score = scores.narrow(0, 0, len * k).view([len, k]);
    let _ = half_cc.addmm_out(&score, &x.narrow(0, start, len), ct); // x·c − ‖c‖²/2
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
        KMeansInit::KMeansPlusPlus => kmeans_plus_plus(x, xx, k, rng).0,
    }
}

/// k-means++ seeding: each next centre is drawn with probability ∝ D(x)², D(x) being the distance
/// from x to the nearest centre chosen so far. With the triangle-inequality pruning of Raff (2021,
/// "Exact Acceleration of K-Means++ and K-Means‖"): if the new centre c is at least 2·D(x) from
/// x's nearest centre c_j, then ‖x − c‖ ≥ ‖c − c_j‖ − ‖x − c_j‖ ≥ D(x) and D(x) cannot shrink, so
/// only the other samples get a distance computed. The draws are those of plain k-means++.
/// Returns the chosen indices and how many sample-to-centre distances were computed.
fn kmeans_plus_plus(x: &Tensor, xx: &Tensor, k: i64, rng: &mut SplitMix64) -> (Tensor, i64) {
    let (n, d) = (x.size()[0], x.size()[1]);
    let device = x.device();
    let draws: Vec<f64> = (0..k).map(|_| rng.uniform()).collect();
    let draws = Tensor::from_slice(&draws).to_device(device);
    let chosen = Tensor::zeros([k], (Kind::Int64, device));
    let first = ((f64::try_from(draws.get(0)).unwrap() * n as f64) as i64).min(n - 1);
    let _ = chosen.get(0).fill_(first);
    // Centres chosen so far (rows 0..i) and their squared norms.
    let centres = Tensor::zeros([k, d], (x.kind(), device));
    let centre_sq = Tensor::zeros([k], (x.kind(), device));
    centres.narrow(0, 0, 1).copy_(&x.narrow(0, first, 1));
    centre_sq.narrow(0, 0, 1).copy_(&xx.narrow(0, first, 1));
    let sq_dist = |rows: &Tensor, rows_sq: &Tensor, c: &Tensor, c_sq: &Tensor| {
        (rows_sq + c_sq - rows.matmul(&c.transpose(0, 1)).squeeze_dim(1) * 2.0).clamp_min(0.0)
    };
    let mut d2 = sq_dist(x, xx, &x.narrow(0, first, 1), &xx.narrow(0, first, 1)).to_kind(Kind::Double);
    let mut owner = Tensor::zeros([n], (Kind::Int64, device)); // which chosen centre is nearest
    let mut evaluations = n;
    // Pruning margins: relative on D², plus an absolute term for the rounding of ‖a‖² + ‖b‖² − 2a·b
    // near zero. A sample kept by the margin only costs one extra distance.
    let abs_margin = 4e-5 * f64::try_from(xx.max()).unwrap().max(f64::MIN_POSITIVE);
    // Exponential back-off of the pruning where it keeps failing (the draws stay exact either way).
    let (mut retry_pruning_at, mut backoff) = (0, 1);
    for i in 1..k {
        // Draw index ∝ D² on the device: the first index whose running sum exceeds u·ΣD².
        let cdf = d2.cumsum(0, Kind::Double);
        let target = draws.narrow(0, i, 1) * cdf.narrow(0, n - 1, 1);
        let idx = target.searchsorted(&cdf, false, true, "right", None::<Tensor>).clamp_max(n - 1);
        chosen.narrow(0, i, 1).copy_(&idx);
        let c = x.index_select(0, &idx);
        let c_sq = xx.index_select(0, &idx);
        // One pass over all samples: reads the data once. Used where pruning saves little
        // (high-dimensional, weakly clustered data) and while backing off after such a draw.
        let full_pass = |d2: &mut Tensor, owner: &mut Tensor| {
            let d_new = sq_dist(x, xx, &c, &c_sq).to_kind(Kind::Double);
            let _ = owner.masked_fill_(&d_new.lt_tensor(d2), i);
            *d2 = d2.minimum(&d_new);
        };
        if i < retry_pruning_at {
            centres.narrow(0, i, 1).copy_(&c);
            centre_sq.narrow(0, i, 1).copy_(&c_sq);
            evaluations += n;
            full_pass(&mut d2, &mut owner);
            continue;
        }
        // Squared distances from the new centre to the earlier ones, then each sample's bound.
        let cc = sq_dist(&centres.narrow(0, 0, i), &centre_sq.narrow(0, 0, i), &c, &c_sq).to_kind(Kind::Double);
        centres.narrow(0, i, 1).copy_(&c);
        centre_sq.narrow(0, i, 1).copy_(&c_sq);
        let reach = cc.index_select(0, &owner);
        let candidates = reach.lt_tensor(&(&d2 * (4.0 * (1.0 + 1e-3)) + abs_margin)).nonzero().view([-1]);
        let m = candidates.size()[0];
        if 2 * m > n {
            // Pruning failed: skip its bookkeeping for the next 1, 2, 4, … 16 draws.
            evaluations += n;
            full_pass(&mut d2, &mut owner);
            retry_pruning_at = i + 1 + backoff;
            backoff = (backoff * 2).min(16);
            continue;
        }
        backoff = 1;
        if m == 0 {
            continue;
        }
        evaluations += m;
        let d_new =
            sq_dist(&x.index_select(0, &candidates), &xx.index_select(0, &candidates), &c, &c_sq).to_kind(Kind::Double);
        let d_old = d2.index_select(0, &candidates);
        let closer = d_new.lt_tensor(&d_old);
        let new_owner = owner.index_select(0, &candidates).masked_fill(&closer, i);
        let _ = d2.index_copy_(0, &candidates, &d_old.minimum(&d_new));
        let _ = owner.index_copy_(0, &candidates, &new_owner);
    }
    tracing::debug!(samples = n, clusters = k, evaluations, "k-means++ seeding: {evaluations} of {} distances", n * k);
    (chosen, evaluations)
}

/// Runs `config.restarts` independent k-means on the rows of `x` (N × d, any device).
pub fn kmeans(x: &Tensor, config: &KMeansConfig, memory_budget: usize) -> Vec<KMeansRun> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let k = config.clusters;
    assert!(k >= 1 && k <= n, "k-means needs 1 <= clusters ({k}) <= samples ({n})");
    let device = x.device();
    let xx = row_sq_norms(x);
    let rows = super::knn::chunk_rows(k, memory_budget).min(n);
    let scores = Tensor::empty([rows * k], (x.kind(), device));
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
                    let (m, a) = nearest_centroids(x, &xx, &ct, &half_cc, &scores, start, len);
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
        let centres = [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [5.0, 5.0, 5.0]];
        let x = crate::rng::with_torch_seed(0, || blobs(20, &centres, 0.1));
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

    /// Plain k-means++ in float64 on the host, a full pass per draw: the reference for the pruning.
    fn plain_kmeans_plus_plus(x: &Tensor, k: i64, seed: u64) -> Vec<i64> {
        let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
        let flat = Vec::<f64>::try_from(x.to_kind(tch::Kind::Double).view([-1])).unwrap();
        let row = |i: usize| &flat[i * d..(i + 1) * d];
        let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
        let mut rng = SplitMix64(seed);
        let draws: Vec<f64> = (0..k).map(|_| rng.uniform()).collect();
        let mut chosen = vec![((draws[0] * n as f64) as usize).min(n - 1)];
        let mut d2: Vec<f64> = (0..n).map(|j| dist(row(j), row(chosen[0]))).collect();
        for u in &draws[1..] {
            let total: f64 = d2.iter().sum();
            let mut acc = 0.0;
            let next = d2.iter().position(|v| {
                acc += v;
                acc > u * total
            });
            let c = next.unwrap_or(n - 1);
            chosen.push(c);
            for (j, d) in d2.iter_mut().enumerate() {
                *d = d.min(dist(row(j), row(c)));
            }
        }
        chosen.into_iter().map(|c| c as i64).collect()
    }

    #[test]
    fn pruned_kmeans_plus_plus_draws_what_plain_kmeans_plus_plus_draws_with_fewer_distances() {
        // Clustered data (where the pruning pays) and structureless Gaussian data.
        let centres: Vec<[f32; 3]> =
            (0..12).map(|c| [(c % 3) as f32 * 4.0, (c / 3) as f32 * 4.0, (c % 2) as f32]).collect();
        let (clustered, gaussian) = crate::rng::with_torch_seed(6, || {
            (blobs(40, &centres, 0.3), Tensor::randn([300, 6], tch::kind::FLOAT_CPU))
        });
        // Share of the N·k distances of plain k-means++ that the pruning may compute at most.
        for (name, x, k, share) in [("clustered", &clustered, 24, 0.5), ("gaussian", &gaussian, 40, 0.99)] {
            let xx = row_sq_norms(x);
            for seed in [1, 2, 3] {
                let (chosen, evaluations) = kmeans_plus_plus(x, &xx, k, &mut SplitMix64(seed));
                let chosen = Vec::<i64>::try_from(&chosen).unwrap();
                assert_eq!(chosen, plain_kmeans_plus_plus(x, k, seed), "{name}, seed {seed}");
                let full = x.size()[0] * k;
                assert!(
                    (evaluations as f64) < share * full as f64,
                    "{name}, seed {seed}: {evaluations} of {full} distances computed"
                );
            }
        }
    }

    #[test]
    fn same_seed_same_clustering_and_chunking_does_not_change_it() {
        let x = crate::rng::with_torch_seed(1, || Tensor::randn([200, 5], tch::kind::FLOAT_CPU));
        let a = kmeans(&x, &config(7, KMeansInit::KMeansPlusPlus, 1), 1 << 20);
        let b = kmeans(&x, &config(7, KMeansInit::KMeansPlusPlus, 1), 7 * 8 * 13); // 13 rows a chunk
        assert_eq!(a[0].assignments, b[0].assignments);
        assert!((a[0].inertia - b[0].inertia).abs() < 1e-3 * a[0].inertia);
        let c = kmeans(&x, &KMeansConfig { seed: 99, ..config(7, KMeansInit::KMeansPlusPlus, 1) }, 1 << 20);
        assert_ne!(a[0].assignments, c[0].assignments, "a different seed should give a different start");
    }

    #[test]
    fn inertia_is_the_sum_of_squared_distances_to_the_assigned_means() {
        let x = crate::rng::with_torch_seed(2, || Tensor::randn([60, 4], tch::kind::DOUBLE_CPU));
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
