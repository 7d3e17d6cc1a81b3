//! Running a sweep under its `protocol:` block: every study's search, generation by generation,
//! then its final phase, planned afresh from the records before each batch of runs. Several
//! processes (shards, Slurm array tasks) share one results folder: each run is locked while it
//! executes, so no trial runs twice, and a process whose next generation waits on another's runs
//! polls until they are recorded (or their lock is free again: a killed process's run is taken over).
use super::search::{self, SearchState};
use super::{PlannedRun, Sweep};
use super::{SweepEvent, SweepOptions, SweepSummary};
use crate::execute::ExecuteOptions;
use crate::protocol::ProtocolConfig;
use crate::store::{self, RunRecord};
use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// How long a process waits before looking again when every run it could start is another's.
const POLL: Duration = Duration::from_millis(1500);

/// What `sweep.json` holds of a protocol: the block as resolved, and the studies it searches.
fn protocol_lock(sweep: &Sweep, p: &ProtocolConfig, studies: &[search::Study]) -> serde_json::Value {
    let keys: Vec<&str> = studies.iter().map(|s| s.key.as_str()).collect();
    let base: Vec<serde_json::Value> = studies.iter().map(|s| store::identity_json(&s.base)).collect();
    serde_json::json!({"name": sweep.name, "settings": p, "studies": keys, "declared": base})
}

/// Writes the folder's `sweep.json` or checks that the search it holds is this one.
fn check_folder(sweep: &Sweep, source: &str, opts: &SweepOptions, lock: serde_json::Value) -> Result<()> {
    let path = opts.results.join("sweep.json");
    if path.is_file() {
        let old: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{}: not a sweep lock file", path.display()))?;
        return search::check_unchanged(&old["protocol"], &lock, &opts.results);
    }
    super::write_sweep_json(sweep, source, &path, Some(lock))
}

/// Every study's state from the records now.
pub fn states(studies: &[search::Study], p: &ProtocolConfig, records: &[RunRecord]) -> Result<Vec<SearchState>> {
    let recorded: HashMap<String, &RunRecord> = records.iter().map(|r| (r.id.clone(), r)).collect();
    studies.iter().map(|s| search::search_state(s, p, &recorded)).collect()
}

fn read(results: &std::path::Path) -> Result<Vec<RunRecord>> {
    if results.join("runs").is_dir() {
        store::read_records(results)
    } else {
        Ok(vec![])
    }
}

/// The protocol's upper bound of runs and epochs (every trial and final run at its maximum).
pub fn budget(studies: &[search::Study], p: &ProtocolConfig) -> (usize, u64) {
    let folds = p.split.folds() as usize;
    // Final runs per seed and setting: one (holdout) or one per fold, plus the concatenated
    // evaluation of the folds when asked for, which trains nothing.
    let (per_final, evaluations) = match p.split {
        crate::protocol::SplitConfig::Holdout { .. } => (1, 0),
        crate::protocol::SplitConfig::Folds { k } => (k as usize, usize::from(p.concatenated)),
    };
    let runs: Vec<(usize, usize, u32)> = studies
        .iter()
        .map(|s| {
            let trained = folds * (p.search.trials as usize + 1) + 2 * s.seeds.len() * per_final;
            (trained, 2 * s.seeds.len() * evaluations, s.base.train.epochs)
        })
        .collect();
    (runs.iter().map(|r| r.0 + r.1).sum(), runs.iter().map(|&(n, _, e)| n as u64 * u64::from(e)).sum())
}

/// Runs the protocol's searches and final phases until every run is recorded.
pub fn run_protocol_sweep(
    sweep: &Sweep,
    source: &str,
    opts: &SweepOptions,
    progress: &dyn Fn(SweepEvent),
) -> Result<SweepSummary> {
    let p = sweep.protocol.as_ref().context("the sweep has no protocol")?;
    let studies = search::studies(sweep, p);
    check_folder(sweep, source, opts, protocol_lock(sweep, p, &studies))?;
    let (runs, epochs) = budget(&studies, p);
    let before = read(&opts.results)?.len();
    let mut summary = SweepSummary { in_shard: runs, skipped: before, ..Default::default() };
    progress(SweepEvent::Planned { in_shard: runs, skipped: before, todo: runs.saturating_sub(before), epochs });
    let exec =
        ExecuteOptions { save_embeddings: opts.save_embeddings, shard: Some(opts.shard), replace_unfinished: false };
    let again = ExecuteOptions { replace_unfinished: true, ..exec.clone() };
    let mut retried: HashSet<String> = HashSet::new();
    loop {
        let records = read(&opts.results)?;
        let recorded: HashMap<String, &RunRecord> = records.iter().map(|r| (r.id.clone(), r)).collect();
        let all = states(&studies, p, &records)?;
        let mut todo: Vec<&PlannedRun> = all.iter().flat_map(|s| s.runnable(&recorded)).collect();
        let retry: Vec<&PlannedRun> = if opts.retry_failed {
            all.iter().flat_map(|s| s.failed_final(&recorded)).filter(|r| !retried.contains(&r.id)).collect()
        } else {
            vec![]
        };
        if todo.is_empty() && retry.is_empty() {
            break;
        }
        // Shards start at different places of the list, so they rarely reach for the same run.
        let (i, n) = opts.shard;
        let at = todo.len() * i / n.max(1);
        todo.rotate_left(at);
        let mut ran = 0;
        for run in &retry {
            retried.insert(run.id.clone());
            ran += usize::from(super::execute_one(run, opts, &again, &mut summary, progress)? == super::Tried::Ran);
        }
        for run in &todo {
            ran += usize::from(super::execute_one(run, opts, &exec, &mut summary, progress)? == super::Tried::Ran);
        }
        if ran == 0 {
            std::thread::sleep(POLL);
        }
    }
    Ok(summary)
}

/// A protocol's runs that did not finish, by phase, from its folder's records: the failed or
/// diverged trials (part of the search: they score the worst value) and final-phase runs (a
/// result the report is missing), each as `slug: status: first line of the error`.
pub fn unfinished_by_phase(records: &[RunRecord]) -> (Vec<String>, Vec<String>) {
    let (mut trials, mut finals) = (vec![], vec![]);
    for r in records.iter().filter(|r| r.outcome.status != crate::train::RunStatus::Finished) {
        let Some(p) = &r.config.protocol else { continue };
        let why = match r.outcome.status {
            crate::train::RunStatus::Diverged => {
                format!("diverged (loss not finite at step {})", r.outcome.diagnostics.diverged_at_step.unwrap_or(0))
            }
            _ => format!("failed: {}", r.outcome.error.as_deref().unwrap_or("").lines().next().unwrap_or("")),
        };
        let line = format!("{}: {why}", r.slug);
        match p.phase {
            crate::protocol::Phase::Search => trials.push(line),
            crate::protocol::Phase::Final => finals.push(line),
        }
    }
    trials.sort();
    finals.sort();
    (trials, finals)
}
