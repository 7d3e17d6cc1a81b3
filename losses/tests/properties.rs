//! Properties the paper states or implies (paper.md §2), each checked on random inputs.
mod common;

use common::*;
use losses::{LossConfig, LossError, SoftTripleConfig};
use tch::{Kind, Tensor};

fn yaml(s: &str) -> LossConfig {
    serde_yaml::from_str(s).unwrap()
}

#[test]
fn soft_triple_with_one_centre_equals_softmax_norm() {
    losses::with_torch_seed(1, || {
        let (dim, classes) = (7, 5);
        let x = randn(&[12, dim]).set_requires_grad(true);
        let y = labels(&[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
        let w = randn(&[dim, classes]);
        let soft = build(&yaml("{kind: soft_triple, centers_per_class: 1}"), classes, dim);
        let norm = build(&yaml("{kind: softmax_norm}"), classes, dim);
        soft.set_centers(&w);
        norm.set_centers(&w);
        let a = soft.loss.forward(&x, &y).unwrap();
        let b = norm.loss.forward(&x, &y).unwrap();
        assert!(a.regularizer.is_none(), "K = 1 must have no regularizer");
        let (va, vb) = (f64::try_from(&a.loss).unwrap(), f64::try_from(&b.loss).unwrap());
        assert!((va - vb).abs() < 1e-12, "{va} vs {vb}");
        a.loss.backward();
        let ga = x.grad().copy();
        let _ = x.grad().zero_();
        b.loss.backward();
        assert!(max_abs_diff(&ga, &x.grad()) < 1e-12);
        assert!(max_abs_diff(&soft.centers().grad(), &norm.centers().grad()) < 1e-12);
    });
}

#[test]
fn soft_triple_approaches_hard_triple_as_gamma_goes_to_zero() {
    losses::with_torch_seed(2, || {
        let (dim, classes, k) = (6, 4, 3);
        let x = randn(&[10, dim]);
        let y = labels(&[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
        let w = randn(&[dim, classes * k]);
        let hard = build(&yaml("{kind: hard_triple, centers_per_class: 3}"), classes, dim);
        hard.set_centers(&w);
        let target = hard.value(&x, &y);
        let mut gaps = vec![];
        for gamma in [1.0, 0.1, 0.01, 0.001, 0.0001] {
            let cfg = LossConfig::SoftTriple(SoftTripleConfig {
                gamma,
                tau: 0.0,
                centers_per_class: k,
                ..Default::default()
            });
            let soft = build(&cfg, classes, dim);
            soft.set_centers(&w);
            gaps.push((soft.value(&x, &y) - target).abs());
        }
        assert!(gaps.windows(2).all(|g| g[1] <= g[0] + 1e-12), "gap does not shrink: {gaps:?}");
        assert!(gaps[0] > 1e-3, "γ = 1 should differ from HardTriple: {gaps:?}");
        assert!(*gaps.last().unwrap() < 1e-6, "γ → 0 should reach HardTriple: {gaps:?}");
    });
}

#[test]
fn regularizer_is_zero_for_coincident_centres_positive_otherwise_absent_at_tau_zero_or_k_one() {
    losses::with_torch_seed(3, || {
        let (dim, classes, k) = (5, 3, 4);
        let x = randn(&[6, dim]);
        let y = labels(&[0, 1, 2, 0, 1, 2]);
        let st = build(&yaml("{kind: soft_triple, centers_per_class: 4, tau: 0.2}"), classes, dim);

        // Every class's K centres are the same direction (different lengths: storage is not normalised).
        let per_class = randn(&[dim, classes, 1]);
        let scales = Tensor::from_slice(&[1.0, 2.0, 0.5, 3.0]).view([1, 1, k]);
        st.set_centers(&(per_class * scales).reshape([dim, classes * k]));
        let out = st.loss.forward(&x, &y).unwrap();
        let reg = f64::try_from(out.regularizer.as_ref().unwrap()).unwrap();
        // Coincident unit centres: each pair contributes sqrt(ε) = sqrt(1e-5).
        let expected = (1e-5f64).sqrt() * (classes * k * (k - 1) / 2) as f64 / (classes * k * (k - 1)) as f64;
        assert!((reg - expected).abs() < 1e-9, "coincident centres: regularizer {reg}, expected {expected}");

        st.set_centers(&randn(&[dim, classes * k]));
        let out = st.loss.forward(&x, &y).unwrap();
        let reg = f64::try_from(out.regularizer.as_ref().unwrap()).unwrap();
        assert!(reg > 0.1, "distinct centres must be penalised: {reg}");
        let total = f64::try_from(&out.loss).unwrap();
        let cls = f64::try_from(&out.classification).unwrap();
        assert!((total - (cls + 0.2 * reg)).abs() < 1e-12, "objective is classification + τ·R");

        let no_tau = build(&yaml("{kind: soft_triple, centers_per_class: 4, tau: 0}"), classes, dim);
        assert!(no_tau.loss.forward(&x, &y).unwrap().regularizer.is_none());
        let k1 = build(&yaml("{kind: soft_triple, centers_per_class: 1, tau: 0.2}"), classes, dim);
        let out = k1.loss.forward(&x, &y).unwrap();
        assert!(out.regularizer.is_none());
        assert!(f64::try_from(&out.loss).unwrap().is_finite(), "K = 1 must not divide by zero");
    });
}

#[test]
fn rescaling_stored_centres_or_embeddings_leaves_every_centre_loss_unchanged() {
    losses::with_torch_seed(4, || {
        let (dim, classes) = (6, 3);
        let x = randn(&[9, dim]);
        let y = labels(&[0, 0, 0, 1, 1, 1, 2, 2, 2]);
        for config in all_kinds() {
            let b = build(&config, classes, dim);
            let before = b.value(&x, &y);
            let rescaled_x = b.value(&(&x * 3.7), &y);
            assert!((before - rescaled_x).abs() < 1e-10, "{}: embedding scale changed the loss", config.kind());
            if let Some(c) = b.loss.centers() {
                // A different positive factor per centre column.
                let factors = Tensor::rand([1, c.var.size()[1]], (Kind::Double, tch::Device::Cpu)) * 10.0 + 0.1;
                let scaled = c.var.shallow_clone() * factors;
                b.set_centers(&scaled);
                let after = b.value(&x, &y);
                assert!((before - after).abs() < 1e-10, "{}: {before} vs {after}", config.kind());
            }
        }
    });
}

#[test]
fn triplet_loss_is_zero_on_a_well_separated_batch_and_positive_on_a_mixed_one() {
    // Three classes on three orthogonal axes, small jitter: d(a,p) ≈ 0.1, d(a,n) ≈ √2.
    let mut rows = vec![];
    let mut ys = vec![];
    for c in 0..3 {
        for j in 0..3 {
            let mut r = vec![0.0; 4];
            r[c] = 1.0;
            r[3] = 0.05 * (j as f64 - 1.0);
            rows.push(r);
            ys.push(c as i64);
        }
    }
    let x = matrix(&rows);
    let y = labels(&ys);
    for mining in ["all", "semihard", "hard"] {
        let b = build(&yaml(&format!("{{kind: triplet, margin: 0.2, mining: {mining}}}")), 3, 4);
        let out = b.loss.forward(&x, &y).unwrap();
        assert_eq!(f64::try_from(&out.loss).unwrap(), 0.0, "{mining}");
        assert_eq!(f64::try_from(out.active_fraction.unwrap()).unwrap(), 0.0, "{mining}");
        // Swap the labels of two samples: now some triplets violate the margin.
        let mixed = labels(&[0, 0, 1, 1, 1, 0, 2, 2, 2]);
        let out = b.loss.forward(&x, &mixed).unwrap();
        if mining != "semihard" {
            assert!(f64::try_from(&out.loss).unwrap() > 0.1, "{mining}: mixed batch must have a loss");
        }
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let b = build(&yaml("{kind: soft_triple, centers_per_class: 2}"), 3, 4);
    let x = randn(&[4, 4]);
    let err = |r: Result<losses::LossOutput, LossError>| r.expect_err("must be an error");

    assert!(matches!(err(b.loss.forward(&x, &labels(&[0, 1, 2, 3]))), LossError::LabelOutOfRange { max: 3, .. }));
    assert!(matches!(err(b.loss.forward(&x, &labels(&[0, -1, 2, 0]))), LossError::LabelOutOfRange { min: -1, .. }));
    assert!(matches!(err(b.loss.forward(&randn(&[4, 5]), &labels(&[0, 1, 2, 0]))), LossError::BadShape { .. }));
    assert!(matches!(err(b.loss.forward(&x, &labels(&[0, 1, 2]))), LossError::BadShape { .. }));
    assert!(matches!(err(b.loss.forward(&x, &Tensor::from_slice(&[0i32, 1, 2, 0]))), LossError::BadShape { .. }));
    assert!(matches!(err(b.loss.forward(&randn(&[0, 4]), &labels(&[]))), LossError::EmptyBatch));
    let nan = randn(&[4, 4]);
    let _ = nan.get(1).get(2).fill_(f64::NAN);
    assert!(matches!(err(b.loss.forward(&nan, &labels(&[0, 1, 2, 0]))), LossError::NonFiniteEmbeddings));

    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let k0 = yaml("{kind: soft_triple, centers_per_class: 0}").build(&vs.root(), 3, 4).expect_err("K = 0");
    assert!(k0.to_string().contains("centers_per_class"), "{k0}");
    let g0 = yaml("{kind: soft_triple, gamma: 0}").build(&vs.root(), 3, 4).expect_err("gamma = 0");
    assert!(g0.to_string().contains("gamma"), "{g0}");
    let neg_tau = yaml("{kind: soft_triple, tau: -1}").validate().expect_err("tau < 0");
    assert!(neg_tau.to_string().contains("tau"), "{neg_tau}");

    let t = build(&yaml("{kind: triplet}"), 3, 4);
    assert!(t.loss.forward(&x, &labels(&[0, 1, 2, 0])).is_ok(), "one pair and two negatives form triplets");
    let e = err(t.loss.forward(&x, &labels(&[0, 1, 2, 3])));
    assert!(e.to_string().contains("no valid triplet") && e.to_string().contains("no class has two images"), "{e}");
    let e = err(t.loss.forward(&x, &labels(&[1, 1, 1, 1])));
    assert!(e.to_string().contains("same class"), "{e}");
}

#[test]
fn config_rejects_unknown_fields_and_kinds_and_fills_paper_defaults() {
    let e = serde_yaml::from_str::<LossConfig>("{kind: soft_triple, gama: 0.1}").unwrap_err().to_string();
    assert!(e.contains("gama"), "{e}");
    let e = serde_yaml::from_str::<LossConfig>("{kind: softer_triple}").unwrap_err().to_string();
    assert!(e.contains("softer_triple"), "{e}");
    let c: LossConfig = serde_yaml::from_str("{kind: soft_triple}").unwrap();
    assert_eq!(
        c,
        LossConfig::SoftTriple(SoftTripleConfig {
            la: 20.0,
            gamma: 0.1,
            tau: 0.2,
            margin: 0.01,
            centers_per_class: 10
        })
    );
    let back: LossConfig = serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn centres_are_one_class_major_variable_named_centers_with_official_init() {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let loss = yaml("{kind: soft_triple, centers_per_class: 4}").build(&vs.root().sub("loss"), 50, 16).unwrap();
    let vars = vs.variables();
    assert_eq!(vars.len(), 1);
    let v = &vars["loss.centers"];
    assert_eq!(v.size(), vec![16, 200]);
    let bound = 1.0 / 200f64.sqrt();
    let max = f64::try_from(v.abs().max()).unwrap();
    assert!(max <= bound && max > 0.9 * bound, "uniform(±1/√(C·K)): max {max}, bound {bound}");
    // The sizes of the layout; which column belongs to which class is checked by
    // `class_major_layout_puts_centre_k_of_class_c_at_column_c_times_k_plus_k`.
    let c = loss.centers().unwrap();
    assert_eq!((c.num_classes, c.per_class, c.dim), (50, 4, 16));
}

#[test]
fn class_major_layout_puts_centre_k_of_class_c_at_column_c_times_k_plus_k() {
    let (dim, classes) = (3, 2);
    let b = build(&yaml("{kind: hard_triple, centers_per_class: 2, margin: 0}"), classes, dim);
    // Class-major, K = 2: columns 0, 1 are class 0's centres (e0, e1), columns 2, 3 class 1's (e2, -e2).
    // A k-major layout would give class 0 columns 0, 2 (e0, e2) and class 1 columns 1, 3 (e1, -e2).
    let w = matrix(&[vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, -1.0]]);
    b.set_centers(&w);
    // x = e1: class 0's best centre (e1) has similarity 1, class 1's best 0 → loss = log(1 + e^{-20});
    // under a k-major layout class 1 would hold e1 and the loss would be log(1 + e^{20}) ≈ 20.
    let loss = b.value(&matrix(&[vec![0.0, 1.0, 0.0]]), &labels(&[0]));
    assert!((loss - (1.0 + (-20f64).exp()).ln()).abs() < 1e-12, "{loss}");
}

#[test]
fn effective_centres_count_merged_groups_per_class() {
    let (dim, classes, k) = (3, 2, 3);
    let b = build(&yaml("{kind: soft_triple, centers_per_class: 3}"), classes, dim);
    // Class 0: three nearly identical centres (1 group); class 1: e0, e1 and e1 again (2 groups).
    let w = matrix(&[
        vec![1.0, 1.0, 0.99, 1.0, 0.0, 0.0],
        vec![0.0, 0.01, 0.0, 0.0, 1.0, 2.0],
        vec![0.0, 0.0, 0.01, 0.0, 0.0, 0.0],
    ]);
    b.set_centers(&w);
    let eff = b.loss.effective_centers(losses::MERGED_CENTER_COSINE).unwrap().unwrap();
    assert_eq!(eff.per_class, vec![1, 2]);
    assert!((eff.mean() - 1.5).abs() < 1e-12);
    let strict = b.loss.effective_centers(0.999_999_9).unwrap().unwrap();
    assert_eq!(strict.per_class, vec![3, 2]);
    // Merged means the cosine exceeds the threshold: orthogonal centres (cosine exactly 0) stay
    // apart at threshold 0, and class 1's e1 pair (cosine exactly 1) stays merged below 1 only.
    let at_zero = b.loss.effective_centers(0.0).unwrap().unwrap();
    assert_eq!(at_zero.per_class, vec![1, 2]);
    let at_one = b.loss.effective_centers(1.0).unwrap().unwrap();
    assert_eq!(at_one.per_class[1], 3, "a cosine of exactly 1 does not exceed 1");
    let _ = k;
}

#[test]
fn regularizer_handles_sop_scale_without_a_quadratic_mask() {
    // SOP: C = 11,318 classes, K = 10, dim 64 — a (C·K)² mask would be 12.8 G entries.
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let loss = yaml("{kind: soft_triple, centers_per_class: 10}").build(&vs.root(), 11_318, 64).unwrap();
    let x = Tensor::randn([32, 64], tch::kind::FLOAT_CPU);
    let y = Tensor::randint(11_318, [32], (Kind::Int64, tch::Device::Cpu));
    let out = loss.forward(&x, &y).unwrap();
    let reg = f64::try_from(out.regularizer.unwrap()).unwrap();
    // Random unit centres in 64-d are nearly orthogonal: each distance ≈ √2, so R/(C·K·(K−1)) ≈ √2/2.
    assert!((reg - 2f64.sqrt() / 2.0).abs() < 0.02, "{reg}");
    out.loss.backward();
    let eff = loss.effective_centers(losses::MERGED_CENTER_COSINE).unwrap().unwrap();
    assert_eq!(eff.per_class.len(), 11_318);
    assert!(eff.per_class.iter().all(|&v| v == 10), "random centres should not count as merged");
}

/// Cross-entropy with the margin, computed on the host from its formula (paper.md §2).
fn host_margin_cross_entropy(sim: &[Vec<f64>], labels: &[i64], la: f64, margin: f64) -> f64 {
    let terms = sim.iter().zip(labels).map(|(row, &y)| {
        let logits: Vec<f64> =
            row.iter().enumerate().map(|(c, s)| la * (s - if c as i64 == y { margin } else { 0.0 })).collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() - logits[y as usize]
    });
    terms.sum::<f64>() / labels.len() as f64
}

#[test]
fn every_class_index_counts_in_the_cross_entropy_including_100() {
    // libtorch's cross-entropy skips targets equal to its ignore index (−100 by default): a slip
    // to 100 would silently drop every sample of class 100 on data sets with more classes (SOP).
    let classes = 150usize;
    let labels = [100i64, 3, 100, 149];
    let sim: Vec<Vec<f64>> = (0..labels.len())
        .map(|i| (0..classes).map(|c| ((i * 31 + c * 7) % 17) as f64 / 17.0 - 0.5).collect())
        .collect();
    let got = losses::centers::margin_cross_entropy(&matrix(&sim), &Tensor::from_slice(&labels), 20.0, 0.01).unwrap();
    let want = host_margin_cross_entropy(&sim, &labels, 20.0, 0.01);
    let got = f64::try_from(&got).unwrap();
    assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{got} vs host {want}");
}

#[test]
fn every_kind_refuses_out_of_range_settings_naming_the_field() {
    let cases = [
        ("{kind: softmax_norm, la: 0}", "la"),
        ("{kind: softmax_norm, margin: .nan}", "margin"),
        ("{kind: hard_triple, la: -1}", "la"),
        ("{kind: hard_triple, margin: .inf}", "margin"),
        ("{kind: proxy_nca, scale: 0}", "scale"),
        ("{kind: triplet, margin: -0.1}", "margin"),
        ("{kind: soft_triple, gamma: 0}", "gamma"),
    ];
    for (config, field) in cases {
        let e = yaml(config).validate().expect_err(config).to_string();
        assert!(e.contains(field), "{config}: {e}");
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let e = yaml(config).build(&vs.root(), 3, 4).err().unwrap_or_else(|| panic!("{config} built")).to_string();
        assert!(e.contains(field), "{config}: {e}");
    }
    for ok in ["{kind: softmax_norm, margin: -0.1}", "{kind: hard_triple, margin: 0}", "{kind: triplet, margin: 0}"] {
        yaml(ok).validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn proxy_nca_without_the_positive_needs_two_classes() {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let without = yaml("{kind: proxy_nca, include_positive: false}");
    let e = without.build(&vs.root().sub("a"), 1, 4).expect_err("one class, no positive: empty denominator");
    assert!(e.to_string().contains("include_positive"), "{e}");
    assert!(without.build(&vs.root().sub("b"), 2, 4).is_ok(), "two classes leave one in the denominator");
    assert!(yaml("{kind: proxy_nca}").build(&vs.root().sub("c"), 1, 4).is_ok(), "with the positive, one class is fine");
}

#[test]
fn proxy_nca_counts_every_class_including_100() {
    // As in the margin cross-entropy: libtorch's ignore index is −100; class 100 must count.
    let (classes, dim) = (120i64, 6i64);
    let b = build(&yaml("{kind: proxy_nca}"), classes, dim);
    let p: Vec<Vec<f64>> =
        (0..dim).map(|r| (0..classes).map(|c| ((r * 13 + c * 5) % 11) as f64 / 11.0 - 0.4).collect()).collect();
    b.set_centers(&matrix(&p));
    let x: Vec<Vec<f64>> = (0..3).map(|i| (0..dim).map(|r| ((i * 7 + r * 3) % 5) as f64 - 2.0).collect()).collect();
    let y = [100i64, 100, 7];
    let got = b.value(&matrix(&x), &Tensor::from_slice(&y));
    // Host: −log softmax of 2s²·(x̂·p̂) at the true class, s = 3 (paper.md §1, ProxyNCA).
    let unit = |v: Vec<f64>| {
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.into_iter().map(|a| a / n).collect::<Vec<f64>>()
    };
    let proxies: Vec<Vec<f64>> = (0..classes as usize).map(|c| unit(p.iter().map(|row| row[c]).collect())).collect();
    let sims: Vec<Vec<f64>> = x
        .iter()
        .map(|xi| {
            let xi = unit(xi.clone());
            proxies.iter().map(|pc| pc.iter().zip(&xi).map(|(a, b)| a * b).sum::<f64>()).collect()
        })
        .collect();
    let want = host_margin_cross_entropy(&sims, &y, 2.0 * 9.0, 0.0);
    assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{got} vs host {want}");
}
