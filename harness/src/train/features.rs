//! Frozen backbones (`model.frozen: true`): each image's pooled features are computed once, through
//! the evaluation transform and the pretrained backbone in evaluation mode, and kept in a cache that
//! every later run, trial, seed and sweep reads; only the embedding layer (and a loss's centres)
//! train on them. The cache key covers what the features depend on: the split's items (paths and
//! labels), the weights file's SHA-256, the backbone and the evaluation transform. Files are written
//! atomically (a killed writer leaves at most a temporary file no reader opens) under a lock, so
//! concurrent processes compute a split once.
use super::splits::Split;
use super::FeatureCache;
use crate::config::RunConfig;
use crate::model::{BackboneConfig, EmbeddingModel};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// Where the cache lives: `HARNESS_FEATURE_CACHE`, else `cache/features` under the working folder.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HARNESS_FEATURE_CACHE").map_or_else(|| PathBuf::from("cache/features"), PathBuf::from)
}

/// SHA-256 of a weights file, hex: hashed once per process while its size and modification time
/// stay the same (every run, and both its splits, key the cache by it).
fn file_sha256(path: &Path) -> Result<String> {
    type Seen = std::collections::HashMap<PathBuf, (u64, std::time::SystemTime, String)>;
    static SEEN: std::sync::Mutex<Option<Seen>> = std::sync::Mutex::new(None);
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let stamp = (meta.len(), meta.modified().with_context(|| format!("reading {}", path.display()))?);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((len, time, hex)) = seen.get_or_insert_with(Default::default).get(path) {
        if (*len, *time) == stamp {
            return Ok(hex.clone());
        }
    }
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    seen.get_or_insert_with(Default::default).insert(path.into(), (stamp.0, stamp.1, hex.clone()));
    Ok(hex)
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

/// `split` as its frozen features when `config` asks for them (read from the cache, or computed and
/// cached), its cache entry noted in `cache` as `name`; otherwise, or for a split already in
/// memory, the split as it is.
pub(super) fn freeze(
    split: Split,
    name: &str,
    config: &RunConfig,
    device: Device,
    cache: &mut Vec<FeatureCache>,
) -> Result<Split> {
    let Split::Images(src) = &split else { return Ok(split) };
    if !config.model.frozen {
        return Ok(split);
    }
    let key = key(config, &src.paths, &src.labels)?;
    let path = cache_dir().join(format!("{key}.safetensors"));
    let y = Tensor::from_slice(&src.labels);
    let mut entry = FeatureCache { split: name.into(), key, computed: false };
    // Read after the lock too: another process may have written it while this one waited.
    let x = match read(&path, src.paths.len()) {
        Some(x) => x,
        None => {
            let _lock = crate::fsio::lock(&cache_dir().join(format!("{}.lock", entry.key)))?;
            match read(&path, src.paths.len()) {
                Some(x) => x,
                None => {
                    let x = compute(src, config, device)?;
                    crate::fsio::write_atomic_with(&path, |tmp| Tensor::write_safetensors(&[("features", &x)], tmp))?;
                    tracing::info!("frozen features of {} images cached: {}", src.paths.len(), path.display());
                    entry.computed = true;
                    x
                }
            }
        }
    };
    cache.push(entry);
    Ok(Split::Memory { x, y })
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
    let batches = super::splits::index_chunks(src.paths.len(), config.train.batch_size.max(1) * 2);
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

/// What trains: `config` itself, or under `model.frozen` the same run with the backbone replaced by
/// the identity on the backbone's cached features, with their size.
pub(super) fn trained(config: &RunConfig) -> Result<(Cow<'_, RunConfig>, Option<i64>)> {
    if !config.model.frozen {
        return Ok((Cow::Borrowed(config), None));
    }
    let dim = crate::model::backbone_features(&config.model.backbone)?;
    let mut c = config.clone();
    c.model.backbone = BackboneConfig::None;
    c.model.pretrained = false;
    Ok((Cow::Owned(c), Some(dim)))
}
