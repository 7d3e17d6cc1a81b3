//! A frozen pretrained backbone (`model.frozen: true`): features computed once per split and cached
//! (`HARNESS_FEATURE_CACHE`), read by every later run and sweep; a damaged or half-written cache is
//! never read; augmentation that frozen features cannot honour is refused before any run.
use std::path::{Path, PathBuf};
use std::process::Command;

fn weights() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights/efficientnet_lite0.safetensors");
    assert!(path.is_file(), "{} is missing: run `make weights`", path.display());
    path
}

fn sweep_yaml(flip: f64) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets/omniglot");
    format!(
        r#"
name: frozen
data: [{{kind: omniglot, root: '{}', split: characters}}]
losses: [{{kind: softmax_norm}}, {{kind: soft_triple, centers_per_class: 2}}]
dims: [8]
seeds: [0, 1]
model: {{backbone: {{kind: efficientnet_lite0, weights: '{}'}}, pretrained: true, frozen: true}}
train: {{device: cpu, epochs: 3, batch_size: 12, sampler: {{kind: class_balanced, m: 4}}, workers: 1, transform: {{size: 32, resize: 32, scale: [1, 1], flip: {flip}, normalization: efficientnet_lite}}}}
eval: {{recall_at: [1], kmeans_restarts: 1}}
"#,
        root.display(),
        weights().display()
    )
}

/// `harness sweep` of `yaml` into `results` with the feature cache at `cache`: (success, stderr).
fn sweep(dir: &Path, yaml: &str, results: &str, cache: &Path) -> (bool, String) {
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, yaml).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("sweep")
        .arg(&file)
        .arg("--results")
        .arg(dir.join(results))
        .env("HARNESS_FEATURE_CACHE", cache)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
}

/// A record's slug, its cache entries as (split, computed), and its test metrics as JSON.
type CacheUse = (String, Vec<(String, bool)>, String);

/// Per record: what it read from the cache and what it scored.
fn cache_use(results: &Path) -> Vec<CacheUse> {
    let mut v: Vec<_> = harness::store::read_records(results)
        .unwrap()
        .into_iter()
        .map(|r| {
            let entries = r.outcome.feature_cache.iter().map(|c| (c.split.clone(), c.computed)).collect();
            (r.slug.clone(), entries, serde_json::to_string(&r.outcome.metrics).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn cached_files(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "safetensors")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn features_are_computed_once_and_every_later_run_and_sweep_reads_them() {
    let dir = std::env::temp_dir().join(format!("harness-frozen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cache");
    let (ok, err) = sweep(&dir, &sweep_yaml(0.0), "first", &cache);
    assert!(ok, "{err}");
    let first = cache_use(&dir.join("first"));
    assert_eq!(first.len(), 4);
    let computed: usize = first.iter().flat_map(|r| &r.1).filter(|c| c.1).count();
    assert_eq!(computed, 2, "the train and the test split computed once, by the first run: {first:?}");
    assert!(first.iter().all(|r| r.1.len() == 2 && r.2 != "null"), "{first:?}");
    let files = cached_files(&cache);
    assert_eq!(files.len(), 2);
    let stamps: Vec<_> = files.iter().map(|f| std::fs::metadata(f).unwrap().modified().unwrap()).collect();

    // A second sweep extracts nothing and trains the same models.
    let (ok, err) = sweep(&dir, &sweep_yaml(0.0), "second", &cache);
    assert!(ok, "{err}");
    let second = cache_use(&dir.join("second"));
    assert!(second.iter().flat_map(|r| &r.1).all(|c| !c.1), "{second:?}");
    assert_eq!(second.iter().map(|r| &r.2).collect::<Vec<_>>(), first.iter().map(|r| &r.2).collect::<Vec<_>>());
    let again: Vec<_> = files.iter().map(|f| std::fs::metadata(f).unwrap().modified().unwrap()).collect();
    assert_eq!(again, stamps, "the cache files are not written again");

    // What a killed writer leaves (a temporary file) is never read, and a damaged cache file is
    // computed again, with the same results.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let name = files[1].file_name().unwrap().to_string_lossy().to_string();
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::write(cache.join(format!(".{name}.{}.999999.tmp", harness::fsio::host_name())), &bytes[..100]).unwrap();
    let (ok, err) = sweep(&dir, &sweep_yaml(0.0), "third", &cache);
    assert!(ok, "{err}");
    assert!(err.contains("unreadable") && err.contains("computing the features again"), "{err}");
    let third = cache_use(&dir.join("third"));
    assert_eq!(third.iter().flat_map(|r| &r.1).filter(|c| c.1).count(), 2, "{third:?}");
    assert_eq!(third.iter().map(|r| &r.2).collect::<Vec<_>>(), first.iter().map(|r| &r.2).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn augmentation_and_a_backbone_without_weights_are_refused_under_frozen() {
    let dir = std::env::temp_dir().join(format!("harness-frozen-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, err) = sweep(&dir, &sweep_yaml(0.5), "flip", &dir.join("cache"));
    assert!(!ok && err.contains("augmentation cannot be honoured (`train.transform.flip`: 0.5"), "{err}");
    let no_weights = sweep_yaml(0.0).replace(&format!("weights: '{}'}}, pretrained: true", weights().display()), "}");
    let (ok, err) = sweep(&dir, &no_weights, "none", &dir.join("cache"));
    assert!(!ok && err.contains("`model.frozen: true` needs a pretrained backbone with `weights:`"), "{err}");
    assert!(!dir.join("flip/runs").exists() && !dir.join("cache").exists(), "refused before any run");
    let _ = std::fs::remove_dir_all(&dir);
}
