//! Evaluation as a whole: against brute-force references, scikit-learn's NMI, invariances, and
//! the `harness eval` command on .npy files.
use harness::eval::{evaluate, nmi::normalized_mutual_info, EvalConfig};
use tch::{Kind, Tensor};

fn unit(x: &Tensor) -> Tensor {
    x / x.linalg_norm(2, [1].as_slice(), true, None::<Kind>)
}

/// Dense reference: full similarity matrix, own index masked, stable order, metrics by loops.
fn brute_force(x: &Tensor, labels: &[i64], ks: &[i64]) -> (Vec<f64>, f64, f64) {
    let n = labels.len();
    let u = unit(x).to_kind(Kind::Double);
    let sim: Vec<f64> = Vec::try_from(u.matmul(&u.transpose(0, 1)).view([-1])).unwrap();
    let (mut recall, mut rp, mut map, mut counted) = (vec![0.0; ks.len()], 0.0, 0.0, 0.0);
    for q in 0..n {
        let r = labels.iter().enumerate().filter(|&(j, &l)| j != q && l == labels[q]).count();
        if r == 0 {
            continue;
        }
        counted += 1.0;
        let mut order: Vec<usize> = (0..n).filter(|&j| j != q).collect();
        order.sort_by(|&a, &b| sim[q * n + b].partial_cmp(&sim[q * n + a]).unwrap().then(a.cmp(&b)));
        let rel: Vec<bool> = order.iter().map(|&j| labels[j] == labels[q]).collect();
        for (i, &k) in ks.iter().enumerate() {
            recall[i] += rel[..k as usize].iter().any(|&b| b) as u8 as f64;
        }
        rp += rel[..r].iter().filter(|&&b| b).count() as f64 / r as f64;
        let mut hits = 0.0;
        let mut ap = 0.0;
        for (i, &b) in rel[..r].iter().enumerate() {
            if b {
                hits += 1.0;
                ap += hits / (i + 1) as f64;
            }
        }
        map += ap / r as f64;
    }
    (recall.iter().map(|v| v / counted).collect(), rp / counted, map / counted)
}

fn no_nmi() -> EvalConfig {
    EvalConfig { nmi: false, recall_at: vec![1, 2, 4, 8], ..Default::default() }
}

#[test]
fn retrieval_metrics_match_a_dense_brute_force_reference_on_random_cases() {
    for (seed, n, d, classes) in [(1, 60, 4, 7), (2, 200, 16, 30), (3, 333, 8, 50)] {
        let (x, labels) = harness::rng::with_torch_seed(seed, || {
            (
                Tensor::randn([n, d], tch::kind::FLOAT_CPU),
                Tensor::randint(classes, [n], (Kind::Int64, tch::Device::Cpu)),
            )
        });
        let l: Vec<i64> = Vec::try_from(&labels).unwrap();
        let mut cfg = no_nmi();
        cfg.memory_budget = 8 * n as usize * 9; // 9 query rows a chunk: many chunks
        let report = evaluate(&x, &labels, &cfg).unwrap();
        let (recall, rp, map) = brute_force(&x, &l, &cfg.recall_at);
        for ((k, ours), theirs) in report.retrieval.recall_at_k.iter().zip(&recall) {
            assert!((ours - theirs).abs() < 1e-12, "seed {seed}: R@{k} {ours} vs {theirs}");
        }
        assert!((report.retrieval.r_precision - rp).abs() < 1e-12, "seed {seed}: RP");
        assert!((report.retrieval.map_at_r - map).abs() < 1e-12, "seed {seed}: MAP@R");
    }
}

#[test]
fn a_duplicate_embedding_counts_as_a_neighbour_and_the_query_itself_never_does() {
    // Sample 0 and 1 are identical but of different classes; 2 is class 0 and a little away.
    // Dropping "the first neighbour" instead of the own index would drop 1 (or 0) and score R@1 = 1.
    let x = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.9, 0.3, -1.0, 0.1, -1.0, 0.0]).view([5, 2]);
    let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 2]);
    let r = evaluate(&x, &labels, &EvalConfig { recall_at: vec![1, 2], ..no_nmi() }).unwrap();
    // q0 → 1 (dup, class 1): miss at 1, hit at 2 (sample 2). q1 → 0 (class 0): miss; then 2: miss → R@2 miss.
    // q2 → 0 (tie 0/1 broken to lower index 0, class 0): hit. q3 → 4 (class 2): miss; then 0/1 tie → 0: miss.
    // q4 is lone (class 2 has one sample).
    assert_eq!(r.retrieval.lone_queries, 1);
    assert!((r.retrieval.recall_at_k[0].1 - 0.25).abs() < 1e-12, "{:?}", r.retrieval);
    assert!((r.retrieval.recall_at_k[1].1 - 0.5).abs() < 1e-12, "{:?}", r.retrieval);
}

#[test]
fn metrics_are_invariant_to_scaling_embeddings_and_to_permuting_samples() {
    let (x, labels, scales, perm) = harness::rng::with_torch_seed(9, || {
        let x = Tensor::randn([150, 6], tch::kind::FLOAT_CPU);
        let labels = Tensor::randint(12, [150], (Kind::Int64, tch::Device::Cpu));
        let scales = Tensor::rand([150, 1], tch::kind::FLOAT_CPU) * 10.0 + 0.1;
        (x, labels, scales, Tensor::randperm(150, (Kind::Int64, tch::Device::Cpu)))
    });
    let cfg = EvalConfig { recall_at: vec![1, 5], kmeans_restarts: 2, ..Default::default() };
    let base = evaluate(&x, &labels, &cfg).unwrap();
    let scaled = evaluate(&(&x * scales), &labels, &cfg).unwrap();
    assert_eq!(base.retrieval, scaled.retrieval);
    let nmi_a = base.nmi.as_ref().unwrap().nmi;
    let nmi_b = scaled.nmi.as_ref().unwrap().nmi;
    assert!((nmi_a - nmi_b).abs() < 1e-9, "NMI moved under scaling: {nmi_a} vs {nmi_b}");
    let permuted = evaluate(&x.index_select(0, &perm), &labels.index_select(0, &perm), &cfg).unwrap();
    for (a, b) in base.retrieval.recall_at_k.iter().zip(&permuted.retrieval.recall_at_k) {
        assert!((a.1 - b.1).abs() < 1e-12);
    }
    assert!((base.retrieval.map_at_r - permuted.retrieval.map_at_r).abs() < 1e-12);
}

#[test]
fn nmi_matches_scikit_learn_on_committed_fixtures() {
    #[derive(serde::Deserialize)]
    struct Case {
        labels: Vec<i64>,
        clusters: Vec<i64>,
        nmi: f64,
        nmi_geometric: f64,
    }
    #[derive(serde::Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nmi_sklearn.json")).unwrap();
    let f: Fixture = serde_json::from_str(&text).unwrap();
    assert!(f.cases.len() >= 6);
    for (i, c) in f.cases.iter().enumerate() {
        let ours = normalized_mutual_info(&c.labels, &c.clusters);
        assert!((ours - c.nmi).abs() < 1e-10, "case {i}: {ours} vs scikit-learn {}", c.nmi);
        if (c.nmi - c.nmi_geometric).abs() > 1e-6 {
            assert!((ours - c.nmi_geometric).abs() > 1e-7, "case {i}: matches the geometric normaliser");
        }
    }
}

#[test]
fn well_separated_classes_score_perfectly_and_restarts_are_reported() {
    let classes = 6;
    let labels = Tensor::arange(classes, (Kind::Int64, tch::Device::Cpu)).repeat_interleave_self_int(10, 0, None);
    let x = harness::rng::with_torch_seed(4, || {
        let centres = Tensor::randn([classes, 16], tch::kind::FLOAT_CPU) * 10.0;
        centres.index_select(0, &labels) + Tensor::randn([60, 16], tch::kind::FLOAT_CPU) * 0.05
    });
    let r = evaluate(&x, &labels, &EvalConfig { kmeans_restarts: 4, ..Default::default() }).unwrap();
    assert!(r.retrieval.recall_at_k.iter().all(|(_, v)| *v == 1.0));
    assert_eq!(r.retrieval.map_at_r, 1.0);
    let nmi = r.nmi.unwrap();
    assert_eq!(nmi.restarts.len(), 4);
    let best = nmi.restarts.iter().map(|r| r.inertia).fold(f64::INFINITY, f64::min);
    assert_eq!(nmi.restarts[nmi.headline_restart].inertia, best);
    assert!((nmi.nmi - 1.0).abs() < 1e-12, "{nmi:?}");
}

#[test]
fn bad_inputs_are_reported_clearly() {
    let x = Tensor::randn([4, 3], tch::kind::FLOAT_CPU);
    let cfg = no_nmi();
    let msg = |x: &Tensor, l: &Tensor, c: &EvalConfig| evaluate(x, l, c).unwrap_err().to_string();
    assert!(msg(&x, &Tensor::from_slice(&[0i64, 0, 0, 0]), &EvalConfig { recall_at: vec![1], ..cfg.clone() })
        .contains("at least two classes"));
    assert!(msg(&x, &Tensor::from_slice(&[0i64, 1, 0]), &cfg).contains("one per embedding row"));
    assert!(msg(&x, &Tensor::from_slice(&[0i32, 1, 0, 1]), &cfg).contains("int64"));
    let nan = x.copy();
    let _ = nan.get(2).get(1).fill_(f64::NAN);
    assert!(msg(&nan, &Tensor::from_slice(&[0i64, 1, 0, 1]), &cfg).contains("row 2"));
    assert!(msg(&x, &Tensor::from_slice(&[0i64, 1, 0, 1]), &EvalConfig { recall_at: vec![4], ..cfg }).contains("K < N"));
}

#[test]
fn huge_and_tiny_embeddings_score_like_ordinary_ones_and_zero_rows_are_refused() {
    let labels = tch::Tensor::arange(60, (tch::Kind::Int64, tch::Device::Cpu)).remainder(6);
    let x = harness::rng::with_torch_seed(3, || {
        let means = tch::Tensor::randn([6, 8], tch::kind::FLOAT_CPU) * 2.0;
        means.index_select(0, &labels) + tch::Tensor::randn([60, 8], tch::kind::FLOAT_CPU)
    });
    let config = EvalConfig { recall_at: vec![1, 2, 4], kmeans_restarts: 1, ..EvalConfig::default() };
    let base = evaluate(&x, &labels, &config).unwrap();
    // float32 squares of 1e20 overflow and of 1e-30 underflow: before, both gave chance-level scores.
    for scale in [1e20, 1e-30] {
        let r = evaluate(&(&x * scale), &labels, &config).unwrap();
        assert_eq!(r.retrieval.recall_at_k, base.retrieval.recall_at_k, "scale {scale}");
        assert!((r.retrieval.map_at_r - base.retrieval.map_at_r).abs() < 1e-9, "scale {scale}");
        assert!((r.nmi.unwrap().nmi - base.nmi.as_ref().unwrap().nmi).abs() < 1e-6, "scale {scale}");
    }
    let zero = x.copy();
    let _ = zero.get(7).fill_(0.0);
    let _ = zero.get(9).fill_(0.0);
    let e = evaluate(&zero, &labels, &config).unwrap_err().to_string();
    assert!(e.contains("2 embedding row(s) are all zero (first: row 7)"), "{e}");
}

#[test]
fn the_concatenated_evaluation_normalises_each_model_before_joining_them() {
    // Two "models" of the same 120 items: rows of very different norms within each, so joining
    // them unnormalised would let the longest rows decide the neighbours.
    let (n, classes) = (120, 12);
    let (a, b, labels) = harness::rng::with_torch_seed(7, || {
        let labels = Tensor::randint(classes, [n], (Kind::Int64, tch::Device::Cpu));
        let centres = Tensor::randn([classes, 6], tch::kind::FLOAT_CPU);
        let signal = centres.index_select(0, &labels) + 0.8 * Tensor::randn([n, 6], tch::kind::FLOAT_CPU);
        let scale = |x: Tensor| x * (Tensor::rand([n, 1], tch::kind::FLOAT_CPU) * 8.0 - 4.0).exp();
        (scale(signal), scale(Tensor::randn([n, 10], tch::kind::FLOAT_CPU)), labels)
    });
    let l: Vec<i64> = Vec::try_from(&labels).unwrap();
    let cfg = no_nmi();
    let report = harness::eval::evaluate_concatenated(
        &[(a.shallow_clone(), labels.shallow_clone()), (b.shallow_clone(), labels.shallow_clone())],
        &cfg,
    )
    .unwrap();
    assert_eq!(report.dim, 16);
    let (recall, rp, map) = brute_force(&Tensor::cat(&[unit(&a), unit(&b)], 1), &l, &cfg.recall_at);
    let (raw, ..) = brute_force(&Tensor::cat(&[&a, &b], 1), &l, &cfg.recall_at);
    assert!((raw[0] - recall[0]).abs() > 0.02, "the case cannot tell normalised from raw joining");
    for ((k, ours), theirs) in report.retrieval.recall_at_k.iter().zip(&recall) {
        assert!((ours - theirs).abs() < 1e-12, "R@{k} {ours} vs {theirs}");
    }
    assert!((report.retrieval.r_precision - rp).abs() < 1e-12 && (report.retrieval.map_at_r - map).abs() < 1e-12);

    // Parts that do not hold the same items in the same order are refused.
    let shuffled = labels.flip([0]);
    let e = harness::eval::evaluate_concatenated(&[(a, labels), (b, shuffled)], &cfg).unwrap_err().to_string();
    assert!(e.contains("part 1") && e.contains("same labels"), "{e}");
}
