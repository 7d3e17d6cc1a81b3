//! One run from a resolved config to its record on disk: the single path that `harness train` and
//! `harness sweep` share. The id comes from the config's identity form (where the run executes is
//! not part of it), training checkpoints under `<results>/work/<id>/`, and the record is written
//! atomically as soon as the run ends.
use crate::store::{self, Provenance, RunRecord};
use crate::train::{self, CheckpointPlan, RunConfig, RunEvent, RunOutcome};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The folder holding a run's checkpoint while it trains.
pub fn work_dir(results: &Path, id: &str) -> PathBuf {
    results.join("work").join(id)
}

/// The folder `--save-embeddings` writes a run's test embeddings and labels to.
pub fn embeddings_dir(results: &Path, id: &str) -> PathBuf {
    results.join("embeddings").join(id)
}

/// How a run is executed: what else to write, and where it sits in a sweep (provenance only).
#[derive(Debug, Clone, Default)]
pub struct ExecuteOptions {
    /// Also write the test embeddings and labels under [`embeddings_dir`].
    pub save_embeddings: bool,
    /// The sweep shard `(i, n)` running it, if any.
    pub shard: Option<(usize, usize)>,
}

/// Trains and evaluates `config` (device already chosen) and writes its record under `results`;
/// returns the record and its path. A run that fails in set-up or training is recorded as failed
/// with its error; an error is returned only when the record itself cannot be written.
pub fn execute_run(
    config: &RunConfig,
    results: &Path,
    opts: &ExecuteOptions,
    progress: &dyn Fn(RunEvent),
) -> Result<(RunRecord, PathBuf)> {
    let id = store::run_id(config);
    let plan = CheckpointPlan { path: work_dir(results, &id).join("checkpoint.ot"), config_hash: id.clone() };
    let save = opts.save_embeddings.then(|| embeddings_dir(results, &id));
    let outcome = train::run_with(config, Some(&plan), save.as_deref(), progress)
        .unwrap_or_else(|e| RunOutcome::failed(&config.train.device, &format!("{e:#}")));
    let mut provenance = Provenance::current(&outcome.device);
    provenance.shard = opts.shard.map(|(i, n)| format!("{i}/{n}")).unwrap_or_default();
    let record = RunRecord {
        schema_version: store::RECORD_SCHEMA,
        id,
        slug: store::slug(config),
        provenance,
        config: config.clone(),
        outcome,
        finished_at: store::now_rfc3339(),
    };
    let path = store::write_record(results, &record)?;
    let _ = std::fs::remove_dir_all(work_dir(results, &record.id));
    Ok((record, path))
}
