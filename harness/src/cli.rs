//! Command-line interface: the `harness` subcommands and their options.
use clap::{Parser, Subcommand};

/// Reproducibility benchmark harness for deep metric learning (SoftTriple and friends).
#[derive(Debug, Parser)]
#[command(name = "harness", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show harness, tch and libtorch versions, CPU threads, CUDA/cuDNN and GPUs; exits 1 on a problem.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Smoke-check every loss kind: build, forward, backward, and a falling loss over a few Adam steps.
    LossCheck {
        /// Optimiser steps per loss.
        #[arg(long, default_value_t = 30)]
        steps: usize,
        /// Device: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Instead: run every loss kind forward and backward on the CPU and on --device from the same
        /// parameters and inputs, and fail when the loss or a gradient differs by more than --tolerance.
        #[arg(long)]
        parity: bool,
        /// Largest relative difference --parity accepts (loss; gradients relative to their largest value).
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f64,
    },
    /// Time one loss's forward + backward at a given size, e.g. SoftTriple at SOP scale on a GPU.
    ///
    /// Prints one JSON object: the loss, the sizes, the device and the median seconds of a step.
    LossBench {
        /// The loss, as a YAML map (configs/README.md), e.g. '{kind: soft_triple, centers_per_class: 2}'.
        #[arg(long, default_value = "{kind: soft_triple}")]
        loss: String,
        /// Classes (SOP: 11318).
        #[arg(long)]
        classes: i64,
        /// Batch size.
        #[arg(long, default_value_t = 32)]
        batch: i64,
        /// Embedding size.
        #[arg(long, default_value_t = 512)]
        dim: i64,
        /// Timed steps (after one warm-up step).
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Device: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Score embeddings: Recall@K, R-Precision, MAP@R and NMI (paper.md §5) from .npy files.
    ///
    /// Embeddings are float32 N × d (`np.save(p, e.astype(np.float32))`), labels int64 N. The test set
    /// is query and gallery; a query's own index is excluded; queries whose class has no other sample
    /// are left out of the retrieval metrics and counted.
    Eval(EvalArgs),
    /// Train and evaluate one run described by a YAML file, and write its record.
    ///
    /// The file holds one resolved run: `data`, `model`, `loss`, `dim`, `seed`, `train`, `eval`
    /// (see configs/README.md). The record goes to OUT/runs/<slug>-<id>.json; a checkpoint at the
    /// end of each epoch in OUT/work/<id>/ lets a killed run resume where it stopped.
    Train {
        /// The run file (YAML).
        file: std::path::PathBuf,
        /// Results folder.
        #[arg(long, default_value = "results/train")]
        out: std::path::PathBuf,
        /// Override the run's device: auto, cpu, cuda or cuda:N (not part of the run's id).
        #[arg(long)]
        device: Option<String>,
        /// Also write the test embeddings and labels to OUT/embeddings/<id>/ (for `harness eval --run`).
        #[arg(long)]
        save_embeddings: bool,
    },
    /// Data set tools.
    #[command(subcommand)]
    Data(DataCommand),
    /// List the runs a sweep file expands to (id, slug) without running anything.
    Plan {
        /// The sweep file (YAML; see configs/README.md).
        file: std::path::PathBuf,
    },
    /// Run every run of a sweep that has no record yet; records are written as each run ends.
    ///
    /// Killing it loses nothing finished; running it again does only what is missing. A failed or
    /// diverged run is recorded and the sweep goes on (`--retry-failed` runs them again).
    ///
    /// A file with a `protocol:` block runs the fair comparison instead (configs/README.md): each
    /// loss's search on validation classes, generation by generation, then its final phase on the
    /// test split (under `folds` with `concatenated: true`, also each seed's fold models evaluated
    /// as one); a failed trial scores the worst value and is kept, a failed or diverged final-phase
    /// run makes the command exit 1 (--retry-failed runs those again, never a trial), and --report
    /// is written at the end.
    Sweep {
        /// The sweep file (YAML).
        file: std::path::PathBuf,
        /// Results folder (default: results/<sweep name>).
        #[arg(long)]
        results: Option<std::path::PathBuf>,
        /// Run only shard i of n (0-based), e.g. 0/4; inside a Slurm job array the array task is used.
        #[arg(long)]
        shard: Option<String>,
        /// Override every run's device: auto, cpu, cuda or cuda:N (not part of the runs' ids).
        #[arg(long)]
        device: Option<String>,
        /// Also write each run's test embeddings and labels to RESULTS/embeddings/<id>/ (for `harness eval --run`).
        #[arg(long)]
        save_embeddings: bool,
        /// Run again the runs recorded as failed or diverged (under a `protocol:` block, the
        /// final-phase runs alone: a trial's outcome is part of its search).
        #[arg(long)]
        retry_failed: bool,
        /// Keep going when the sweep file changed under an existing results folder.
        #[arg(long)]
        allow_changed: bool,
        /// Write the report to this file each time a round is complete (every run of a seed; runs
        /// go seed by seed), from the complete rounds alone: an early, low-power report to read
        /// while the sweep goes on. A resumed sweep writes it first for the rounds already complete;
        /// of processes sharing the results folder, the one whose run completes a round writes it
        /// (once, and never an older round's report over a newer one).
        #[arg(long, value_name = "FILE")]
        report: Option<std::path::PathBuf>,
        /// Loss kind the --report compares every other variant with.
        #[arg(long, default_value = "softmax_norm", requires = "report")]
        baseline: String,
        /// Start N worker processes on this machine that share the results folder (each takes the
        /// next run no other is running), the cores divided among them: N workers of max(1,
        /// cores / N) libtorch threads each (unless --threads). Many small runs train faster as
        /// several one-thread workers than as one process with every thread.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// libtorch threads of this process (of each worker under --jobs); default: OMP_NUM_THREADS
        /// when set, else libtorch's own choice (every core). Logged and stored in each record.
        #[arg(long, value_name = "T", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Write the Markdown report of a results folder (tables, statistics, the paper's numbers).
    Report {
        /// The results folder (holding runs/).
        results: std::path::PathBuf,
        /// Output file (default: reports/<folder name>.md).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        /// Loss kind every other variant is compared with.
        #[arg(long, default_value = "softmax_norm")]
        baseline: String,
    },
    /// Write an sbatch script that runs a sweep as a Slurm job array (task i runs shard i/n).
    Slurm(SlurmArgs),
    /// Fail (exit 1) when a results folder is significantly worse than a stored baseline.
    ///
    /// For every cell (data set × dim × variant) of the baseline: paired t-tests over seeds that
    /// each metric moved by more than the tolerance (a drop, or a rise: an evaluation leak looks like
    /// progress) and that each training diagnostic (final loss, final regularizer, effective
    /// centres) moved by more than a relative tolerance. Missing cells and cells with another
    /// resolved config or split fingerprint are refused. Exit 1 on any finding.
    Regress {
        /// Baseline results folder (e.g. results/baselines/ci).
        #[arg(long)]
        baseline: std::path::PathBuf,
        /// Current results folder.
        #[arg(long)]
        current: std::path::PathBuf,
        /// Metrics to check (repeatable).
        #[arg(long = "metric", default_values_t = ["R@1".to_string(), "NMI".to_string(), "MAP@R".to_string()])]
        metrics: Vec<String>,
        /// Significance level of each comparison (α/2 per side for two-sided tests).
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Allowed move of a metric, in points (%), before it counts.
        #[arg(long, default_value_t = 1.0)]
        tolerance: f64,
        /// Fail on metric drops only, not on rises (the check before 2026-11-29).
        #[arg(long)]
        drops_only: bool,
        /// Allowed move of each training diagnostic, in % of its baseline mean.
        #[arg(long, default_value_t = 3.0)]
        diagnostics_tolerance: f64,
        /// Do not check the training diagnostics.
        #[arg(long)]
        no_diagnostics: bool,
        /// Also write the Markdown table to this file.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
}

/// `harness data …` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check a data set as distributed: counts per split, fingerprint, missing files, what the loader
    /// merged (Omniglot's repeated characters) and a decoded sample.
    Check {
        /// Data set kind of an image data set: cub, cars196, sop, flowers102, omniglot or folder.
        #[arg(long)]
        kind: String,
        /// The data set's root folder.
        #[arg(long)]
        root: std::path::PathBuf,
        /// Accept a deliberately partial copy (no standard count assertion).
        #[arg(long)]
        subset: bool,
        /// Decode every image (all cores) and name each one that is truncated or corrupt (without it,
        /// an even sample of 200 is decoded).
        #[arg(long)]
        decode: bool,
    },
}

/// Options of `harness eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Embeddings file (.npy, float32, N × d).
    #[arg(long, required_unless_present = "run")]
    pub embeddings: Option<std::path::PathBuf>,
    /// Labels file (.npy, int64, N).
    #[arg(long, required_unless_present = "run")]
    pub labels: Option<std::path::PathBuf>,
    /// A folder holding `embeddings.npy` and `labels.npy`, e.g. RESULTS/embeddings/<id>/ written by
    /// `harness train` or `harness sweep` with `--save-embeddings`.
    #[arg(long, conflicts_with_all = ["embeddings", "labels"])]
    pub run: Option<std::path::PathBuf>,
    /// The K of Recall@K, comma-separated (SOP: 1,10,100).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub recall_at: Vec<i64>,
    /// Skip NMI (k-means).
    #[arg(long)]
    pub no_nmi: bool,
    /// k-means restarts (the headline NMI is the lowest-inertia restart's).
    #[arg(long, default_value_t = 3)]
    pub restarts: u32,
    /// k-means iteration budget per restart.
    #[arg(long, default_value_t = 50)]
    pub max_iter: u32,
    /// k-means stops when an iteration lowers the inertia by less than this fraction (0: only at a fixed point).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// k-means initialisation: kmeans++ or random.
    #[arg(long, default_value = "kmeans++")]
    pub kmeans_init: String,
    /// Seed of the first k-means restart.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Working memory per block of the kNN and k-means, e.g. 64MiB, 1GiB (more is rarely faster on a CPU).
    #[arg(long, default_value = "256MiB")]
    pub memory_budget: String,
    /// Output format: markdown or json.
    #[arg(long, default_value = "markdown")]
    pub format: String,
}

/// Parses a byte size such as `1GiB`, `512MiB`, `64KiB` or a plain number of bytes.
pub fn parse_bytes(s: &str) -> anyhow::Result<usize> {
    let t = s.trim();
    let (num, mult) =
        [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("B", 1)]
            .iter()
            .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n.trim(), *m)))
            .unwrap_or((t, 1));
    let value: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a size: expected e.g. 512MiB, 2GiB or a number of bytes"))?;
    if value <= 0.0 {
        anyhow::bail!("`{s}`: a memory budget must be positive");
    }
    Ok((value * mult as f64) as usize)
}

/// Options of `harness slurm`.
#[derive(Debug, clap::Args)]
pub struct SlurmArgs {
    /// The sweep file (YAML).
    pub file: std::path::PathBuf,
    /// Array tasks, i.e. shards (default: one per run, at most 100).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Results folder shared by all tasks (default: results/<sweep name>).
    #[arg(long)]
    pub results: Option<std::path::PathBuf>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs per task (0 runs on the CPU).
    #[arg(long, default_value_t = 1)]
    pub gpus_per_task: u32,
    /// CPUs per task (image decoding threads).
    #[arg(long, default_value_t = 8)]
    pub cpus_per_task: u32,
    /// Time limit per task (Slurm syntax).
    #[arg(long, default_value = "24:00:00")]
    pub time: String,
    /// At most this many tasks at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Where to write the script (default: standard output).
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
}
