//! A run's data as training and test splits: in memory (synthetic images, precomputed features) or
//! read from image files by worker threads; one batch iterator over either kind.
use crate::config::TrainConfig;
use crate::data::pipeline::{BatchStream, ImageSource};
use crate::data::{reindex, synthetic, DatasetConfig, FeaturesDataset, ImageItem};
use crate::model::EmbeddingModel;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Tensor};

/// One split of a data set.
pub(super) enum Split {
    /// Inputs and labels held in memory.
    Memory { x: Tensor, y: Tensor },
    /// Image files decoded and transformed batch by batch.
    Images(Arc<ImageSource>),
    /// `views` training items drawn anew every epoch (`fresh_train_items`), with their labels;
    /// `rows` keeps only those rows of each epoch's draw (a class subset), `None` all of them.
    Fresh { config: crate::data::views::ViewsConfig, y: Tensor, rows: Option<Tensor> },
}

/// A batch for one step: inputs, labels, and how many images of it were skipped as unreadable.
pub(super) struct TrainBatch {
    pub x: Tensor,
    pub y: Tensor,
    pub skipped: usize,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Split::Memory { y, .. } | Split::Fresh { y, .. } => y.size()[0] as usize,
            Split::Images(s) => s.labels.len(),
        }
    }

    /// Labels in split order (0..C).
    pub fn labels(&self) -> Vec<i64> {
        match self {
            Split::Memory { y, .. } | Split::Fresh { y, .. } => Vec::<i64>::try_from(y).unwrap_or_default(),
            Split::Images(s) => s.labels.clone(),
        }
    }

    /// The items of the classes at `positions` of the sorted label list (labels 0..C), relabelled
    /// 0..positions.len() in that order, and their count of classes: a class-disjoint part of a split.
    pub fn classes(&self, positions: &[usize]) -> Result<Split> {
        let labels = self.labels();
        let mut new_label = std::collections::HashMap::new();
        let mut keep: Vec<usize> = positions.to_vec();
        keep.sort_unstable();
        for (j, &c) in keep.iter().enumerate() {
            new_label.insert(c as i64, j as i64);
        }
        let rows: Vec<usize> = (0..labels.len()).filter(|&i| new_label.contains_key(&labels[i])).collect();
        let y: Vec<i64> = rows.iter().map(|&i| new_label[&labels[i]]).collect();
        let idx = Tensor::from_slice(&rows.iter().map(|&i| i as i64).collect::<Vec<_>>());
        Ok(match self {
            Split::Memory { x, .. } => Split::Memory { x: x.index_select(0, &idx), y: Tensor::from_slice(&y) },
            Split::Fresh { config, rows: old, .. } => {
                let rows = old.as_ref().map_or(idx.shallow_clone(), |o| o.index_select(0, &idx));
                Split::Fresh { config: config.clone(), y: Tensor::from_slice(&y), rows: Some(rows) }
            }
            Split::Images(src) => Split::Images(Arc::new(ImageSource {
                paths: rows.iter().map(|&i| src.paths[i].clone()).collect(),
                labels: y,
                transform: src.transform.clone(),
                train: src.train,
                on_bad_image: src.on_bad_image,
            })),
        })
    }

    /// The batches of one epoch, in order, whatever the split holds.
    pub fn batches<'a>(
        &'a self,
        batches: Vec<Vec<usize>>,
        workers: usize,
        seed: u64,
        epoch: u64,
    ) -> Box<dyn Iterator<Item = Result<TrainBatch>> + 'a> {
        match self {
            Split::Memory { x, y } => memory_batches(x.shallow_clone(), y, batches),
            Split::Fresh { config, y, rows } => {
                let x = crate::data::views::generate_epoch(config, epoch).x;
                let x = rows.as_ref().map_or(x.shallow_clone(), |r| x.index_select(0, r));
                memory_batches(x, y, batches)
            }
            Split::Images(src) => {
                Box::new(BatchStream::start(src.clone(), batches, workers, 2, seed, epoch).map(|b| {
                    let b = b?;
                    Ok(TrainBatch { x: b.images, y: b.labels, skipped: b.skipped.len() })
                }))
            }
        }
    }
}

/// The batches of an epoch from inputs and labels held in memory.
fn memory_batches<'a>(
    x: Tensor,
    y: &'a Tensor,
    batches: Vec<Vec<usize>>,
) -> Box<dyn Iterator<Item = Result<TrainBatch>> + 'a> {
    Box::new(batches.into_iter().map(move |b| {
        let idx = Tensor::from_slice(&b.iter().map(|&i| i as i64).collect::<Vec<_>>());
        Ok(TrainBatch { x: x.index_select(0, &idx), y: y.index_select(0, &idx), skipped: 0 })
    }))
}

/// Both splits of a run's data set, with what the model and loss need to know of it.
pub(super) struct LoadedData {
    pub train: Split,
    pub test: Split,
    pub num_classes: i64,
    /// Input size of precomputed features (the model then has no backbone).
    pub input_dim: Option<i64>,
    pub fingerprint: String,
}

/// A data set's training split alone, with its class count, input size and a fingerprint of its
/// settings and items: the only data the search phase of a protocol can reach (nothing of the test
/// split is generated, read or decoded here).
pub(super) fn load_train(cfg: &DatasetConfig, train: &TrainConfig) -> Result<(Split, i64, Option<i64>, String)> {
    fn settings<S: serde::Serialize>(kind: &str, s: &S) -> String {
        let text = serde_json::to_string(s).unwrap_or_default();
        format!("{kind}-train-{}", crate::data::fingerprint_lines(&[text]))
    }
    Ok(match cfg {
        DatasetConfig::Synthetic(s) => {
            let a = synthetic::generate(s, false);
            (Split::Memory { x: a.images, y: a.labels }, s.classes, None, settings("synthetic", s))
        }
        DatasetConfig::Parts(c) => {
            let a = crate::data::parts::generate(c, false);
            (Split::Memory { x: a.images, y: a.labels }, c.classes, None, settings("parts", c))
        }
        DatasetConfig::Views(v) => {
            let a = crate::data::views::generate(v, false);
            let split = if v.fresh_train_items {
                Split::Fresh { config: v.clone(), y: a.labels, rows: None }
            } else {
                Split::Memory { x: a.x, y: a.labels }
            };
            (split, v.classes, Some(v.input_dim), settings("views", v))
        }
        DatasetConfig::Features(f) => {
            let xs = crate::npy::read_embeddings(&f.train_features)?;
            let items: Vec<ImageItem> = Vec::<i64>::try_from(&crate::npy::read_labels(&f.train_labels)?)?
                .into_iter()
                .map(|c| ImageItem { path: PathBuf::new(), class: c })
                .collect();
            if xs.size()[0] != items.len() as i64 {
                bail!(
                    "{} has {} rows but {} has {} labels",
                    f.train_features.display(),
                    xs.size()[0],
                    f.train_labels.display(),
                    items.len()
                );
            }
            let y = reindex(&items);
            let classes = y.iter().max().map_or(0, |m| m + 1);
            let (input, hash) = (xs.size()[1], sha2_hex(&xs));
            (
                Split::Memory { x: xs, y: Tensor::from_slice(&y) },
                classes,
                Some(input),
                format!("features-train-{}", &hash[..16]),
            )
        }
        DatasetConfig::Cub(_)
        | DatasetConfig::Cars196(_)
        | DatasetConfig::Sop(_)
        | DatasetConfig::Folder(_)
        | DatasetConfig::Flowers102(_)
        | DatasetConfig::Omniglot(_) => {
            let list = cfg.image_list().context("an image data set lists its images")??;
            let lines: Vec<String> =
                list.train.iter().map(|i| format!("train\t{}\t{}", i.path.display(), i.class)).collect();
            let source = ImageSource {
                paths: list.train.iter().map(|i| list.root.join(&i.path)).collect(),
                labels: reindex(&list.train),
                transform: train.transform.clone(),
                train: true,
                on_bad_image: train.on_bad_image,
            };
            let classes = crate::data::class_count(&list.train) as i64;
            (Split::Images(Arc::new(source)), classes, None, crate::data::fingerprint_lines(&lines))
        }
    })
}

/// Loads (or generates) the data set of a run.
pub(super) fn load_data(cfg: &DatasetConfig, train: &TrainConfig) -> Result<LoadedData> {
    match cfg {
        DatasetConfig::Synthetic(s) => {
            let (a, b) = (synthetic::generate(s, false), synthetic::generate(s, true));
            let mut names: Vec<String> = a
                .names
                .iter()
                .map(|n| format!("train\t{n}"))
                .chain(b.names.iter().map(|n| format!("test\t{n}")))
                .collect();
            names.sort();
            Ok(LoadedData {
                fingerprint: format!("synthetic-{}", crate::data::fingerprint_lines(&names)),
                num_classes: s.classes,
                input_dim: None,
                train: Split::Memory { x: a.images, y: a.labels },
                test: Split::Memory { x: b.images, y: b.labels },
            })
        }
        DatasetConfig::Features(f) => load_features(f),
        DatasetConfig::Parts(c) => {
            let (a, b) = (crate::data::parts::generate(c, false), crate::data::parts::generate(c, true));
            generated("parts", c, (a.images, a.labels), (b.images, b.labels), c.classes, None)
        }
        DatasetConfig::Views(v) => {
            let (a, b) = (crate::data::views::generate(v, false), crate::data::views::generate(v, true));
            let y = a.labels.shallow_clone();
            let mut data = generated("views", v, (a.x, a.labels), (b.x, b.labels), v.classes, Some(v.input_dim))?;
            if v.fresh_train_items {
                data.train = Split::Fresh { config: v.clone(), y, rows: None };
            }
            Ok(data)
        }
        DatasetConfig::Cub(_)
        | DatasetConfig::Cars196(_)
        | DatasetConfig::Sop(_)
        | DatasetConfig::Folder(_)
        | DatasetConfig::Flowers102(_)
        | DatasetConfig::Omniglot(_) => {
            let list = cfg.image_list().context("an image data set lists its images")??;
            let source = |items: &[ImageItem], is_train: bool| ImageSource {
                paths: items.iter().map(|i| list.root.join(&i.path)).collect(),
                labels: reindex(items),
                transform: train.transform.clone(),
                train: is_train,
                on_bad_image: train.on_bad_image,
            };
            Ok(LoadedData {
                train: Split::Images(Arc::new(source(&list.train, true))),
                test: Split::Images(Arc::new(source(&list.test, false))),
                num_classes: crate::data::class_count(&list.train) as i64,
                input_dim: None,
                fingerprint: list.fingerprint(),
            })
        }
    }
}

/// A data set generated in memory from `settings`: its two splits, fingerprinted by the settings
/// (the same settings always generate the same data).
fn generated<S: serde::Serialize>(
    kind: &str,
    settings: &S,
    (train_x, train_y): (Tensor, Tensor),
    (test_x, test_y): (Tensor, Tensor),
    num_classes: i64,
    input_dim: Option<i64>,
) -> Result<LoadedData> {
    let text = serde_json::to_string(settings).with_context(|| format!("{kind} settings serialise"))?;
    Ok(LoadedData {
        fingerprint: format!("{kind}-{}", crate::data::fingerprint_lines(&[text])),
        num_classes,
        input_dim,
        train: Split::Memory { x: train_x, y: train_y },
        test: Split::Memory { x: test_x, y: test_y },
    })
}

fn load_features(f: &FeaturesDataset) -> Result<LoadedData> {
    let load = |x: &Path, y: &Path| -> Result<(Tensor, Tensor)> {
        let xs = crate::npy::read_embeddings(x)?;
        let ys = crate::npy::read_labels(y)?;
        if xs.size()[0] != ys.size()[0] {
            bail!("{} has {} rows but {} has {} labels", x.display(), xs.size()[0], y.display(), ys.size()[0]);
        }
        let items: Vec<ImageItem> =
            Vec::<i64>::try_from(&ys)?.into_iter().map(|c| ImageItem { path: PathBuf::new(), class: c }).collect();
        Ok((xs, Tensor::from_slice(&reindex(&items))))
    };
    let (tx, ty) = load(&f.train_features, &f.train_labels)?;
    let (vx, vy) = load(&f.test_features, &f.test_labels)?;
    if tx.size()[1] != vx.size()[1] {
        bail!("train features have {} columns, test features {}", tx.size()[1], vx.size()[1]);
    }
    let num_classes = i64::try_from(ty.max())? + 1;
    let mut h = sha2_hex(&tx);
    h.push_str(&sha2_hex(&vx));
    Ok(LoadedData {
        fingerprint: format!("features-{}", &h[..16]),
        num_classes,
        input_dim: Some(tx.size()[1]),
        train: Split::Memory { x: tx, y: ty },
        test: Split::Memory { x: vx, y: vy },
    })
}

fn sha2_hex(t: &Tensor) -> String {
    use sha2::{Digest, Sha256};
    let v = Vec::<f32>::try_from(t.view([-1])).unwrap_or_default();
    let mut h = Sha256::new();
    for x in v {
        h.update(x.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The indices 0..n in order, in batches of `size` (the last may be shorter): a split read whole.
pub(super) fn index_chunks(n: usize, size: usize) -> Vec<Vec<usize>> {
    (0..n).collect::<Vec<_>>().chunks(size.max(1)).map(<[usize]>::to_vec).collect()
}

/// Embeds the test split in order, in evaluation mode; returns embeddings and labels on `device`,
/// and how many test images were left out as unreadable (`on_bad_image: skip`).
pub(super) fn embed_test(
    model: &EmbeddingModel,
    test: &Split,
    device: Device,
    t: &TrainConfig,
) -> Result<(Tensor, Tensor, usize)> {
    let n = test.len();
    let chunk = match test {
        Split::Memory { .. } | Split::Fresh { .. } => 256,
        Split::Images(_) => t.batch_size.max(1) * 2,
    };
    let batches = index_chunks(n, chunk);
    tch::no_grad(|| {
        let (mut embs, mut labels, mut skipped) = (vec![], vec![], 0);
        for b in test.batches(batches, t.workers, 0, 0) {
            let b = b?;
            skipped += b.skipped;
            embs.push(model.forward(&b.x.to_device(device), false));
            labels.push(b.y.to_device(device));
        }
        Ok((Tensor::cat(&embs, 0), Tensor::cat(&labels, 0), skipped))
    })
}
