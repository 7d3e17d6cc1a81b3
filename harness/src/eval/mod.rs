//! Evaluation (paper.md §5): Recall@K, R-Precision and MAP@R from an exact chunked kNN, and NMI from
//! seeded k-means with restarts, all on the embeddings' device.
pub mod kmeans;
pub mod knn;
pub mod nmi;
pub mod recall;

use kmeans::{KMeansConfig, KMeansInit};
use recall::RetrievalMetrics;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use thiserror::Error;

/// Why a set of embeddings cannot be evaluated.
#[derive(Debug, Error)]
pub enum EvalError {
    /// Inputs of the wrong shape, dtype or content.
    #[error("{0}")]
    BadInput(String),
}

/// What to compute and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The K of Recall@K (paper: 1, 2, 4, 8; SOP: 1, 10, 100).
    pub recall_at: Vec<i64>,
    /// Whether to compute NMI (k-means with as many clusters as classes).
    pub nmi: bool,
    /// k-means restarts; the headline NMI is that of the restart with the lowest inertia.
    pub kmeans_restarts: u32,
    /// k-means iteration budget per restart.
    pub kmeans_max_iter: u32,
    /// k-means relative-inertia tolerance.
    pub kmeans_tol: f64,
    /// k-means initialisation.
    pub kmeans_init: KMeansInit,
    /// Seed of the first restart.
    pub seed: u64,
    /// Working memory for one chunk of the kNN or k-means, in bytes.
    pub memory_budget: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            recall_at: vec![1, 2, 4, 8],
            nmi: true,
            kmeans_restarts: 3,
            kmeans_max_iter: 50,
            kmeans_tol: 1e-4,
            kmeans_init: KMeansInit::KMeansPlusPlus,
            seed: 0,
            memory_budget: knn::DEFAULT_MEMORY_BUDGET,
        }
    }
}

/// One k-means restart's clustering and its NMI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartNmi {
    /// Seed of the restart.
    pub seed: u64,
    /// NMI of its clustering against the labels.
    pub nmi: f64,
    /// Its k-means objective.
    pub inertia: f64,
    /// Lloyd iterations it ran.
    pub iterations: u32,
    /// Whether it converged inside the budget.
    pub converged: bool,
}

/// NMI over the restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NmiReport {
    /// The headline NMI: the restart with the lowest inertia.
    pub nmi: f64,
    /// Index into `restarts` of the headline.
    pub headline_restart: usize,
    /// Mean NMI over restarts.
    pub mean: f64,
    /// Sample standard deviation of NMI over restarts (0 for one restart).
    pub std: f64,
    /// Initialisation used.
    pub init: KMeansInit,
    /// Every restart.
    pub restarts: Vec<RestartNmi>,
}

/// Everything `evaluate` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of samples.
    pub samples: i64,
    /// Embedding size.
    pub dim: i64,
    /// Number of classes.
    pub classes: i64,
    /// Recall@K, R-Precision, MAP@R.
    pub retrieval: RetrievalMetrics,
    /// NMI, when asked for.
    pub nmi: Option<NmiReport>,
}

/// Checks embeddings (N × d float, finite) and labels (N int64, at least two classes) for `config`.
pub fn check_inputs(embeddings: &Tensor, labels: &Tensor, config: &EvalConfig) -> Result<i64, EvalError> {
    let bad = |m: String| Err(EvalError::BadInput(m));
    let size = embeddings.size();
    if size.len() != 2 || size[0] < 2 || size[1] < 1 {
        return bad(format!("embeddings must be an N × d matrix with N >= 2, got shape {size:?}"));
    }
    if !matches!(embeddings.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) {
        return bad(format!("embeddings must be floating point, got {:?}", embeddings.kind()));
    }
    if labels.size() != [size[0]] {
        return bad(format!(
            "labels must be a vector of {} entries (one per embedding row), got shape {:?}",
            size[0],
            labels.size()
        ));
    }
    if labels.kind() != Kind::Int64 {
        return bad(format!("labels must be int64, got {:?}", labels.kind()));
    }
    let finite = embeddings.isfinite().all();
    if !bool::try_from(finite).unwrap_or(false) {
        let rows = embeddings.isfinite().logical_not().any_dim(1, false).nonzero().view([-1]);
        let first = i64::try_from(rows.get(0)).unwrap_or(-1);
        return bad(format!(
            "embeddings hold NaN or infinite values in {} row(s) (first: row {first})",
            rows.size()[0]
        ));
    }
    let zero = embeddings.eq(0).all_dim(1, false).nonzero().view([-1]);
    if zero.size()[0] > 0 {
        let first = i64::try_from(zero.get(0)).unwrap_or(-1);
        return bad(format!(
            "{} embedding row(s) are all zero (first: row {first}): a zero vector has no direction to compare",
            zero.size()[0]
        ));
    }
    let classes = labels.unique_dim(0, false, false, false).0.size()[0];
    if classes < 2 {
        return bad(format!("labels must name at least two classes, found {classes}"));
    }
    if classes == size[0] {
        return bad(format!(
            "every one of the {} labels is unique: no query has another sample of its class, so no retrieval metric is defined",
            size[0]
        ));
    }
    if config.recall_at.is_empty() || config.recall_at.iter().any(|&k| k < 1 || k >= size[0]) {
        return bad(format!("every Recall@K needs 1 <= K < N = {}, got {:?}", size[0], config.recall_at));
    }
    if config.nmi && config.kmeans_restarts == 0 {
        return bad("NMI needs at least one k-means restart".into());
    }
    Ok(classes)
}

/// Rows scaled to unit L2 norm (float32). A row whose squared norm overflows or underflows float32
/// (entries near 1e20 or 1e-20 and beyond) is first divided by its largest |entry|, so its
/// direction survives; every other row is normalised exactly as the losses do.
pub fn unit_rows(x: &Tensor) -> Tensor {
    let norm = x.linalg_norm(2, [1].as_slice(), true, None::<Kind>);
    let out_of_range = norm.isfinite().logical_not().logical_or(&norm.lt(1e-18));
    let plain = losses::centers::l2_normalize(x, 1).expect("a 2-D float tensor normalises");
    if !bool::try_from(out_of_range.any()).unwrap_or(false) {
        return plain;
    }
    let rescaled = x / x.abs().amax([1].as_slice(), true);
    let safe = losses::centers::l2_normalize(&rescaled, 1).expect("a 2-D float tensor normalises");
    safe.where_self(&out_of_range, &plain)
}

/// Evaluates `embeddings` (N × d) against `labels` (N) on the embeddings' device.
pub fn evaluate(embeddings: &Tensor, labels: &Tensor, config: &EvalConfig) -> Result<EvalReport, EvalError> {
    let classes = check_inputs(embeddings, labels, config)?;
    tch::no_grad(|| {
        let (n, dim) = (embeddings.size()[0], embeddings.size()[1]);
        let unit = unit_rows(&embeddings.to_kind(Kind::Float));
        let labels = labels.to_device(unit.device());
        let max_k = *config.recall_at.iter().max().unwrap();
        let depth = max_k.max(recall::max_same_class_others(&labels)).min(n - 1);
        let (neighbours, _) = knn::nearest_neighbours(&unit, depth, config.memory_budget);
        let retrieval = recall::retrieval_metrics(&neighbours, &labels, &config.recall_at);
        let nmi = config.nmi.then(|| nmi_report(&unit, &labels, classes, config));
        Ok(EvalReport { samples: n, dim, classes, retrieval, nmi })
    })
}

/// MLRC's concatenated evaluation of several models of the same test items (*A Metric Learning
/// Reality Check*; powerful-benchmarker's `MetaConcatenateEmbeddings`): each model's embeddings
/// L2-normalised, concatenated along the embedding axis, and evaluated as one embedding. Every
/// part must hold the same items with the same labels, in the same order.
pub fn evaluate_concatenated(parts: &[(Tensor, Tensor)], config: &EvalConfig) -> Result<EvalReport, EvalError> {
    let Some((_, labels)) = parts.first() else {
        return Err(EvalError::BadInput("the concatenated evaluation needs at least one model's embeddings".into()));
    };
    for (i, (e, l)) in parts.iter().enumerate() {
        if e.dim() != 2 || l.size() != labels.size() || !l.equal(labels) {
            return Err(EvalError::BadInput(format!(
                "part {i} of the concatenated evaluation does not hold the same test items with the same labels as part 0 ({:?} embeddings, {:?} labels against {:?})",
                e.size(),
                l.size(),
                labels.size()
            )));
        }
    }
    let unit: Vec<Tensor> = parts.iter().map(|(e, _)| unit_rows(&e.to_kind(Kind::Float))).collect();
    evaluate(&Tensor::cat(&unit, 1), labels, config)
}

fn nmi_report(unit: &Tensor, labels: &Tensor, classes: i64, config: &EvalConfig) -> NmiReport {
    let km = KMeansConfig {
        clusters: classes,
        restarts: config.kmeans_restarts,
        max_iter: config.kmeans_max_iter,
        tol: config.kmeans_tol,
        seed: config.seed,
        init: config.kmeans_init,
    };
    let truth = Vec::<i64>::try_from(&labels.to_device(tch::Device::Cpu)).unwrap();
    let restarts: Vec<RestartNmi> = kmeans::kmeans(unit, &km, config.memory_budget)
        .into_iter()
        .map(|r| RestartNmi {
            seed: r.seed,
            nmi: nmi::normalized_mutual_info(&truth, &r.assignments),
            inertia: r.inertia,
            iterations: r.iterations,
            converged: r.converged,
        })
        .collect();
    let headline_restart =
        restarts.iter().enumerate().min_by(|a, b| a.1.inertia.total_cmp(&b.1.inertia)).map(|(i, _)| i).unwrap();
    let values: Vec<f64> = restarts.iter().map(|r| r.nmi).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    NmiReport { nmi: restarts[headline_restart].nmi, headline_restart, mean, std, init: config.kmeans_init, restarts }
}

impl EvalReport {
    /// A Markdown table of the headline metrics (percent), then the NMI restarts.
    pub fn to_markdown(&self) -> String {
        let mut head = vec![];
        let mut vals = vec![];
        for (k, r) in &self.retrieval.recall_at_k {
            head.push(format!("R@{k}"));
            vals.push(format!("{:.2}", 100.0 * r));
        }
        head.extend(["R-Precision".to_string(), "MAP@R".to_string()]);
        vals.extend([
            format!("{:.2}", 100.0 * self.retrieval.r_precision),
            format!("{:.2}", 100.0 * self.retrieval.map_at_r),
        ]);
        if let Some(nmi) = &self.nmi {
            head.push("NMI".into());
            vals.push(format!("{:.2}", 100.0 * nmi.nmi));
        }
        let mut s = format!("{} samples, {} classes, dim {}; metrics in %", self.samples, self.classes, self.dim);
        if self.retrieval.lone_queries > 0 {
            s.push_str(&format!(
                "; {} lone queries (no other sample of their class) left out",
                self.retrieval.lone_queries
            ));
        }
        s.push_str("\n\n");
        s.push_str(&format!("| {} |\n|{}\n| {} |\n", head.join(" | "), "---|".repeat(head.len()), vals.join(" | ")));
        if let Some(nmi) = &self.nmi {
            s.push_str(&format!(
                "\nNMI over {} k-means restarts ({:?} init): mean {:.2}, std {:.2}; headline = restart {} (lowest inertia)\n\n",
                nmi.restarts.len(),
                nmi.init,
                100.0 * nmi.mean,
                100.0 * nmi.std,
                nmi.headline_restart
            ));
            s.push_str("| restart | seed | NMI | inertia | iterations | converged |\n|---|---|---|---|---|---|\n");
            for (i, r) in nmi.restarts.iter().enumerate() {
                s.push_str(&format!(
                    "| {i} | {} | {:.2} | {:.4} | {} | {} |\n",
                    r.seed,
                    100.0 * r.nmi,
                    r.inertia,
                    r.iterations,
                    if r.converged { "yes" } else { "no" }
                ));
            }
        }
        s
    }
}
