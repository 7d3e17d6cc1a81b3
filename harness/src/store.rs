//! The results store: run identity (a stable hash of the resolved config), run records (one JSON
//! file per finished run, written to a temporary file and renamed), and reading them back.
use crate::train::{RunConfig, RunOutcome};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where a record came from: versions, commit and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Harness version.
    pub harness: String,
    /// Git commit the harness was built from.
    pub git_commit: String,
    /// tch version.
    pub tch: String,
    /// libtorch version.
    pub libtorch: String,
    /// Whether CUDA was available.
    pub cuda_available: bool,
    /// Device the run used.
    pub device: String,
    /// Host name.
    pub host: String,
}

impl Provenance {
    /// The provenance of this process, for a run on `device`.
    pub fn current(device: &str) -> Self {
        Self {
            harness: crate::HARNESS_VERSION.into(),
            git_commit: crate::GIT_COMMIT.into(),
            tch: crate::TCH_VERSION.into(),
            libtorch: crate::LIBTORCH_VERSION.into(),
            cuda_available: tch::Cuda::is_available(),
            device: device.into(),
            host: std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default(),
        }
    }
}

/// One run's record: identity, resolved config, outcome and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Stable id: the hash of the config's canonical form.
    pub id: String,
    /// Readable slug.
    pub slug: String,
    /// The resolved config.
    pub config: RunConfig,
    /// What the run produced.
    pub outcome: RunOutcome,
    /// Where it came from.
    pub provenance: Provenance,
    /// Wall-clock time it was written (RFC 3339, UTC).
    pub finished_at: String,
}

/// Canonical JSON of a config: keys sorted at every level, no whitespace.
pub fn canonical_json(config: &RunConfig) -> String {
    // serde_json's Map is a BTreeMap (no `preserve_order`), so a round trip through Value sorts keys.
    serde_json::to_value(config).expect("config serialises").to_string()
}

/// The run id: the first 12 hex digits of SHA-256 of the canonical JSON.
pub fn run_id(config: &RunConfig) -> String {
    let digest = Sha256::digest(canonical_json(config).as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A short readable name: data set, loss variant, dimension, seed.
pub fn slug(config: &RunConfig) -> String {
    format!("{}-{}-d{}-s{}", config.data.name(), variant_slug(&config.loss), config.dim, config.seed)
}

/// The loss variant as it appears in slugs: kind, K for multi-centre losses, `notau` without regularizer.
pub fn variant_slug(loss: &losses::LossConfig) -> String {
    let mut s = loss.kind().replace('_', "");
    if let Some(k) = loss.centers_per_class() {
        s.push_str(&format!("-k{k}"));
    }
    if let losses::LossConfig::SoftTriple(c) = loss {
        if c.tau == 0.0 {
            s.push_str("-notau");
        }
    }
    if let losses::LossConfig::Triplet(c) = loss {
        s.push_str(&format!("-{:?}", c.mining).to_lowercase());
    }
    s
}

/// File name of a run's record inside a results folder.
pub fn record_file_name(id: &str, slug: &str) -> String {
    format!("{slug}-{id}.json")
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so readers
/// never see half a file and a crash leaves the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        host_name(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Writes a record as `runs/<slug>-<id>.json` under `results_dir`; returns its path.
pub fn write_record(results_dir: &Path, record: &RunRecord) -> Result<PathBuf> {
    let path = results_dir.join("runs").join(record_file_name(&record.id, &record.slug));
    write_atomic(&path, serde_json::to_string_pretty(record)?.as_bytes())?;
    Ok(path)
}

/// Reads every record under `results_dir/runs`, sorted by slug then id.
pub fn read_records(results_dir: &Path) -> Result<Vec<RunRecord>> {
    let runs = results_dir.join("runs");
    let mut out = vec![];
    let entries = std::fs::read_dir(&runs)
        .with_context(|| format!("{}: no runs folder (has a sweep written here?)", runs.display()))?;
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") && !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let r: RunRecord =
                serde_json::from_str(&text).with_context(|| format!("{}: not a run record", p.display()))?;
            out.push(r);
        }
    }
    out.sort_by(|a, b| (&a.slug, &a.id).cmp(&(&b.slug, &b.id)));
    Ok(out)
}

/// Current UTC time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// This machine's host name ('.'-free, for temporary file names).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().replace('.', "_"))
        .unwrap_or_else(|_| "host".into())
}

/// Whether a temporary file of [`write_atomic`] was abandoned: its writer was a process of this host
/// that no longer exists, or it is over an hour old (a writer elsewhere that died).
pub fn is_abandoned_temp(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    if !(name.starts_with('.') && name.ends_with(".tmp")) {
        return false;
    }
    let parts: Vec<&str> = name.trim_end_matches(".tmp").rsplitn(3, '.').collect();
    if let [pid, host, _] = parts.as_slice() {
        if *host == host_name() && pid.parse::<u32>().is_ok() {
            return !Path::new("/proc").join(pid).exists();
        }
    }
    let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    age.is_some_and(|a| a.as_secs() > 3600)
}
