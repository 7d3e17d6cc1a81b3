//! Data sets (paper.md §4): the three benchmarks read from their distributed files, image folders,
//! precomputed features and the embedded synthetic images; the class-disjoint split, count checks
//! and the split fingerprint; the image pipeline and the batch samplers.
pub mod cars196;
pub mod cub;
pub mod flowers102;
pub mod folder;
mod mat;
pub mod omniglot;
pub mod parts;
pub mod pipeline;
pub mod sampler;
pub mod sop;
pub mod synthetic;
pub mod views;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A data set that cannot be used, with what was expected and what to do.
#[derive(Debug, Error)]
pub enum DataError {
    /// A file the data set needs is missing.
    #[error("{dataset}: {path} is missing; expected under {root}: {expected}. {source_hint}")]
    Missing {
        /// The data set's name.
        dataset: &'static str,
        /// The missing path.
        path: PathBuf,
        /// The configured root.
        root: PathBuf,
        /// The files the loader expects.
        expected: &'static str,
        /// Where the data set is published.
        source_hint: &'static str,
    },
    /// A file could not be parsed.
    #[error("{file}:{line}: {reason}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The 1-based line (0 when not line-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The split does not have the data set's standard size.
    #[error("{dataset} {split} split: expected {expected_classes} classes and {expected_images} images, found {classes} and {images}. A partial copy must be declared (`subset: true` in the data config, `--subset` for `harness data check`); a full copy with other counts is not the standard data set")]
    Counts {
        /// The data set.
        dataset: &'static str,
        /// `train` or `test`.
        split: &'static str,
        /// Standard class count.
        expected_classes: usize,
        /// Standard image count.
        expected_images: usize,
        /// Classes found.
        classes: usize,
        /// Images found.
        images: usize,
    },
    /// An image could not be read or decoded.
    #[error("{path}: cannot read image: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's or the file system's message.
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("data config: {0}")]
    Config(String),
}

/// Which data set a run uses, as written in YAML (`kind: cub`, `root: …`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DatasetConfig {
    /// Procedurally generated images (the embedded default).
    Synthetic(synthetic::SyntheticConfig),
    /// CUB-200-2011.
    Cub(ImageDataset),
    /// Cars196.
    Cars196(ImageDataset),
    /// Stanford Online Products.
    Sop(ImageDataset),
    /// Oxford Flowers-102 (`jpg/`, `imagelabels.mat`).
    Flowers102(ImageDataset),
    /// Omniglot's background folders (`<alphabet>/character<NN>/*.png`).
    Omniglot(omniglot::OmniglotDataset),
    /// A generic folder `root/<class>/<image>`.
    Folder(FolderDataset),
    /// Precomputed backbone features (train only an embedding head).
    Features(FeaturesDataset),
    /// Images generated in memory: identity in a part, nuisance per image, M views per class.
    Parts(parts::PartsConfig),
    /// Feature vectors generated in memory: classes of M distinct views behind nuisance and a
    /// non-linear map (for long K × τ studies on a CPU).
    Views(views::ViewsConfig),
}

/// Settings of a data set read from image files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDataset {
    /// Folder holding the data set as distributed.
    pub root: PathBuf,
    /// A deliberately partial copy: skip the standard count assertion.
    #[serde(default)]
    pub subset: bool,
}

/// Settings of a generic image folder (it has no standard size, so no `subset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderDataset {
    /// Folder holding one sub-folder per class.
    pub root: PathBuf,
}

/// Settings of precomputed features (`.npy`, float32 N × d and int64 N, per split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesDataset {
    /// Training features.
    pub train_features: PathBuf,
    /// Training labels.
    pub train_labels: PathBuf,
    /// Test features.
    pub test_features: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
}

impl DatasetConfig {
    /// Short name used in ids, tables and file names.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetConfig::Synthetic(_) => "synthetic",
            DatasetConfig::Cub(_) => "cub",
            DatasetConfig::Cars196(_) => "cars196",
            DatasetConfig::Sop(_) => "sop",
            DatasetConfig::Flowers102(_) => "flowers102",
            DatasetConfig::Omniglot(_) => "omniglot",
            DatasetConfig::Folder(_) => "folder",
            DatasetConfig::Features(_) => "features",
            DatasetConfig::Views(_) => "views",
            DatasetConfig::Parts(_) => "parts",
        }
    }

    /// The true number of distinct views (modes) per class of a generated data set; `None` where
    /// it is unknown (real data, precomputed features).
    pub fn views_per_class(&self) -> Option<i64> {
        match self {
            DatasetConfig::Synthetic(s) => Some(s.modes_per_class),
            DatasetConfig::Parts(p) => Some(p.views_per_class),
            DatasetConfig::Views(v) => Some(v.views_per_class),
            _ => None,
        }
    }

    /// Whether the data set is generated in memory from its settings (so its floor is cheap).
    pub fn is_generated(&self) -> bool {
        self.views_per_class().is_some()
    }

    /// Whether a report shows this data set's floor (its raw test inputs and the untrained model):
    /// generated data, and Omniglot, whose test split at a character's size fits in memory.
    pub fn has_floor(&self) -> bool {
        self.is_generated() || matches!(self, DatasetConfig::Omniglot(_))
    }

    /// Whether the data set can be read as configured: an image data set's index files load and
    /// hold its standard counts, precomputed features' four files exist; generated data always can.
    pub fn availability(&self) -> Result<(), String> {
        if let DatasetConfig::Features(f) = self {
            let files = [
                ("train_features", &f.train_features),
                ("train_labels", &f.train_labels),
                ("test_features", &f.test_features),
                ("test_labels", &f.test_labels),
            ];
            let missing: Vec<String> =
                files.iter().filter(|(_, p)| !p.is_file()).map(|(k, p)| format!("`{k}` {}", p.display())).collect();
            if !missing.is_empty() {
                return Err(format!("missing file(s): {}", missing.join(", ")));
            }
        }
        match self.image_list() {
            Some(Err(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    }

    /// The image list of an image data set (None for synthetic and features).
    pub fn image_list(&self) -> Option<Result<ImageList, DataError>> {
        Some(match self {
            DatasetConfig::Cub(d) => cub::load(&d.root, d.subset),
            DatasetConfig::Cars196(d) => cars196::load(&d.root, d.subset),
            DatasetConfig::Sop(d) => sop::load(&d.root, d.subset),
            DatasetConfig::Folder(d) => folder::load(&d.root),
            DatasetConfig::Flowers102(d) => flowers102::load(&d.root, d.subset),
            DatasetConfig::Omniglot(d) => omniglot::load(d),
            DatasetConfig::Synthetic(_)
            | DatasetConfig::Features(_)
            | DatasetConfig::Views(_)
            | DatasetConfig::Parts(_) => return None,
        })
    }
}

/// One image of a split: path relative to the data set's root and its original class id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageItem {
    /// Path relative to the root.
    pub path: PathBuf,
    /// Class id as the data set numbers it.
    pub class: i64,
}

/// A data set's class-disjoint split as a list of image files.
#[derive(Debug, Clone)]
pub struct ImageList {
    /// The data set's root folder.
    pub root: PathBuf,
    /// Training images.
    pub train: Vec<ImageItem>,
    /// Test images.
    pub test: Vec<ImageItem>,
    /// What the loader found worth saying (`data check` prints each line), e.g. merged duplicates.
    pub notes: Vec<String>,
}

impl ImageList {
    /// Stable fingerprint of the split: SHA-256 of the sorted `split\tpath\tclass` lines (16 hex digits).
    pub fn fingerprint(&self) -> String {
        let mut lines: Vec<String> = self
            .train
            .iter()
            .map(|i| ("train", i))
            .chain(self.test.iter().map(|i| ("test", i)))
            .map(|(s, i)| format!("{s}\t{}\t{}", i.path.display(), i.class))
            .collect();
        lines.sort();
        fingerprint_lines(&lines)
    }

    /// Files of either split that do not exist under the root.
    pub fn missing_files(&self) -> Vec<PathBuf> {
        self.train.iter().chain(&self.test).map(|i| self.root.join(&i.path)).filter(|p| !p.is_file()).collect()
    }
}

/// SHA-256 of already sorted lines, as 16 hex digits.
pub fn fingerprint_lines(lines: &[String]) -> String {
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Number of distinct classes among `items`.
pub fn class_count(items: &[ImageItem]) -> usize {
    items.iter().map(|i| i.class).collect::<std::collections::BTreeSet<_>>().len()
}

/// Checks a split against the standard sizes unless the config declares a subset.
pub fn check_counts(
    dataset: &'static str,
    split: &'static str,
    items: &[ImageItem],
    expected: (usize, usize),
    subset: bool,
) -> Result<(), DataError> {
    let (classes, images) = (class_count(items), items.len());
    if subset || (classes, images) == expected {
        return Ok(());
    }
    Err(DataError::Counts {
        dataset,
        split,
        expected_classes: expected.0,
        expected_images: expected.1,
        classes,
        images,
    })
}

/// Reads a text file of the data set, or says which file is missing and where the data set comes from.
pub fn read_text(
    dataset: &'static str,
    root: &Path,
    rel: &str,
    expected: &'static str,
    source_hint: &'static str,
) -> Result<(PathBuf, String), DataError> {
    let path = root.join(rel);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok((path, t)),
        Err(_) => Err(DataError::Missing { dataset, path, root: root.into(), expected, source_hint }),
    }
}

/// Maps original class ids to 0..C in ascending order; returns the new label of every item.
pub fn reindex(items: &[ImageItem]) -> Vec<i64> {
    let classes: Vec<i64> =
        items.iter().map(|i| i.class).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    items.iter().map(|i| classes.binary_search(&i.class).unwrap() as i64).collect()
}
