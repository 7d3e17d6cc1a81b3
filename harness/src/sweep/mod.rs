//! Sweeps: a YAML file naming the axes (data sets × embedding sizes × losses × K × seeds) and the
//! shared settings, expanded into resolved runs in a fixed order; running the runs that have no
//! record yet, sharded, resumable, recording failures and going on.
mod plan;
pub mod search;
mod tune;
pub mod workers;

pub use tune::{budget, run_protocol_sweep, unfinished_by_phase};

use crate::config::{RunConfig, SweepFile};
use crate::execute::{execute_run, ExecuteOptions, Executed};
use crate::store;
use crate::train::{self, RunStatus};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// At most this many problems of a sweep file are printed (the count says how many there are).
const MAX_PROBLEMS_SHOWN: usize = 50;

/// A sweep's axes and shared settings, resolved from YAML.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep's name (default results folder `results/<name>`).
    pub name: String,
    /// Every run, in expansion order (under a protocol: the settings and seeds of the final phase).
    pub runs: Vec<PlannedRun>,
    /// The fair-comparison protocol, when the file has a `protocol:` block.
    pub protocol: Option<crate::protocol::ProtocolConfig>,
}

/// One expanded cell with its identity.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Stable id.
    pub id: String,
    /// Readable slug.
    pub slug: String,
    /// The resolved config.
    pub config: RunConfig,
}

impl Sweep {
    /// Reads and resolves a sweep file; every problem found is reported together.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading sweep file {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
    }

    /// Resolves a sweep from YAML text (see [`SweepFile`]); every problem is reported together.
    pub fn parse(text: &str) -> Result<Self> {
        let (file, unknown) = SweepFile::from_yaml(text).context("not a sweep file")?;
        let mut problems: Vec<String> = unknown.iter().map(|k| plan::unknown_key(k)).collect();
        let name = file.name.clone();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name == ".."
            || name == "."
        {
            problems.push(format!(
                "`name`: `{name}` must be letters, digits, '-', '_' or '.', and not `.` or `..` (it names the results folder)"
            ));
        }
        let axes = plan::Axes::read(&file, &mut problems);
        plan::check_overrides(&file, &axes, &mut problems);
        let runs = plan::expand(&file, &axes, &mut problems);
        let mut per_run: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for r in &runs {
            for m in r.config.problems() {
                per_run.entry(m).or_default().push(&r.slug);
            }
        }
        for (m, slugs) in per_run {
            problems.push(format!("{m} ({} run(s), e.g. {})", slugs.len(), slugs[0]));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(r) = runs.iter().find(|r| !seen.insert(r.id.clone())) {
            problems.push(format!(
                "run {} appears twice: two axis values resolve to the same run (duplicate seeds, K or losses?)",
                r.slug
            ));
        }
        let protocol = file.protocol.as_ref().and_then(|v| {
            serde_yaml::from_value::<crate::protocol::ProtocolConfig>(v.clone())
                .map_err(|e| problems.push(format!("`protocol`: {e}")))
                .ok()
        });
        if let Some(p) = &protocol {
            problems.extend(search::problems(&runs, p));
        }
        let mut seen_problems = std::collections::BTreeSet::new();
        problems.retain(|p| seen_problems.insert(p.clone()));
        if !problems.is_empty() {
            let shown = problems.len().min(MAX_PROBLEMS_SHOWN);
            let more = problems.len() - shown;
            let tail = if more > 0 { format!("\n  … and {more} more") } else { String::new() };
            bail!("{} problem(s):\n  {}{tail}", problems.len(), problems[..shown].join("\n  "));
        }
        Ok(Self { name, runs, protocol })
    }

    /// A fingerprint of the expanded sweep (the ordered run ids).
    pub fn fingerprint(&self) -> String {
        let ids: Vec<String> = self.runs.iter().map(|r| r.id.clone()).collect();
        crate::data::fingerprint_lines(&ids)
    }
}

/// The data sets of a sweep that cannot be read as configured, one message each (every distinct
/// data set is checked once): a sweep checks them before any run starts, so a missing download is
/// one input error, not one failed record per run.
pub fn data_problems(sweep: &Sweep) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = vec![];
    for r in &sweep.runs {
        let data = &r.config.data;
        if !seen.insert(serde_json::to_string(data).unwrap_or_default()) {
            continue;
        }
        if let Err(e) = data.availability() {
            problems.push(format!("data set `{}`: {e}", data.name()));
        }
    }
    problems
}

/// Parses `i/n` (0-based shard index i of n).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').with_context(|| format!("--shard `{s}`: expected i/n, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().context("--shard: i is not a number")?,
        n.trim().parse().context("--shard: n is not a number")?,
    );
    if n == 0 || i >= n {
        bail!("--shard `{s}`: needs 0 <= i < n");
    }
    Ok((i, n))
}

/// The shard given on the command line, else from a Slurm job array (`SLURM_ARRAY_TASK_ID` and
/// `SLURM_ARRAY_TASK_COUNT`, with a 0-based array), else the whole sweep.
pub fn shard_from_env(cli: Option<&str>) -> Result<(usize, usize)> {
    if let Some(s) = cli {
        return parse_shard(s);
    }
    match (std::env::var("SLURM_ARRAY_TASK_ID"), std::env::var("SLURM_ARRAY_TASK_COUNT")) {
        (Ok(i), Ok(n)) => {
            let min = std::env::var("SLURM_ARRAY_TASK_MIN").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            let i: usize = i.parse().context("SLURM_ARRAY_TASK_ID is not a number")?;
            parse_shard(&format!("{}/{n}", i - min))
        }
        _ => Ok((0, 1)),
    }
}

/// Options of running a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Results folder.
    pub results: PathBuf,
    /// Shard (i, n).
    pub shard: (usize, usize),
    /// Device override.
    pub device: Option<String>,
    /// Run again the runs recorded as failed or diverged.
    pub retry_failed: bool,
    /// Accept a sweep file that changed under an existing results folder.
    pub allow_changed: bool,
    /// Write each run's test embeddings and labels (see [`crate::execute::embeddings_dir`]).
    pub save_embeddings: bool,
}

/// What a sweep invocation did.
#[derive(Debug, Default)]
pub struct SweepSummary {
    /// Runs of this shard.
    pub in_shard: usize,
    /// Already recorded, skipped.
    pub skipped: usize,
    /// Run now and finished.
    pub finished: usize,
    /// Run now and diverged.
    pub diverged: usize,
    /// Run now and failed.
    pub failed: usize,
    /// Already recorded as failed by an earlier invocation (and not retried).
    pub failed_before: usize,
    /// Left to another process that was running them (their lock was held).
    pub busy: usize,
}

/// What a sweep reports while it works.
#[derive(Debug, Clone)]
pub enum SweepEvent {
    /// The shard's runs were sorted into recorded and to do.
    Planned {
        /// Runs of this shard.
        in_shard: usize,
        /// Already recorded.
        skipped: usize,
        /// To run now.
        todo: usize,
        /// Epochs of the runs to run now (the unit of the time-left estimate).
        epochs: u64,
    },
    /// A run starts.
    RunStarted {
        /// Its slug.
        slug: String,
        /// Its id.
        id: String,
        /// Its epochs.
        epochs: u32,
    },
    /// Progress inside the run.
    Run(train::RunEvent),
    /// A run was not run here after all: another process runs it, or recorded it meanwhile.
    RunSkipped {
        /// Its slug.
        slug: String,
        /// Why.
        why: Skipped,
    },
    /// A run ended and its record was written.
    RunFinished {
        /// Its slug.
        slug: String,
        /// How it ended.
        status: RunStatus,
        /// The error of a failed run.
        error: Option<String>,
    },
}

/// Why a sweep did not run a run it had planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Another process holds its lock: the run is in progress there.
    Busy,
    /// Another process recorded it between planning and locking.
    RecordedMeanwhile,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Busy => "another process is running it",
            Self::RecordedMeanwhile => "another process recorded it meanwhile",
        })
    }
}

/// Checks (or writes) the results folder's `sweep.json`: the sweep it holds must be this one.
pub fn check_results_folder(sweep: &Sweep, source: &str, opts: &SweepOptions) -> Result<()> {
    let lock = opts.results.join("sweep.json");
    let ids: Vec<&str> = sweep.runs.iter().map(|r| r.id.as_str()).collect();
    if lock.is_file() {
        let old: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&lock)?)
            .with_context(|| format!("{}: not a sweep lock file", lock.display()))?;
        let old_ids: Vec<String> = old["run_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        // A lock file of record schema 1 lists the ids of that schema: compare like with like,
        // then rewrite it with today's ids.
        let schema = old["schema_version"].as_u64().unwrap_or(1);
        let v1_ids: Vec<String> = sweep.runs.iter().map(|r| store::run_id_v1(&r.config)).collect();
        if schema < u64::from(store::RECORD_SCHEMA) && old_ids == v1_ids {
            tracing::info!("{}: upgrading to record schema {}", lock.display(), store::RECORD_SCHEMA);
        } else if old_ids != ids {
            let added = ids.iter().filter(|i| !old_ids.iter().any(|o| o == *i)).count();
            let removed = old_ids.iter().filter(|o| !ids.contains(&o.as_str())).count();
            if !opts.allow_changed {
                bail!(
                    "the sweep file changed since {} was started: {added} run(s) are new and {removed} run(s) of the recorded sweep are no longer in it. Use a new results folder (--results), or --allow-changed to keep the folder (the report will then hold both)",
                    opts.results.display()
                );
            }
            eprintln!("warning: the sweep changed under {} ({added} new runs, {removed} dropped); continuing (--allow-changed)", opts.results.display());
        } else {
            return Ok(());
        }
    }
    write_sweep_json(sweep, source, &lock, None)
}

/// Writes a results folder's `sweep.json` (atomically): the sweep's name, fingerprint, run ids and
/// source, and under a protocol what it searches (see `tune`).
fn write_sweep_json(sweep: &Sweep, source: &str, path: &Path, protocol: Option<serde_json::Value>) -> Result<()> {
    let ids: Vec<&str> = sweep.runs.iter().map(|r| r.id.as_str()).collect();
    let mut body = serde_json::json!({"schema_version": store::RECORD_SCHEMA, "name": sweep.name, "fingerprint": sweep.fingerprint(), "run_ids": ids, "source": source});
    if let Some(p) = protocol {
        body["protocol"] = p;
    }
    crate::fsio::write_atomic(path, serde_json::to_string_pretty(&body)?.as_bytes())?;
    Ok(())
}

/// What became of a run a sweep tried to execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    /// It ran here and its record was written.
    Ran,
    /// It was not run here.
    Skipped(Skipped),
}

/// Executes one planned run (with the sweep's device override), reporting its start and end and
/// counting its outcome in `summary` when it ran here.
fn execute_one(
    run: &PlannedRun,
    opts: &SweepOptions,
    exec: &ExecuteOptions,
    summary: &mut SweepSummary,
    progress: &dyn Fn(SweepEvent),
) -> Result<Tried> {
    let mut config = run.config.clone();
    if let Some(d) = &opts.device {
        config.train.device = d.clone();
    }
    // A concatenated evaluation trains no epoch.
    let evaluation = config.protocol.as_ref().is_some_and(|p| p.is_concatenated_evaluation());
    let epochs = if evaluation { 0 } else { config.train.epochs };
    let slug = run.slug.clone();
    progress(SweepEvent::RunStarted { slug: slug.clone(), id: run.id.clone(), epochs });
    match execute_run(&config, &opts.results, exec, &|e| progress(SweepEvent::Run(e)))? {
        Executed::Ran(record, _) => {
            let status = record.outcome.status;
            match status {
                RunStatus::Finished => summary.finished += 1,
                RunStatus::Diverged => summary.diverged += 1,
                RunStatus::Failed => summary.failed += 1,
            }
            progress(SweepEvent::RunFinished { slug, status, error: record.outcome.error });
            Ok(Tried::Ran)
        }
        Executed::Busy => {
            progress(SweepEvent::RunSkipped { slug, why: Skipped::Busy });
            Ok(Tried::Skipped(Skipped::Busy))
        }
        Executed::AlreadyRecorded(..) => {
            progress(SweepEvent::RunSkipped { slug, why: Skipped::RecordedMeanwhile });
            Ok(Tried::Skipped(Skipped::RecordedMeanwhile))
        }
    }
}

/// The runs of `mine` to run now (no record yet, or a failed or diverged one under
/// `--retry-failed`), counting the others in `summary`, in [`round_order`].
fn runs_to_do<'a>(
    mine: Vec<&'a PlannedRun>,
    opts: &SweepOptions,
    summary: &mut SweepSummary,
) -> Result<Vec<&'a PlannedRun>> {
    let recorded: std::collections::HashMap<String, RunStatus> = if opts.results.join("runs").is_dir() {
        store::read_records(&opts.results)?.into_iter().map(|r| (r.id, r.outcome.status)).collect()
    } else {
        Default::default()
    };
    let todo: Vec<&PlannedRun> = mine
        .into_iter()
        .filter(|r| {
            let keep = match recorded.get(&r.id) {
                None => true,
                Some(status) => opts.retry_failed && *status != RunStatus::Finished,
            };
            if !keep {
                summary.skipped += 1;
                summary.failed_before += usize::from(recorded.get(&r.id) == Some(&RunStatus::Failed));
            }
            keep
        })
        .collect();
    Ok(round_order(todo))
}

/// Orders runs round by round: every run of the lowest seed first, then the next seed, so complete
/// low-power reports exist early. Inside a round the data sets' and embedding sizes' runs take turns
/// (the first run of each, then the second of each, in expansion order), so a round's first epochs
/// mix cheap and costly runs and the time left estimated from them is not skewed: in expansion
/// order (every size-64 run first) the quickstart's first estimates were 2.5 times too short.
fn round_order(runs: Vec<&PlannedRun>) -> Vec<&PlannedRun> {
    let mut turns: std::collections::HashMap<(u64, &str, i64), usize> = Default::default();
    let mut keyed: Vec<((u64, usize), &PlannedRun)> = runs
        .into_iter()
        .map(|r| {
            let turn = turns.entry((r.config.seed, r.config.data.name(), r.config.dim)).or_default();
            *turn += 1;
            ((r.config.seed, *turn), r)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Runs the shard's runs that have no record yet; each record is written as soon as it exists.
pub fn run_sweep(
    sweep: &Sweep,
    source: &str,
    opts: &SweepOptions,
    progress: &dyn Fn(SweepEvent),
) -> Result<SweepSummary> {
    check_results_folder(sweep, source, opts)?;
    let (i, n) = opts.shard;
    let mine: Vec<&PlannedRun> = sweep.runs.iter().enumerate().filter(|(k, _)| k % n == i).map(|(_, r)| r).collect();
    let mut summary = SweepSummary { in_shard: mine.len(), ..Default::default() };
    let runs_dir = opts.results.join("runs");
    // Temporary files left by a process killed while writing a record (never another shard's
    // file in flight): not records, safe to drop.
    if let Ok(entries) = std::fs::read_dir(&runs_dir) {
        for e in entries.flatten() {
            if crate::fsio::is_abandoned_temp(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let todo = runs_to_do(mine, opts, &mut summary)?;
    let epochs = todo.iter().map(|r| u64::from(r.config.train.epochs)).sum();
    progress(SweepEvent::Planned { in_shard: summary.in_shard, skipped: summary.skipped, todo: todo.len(), epochs });
    let exec = ExecuteOptions {
        save_embeddings: opts.save_embeddings,
        shard: Some(opts.shard),
        replace_unfinished: opts.retry_failed,
    };
    for run in &todo {
        match execute_one(run, opts, &exec, &mut summary, progress)? {
            Tried::Ran => {}
            Tried::Skipped(Skipped::Busy) => summary.busy += 1,
            Tried::Skipped(Skipped::RecordedMeanwhile) => summary.skipped += 1,
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::{round_order, Sweep};

    #[test]
    fn rounds_go_seed_by_seed_with_the_sizes_taking_turns() {
        let sweep = Sweep::parse(
            r#"
name: order
data:
  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}
losses:
  - {kind: softmax_norm}
  - {kind: proxy_nca}
  - {kind: soft_triple, centers_per_class: 2}
dims: [16, 32]
seeds: [0, 1]
model: {backbone: {kind: small_cnn, channels: [8]}}
train: {device: cpu, epochs: 2, batch_size: 12, sampler: {kind: class_balanced, m: 2}}
eval: {recall_at: [1]}
"#,
        )
        .unwrap();
        // Expansion order: size 16's losses by seed, then size 32's.
        assert_eq!(sweep.runs[0].config.dim, 16);
        assert_eq!(sweep.runs[11].config.dim, 32);
        let ordered = round_order(sweep.runs.iter().collect());
        let order: Vec<(u64, i64, &str)> =
            ordered.iter().map(|r| (r.config.seed, r.config.dim, r.config.loss.kind())).collect();
        let round = |seed| {
            ["softmax_norm", "proxy_nca", "soft_triple"].into_iter().flat_map(move |l| [(seed, 16, l), (seed, 32, l)])
        };
        let expected: Vec<(u64, i64, &str)> = round(0).chain(round(1)).collect();
        assert_eq!(order, expected);
        let mut ids: Vec<&str> = ordered.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        let mut all: Vec<&str> = sweep.runs.iter().map(|r| r.id.as_str()).collect();
        all.sort_unstable();
        assert_eq!(ids, all, "every run once");
    }
}
