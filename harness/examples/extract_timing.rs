//! Times frozen-feature extraction as `model.frozen` does it (JPEG decode, resize, centre crop and
//! normalisation in the pipeline's worker threads; EfficientNet-Lite0 in evaluation mode) on the
//! first N JPEGs under a folder, for `bench/peers/extract.py`. Prints one JSON object.
//!
//! Usage: `extract_timing DIR WEIGHTS [--images 200] [--threads 2] [--workers 1] [--batch 32]`
use harness::data::pipeline::{BadImagePolicy, BatchStream, ImageSource, Normalization, TransformConfig};
use harness::model::{BackboneConfig, EmbeddingModel, ModelConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().unwrap())
    };
    let (dir, weights) = (&args[1], &args[2]);
    let (images, threads, workers, batch) =
        (opt("--images", 200), opt("--threads", 2), opt("--workers", 1), opt("--batch", 32));
    tch::set_num_threads(threads as i32);
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    paths.sort();
    paths.truncate(images);
    let n = paths.len();
    let config = ModelConfig {
        backbone: BackboneConfig::EfficientnetLite0 { weights: Some(weights.into()) },
        pretrained: true,
        ..Default::default()
    };
    let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = EmbeddingModel::build(&config, &mut vs, "backbone", "head", 1, None).unwrap();
    let src = Arc::new(ImageSource {
        labels: vec![0; n],
        paths,
        transform: TransformConfig {
            size: 224,
            resize: 224,
            normalization: Normalization::EfficientnetLite,
            ..Default::default()
        },
        train: false,
        on_bad_image: BadImagePolicy::Fail,
    });
    let batches: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(batch).map(<[usize]>::to_vec).collect();
    let start = Instant::now();
    let mut sum = 0.0;
    for b in BatchStream::start(src, batches, workers, 2, 0, 0) {
        let f = tch::no_grad(|| model.features(&b.unwrap().images, false));
        sum += f.sum(tch::Kind::Double).double_value(&[]);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{{\"images\":{n},\"seconds\":{seconds:.3},\"images_per_s\":{:.2},\"threads\":{threads},\"workers\":{workers},\"feature_sum\":{sum:.6}}}", n as f64 / seconds);
}
