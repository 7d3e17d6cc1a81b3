//! Times the training image pipeline (decode + RandomResizedCrop + flip + normalise) on a folder of
//! JPEGs, for `bench/peers/pipeline.py`: one thread (images per second per core), then the worker
//! pool. Prints one JSON object.
//!
//! Usage: `pipeline_timing DIR [--size 224] [--workers 2] [--min-seconds 3]`
use harness::data::pipeline::{build_batch, BadImagePolicy, BatchStream, ImageSource, Normalization, TransformConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let dir = args.get(1).expect("usage: pipeline_timing DIR [--size 224] [--workers 2] [--min-seconds 3]");
    let size: u32 = opt("--size").map_or(224, |v| v.parse().unwrap());
    let workers: usize = opt("--workers").map_or(2, |v| v.parse().unwrap());
    let min_seconds: f64 = opt("--min-seconds").map_or(3.0, |v| v.parse().unwrap());
    tch::set_num_threads(1);
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    paths.sort();
    let n = paths.len();
    let src = Arc::new(ImageSource {
        labels: vec![0; n],
        paths,
        transform: TransformConfig {
            size,
            resize: size * 8 / 7,
            normalization: Normalization::Imagenet,
            ..Default::default()
        },
        train: true,
        on_bad_image: BadImagePolicy::Fail,
    });
    // One thread: the per-core rate.
    let start = Instant::now();
    let (mut images, mut epoch) = (0usize, 0u64);
    while start.elapsed().as_secs_f64() < min_seconds {
        for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
            images += build_batch(&src, chunk, 7, epoch).unwrap().labels.size()[0] as usize;
        }
        epoch += 1;
    }
    let per_core = images as f64 / start.elapsed().as_secs_f64();
    // The worker pool, as the trainer uses it.
    let start = Instant::now();
    let (mut pooled, mut epoch) = (0usize, 0u64);
    while start.elapsed().as_secs_f64() < min_seconds {
        let batches: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(32).map(<[usize]>::to_vec).collect();
        for b in BatchStream::start(src.clone(), batches, workers, 2, 7, epoch) {
            pooled += b.unwrap().labels.size()[0] as usize;
        }
        epoch += 1;
    }
    let pool = pooled as f64 / start.elapsed().as_secs_f64();
    println!("{{\"images\":{n},\"per_core_images_per_s\":{per_core:.2},\"workers\":{workers},\"pool_images_per_s\":{pool:.2}}}");
}
