//! The real data-set loaders on tiny copies written in each data set's distributed format by
//! `fixtures/make_dataset_fixtures.py`, the count assertions, the fingerprint, and the pipeline.
use harness::data::pipeline::{self, BadImagePolicy, BatchStream, ImageSource, Normalization, TransformConfig};
use harness::data::{cars196, check_counts, class_count, cub, folder, sop, DataError, ImageItem};
use std::path::PathBuf;
use std::sync::Arc;

fn root(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets").join(name)
}

fn classes(items: &[ImageItem]) -> Vec<i64> {
    items.iter().map(|i| i.class).collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

#[test]
fn cub_splits_by_class_number_and_ignores_the_classification_split() {
    let l = cub::load(&root("cub"), true).unwrap();
    assert_eq!(classes(&l.train), vec![1, 2, 100]);
    assert_eq!(classes(&l.test), vec![101, 150, 200]);
    assert_eq!((l.train.len(), l.test.len()), (9, 9));
    assert!(l.missing_files().is_empty());
    let e = cub::load(&root("cub"), false).unwrap_err().to_string();
    assert!(e.contains("expected 100 classes and 5864 images, found 3 and 9") && e.contains("subset: true"), "{e}");
}

#[test]
fn cars196_reads_the_mat_file_and_ignores_its_test_flag() {
    let l = cars196::load(&root("cars196"), true).unwrap();
    assert_eq!(classes(&l.train), vec![1, 50, 98]);
    assert_eq!(classes(&l.test), vec![99, 196]);
    assert_eq!((l.train.len(), l.test.len()), (9, 6));
    assert!(l.train[0].path.starts_with("car_ims"));
    assert!(l.missing_files().is_empty());
    assert!(cars196::load(&root("cars196"), false).is_err());
}

#[test]
fn sop_reads_both_lists() {
    let l = sop::load(&root("sop"), true).unwrap();
    assert_eq!(classes(&l.train), vec![1, 2, 11318]);
    assert_eq!(classes(&l.test), vec![11319, 11320, 22634]);
    assert_eq!((l.train.len(), l.test.len()), (8, 8));
    assert!(l.missing_files().is_empty());
}

#[test]
fn folder_splits_sorted_classes_in_halves() {
    let l = folder::load(&root("folder")).unwrap();
    assert_eq!(class_count(&l.train), 3);
    assert_eq!(class_count(&l.test), 2);
    assert!(l.train.iter().all(|i| ["ant", "bee", "cat"].iter().any(|c| i.path.starts_with(c))));
}

#[test]
fn fingerprints_are_stable_and_change_with_the_split() {
    let a = cub::load(&root("cub"), true).unwrap();
    assert_eq!(a.fingerprint(), cub::load(&root("cub"), true).unwrap().fingerprint());
    // Golden value: the sorted `split\tpath\tclass` lines of the committed fixture.
    assert_eq!(a.fingerprint(), include_str!("fixtures/datasets/cub.fingerprint").trim());
    let mut b = a.clone();
    b.test[0].class = 102;
    assert_ne!(a.fingerprint(), b.fingerprint());
}

#[test]
fn count_assertions_accept_exactly_the_standard_sizes() {
    let full: Vec<ImageItem> =
        (0..5_864).map(|i| ImageItem { path: format!("{i}.jpg").into(), class: 1 + (i % 100) as i64 }).collect();
    assert!(check_counts("cub", "train", &full, (100, 5_864), false).is_ok());
    assert!(check_counts("cub", "train", &full[1..], (100, 5_864), false).is_err());
    assert!(check_counts("cub", "train", &full[1..], (100, 5_864), true).is_ok());
}

#[test]
fn a_missing_data_set_says_which_files_and_where_it_comes_from() {
    let e = cub::load(&root("nowhere"), false).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }));
    let msg = e.to_string();
    assert!(msg.contains("images.txt") && msg.contains("Caltech"), "{msg}");
    let e = cars196::load(&root("nowhere"), false).unwrap_err().to_string();
    assert!(e.contains("cars_annos.mat") && e.contains("car_ims"), "{e}");
}

fn source(train: bool, size: u32, normalization: Normalization, policy: BadImagePolicy) -> ImageSource {
    let l = folder::load(&root("folder")).unwrap();
    let items: Vec<&ImageItem> = l.train.iter().chain(&l.test).collect();
    ImageSource {
        paths: items.iter().map(|i| l.root.join(&i.path)).collect(),
        labels: items.iter().map(|i| i.class).collect(),
        transform: TransformConfig { size, resize: size + size / 7, normalization, ..Default::default() },
        train,
        on_bad_image: policy,
    }
}

#[test]
fn batches_have_the_right_shape_and_value_range_for_each_preset() {
    let s = source(true, 24, Normalization::BnInception, BadImagePolicy::Fail);
    let b = pipeline::build_batch(&s, &[0, 1, 2], 1, 0).unwrap();
    assert_eq!(b.images.size(), vec![3, 3, 24, 24]);
    let (lo, hi) = (f64::try_from(b.images.min()).unwrap(), f64::try_from(b.images.max()).unwrap());
    assert!(lo >= -128.0 && hi <= 255.0 - 104.0 && hi - lo > 100.0, "BN-Inception range {lo}..{hi}");
    let s = source(false, 24, Normalization::Imagenet, BadImagePolicy::Fail);
    let b = pipeline::build_batch(&s, &[0, 1, 2], 1, 0).unwrap();
    let (lo, hi) = (f64::try_from(b.images.min()).unwrap(), f64::try_from(b.images.max()).unwrap());
    assert!(lo >= -0.485 / 0.229 - 1e-4 && hi <= (1.0 - 0.406) / 0.225 + 1e-4, "ImageNet range {lo}..{hi}");
}

#[test]
fn the_same_seed_gives_the_same_batches_whatever_the_number_of_workers() {
    let s = Arc::new(source(true, 16, Normalization::Imagenet, BadImagePolicy::Fail));
    let batches = vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]];
    let collect = |workers| -> Vec<tch::Tensor> {
        BatchStream::start(s.clone(), batches.clone(), workers, 2, 42, 3).map(|b| b.unwrap().images).collect()
    };
    let one = collect(1);
    let three = collect(3);
    assert_eq!(one.len(), 4);
    assert!(one.iter().zip(&three).all(|(a, b)| a.equal(b)));
    let other_epoch: Vec<tch::Tensor> =
        BatchStream::start(s.clone(), batches.clone(), 2, 2, 42, 4).map(|b| b.unwrap().images).collect();
    assert!(!one[0].equal(&other_epoch[0]), "a new epoch must draw new crops");
}

#[test]
fn a_corrupt_image_is_an_error_naming_the_file_or_is_skipped_and_counted() {
    let s = source(false, 16, Normalization::Imagenet, BadImagePolicy::Fail);
    let corrupt = s.paths.iter().position(|p| p.ends_with("eel/corrupt.jpg")).expect("fixture has the corrupt image");
    let e = pipeline::build_batch(&s, &[0, corrupt], 0, 0).unwrap_err().to_string();
    assert!(e.contains("corrupt.jpg"), "{e}");
    let s = Arc::new(source(false, 16, Normalization::Imagenet, BadImagePolicy::Skip));
    let out: Vec<_> = BatchStream::start(s, vec![vec![0, corrupt, 1]], 2, 1, 0, 0).collect();
    let b = out.into_iter().next().unwrap().unwrap();
    assert_eq!(b.images.size()[0], 2);
    assert_eq!(b.skipped.len(), 1);
}

#[test]
fn a_folder_counts_upper_case_extensions_and_data_check_takes_the_config_s_kinds() {
    let dir = std::env::temp_dir().join(format!("harness-folder-case-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]));
    for (class, file) in [("a", "x.JPG"), ("a", "y.jpeg"), ("b", "z.PNG"), ("c", "w.Png"), ("d", "v.jpg")] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        let format =
            if file.to_lowercase().ends_with(".png") { image::ImageFormat::Png } else { image::ImageFormat::Jpeg };
        img.save_with_format(dir.join(class).join(file), format).unwrap();
    }
    std::fs::write(dir.join("a").join("notes.txt"), "not an image").unwrap();
    let l = folder::load(&dir).unwrap();
    assert_eq!((l.train.len(), l.test.len()), (3, 2), "a: 2, b: 1 | c: 1, d: 1");
    let check = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["data", "check", "--root"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
    };
    let (ok, out) = check(&["--kind", "folder"]);
    assert!(ok && out.contains("train        2 classes, 3 images"), "{out}");
    let (ok, out) = check(&["--kind", "cubb"]);
    assert!(!ok && out.contains("--kind cubb") && out.contains("unknown variant `cubb`"), "{out}");
    let (ok, out) = check(&["--kind", "folder", "--subset"]);
    assert!(!ok && out.contains("--kind folder --subset") && out.contains("unknown field `subset`"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_name_that_is_not_utf8_is_named_not_reported_missing() {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("harness-folder-utf8-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]));
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        img.save(dir.join(class).join("ok.png")).unwrap();
    }
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    img.save_with_format(dir.join("b").join(bad), image::ImageFormat::Png).unwrap();
    let e = folder::load(&dir).unwrap_err().to_string();
    assert!(e.contains("is not UTF-8") && e.contains("caf\\xE9.png") && e.contains("/b"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every fixture JPEG: (path, its bytes), the known-corrupt one left out.
fn fixture_jpegs() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![root("")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jpg") && !p.ends_with("corrupt.jpg") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn strict_jpeg_decoding_gives_the_image_crate_s_pixels_and_refuses_a_truncated_file() {
    let jpegs = fixture_jpegs();
    assert!(jpegs.len() >= 20, "{}", jpegs.len());
    for (p, _) in &jpegs {
        let ours = pipeline::decode(p).unwrap_or_else(|e| panic!("{e}"));
        let theirs = image::open(p).unwrap().to_rgb8();
        assert!(ours == theirs, "{} decodes differently", p.display());
    }
    let dir = std::env::temp_dir().join(format!("harness-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.jpg");
    let bytes = &jpegs[0].1;
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    assert!(image::open(&cut).is_ok(), "the image crate decodes the truncated file without a word");
    let e = pipeline::decode(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.jpg") && e.contains("not a complete JPEG"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_check_decode_names_every_bad_image_and_a_skipping_run_counts_its_test_images() {
    let dir = std::env::temp_dir().join(format!("harness-decode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut g = 7u64;
    for class in ["a", "b", "c", "d"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..4 {
            let img = image::RgbImage::from_fn(24, 24, |x, y| {
                g = g.wrapping_mul(6364136223846793005).wrapping_add(1);
                image::Rgb([(x * 9) as u8, (y * 9) as u8, (g >> 56) as u8])
            });
            img.save(dir.join(class).join(format!("{i}.jpg"))).unwrap();
        }
    }
    let good = std::fs::read(dir.join("d").join("0.jpg")).unwrap();
    std::fs::write(dir.join("d").join("0.jpg"), &good[..good.len() * 7 / 10]).unwrap(); // a test image
    std::fs::write(dir.join("a").join("3.jpg"), b"not a jpeg at all").unwrap(); // a training image
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["data", "check", "--kind", "folder", "--decode", "--root"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for needle in ["d/0.jpg: ", "a/3.jpg: ", "2 of 16 images cannot be decoded"] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
    // One clean line per bad image: its path once, the decoder's message without line breaks.
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("undecodable")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in &lines {
        assert_eq!(l.matches(".jpg").count(), 1, "the path once: {l}");
        assert_eq!(l.matches('(').count(), l.matches(')').count(), "a message cut by a line break: {l}");
    }
    // Without --decode a data set this small is decoded whole (the sample covers it): same finding.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["data", "check", "--kind", "folder", "--root"])
        .arg(&dir)
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && plain.contains("2 of 16 images cannot be decoded"), "{plain}");
    // Under `on_bad_image: skip` a run leaves the truncated test image out and counts it.
    let yaml = format!(
        "data: {{kind: folder, root: {}}}\nmodel: {{backbone: {{kind: small_cnn, channels: [4]}}}}\nloss: {{kind: softmax_norm}}\ndim: 4\nseed: 0\ntrain: {{device: cpu, epochs: 1, batch_size: 4, workers: 1, on_bad_image: skip, transform: {{size: 16, resize: 20}}}}\neval: {{recall_at: [1], kmeans_restarts: 1}}\n",
        dir.display()
    );
    let config: harness::train::RunConfig = serde_yaml::from_str(&yaml).unwrap();
    let o = harness::train::run(&config, None, &|_| {}).unwrap();
    assert_eq!(o.status, harness::train::RunStatus::Finished, "{:?}", o.error);
    assert_eq!(o.diagnostics.skipped_test_images, 1);
    assert_eq!(o.metrics.unwrap().samples, 7, "8 test images, one left out");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A smooth pseudo-random RGB test image (no image crate noise generator, so made here).
fn test_image(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let c = |a: f32, b: f32| (127.5 + 127.5 * (a * fx * 6.0 + b * fy * 5.0).sin()) as u8;
        image::Rgb([c(1.0, 0.3), c(0.4, 1.1), c(-0.8, 0.7)])
    })
}

#[test]
fn resize_crop_agrees_with_the_image_crate_s_bilinear_resize_of_the_cropped_region() {
    // An independent implementation of the same filter (antialiased bilinear, PIL's BILINEAR):
    // the image crate's Triangle resize of the region cut out first. Channels kept apart, so a
    // pixel layout mix-up (RGB read as another type) shows as a large difference.
    let img = test_image(97, 61);
    for &((x, y, w, h), (ow, oh)) in
        &[((0, 0, 97, 61), (40, 25)), ((13, 7, 50, 40), (24, 24)), ((5, 3, 30, 20), (45, 31))]
    {
        let ours = pipeline::resize_crop(&img, (x, y, w, h), ow, oh).unwrap();
        let region = image::imageops::crop_imm(&img, x, y, w, h).to_image();
        let theirs = image::imageops::resize(&region, ow, oh, image::imageops::FilterType::Triangle);
        assert_eq!(ours.dimensions(), (ow, oh));
        let diffs: Vec<u8> = ours.as_raw().iter().zip(theirs.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
        let worst = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        let figures = format!("crop {:?} to {ow}×{oh}: largest difference {worst}, mean {mean:.3}", (x, y, w, h));
        eprintln!("{figures}");
        // Rounding and edge handling differ by a few levels; a wrong layout by tens.
        assert!(worst <= 3 && mean < 0.5, "{figures}");
    }
    // At the region's own size the resize is a copy of the region.
    let same = pipeline::resize_crop(&img, (13, 7, 50, 40), 50, 40).unwrap();
    assert_eq!(same, image::imageops::crop_imm(&img, 13, 7, 50, 40).to_image());
}
