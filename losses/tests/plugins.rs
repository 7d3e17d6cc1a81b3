//! TorchScript loss plug-ins: the scripted SoftTriple of `plugins/` against the built-in (values and
//! gradients, float64), the Multi-Similarity plug-in against pytorch-metric-learning's fixtures, and
//! a clear error for each way a plug-in can be wrong.
mod common;

use common::{build, labels, max_abs_diff, randn};
use losses::{LossConfig, LossError, TorchScriptConfig};
use std::path::PathBuf;
use tch::{Kind, Tensor};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plugins")).join(name)
}

fn plugin(path: PathBuf, params: &[(&str, f64)], k: i64) -> LossConfig {
    LossConfig::TorchScript(TorchScriptConfig {
        path,
        name: "P".into(),
        params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        centers_per_class: k,
        sha256: None,
    })
}

/// Loss value and gradients (embeddings, centres) of `config` with the given centres, float64.
fn value_and_grads(
    config: &LossConfig,
    x: &Tensor,
    y: &Tensor,
    centers: &Tensor,
    classes: i64,
) -> (f64, Tensor, Tensor) {
    let b = build(config, classes, x.size()[1]);
    b.set_centers(centers);
    let x = x.detach().set_requires_grad(true);
    let out = b.loss.forward(&x, y).expect("forward");
    out.loss.backward();
    (f64::try_from(&out.loss).unwrap(), x.grad(), b.centers().grad())
}

#[test]
fn scripted_soft_triple_equals_the_built_in_in_value_and_gradients() {
    // (classes, K, dim, batch, la, gamma, tau, margin): the paper's setting, without the
    // regularizer, K = 1 and other constants.
    let cases = [
        (5, 4, 8, 20, 20.0, 0.1, 0.2, 0.01),
        (5, 4, 8, 20, 20.0, 0.1, 0.0, 0.01),
        (7, 1, 6, 14, 20.0, 0.1, 0.2, 0.01),
        (3, 10, 16, 12, 10.0, 0.5, 0.5, 0.1),
        (12, 2, 4, 30, 30.0, 0.05, 0.2, 0.0),
    ];
    for (case, (c, k, d, n, la, gamma, tau, margin)) in cases.into_iter().enumerate() {
        let (x, y, centers) = losses::with_torch_seed(case as i64, || {
            (randn(&[n, d]), Tensor::randint(c, [n], (Kind::Int64, tch::Device::Cpu)), randn(&[d, c * k]))
        });
        let built: LossConfig = serde_yaml::from_str(&format!(
            "{{kind: soft_triple, la: {la}, gamma: {gamma}, tau: {tau}, margin: {margin}, centers_per_class: {k}}}"
        ))
        .unwrap();
        let params = [("la", la), ("gamma", gamma), ("tau", tau), ("margin", margin)];
        let scripted = plugin(repo("plugins/soft_triple.pt"), &params, k);
        let (v1, gx1, gc1) = value_and_grads(&built, &x, &y, &centers, c);
        let (v2, gx2, gc2) = value_and_grads(&scripted, &x, &y, &centers, c);
        assert!((v1 - v2).abs() < 1e-6, "case {case}: loss {v1} vs scripted {v2}");
        assert!(max_abs_diff(&gx1, &gx2) < 1e-6, "case {case}: embedding gradients differ");
        assert!(max_abs_diff(&gc1, &gc2) < 1e-6, "case {case}: centre gradients differ");
        assert!(f64::try_from(gc1.abs().sum(Kind::Double)).unwrap() > 1e-6, "case {case}: centre gradient is zero");
    }
}

#[test]
fn scripted_soft_triple_reports_its_regularizer_and_classification_terms() {
    let scripted =
        plugin(repo("plugins/soft_triple.pt"), &[("la", 20.0), ("gamma", 0.1), ("tau", 0.2), ("margin", 0.01)], 3);
    let (x, y) = losses::with_torch_seed(50, || (randn(&[6, 4]), labels(&[0, 0, 1, 1, 2, 2])));
    let b = build(&scripted, 3, 4);
    let out = b.loss.forward(&x, &y).unwrap();
    let (loss, cls) = (f64::try_from(&out.loss).unwrap(), f64::try_from(&out.classification).unwrap());
    let reg = f64::try_from(out.regularizer.expect("the script returns a regularizer")).unwrap();
    assert!(reg > 0.0 && (loss - (cls + 0.2 * reg)).abs() < 1e-12, "{loss} vs {cls} + 0.2·{reg}");
    assert!(b.loss.effective_centers(0.95).is_some(), "the harness owns the plug-in's centres");
}

#[derive(serde::Deserialize)]
struct MsCase {
    embeddings: Vec<Vec<f64>>,
    labels: Vec<i64>,
    params: std::collections::BTreeMap<String, f64>,
    loss: f64,
}

#[test]
fn multi_similarity_plugin_matches_pytorch_metric_learning() {
    #[derive(serde::Deserialize)]
    struct Fixture {
        cases: Vec<MsCase>,
    }
    let text = std::fs::read_to_string(fixture("ms_pml.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fixture.cases.len() >= 5);
    for (i, case) in fixture.cases.iter().enumerate() {
        let params: Vec<(&str, f64)> = case.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let config = plugin(repo("plugins/ms_loss.pt"), &params, 0);
        let classes = case.labels.iter().max().unwrap() + 1;
        let b = build(&config, classes, case.embeddings[0].len() as i64);
        let ours = b.value(&common::matrix(&case.embeddings), &labels(&case.labels));
        assert!((ours - case.loss).abs() < 1e-9 * case.loss.abs().max(1.0), "case {i}: {ours} vs PML {}", case.loss);
    }
}

/// The plan-time check's error for a plug-in, as text.
fn probe_error(config: &LossConfig) -> String {
    let LossConfig::TorchScript(c) = config else { unreachable!() };
    let err = c.probe(8).expect_err("the plug-in should be refused");
    assert!(matches!(err, LossError::Plugin { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn bad_plugins_are_refused_with_the_file_and_what_is_wrong() {
    let cases: [(&str, i64, &str); 7] = [
        ("missing.pt", 0, "cannot read it"),
        ("not_torchscript.pt", 0, "not a TorchScript file"),
        ("wrong_signature.pt", 0, "calling forward(embeddings, labels, centers, params) failed"),
        ("non_scalar.pt", 0, "of shape [6]; expected a scalar"),
        ("nan_loss.pt", 0, "returned NaN on a random batch"),
        ("ignores_centers.pt", 2, "no finite gradient reaches the centres"),
        ("returns_tuple.pt", 0, "returned a tuple"),
    ];
    for (file, k, expected) in cases {
        let message = probe_error(&plugin(fixture(file), &[], k));
        assert!(message.contains(file), "{file}: the message does not name the file: {message}");
        assert!(message.contains(expected), "{file}: expected `{expected}` in: {message}");
    }
}

#[test]
fn a_plugin_that_detaches_the_embeddings_or_gets_a_reserved_param_is_refused() {
    // The MS plug-in with centres it does not use: the centre-gradient check catches it.
    let message = probe_error(&plugin(repo("plugins/ms_loss.pt"), &[("alpha", 2.0), ("beta", 50.0), ("base", 0.5)], 1));
    assert!(message.contains("centers_per_class: 0"), "{message}");
    let reserved = plugin(repo("plugins/ms_loss.pt"), &[("dim", 3.0)], 0);
    assert!(reserved.validate().unwrap_err().to_string().contains("`params.dim` is set by the harness"));
    // A missing parameter is the script's own error, passed on with the file's name.
    let missing = probe_error(&plugin(repo("plugins/ms_loss.pt"), &[("alpha", 2.0)], 0));
    assert!(missing.contains("ms_loss.pt") && missing.contains("forward"), "{missing}");
}

#[test]
fn the_file_hash_is_pinned_and_a_changed_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("losses-plugin-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("loss.pt");
    std::fs::copy(repo("plugins/ms_loss.pt"), &file).unwrap();
    let mut config = plugin(file.clone(), &[("alpha", 2.0), ("beta", 50.0), ("base", 0.5)], 0);
    config.prepare(&[8]).unwrap();
    let LossConfig::TorchScript(pinned) = &config else { unreachable!() };
    assert_eq!(pinned.sha256.as_deref().map(str::len), Some(64));
    std::fs::copy(repo("plugins/soft_triple.pt"), &file).unwrap();
    let err = config.prepare(&[8]).unwrap_err().to_string();
    assert!(err.contains("the file changed since this run was planned"), "{err}");
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    assert!(config.build(&vs.root(), 3, 8).is_err(), "building a run whose file changed must fail");
    std::fs::remove_dir_all(&dir).unwrap();
}
