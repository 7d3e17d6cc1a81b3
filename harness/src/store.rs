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
    /// libtorch's intra-op threads (0: not recorded, a record older than the field).
    #[serde(default)]
    pub threads: i32,
    /// The shard `i/n` of the sweep that ran it (empty for `harness train`).
    #[serde(default)]
    pub shard: String,
}

impl Provenance {
    /// The provenance of this process, for a run on `device`.
    pub fn current(device: &str) -> Self {
        Self {
            harness: crate::build_info::HARNESS_VERSION.into(),
            git_commit: crate::build_info::GIT_COMMIT.into(),
            tch: crate::build_info::TCH_VERSION.into(),
            libtorch: crate::build_info::libtorch_version(),
            cuda_available: crate::device::cuda_available(),
            device: device.into(),
            host: std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default(),
            threads: tch::get_num_threads(),
            shard: String::new(),
        }
    }
}

/// One run's record: identity, resolved config, outcome and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The record format ([`RECORD_SCHEMA`]); 1 for records written before the field existed.
    #[serde(default = "schema_v1")]
    pub schema_version: u32,
    /// Stable id: the hash of the config's identity form ([`run_id`]).
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

fn schema_v1() -> u32 {
    1
}

/// The record format written now. 1: the id hashed every field of the config; 2: the id hashes
/// the identity form ([`identity_json`]). Older records are upgraded when read.
pub const RECORD_SCHEMA: u32 = 2;

/// Fields that say where or how fast a run executes, not what it computes: not part of its identity.
pub const PLACEMENT_FIELDS: [(&str, &str); 2] = [("train", "device"), ("train", "workers")];

/// The defaults a config's sections fall back to, as JSON (tagged sections: those of their kind).
pub fn default_sections(config: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, to_value, Value};
    fn of_kind<T: serde::de::DeserializeOwned + Serialize>(v: &Value) -> Value {
        serde_json::from_value::<T>(json!({"kind": v["kind"]}))
            .ok()
            .and_then(|d| to_value(d).ok())
            .unwrap_or(Value::Null)
    }
    json!({
        "data": of_kind::<crate::data::DatasetConfig>(&config["data"]),
        "loss": of_kind::<losses::LossConfig>(&config["loss"]),
        "model": to_value(crate::model::ModelConfig::default()).unwrap_or_default(),
        "train": to_value(crate::train::TrainConfig::default()).unwrap_or_default(),
        "eval": to_value(crate::eval::EvalConfig::default()).unwrap_or_default(),
    })
}

/// Removes from `value` every field equal to its default in `defaults`, recursing into objects of
/// the same `kind` (an object of another kind is kept whole). A tagged object (one with a `kind`)
/// is never removed whole, since its defaults depend on its kind: all-default losses of two kinds
/// stay two runs.
pub fn prune_defaults(value: &mut serde_json::Value, defaults: &serde_json::Value) {
    let (Some(v), Some(d)) = (value.as_object_mut(), defaults.as_object()) else { return };
    if v.get("kind") != d.get("kind") {
        return;
    }
    v.retain(|k, x| k == "kind" || x.get("kind").is_some() || d.get(k) != Some(x));
    for (k, x) in v.iter_mut() {
        if let Some(dx) = d.get(k) {
            prune_defaults(x, dx);
        }
    }
}

/// The identity form of a config: its JSON without the placement fields and without the fields
/// equal to their defaults, so a new option with a default leaves every id as it was.
pub fn identity_json(config: &RunConfig) -> serde_json::Value {
    let v = serde_json::to_value(config).expect("config serialises");
    let defaults = default_sections(&v);
    identity_of(v, &defaults)
}

/// [`identity_json`] on a config's JSON and the defaults of its sections ([`default_sections`]).
pub fn identity_of(mut config: serde_json::Value, defaults: &serde_json::Value) -> serde_json::Value {
    for (section, field) in PLACEMENT_FIELDS {
        if let Some(o) = config.get_mut(section).and_then(|s| s.as_object_mut()) {
            o.remove(field);
        }
    }
    prune_defaults(&mut config, defaults);
    config
}

/// The run id of an identity form.
pub fn id_of(identity: &serde_json::Value) -> String {
    id_of_json(&identity.to_string())
}

/// Canonical JSON of a config's identity form: keys sorted at every level, no whitespace.
pub fn canonical_json(config: &RunConfig) -> String {
    // serde_json's Map is a BTreeMap (no `preserve_order`), so a round trip through Value sorts keys.
    identity_json(config).to_string()
}

/// The run id: the first 12 hex digits of SHA-256 of the canonical JSON.
pub fn run_id(config: &RunConfig) -> String {
    id_of_json(&canonical_json(config))
}

fn id_of_json(canonical: &str) -> String {
    short_hash(canonical, 6)
}

/// The first `bytes` bytes of SHA-256 of `text`, in hex.
pub fn short_hash(text: &str, bytes: usize) -> String {
    Sha256::digest(text.as_bytes()).iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// The id schema 1 gave a config: every field of it hashed (to recognise records of that schema).
pub fn run_id_v1(config: &RunConfig) -> String {
    id_of_json(&serde_json::to_value(config).expect("config serialises").to_string())
}

/// A short readable name: data set, loss variant, dimension, seed.
pub fn slug(config: &RunConfig) -> String {
    let base = format!("{}-{}-d{}-s{}", config.data.name(), config.loss.slug(), config.dim, config.seed);
    let Some(p) = &config.protocol else { return base };
    use crate::protocol::{Phase, Setting};
    let phase = match (p.phase, p.setting, p.trial) {
        (Phase::Search, Setting::Trial, Some(t)) => format!("trial{t}"),
        (Phase::Search, ..) => "search-default".into(),
        (Phase::Final, Setting::Tuned, _) => "final-tuned".into(),
        (Phase::Final, ..) => "final-default".into(),
    };
    let fold = match p.fold {
        Some(f) => format!("fold{f}"),
        None if p.is_concatenated_evaluation() => "concatenated".into(),
        None => "all".into(),
    };
    format!("{base}-{phase}-{fold}")
}

/// File name of a run's record inside a results folder.
pub fn record_file_name(id: &str, slug: &str) -> String {
    format!("{slug}-{id}.json")
}

/// Writes a record as `runs/<slug>-<id>.json` under `results_dir`; returns its path.
pub fn write_record(results_dir: &Path, record: &RunRecord) -> Result<PathBuf> {
    let path = record_path(results_dir, &record.id, &record.slug);
    crate::fsio::write_atomic(&path, serde_json::to_string_pretty(record)?.as_bytes())?;
    Ok(path)
}

/// Where the record of run `id` lives in a results folder: `runs/<slug>-<id>.json`.
pub fn record_path(results_dir: &Path, id: &str, slug: &str) -> PathBuf {
    results_dir.join("runs").join(record_file_name(id, slug))
}

/// The record of run `id` at its own file name with that path, if there is one (upgraded, see
/// [`upgrade`]).
pub fn read_record(results_dir: &Path, id: &str, slug: &str) -> Result<Option<(RunRecord, PathBuf)>> {
    let p = record_path(results_dir, id, slug);
    match std::fs::read_to_string(&p) {
        Ok(text) => Ok(Some((parse_record(&p, &text)?, p))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", p.display()))),
    }
}

/// A record file's text as a record of today's schema.
fn parse_record(p: &Path, text: &str) -> Result<RunRecord> {
    let mut r: RunRecord = serde_json::from_str(text).with_context(|| format!("{}: not a run record", p.display()))?;
    upgrade(&mut r);
    Ok(r)
}

/// Brings a record read from disk to [`RECORD_SCHEMA`]: a schema-1 record gets its id recomputed
/// from its config, so results written before the identity change are still found and compared.
pub fn upgrade(record: &mut RunRecord) {
    if record.schema_version < RECORD_SCHEMA {
        record.id = run_id(&record.config);
        record.schema_version = RECORD_SCHEMA;
    }
}

/// Reads every record under `results_dir/runs` (upgraded, see [`upgrade`]), one per run id, sorted
/// by slug then id. Two files holding one run (a copied record, a retry of an old record) count
/// once: a finished record wins over one that did not finish, then the later one; each duplicate
/// is named in a warning.
pub fn read_records(results_dir: &Path) -> Result<Vec<RunRecord>> {
    let runs = results_dir.join("runs");
    let entries = std::fs::read_dir(&runs)
        .with_context(|| format!("{}: no runs folder (has a sweep written here?)", runs.display()))?;
    let mut by_id: std::collections::BTreeMap<String, (PathBuf, RunRecord)> = Default::default();
    for e in entries {
        let p = e?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if p.extension().is_none_or(|x| x != "json") || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let r = parse_record(&p, &text)?;
        let rank = |r: &RunRecord| (r.outcome.status == crate::train::RunStatus::Finished, r.finished_at.clone());
        let replaces = match by_id.get(&r.id) {
            Some((other, kept)) => {
                let replaces = rank(&r) > rank(kept);
                let (keep, drop) = if replaces { (&p, other) } else { (other, &p) };
                tracing::warn!(
                    "{} and {} hold the same run (id {}): counting {} only",
                    drop.display(),
                    keep.display(),
                    r.id,
                    keep.display()
                );
                replaces
            }
            None => true,
        };
        if replaces {
            by_id.insert(r.id.clone(), (p, r));
        }
    }
    let mut out: Vec<RunRecord> = by_id.into_values().map(|(_, r)| r).collect();
    out.sort_by(|a, b| (&a.slug, &a.id).cmp(&(&b.slug, &b.id)));
    Ok(out)
}

/// Current UTC time as RFC 3339 (seconds), e.g. `2026-11-29T14:39:35Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(loss: &str) -> RunConfig {
        serde_yaml::from_str(&format!("{{data: {{kind: synthetic}}, loss: {loss}, dim: 8, seed: 0}}")).unwrap()
    }

    #[test]
    fn all_default_sections_of_two_kinds_stay_two_runs() {
        let minimal = |k: &str| match k {
            losses::PLUGIN_KIND => format!("{{kind: {k}, path: a.pt, name: A}}"),
            _ => format!("{{kind: {k}}}"),
        };
        let kinds = losses::LOSS_KINDS.map(|k| run_id(&config(&minimal(k))));
        let distinct: std::collections::BTreeSet<&String> = kinds.iter().collect();
        assert_eq!(distinct.len(), kinds.len(), "{kinds:?}");
        let identity = identity_json(&config("{kind: proxy_nca}"));
        assert_eq!(identity["loss"], serde_json::json!({"kind": "proxy_nca"}), "defaults pruned, kind kept");
        assert_eq!(identity["data"], serde_json::json!({"kind": "synthetic"}));
    }
}
