//! Backbones: ResNet-18 from tch::vision, a TorchScript module exported from Python (trained in
//! place), the pretrained-weights check, and frozen BatchNorm.
use harness::model::{BackboneConfig, EmbeddingModel, ModelConfig};
use tch::{nn, Device, Kind, Tensor};

fn build(cfg: &ModelConfig, dim: i64) -> (nn::VarStore, EmbeddingModel) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = EmbeddingModel::build(cfg, &mut vs, "backbone", "head", dim, None).unwrap();
    (vs, m)
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
fn pretrained_without_weights_is_an_error_not_a_random_init() {
    let cfg =
        ModelConfig { backbone: BackboneConfig::Resnet50 { weights: None }, pretrained: true, ..Default::default() };
    let mut vs = nn::VarStore::new(Device::Cpu);
    let e = EmbeddingModel::build(&cfg, &mut vs, "backbone", "head", 64, None).unwrap_err().to_string();
    assert!(e.contains("pretrained: true") && e.contains("weights"), "{e}");
    let missing = ModelConfig {
        backbone: BackboneConfig::Resnet18 { weights: Some("nowhere.safetensors".into()) },
        ..Default::default()
    };
    let e = EmbeddingModel::build(&missing, &mut nn::VarStore::new(Device::Cpu), "backbone", "head", 64, None)
        .unwrap_err()
        .to_string();
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
