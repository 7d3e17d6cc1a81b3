//! Frozen backbones (`model.frozen: true`): each image's pooled features are computed once, through
//! the evaluation transform and the pretrained backbone in evaluation mode, and kept in a cache that
//! every later run, trial, seed and sweep reads; only the embedding layer (and a loss's centres)
//! train on them. The cache key covers what the features depend on: the split's items (paths and
//! labels), the weights file's SHA-256, the backbone and the evaluation transform. Files are written
//! atomically (a killed writer leaves at most a temporary file no reader opens) under a lock, so
//! concurrent processes compute a split once.
use super::splits::Split;
use crate::config::RunConfig;
use crate::model::{BackboneConfig, EmbeddingModel};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// Where the cache lives: `HARNESS_FEATURE_CACHE`, else `cache/features` under the working folder.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HARNESS_FEATURE_CACHE").map_or_else(|| PathBuf::from("cache/features"), PathBuf::from)
}

/// SHA-256 of a file, hex.
fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The cache key of an image split's features under `config`'s backbone and transform.
fn key(config: &RunConfig, paths: &[PathBuf], labels: &[i64]) -> Result<String> {
    let weights = config.model.backbone.weights().context("a frozen backbone has weights")?;
    let t = &config.train.transform;
    let mut h = Sha256::new();
    h.update(serde_json::to_string(&config.model.backbone)?.as_bytes());
    h.update(file_sha256(weights)?.as_bytes());
    h.update(format!("\nsize {} resize {} {:?}\n", t.size, t.resize, t.normalization).as_bytes());
    for (p, l) in paths.iter().zip(labels) {
        h.update(format!("{}\t{l}\n", p.display()).as_bytes());
    }
    Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// An image split as its frozen features (read from the cache, or computed and cached), with the
/// cache key and whether they were computed now. A split already in memory is returned as it is.
pub(super) fn freeze(split: Split, config: &RunConfig, device: Device) -> Result<(Split, Option<(String, bool)>)> {
    let Split::Images(src) = &split else { return Ok((split, None)) };
    let key = key(config, &src.paths, &src.labels)?;
    let path = cache_dir().join(format!("{key}.safetensors"));
    let y = Tensor::from_slice(&src.labels);
    if let Some(x) = read(&path, src.paths.len()) {
        return Ok((Split::Memory { x, y }, Some((key, false))));
    }
    let _lock = crate::fsio::lock(&cache_dir().join(format!("{key}.lock")))?;
    // Another process may have written it while this one waited.
    if let Some(x) = read(&path, src.paths.len()) {
        return Ok((Split::Memory { x, y }, Some((key, false))));
    }
    let x = compute(src, config, device)?;
    crate::fsio::write_atomic_with(&path, |tmp| Tensor::write_safetensors(&[("features", &x)], tmp))?;
    tracing::info!("frozen features of {} images cached: {}", src.paths.len(), path.display());
    Ok((Split::Memory { x, y }, Some((key, true))))
}

/// The cached features, if the file is there and holds one row per image; a file that cannot be
/// read is left to be replaced (with a warning).
fn read(path: &Path, rows: usize) -> Option<Tensor> {
    if !path.is_file() {
        return None;
    }
    match Tensor::read_safetensors(path) {
        Ok(named) => match named.into_iter().find(|(n, _)| n == "features") {
            Some((_, x)) if x.size().first() == Some(&(rows as i64)) => Some(x),
            _ => {
                tracing::warn!("{}: not the features of this split; computing them again", path.display());
                None
            }
        },
        Err(e) => {
            tracing::warn!("{}: unreadable ({e}); computing the features again", path.display());
            None
        }
    }
}

/// Runs every image through the evaluation transform and the backbone in evaluation mode.
fn compute(src: &crate::data::pipeline::ImageSource, config: &RunConfig, device: Device) -> Result<Tensor> {
    let mut vs = nn::VarStore::new(device);
    let model = EmbeddingModel::build(&config.model, &mut vs, "backbone", "head", 1, None)?;
    let eval = std::sync::Arc::new(crate::data::pipeline::ImageSource {
        paths: src.paths.clone(),
        labels: src.labels.clone(),
        transform: src.transform.clone(),
        train: false,
        on_bad_image: crate::data::pipeline::BadImagePolicy::Fail,
    });
    let chunk = config.train.batch_size.max(1) * 2;
    let batches: Vec<Vec<usize>> =
        (0..src.paths.len()).collect::<Vec<_>>().chunks(chunk).map(<[usize]>::to_vec).collect();
    let mut out = vec![];
    for b in crate::data::pipeline::BatchStream::start(eval, batches, config.train.workers, 2, 0, 0) {
        let b = b?;
        out.push(tch::no_grad(|| model.features(&b.images.to_device(device), false)).to_device(Device::Cpu));
    }
    if out.is_empty() {
        bail!("no images to compute features of");
    }
    Ok(Tensor::cat(&out, 0))
}

/// `config` with the backbone replaced by the identity on features of `input_dim` (what trains).
pub(super) fn head_only(config: &RunConfig) -> RunConfig {
    let mut c = config.clone();
    c.model.backbone = BackboneConfig::None;
    c.model.pretrained = false;
    c
}
