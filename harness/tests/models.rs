//! Backbones: ResNet-18 from tch::vision, a TorchScript module exported from Python (trained in
//! place), the pretrained-weights check, and frozen BatchNorm.
use harness::model::{BackboneConfig, EmbeddingModel, ModelConfig};
use tch::{nn, Device, Kind, Tensor};

fn build(cfg: &ModelConfig, dim: i64) -> (nn::VarStore, EmbeddingModel) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = EmbeddingModel::build(cfg, &mut vs, "backbone", "head", dim, None).unwrap();
    (vs, m)
}

/// The error message of a build that must fail.
fn build_error(cfg: &ModelConfig) -> String {
    EmbeddingModel::build(cfg, &mut nn::VarStore::new(Device::Cpu), "backbone", "head", 64, None)
        .unwrap_err()
        .to_string()
}

fn unit_rows(e: &Tensor) -> bool {
    let n = e.linalg_norm(2, [1].as_slice(), false, None::<Kind>);
    f64::try_from((n - 1.0).abs().max()).unwrap() < 1e-5
}

#[test]
fn resnet18_gives_unit_embeddings_from_512_features() {
    let cfg = ModelConfig { backbone: BackboneConfig::Resnet18 { weights: None }, ..Default::default() };
    let (_vs, m) = build(&cfg, 32);
    assert_eq!(m.feature_dim, 512);
    let e = m.forward(&Tensor::rand([2, 3, 64, 64], tch::kind::FLOAT_CPU), false);
    assert_eq!(e.size(), vec![2, 32]);
    assert!(unit_rows(&e));
}

#[test]
fn a_torchscript_backbone_is_probed_for_its_size_and_trains_in_place() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchscript/tiny_backbone.pt");
    let cfg = ModelConfig { backbone: BackboneConfig::Torchscript { path, feature_dim: None }, ..Default::default() };
    let (vs, m) = build(&cfg, 8);
    assert_eq!(m.feature_dim, 24, "probed from one forward pass");
    assert!(vs.trainable_variables().len() > 2, "the script's parameters are registered under the var store");
    let x = Tensor::rand([4, 3, 16, 16], tch::kind::FLOAT_CPU);
    let e = m.forward(&x, true);
    assert!(unit_rows(&e));
    e.sum(Kind::Float).backward();
    let with_grad = vs.variables().into_iter().filter(|(k, v)| k.starts_with("backbone") && v.grad().defined()).count();
    assert!(with_grad > 0, "gradients reach the TorchScript parameters");
}

#[test]
fn a_torchscript_backbone_runs_in_eval_mode_for_evaluation_and_train_mode_for_training() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchscript/tiny_backbone.pt");
    let cfg = ModelConfig { backbone: BackboneConfig::Torchscript { path, feature_dim: None }, ..Default::default() };
    let (_vs, m) = build(&cfg, 8);
    let x = Tensor::rand([4, 3, 8, 8], tch::kind::FLOAT_CPU);
    let first = |n: i64, train: bool| tch::no_grad(|| m.features(&x.narrow(0, 0, n), train).get(0));
    // Eval mode (running statistics): an image's features do not depend on the rest of the batch.
    assert!(first(4, false).allclose(&first(2, false), 1e-6, 1e-6, false));
    // Train mode (batch statistics, as the module was saved): they do; and eval mode comes back.
    assert!(!first(4, true).allclose(&first(2, true), 1e-4, 1e-4, false));
    assert!(first(4, false).allclose(&first(2, false), 1e-6, 1e-6, false));
}

#[test]
fn pretrained_without_weights_is_an_error_not_a_random_init() {
    let cfg =
        ModelConfig { backbone: BackboneConfig::Resnet50 { weights: None }, pretrained: true, ..Default::default() };
    let e = build_error(&cfg);
    assert!(e.contains("pretrained: true") && e.contains("weights"), "{e}");
    let missing = ModelConfig {
        backbone: BackboneConfig::Resnet18 { weights: Some("nowhere.safetensors".into()) },
        ..Default::default()
    };
    let e = build_error(&missing);
    assert!(e.contains("nowhere.safetensors"), "{e}");
}

#[test]
fn frozen_batchnorm_keeps_running_statistics_during_training() {
    let stats = |frozen: bool| {
        let cfg = ModelConfig {
            backbone: BackboneConfig::SmallCnn { channels: vec![4] },
            freeze_batchnorm: frozen,
            ..Default::default()
        };
        let (vs, m) = build(&cfg, 8);
        let before = vs.variables()["backbone.block0.bn.running_mean"].copy();
        let _ = m.forward(&(Tensor::rand([8, 3, 8, 8], tch::kind::FLOAT_CPU) + 3.0), true);
        let after = vs.variables()["backbone.block0.bn.running_mean"].copy();
        before.equal(&after)
    };
    assert!(stats(true), "frozen: running mean unchanged by a training forward pass");
    assert!(!stats(false), "not frozen: running mean updated");
}

/// The BN-Inception fixture: the pretrained port's layout and its features under formula weights
/// (written by fixtures/make_bn_inception_fixture.py from pretrainedmodels' own model code).
#[derive(serde::Deserialize)]
struct BnInceptionFixture {
    variables: Vec<(String, Vec<i64>)>,
    input_shape: Vec<i64>,
    features_eval: Vec<f32>,
    features_train: Vec<f32>,
}

fn bn_fixture() -> BnInceptionFixture {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bn_inception.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture script's `frac`: a deterministic value in [0, 1) for element i of tensor `ordinal`.
fn frac(i: usize, ordinal: usize) -> f64 {
    ((i * 7919 + ordinal * 104_729) % 1000) as f64 / 1000.0
}

/// The fixture script's `fill`, in the same float64 operations, rounded to float32 at the end.
fn formula_tensor(name: &str, shape: &[i64], ordinal: usize) -> Tensor {
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n as usize)
        .map(|i| {
            let f = frac(i, ordinal);
            let v = if name.ends_with("running_var") {
                0.5 + f
            } else if name.ends_with("running_mean") {
                0.2 * (f - 0.5)
            } else if name.contains("_bn.") && name.ends_with("weight") {
                0.75 + 0.5 * f
            } else if name.ends_with("bias") {
                0.1 * (f - 0.5)
            } else {
                let fan_in: i64 = shape[1..].iter().product();
                (f - 0.5) * 2.0 * (6.0 / fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect();
    Tensor::from_slice(&values).view(shape)
}

/// The backbone's variables without the `backbone.` prefix, sorted by name.
fn backbone_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix("backbone.").map(|k| (k.to_string(), t)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn bn_inception(weights: Option<std::path::PathBuf>) -> (nn::VarStore, EmbeddingModel) {
    build(&ModelConfig { backbone: BackboneConfig::BnInception { weights }, ..Default::default() }, 64)
}

fn fixture_input(fx: &BnInceptionFixture) -> Tensor {
    let n: i64 = fx.input_shape.iter().product();
    let x: Vec<f32> = (0..n as usize).map(|i| ((frac(i, 999_983) - 0.5) * 200.0) as f32).collect();
    Tensor::from_slice(&x).view(fx.input_shape.as_slice())
}

fn max_abs_diff(a: &Tensor, b: &[f32]) -> f64 {
    f64::try_from((a - Tensor::from_slice(b).view(a.size().as_slice())).abs().max()).unwrap()
}

#[test]
fn bn_inception_has_exactly_the_pretrained_ports_variable_names_and_shapes() {
    let fx = bn_fixture();
    let (vs, m) = bn_inception(None);
    assert_eq!(m.feature_dim, 1024);
    let ours: Vec<(String, Vec<i64>)> = backbone_variables(&vs).into_iter().map(|(k, t)| (k, t.size())).collect();
    assert_eq!(ours.len(), fx.variables.len(), "number of tensors");
    for (a, b) in ours.iter().zip(&fx.variables) {
        assert_eq!(a, b);
    }
}

#[test]
fn bn_inception_computes_what_the_python_port_computes_in_eval_and_train_mode() {
    let fx = bn_fixture();
    let (vs, m) = bn_inception(None);
    tch::no_grad(|| {
        for (ordinal, (name, var)) in backbone_variables(&vs).into_iter().enumerate() {
            var.shallow_clone().copy_(&formula_tensor(&name, &var.size(), ordinal));
        }
    });
    let x = fixture_input(&fx);
    let eval = tch::no_grad(|| m.features(&x, false));
    assert_eq!(eval.size(), vec![2, 1024]);
    let scale = fx.features_eval.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let d = max_abs_diff(&eval, &fx.features_eval);
    assert!(d < 1e-4 * scale.max(1.0), "eval mode: max |diff| {d} (features up to {scale})");
    let train = tch::no_grad(|| m.features(&x, true));
    // Batch statistics over 2 images of 3 × 3 at the last blocks amplify rounding: a looser bound,
    // still far below what a wrong layer gives (differences of the features' own size).
    let scale = fx.features_train.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let d = max_abs_diff(&train, &fx.features_train);
    assert!(d < 2e-3 * scale.max(1.0), "train mode (batch statistics): max |diff| {d} (features up to {scale})");
}

#[test]
fn bn_inception_weights_load_from_safetensors_by_the_ports_names_and_bad_files_are_named() {
    let fx = bn_fixture();
    let (vs, m) = bn_inception(None);
    let vars = backbone_variables(&vs);
    let dir = std::env::temp_dir().join(format!("harness-bninception-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The converter's output: the port's names, no prefix, plus a classifier the backbone ignores.
    let classifier = Tensor::zeros([1000, 1024], tch::kind::FLOAT_CPU);
    let mut named: Vec<(&str, &Tensor)> = vars.iter().map(|(k, t)| (k.as_str(), t)).collect();
    named.push(("last_linear.weight", &classifier));
    let good = dir.join("good.safetensors");
    Tensor::write_safetensors(&named, &good).unwrap();
    let (_, loaded) = bn_inception(Some(good));
    let x = fixture_input(&fx);
    let (a, b) = tch::no_grad(|| (m.features(&x, false), loaded.features(&x, false)));
    assert!(a.equal(&b), "a model built from the saved weights computes the same features");
    // One variable short: an error naming it, not a silent random init.
    let short = dir.join("short.safetensors");
    Tensor::write_safetensors(&named[1..], &short).unwrap();
    let e = build_error(&ModelConfig {
        backbone: BackboneConfig::BnInception { weights: Some(short.clone()) },
        ..Default::default()
    });
    assert!(e.contains("short.safetensors") && e.contains(&format!("`{}`", vars[0].0)) && e.contains("1 of"), "{e}");
    // A wrong shape (the older port stores BatchNorm parameters as 1 × C): named with both shapes.
    let (bn_name, bn) = vars.iter().find(|(k, _)| k.ends_with("_bn.weight")).unwrap();
    let wide = bn.unsqueeze(0);
    let mut shaped = named.clone();
    let at = shaped.iter().position(|(k, _)| k == bn_name).unwrap();
    shaped[at] = (bn_name.as_str(), &wide);
    let bad = dir.join("shape.safetensors");
    Tensor::write_safetensors(&shaped, &bad).unwrap();
    let e = build_error(&ModelConfig {
        backbone: BackboneConfig::BnInception { weights: Some(bad) },
        ..Default::default()
    });
    assert!(e.contains(bn_name.as_str()) && e.contains("[1, 64]"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Checks a converted weights file (bench/weights/convert_bn_inception.py) made from the fixture's
/// formula weights (`convert_bn_inception.py --selftest`). Run on purpose with
/// `HARNESS_BN_INCEPTION_WEIGHTS=FILE cargo test -p harness --test models -- --ignored`.
#[test]
#[ignore = "needs HARNESS_BN_INCEPTION_WEIGHTS: a file written by convert_bn_inception.py --selftest"]
fn converted_formula_weights_reproduce_the_fixture_features() {
    let path = std::env::var("HARNESS_BN_INCEPTION_WEIGHTS")
        .expect("HARNESS_BN_INCEPTION_WEIGHTS must name the file convert_bn_inception.py --selftest wrote");
    let fx = bn_fixture();
    let (_, m) = bn_inception(Some(path.into()));
    let eval = tch::no_grad(|| m.features(&fixture_input(&fx), false));
    let scale = fx.features_eval.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let d = max_abs_diff(&eval, &fx.features_eval);
    assert!(d < 1e-4 * scale.max(1.0), "max |diff| {d}");
}
