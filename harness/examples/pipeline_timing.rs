//! Times the training image pipeline (decode + RandomResizedCrop + flip + normalise) on the images
//! of a folder (and its sub-folders), for `bench/peers/pipeline.py`: one thread (images per second
//! per core), then the worker pool. Prints one JSON object.
//!
//! Usage: `pipeline_timing DIR [--ext jpg] [--size 224] [--scale 0.08,1] [--ratio 0.75,1.3333]
//! [--flip 0.5] [--workers 2] [--min-seconds 3]`
use harness::data::pipeline::{build_batch, BadImagePolicy, BatchStream, ImageSource, Normalization, TransformConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let dir = args.get(1).expect("usage: pipeline_timing DIR [--ext jpg] [--size 224] [--scale a,b] [--ratio a,b] [--flip p] [--workers 2] [--min-seconds 3]");
    let ext = opt("--ext").unwrap_or_else(|| "jpg".into());
    let pair = |name: &str, default: (f64, f64)| {
        opt(name).map_or(default, |v| {
            let (a, b) = v.split_once(',').expect("a,b");
            (a.parse().unwrap(), b.parse().unwrap())
        })
    };
    let defaults = TransformConfig::default();
    let size: u32 = opt("--size").map_or(224, |v| v.parse().unwrap());
    let workers: usize = opt("--workers").map_or(2, |v| v.parse().unwrap());
    let min_seconds: f64 = opt("--min-seconds").map_or(3.0, |v| v.parse().unwrap());
    tch::set_num_threads(1);
    let mut paths = vec![];
    files(std::path::Path::new(dir), &ext, &mut paths);
    paths.sort();
    let n = paths.len();
    let src = Arc::new(ImageSource {
        labels: vec![0; n],
        paths,
        transform: TransformConfig {
            size,
            resize: size * 8 / 7,
            scale: pair("--scale", defaults.scale),
            ratio: pair("--ratio", defaults.ratio),
            flip: opt("--flip").map_or(defaults.flip, |v| v.parse().unwrap()),
            normalization: Normalization::Imagenet,
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

/// Every file ending in `.ext` under `dir`, recursively.
fn files(dir: &std::path::Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}
