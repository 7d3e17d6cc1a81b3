//! The real data sets nobody on this project made: Flowers-102 and Omniglot, read from
//! `../shared/data` (the official layouts; its README), and their bad inputs on tiny copies in each
//! set's format (`fixtures/make_dataset_fixtures.py flowers102 omniglot`).
use harness::data::omniglot::{OmniglotDataset, OmniglotSplit};
use harness::data::pipeline::{self, BadImagePolicy, ImageSource, Normalization, TransformConfig};
use harness::data::{class_count, flowers102, omniglot, DataError, ImageList};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets").join(name)
}

/// `../shared/data/NAME` from the project's root; a missing folder fails the test and says where the
/// data is expected (these tests never pass without the data).
fn shared(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let path = root.join(name);
    assert!(
        path.is_dir(),
        "the real data set `{name}` is expected at {} (../shared/data/{name} from the project's root, as on every developer machine and in CI; see the README's Real data part for the official download)",
        path.display()
    );
    path
}

/// A scratch copy of a fixture folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn copy_of(name: &str, tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("harness-real-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&fixture(name), &dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn omniglot_config(root: &Path, split: OmniglotSplit, subset: bool) -> OmniglotDataset {
    OmniglotDataset { root: root.into(), folders: vec![], split, subset }
}

fn data_check(kind: &str, root: &Path, extra: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["data", "check", "--kind", kind, "--root"])
        .arg(root)
        .args(extra)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
}

fn class_range(items: &[harness::data::ImageItem]) -> (i64, i64) {
    let c: Vec<i64> = items.iter().map(|i| i.class).collect();
    (*c.iter().min().unwrap(), *c.iter().max().unwrap())
}

#[test]
fn flowers102_on_the_shared_copy_splits_classes_1_to_51_from_52_to_102() {
    let l = flowers102::load(&shared("flowers102"), false).unwrap();
    assert_eq!((class_count(&l.train), l.train.len()), flowers102::TRAIN_COUNTS);
    assert_eq!((class_count(&l.test), l.test.len()), flowers102::TEST_COUNTS);
    assert_eq!(l.train.len() + l.test.len(), flowers102::IMAGES);
    assert_eq!((class_range(&l.train), class_range(&l.test)), ((1, 51), (52, 102)));
    let first = l.train.iter().chain(&l.test).find(|i| i.path == Path::new("jpg/image_00001.jpg")).unwrap();
    assert_eq!(first.class, 77, "the data set's README: image 1 is class 77");
    assert!(l.missing_files().is_empty());
}

#[test]
fn omniglot_on_the_shared_copy_reads_242_characters_once_and_splits_by_alphabet() {
    let l = omniglot::load(&omniglot_config(&shared("omniglot"), OmniglotSplit::Alphabets, false)).unwrap();
    assert_eq!(class_count(&l.train) + class_count(&l.test), 242, "292 folders, Greek and Latin twice");
    assert_eq!(l.train.len() + l.test.len(), 242 * 20);
    // Balinese 24, Early_Aramaic 22, Greek 24, Japanese_(katakana) 47 | Korean 40, Latin 26, Sanskrit 42, Tagalog 17
    assert_eq!((class_count(&l.train), class_count(&l.test)), (117, 125));
    let alphabet = |i: &harness::data::ImageItem| i.path.iter().nth(1).unwrap().to_string_lossy().to_string();
    let train: std::collections::BTreeSet<String> = l.train.iter().map(alphabet).collect();
    let test: std::collections::BTreeSet<String> = l.test.iter().map(alphabet).collect();
    assert_eq!(train.into_iter().collect::<Vec<_>>(), ["Balinese", "Early_Aramaic", "Greek", "Japanese_(katakana)"]);
    assert_eq!(test.into_iter().collect::<Vec<_>>(), ["Korean", "Latin", "Sanskrit", "Tagalog"]);
    let merged = l.notes.iter().find(|n| n.starts_with("merged")).unwrap();
    assert!(merged.contains("merged       50 character folders") && merged.contains("Greek 24, Latin 26"), "{merged}");
    let by_char = omniglot::load(&omniglot_config(&shared("omniglot"), OmniglotSplit::Characters, false)).unwrap();
    assert_eq!((class_count(&by_char.train), class_count(&by_char.test)), (121, 121));
    assert_ne!(by_char.fingerprint(), l.fingerprint(), "the split rule is part of the fingerprint");
}

#[test]
fn data_check_prints_the_counts_of_both_real_sets_and_the_merged_characters() {
    let (ok, out) = data_check("flowers102", &shared("flowers102"), &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("train        51 classes, 3493 images") && out.contains("test         51 classes, 4696 images"),
        "{out}"
    );
    assert!(out.contains("a sample of 200 of the 8189 images decodes"), "{out}");
    let (ok, out) = data_check("omniglot", &shared("omniglot"), &["--decode"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("train        117 classes, 2340 images") && out.contains("test         125 classes, 2500 images"),
        "{out}"
    );
    assert!(
        out.contains("folders      images_background_small1, images_background_small2 (292 character folders read)"),
        "{out}"
    );
    assert!(out.contains("merged       50 character folders"), "{out}");
    assert!(out.contains("all 4840 images decode"), "{out}");
}

#[test]
fn flowers102_fixture_loads_as_a_subset_and_is_refused_as_the_full_set() {
    let l = flowers102::load(&fixture("flowers102"), true).unwrap();
    assert_eq!((l.train.len(), l.test.len()), (9, 9), "classes 1, 2, 51 | 52, 77, 102, three images each");
    assert_eq!((class_range(&l.train), class_range(&l.test)), ((1, 51), (52, 102)));
    let e = flowers102::load(&fixture("flowers102"), false).unwrap_err().to_string();
    assert!(e.contains("expected 51 classes and 3493 images, found 3 and 9"), "{e}");
}

#[test]
fn flowers102_without_imagelabels_mat_names_the_file_and_the_download() {
    let s = Scratch::copy_of("flowers102", "flowers-no-mat");
    std::fs::remove_file(s.0.join("imagelabels.mat")).unwrap();
    let e = flowers102::load(&s.0, true).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("imagelabels.mat is missing") && e.contains("102flowers.tgz"), "{e}");
}

#[test]
fn flowers102_with_fewer_images_than_labels_is_refused_unless_a_subset() {
    let s = Scratch::copy_of("flowers102", "flowers-count");
    std::fs::remove_file(s.0.join("jpg/image_00018.jpg")).unwrap();
    let e = flowers102::load(&s.0, false).unwrap_err().to_string();
    assert!(e.contains("imagelabels.mat") && e.contains("holds 18 labels but") && e.contains("holds 17 images"), "{e}");
    assert_eq!(flowers102::load(&s.0, true).unwrap().test.len(), 8, "a declared subset may lack images");
    // An image beyond the labels is never a subset.
    std::fs::copy(s.0.join("jpg/image_00001.jpg"), s.0.join("jpg/image_00019.jpg")).unwrap();
    let e = flowers102::load(&s.0, true).unwrap_err().to_string();
    assert!(e.contains("jpg/image_00019.jpg has no label"), "{e}");
}

#[test]
fn flowers102_with_a_label_outside_1_to_102_names_the_label_and_its_image() {
    let e = flowers102::load(&fixture("flowers102-bad-label"), true).unwrap_err().to_string();
    assert!(
        e.contains("imagelabels.mat") && e.contains("labels(5) = 103 is not a class in 1..=102 (image_00005.jpg)"),
        "{e}"
    );
}

#[test]
fn flowers102_with_an_image_that_is_not_a_jpeg_names_it_before_any_run() {
    let s = Scratch::copy_of("flowers102", "flowers-bad-image");
    std::fs::write(s.0.join("jpg/image_00007.jpg"), b"<html>not found</html>").unwrap();
    let e = flowers102::load(&s.0, true).unwrap_err();
    assert!(matches!(e, DataError::Image { .. }), "{e}");
    assert!(e.to_string().contains("image_00007.jpg: cannot read image: not a JPEG"), "{e}");
    // The up-front check of a sweep refuses the data set, so no run starts.
    let config: harness::data::DatasetConfig =
        serde_yaml::from_str(&format!("{{kind: flowers102, root: '{}', subset: true}}", s.0.display())).unwrap();
    assert!(config.availability().unwrap_err().contains("image_00007.jpg"));
    // A truncated JPEG starts as a JPEG does: `data check --decode` names it.
    let good = std::fs::read(s.0.join("jpg/image_00001.jpg")).unwrap();
    std::fs::write(s.0.join("jpg/image_00007.jpg"), &good[..good.len() / 2]).unwrap();
    let (ok, out) = data_check("flowers102", &s.0, &["--subset", "--decode"]);
    assert!(!ok && out.contains("image_00007.jpg: not a complete JPEG"), "{out}");
}

#[test]
fn omniglot_merges_characters_by_content_not_by_name() {
    let l = omniglot::load(&omniglot_config(&fixture("omniglot"), OmniglotSplit::Alphabets, false)).unwrap();
    // 8 folders: b/Beta/character01 repeats a/Beta/character01 and b/Gamma/character01 repeats
    // a/Alpha/character02; b/Beta/character02 shares only its name with a/Beta/character02.
    assert_eq!(class_count(&l.train) + class_count(&l.test), 6);
    let merged = l.notes.iter().find(|n| n.starts_with("merged")).unwrap();
    assert!(merged.contains("merged       2 character folders") && merged.contains("Beta 1, Gamma 1"), "{merged}");
    let dirs: std::collections::BTreeSet<String> =
        l.train.iter().chain(&l.test).map(|i| i.path.parent().unwrap().display().to_string()).collect();
    assert!(
        dirs.contains("images_background_b/Beta/character02") && dirs.contains("images_background_a/Beta/character02")
    );
    assert!(
        !dirs.contains("images_background_b/Beta/character01")
            && !dirs.contains("images_background_b/Gamma/character01")
    );
    // Alphabets Alpha, Beta | Gamma (only its new character02 left).
    assert_eq!((class_count(&l.train), class_count(&l.test)), (5, 1));
    assert_eq!((l.train.len(), l.test.len()), (100, 20));
    let by_char = omniglot::load(&omniglot_config(&fixture("omniglot"), OmniglotSplit::Characters, false)).unwrap();
    assert_eq!((class_count(&by_char.train), class_count(&by_char.test)), (3, 3));
}

#[test]
fn omniglot_refuses_a_missing_drawing_a_non_png_and_a_known_folder_with_other_counts() {
    let s = Scratch::copy_of("omniglot", "omniglot-bad");
    let load = |subset| omniglot::load(&omniglot_config(&s.0, OmniglotSplit::Alphabets, subset));
    std::fs::remove_file(s.0.join("images_background_a/Alpha/character01/0001_20.png")).unwrap();
    let e = load(false).unwrap_err().to_string();
    assert!(e.contains("images_background_a/Alpha/character01 holds 19 drawings") && e.contains("subset: true"), "{e}");
    assert!(load(true).is_ok(), "a declared subset may lack drawings");
    std::fs::write(s.0.join("images_background_b/Gamma/character02/0010_03.png"), b"GIF89a").unwrap();
    let e = load(true).unwrap_err().to_string();
    assert!(e.contains("Gamma/character02/0010_03.png: cannot read image: not a PNG"), "{e}");
    let t = Scratch::copy_of("omniglot", "omniglot-known");
    std::fs::rename(t.0.join("images_background_a"), t.0.join("images_background_small1")).unwrap();
    let e = omniglot::load(&omniglot_config(&t.0, OmniglotSplit::Alphabets, false)).unwrap_err().to_string();
    assert!(
        e.contains(
            "images_background_small1 holds 2 alphabets and 4 characters; the distributed folder holds 5 and 136"
        ),
        "{e}"
    );
    let missing = omniglot::load(&omniglot_config(&t.0.join("nowhere"), OmniglotSplit::Alphabets, false)).unwrap_err();
    assert!(
        missing.to_string().contains("nowhere is missing") && missing.to_string().contains("brendenlake"),
        "{missing}"
    );
}

/// The image source of a list's test split at `size` px, as a run's evaluation reads it.
fn test_source(l: &ImageList, size: u32) -> ImageSource {
    ImageSource {
        paths: l.test.iter().map(|i| l.root.join(&i.path)).collect(),
        labels: l.test.iter().map(|i| i.class).collect(),
        transform: TransformConfig {
            size,
            resize: size,
            flip: 0.0,
            normalization: Normalization::Imagenet,
            ..Default::default()
        },
        train: false,
        on_bad_image: BadImagePolicy::Fail,
    }
}

#[test]
fn one_bit_drawings_become_three_equal_grey_channels_with_antialiased_edges() {
    let l = omniglot::load(&omniglot_config(&shared("omniglot"), OmniglotSplit::Alphabets, false)).unwrap();
    let src = test_source(&l, 28);
    let b = pipeline::build_batch(&src, &[0, 1, 2, 3], 0, 0).unwrap();
    assert_eq!(b.images.size(), [4, 3, 28, 28]);
    // Undo the ImageNet normalisation: the three channels are the same grey level.
    let mean = tch::Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = tch::Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    let grey = (&b.images * std + mean) * 255.0;
    let spread = (grey.max_dim(1, false).0 - grey.min_dim(1, false).0).abs().max().double_value(&[]);
    assert!(spread < 0.01, "channels differ by {spread}");
    let v = Vec::<f32>::try_from(grey.select(1, 0).flatten(0, -1)).unwrap();
    let white = v.iter().filter(|&&x| x > 254.5).count() as f64 / v.len() as f64;
    let between = v.iter().filter(|&&x| x > 5.0 && x < 250.0).count();
    assert!(white > 0.5, "drawings are mostly white paper: {white}");
    assert!(between > 0, "a 105 → 28 px antialiased resize leaves grey edges");
    assert!(v.iter().any(|&x| x < 128.0), "and dark strokes");
}

#[test]
fn a_protocol_sweep_on_omniglot_checks_the_data_up_front_and_runs_its_folds() {
    let dir = std::env::temp_dir().join(format!("harness-real-protocol-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sweep = |root: &Path| {
        format!(
            r#"
name: omniglot-folds
data: [{{kind: omniglot, root: '{root}'}}]
losses: [{{kind: softmax_norm}}]
dims: [8]
seeds: [0]
model: {{backbone: {{kind: small_cnn, channels: [8]}}}}
train: {{device: cpu, epochs: 2, batch_size: 32, sampler: {{kind: class_balanced, m: 4}}, workers: 1, transform: {{size: 16, resize: 16, scale: [0.8, 1.0], flip: 0, normalization: imagenet}}}}
eval: {{recall_at: [1], kmeans_restarts: 1}}
protocol:
  split: {{kind: folds, k: 2}}
  selection: {{metric: MAP@R, every: 1, patience: 1}}
  search: {{sampler: random, trials: 1, seed: 0}}
  spaces: {{softmax_norm: {{la: {{low: 10, high: 30}}}}}}
"#,
            root = root.display()
        )
    };
    let run = |yaml: String| {
        let file = dir.join("sweep.yaml");
        std::fs::write(&file, yaml).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("sweep")
            .arg(&file)
            .arg("--results")
            .arg(dir.join("results"))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    // A missing download stops the sweep before any run, naming where the data is expected.
    let (ok, err) = run(sweep(&dir.join("no-omniglot-here")));
    assert!(!ok && err.contains("no-omniglot-here is missing"), "{err}");
    assert!(
        !dir.join("results/runs").exists() || std::fs::read_dir(dir.join("results/runs")).unwrap().next().is_none()
    );
    let (ok, err) = run(sweep(&shared("omniglot")));
    assert!(ok, "{err}");
    let records = harness::store::read_records(&dir.join("results")).unwrap();
    let finals: Vec<_> = records.iter().filter(|r| r.outcome.metrics.is_some()).collect();
    assert_eq!(finals.len(), 4, "the tuned and the default setting, one model per fold");
    let folds: std::collections::BTreeSet<&str> = finals.iter().map(|r| r.outcome.split_fingerprint.as_str()).collect();
    assert!(folds.len() == 2 && folds.iter().all(|f| f.contains("-fold")), "{folds:?}");
    let searched: Vec<_> = records.iter().filter_map(|r| r.outcome.selection.as_ref()).collect();
    // Two folds of the 117 training characters: 58 or 59 validate, the rest train, 20 drawings each.
    assert!(searched.iter().any(|s| (s.training_classes, s.validation_classes) == (59, 58)), "{searched:?}");
    assert!(searched.iter().all(|s| s.validation_items == s.validation_classes * 20));
    let _ = std::fs::remove_dir_all(&dir);
}
