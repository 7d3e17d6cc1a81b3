//! One run from a resolved config to its record on disk: the single path that `harness train` and
//! `harness sweep` share. The id comes from the config's identity form (where the run executes is
//! not part of it). The run is locked (`work/<id>/lock`) while it executes, so two processes on one
//! results folder never run it twice or overwrite each other's record; training checkpoints under
//! `work/<id>/`, and the record is written atomically as soon as the run ends.
use crate::protocol::Concatenation;
use crate::store::{self, Provenance, RunRecord};
use crate::train::{self, CheckpointPlan, RunConfig, RunEvent, RunOutcome, RunStatus};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The folder holding a run's lock and checkpoint while it executes.
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
    /// Run it again when its record says failed or diverged (a finished record is never replaced).
    pub replace_unfinished: bool,
}

/// What became of a run.
#[derive(Debug)]
pub enum Executed {
    /// It ran; its record and the record's path.
    Ran(RunRecord, PathBuf),
    /// Another process holds its lock (it is running there).
    Busy,
    /// It already has a record that is not to be replaced; the record and its path.
    AlreadyRecorded(RunRecord, PathBuf),
}

/// Whether an error comes from writing the results folder (a full disk, a read-only folder, a lock
/// that cannot be taken): the infrastructure failed, not the run, so nothing is recorded.
pub fn is_infrastructure(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<crate::fsio::FsError>()
            || matches!(c.downcast_ref::<crate::npy::NpyError>(), Some(crate::npy::NpyError::Write(_)))
    })
}

/// Trains and evaluates `config` (device already chosen) under its lock and writes its record under
/// `results`. A run that fails in set-up or training is recorded as failed with its error; an
/// infrastructure error (see [`is_infrastructure`]) is returned and nothing is recorded.
pub fn execute_run(
    config: &RunConfig,
    results: &Path,
    opts: &ExecuteOptions,
    progress: &dyn Fn(RunEvent),
) -> Result<Executed> {
    let id = store::run_id(config);
    let slug = store::slug(config);
    let Some(lock) = crate::fsio::try_lock(&work_dir(results, &id).join("lock"))? else { return Ok(Executed::Busy) };
    // Another process may have finished it between our planning and our lock.
    if let Some((existing, path)) = store::read_record(results, &id, &slug)? {
        if existing.outcome.status == RunStatus::Finished || !opts.replace_unfinished {
            // Taking the lock made `work/<id>/`; a recorded run needs none (removed under the lock,
            // as after a run: a process that locks it next makes its own and finds the record).
            let _ = std::fs::remove_dir_all(work_dir(results, &id));
            drop(lock);
            return Ok(Executed::AlreadyRecorded(existing, path));
        }
    }
    let plan = CheckpointPlan { path: work_dir(results, &id).join("checkpoint.ot"), config_hash: id.clone() };
    let role = config.protocol.as_ref().and_then(|p| p.concatenation);
    let save = (opts.save_embeddings || role == Some(Concatenation::Member)).then(|| embeddings_dir(results, &id));
    let outcome = match role {
        Some(Concatenation::Evaluation) => concatenated(config, results),
        _ => train::run_with(config, Some(&plan), save.as_deref(), progress),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) if is_infrastructure(&e) => return Err(e),
        Err(e) => RunOutcome::failed(&config.train.device, &format!("{e:#}")),
    };
    let mut provenance = Provenance::current(&outcome.device);
    provenance.shard = opts.shard.map(|(i, n)| format!("{i}/{n}")).unwrap_or_default();
    let record = RunRecord {
        schema_version: store::RECORD_SCHEMA,
        id,
        slug,
        provenance,
        config: config.clone(),
        outcome,
        finished_at: store::now_rfc3339(),
    };
    let path = store::write_record(results, &record)?;
    let _ = std::fs::remove_dir_all(work_dir(results, &record.id));
    drop(lock);
    Ok(Executed::Ran(record, path))
}

/// MLRC's concatenated evaluation of a seed's fold models: reads each fold run's record (it must
/// have finished) and the test embeddings it kept under [`embeddings_dir`], and evaluates them
/// L2-normalised and concatenated ([`crate::eval::evaluate_concatenated`]).
fn concatenated(config: &RunConfig, results: &Path) -> Result<RunOutcome> {
    let started = std::time::Instant::now();
    let (mut parts, mut fingerprints) = (vec![], vec![]);
    for c in config.concatenation_members() {
        let fold = c.protocol.as_ref().and_then(|p| p.fold).unwrap_or_default();
        let (id, slug) = (store::run_id(&c), store::slug(&c));
        let Some((record, path)) = store::read_record(results, &id, &slug)? else {
            anyhow::bail!(
                "fold {fold}'s run {slug} has no record yet: the concatenated evaluation needs every fold model"
            );
        };
        if record.outcome.status != RunStatus::Finished {
            anyhow::bail!(
                "fold {fold}'s run ({}) is {:?}: the concatenated evaluation needs every fold model finished",
                path.display(),
                record.outcome.status
            );
        }
        let dir = embeddings_dir(results, &id);
        let hint = || {
            format!("fold {fold}'s kept test embeddings are missing or unreadable; delete {} and this record to train that fold again", path.display())
        };
        let emb = crate::npy::read_embeddings(&dir.join("embeddings.npy")).with_context(hint)?;
        let labels = crate::npy::read_labels(&dir.join("labels.npy")).with_context(hint)?;
        parts.push((emb, labels));
        fingerprints.push(record.outcome.split_fingerprint);
    }
    let metrics = crate::eval::evaluate_concatenated(&parts, &config.eval)?;
    Ok(RunOutcome {
        status: RunStatus::Finished,
        metrics: Some(metrics),
        diagnostics: Default::default(),
        train_seconds: 0.0,
        eval_seconds: started.elapsed().as_secs_f64(),
        split_fingerprint: fingerprints.join("+"),
        device: "Cpu".into(),
        error: None,
        selection: None,
        feature_cache: vec![],
    })
}
