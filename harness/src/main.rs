//! The `harness` binary: parses the command line, runs it, prints `error: …` on failure.
use anyhow::{bail, Context, Result};
use clap::Parser;
use harness::cli::{parse_bytes, Cli, Command, DataCommand, EvalArgs, SlurmArgs};
use harness::device::parse_device;
use harness::regress::RegressOptions;
use std::collections::BTreeMap;

fn main() {
    // Before anything asks libtorch about CUDA (it decides once whether CUDA exists).
    harness::device::load_cuda_library();
    // Like other Unix tools, end quietly when the reader of standard output goes away
    // (`harness plan … | head`): Rust ignores SIGPIPE, which turned that into a panic.
    // SAFETY: setting a signal's disposition to its default at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    harness::progress::init_logging();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Doctor { json } => doctor(json),
        Command::LossCheck { steps, device, parity: false, .. } => loss_check(steps, &device),
        Command::LossCheck { device, parity: true, tolerance, .. } => loss_parity(&device, tolerance),
        Command::LossBench { loss, classes, batch, dim, iters, device } => {
            loss_bench(&loss, [classes, batch, dim], iters, &device)
        }
        Command::Eval(args) => eval(args),
        Command::Train { file, out, device, save_embeddings } => train(&file, &out, device, save_embeddings),
        Command::Data(DataCommand::Check { kind, root, subset, decode }) => data_check(&kind, &root, subset, decode),
        Command::Plan { file } => plan(&file),
        Command::Sweep {
            file,
            results,
            shard,
            device,
            retry_failed,
            allow_changed,
            save_embeddings,
            report,
            baseline,
            jobs,
            threads,
        } => {
            let opts = (shard, device, retry_failed, allow_changed, save_embeddings);
            let workers = (jobs.map(usize::from), threads.map(usize::from));
            sweep(&file, results, opts, workers, report.map(|r| (r, baseline)))
        }
        Command::Report { results, output, baseline } => report(&results, output, &baseline),
        Command::Slurm(args) => slurm(args),
        Command::Regress {
            baseline,
            current,
            metrics,
            alpha,
            tolerance,
            drops_only,
            diagnostics_tolerance,
            no_diagnostics,
            output,
        } => {
            let diagnostics_tolerance = (!no_diagnostics).then_some(diagnostics_tolerance);
            let opts = RegressOptions { metrics, alpha, tolerance, two_sided: !drops_only, diagnostics_tolerance };
            regress(&baseline, &current, opts, output)
        }
    }
}

/// `harness doctor`: what the harness sees; an error when something is missing.
fn doctor(json: bool) -> Result<()> {
    let report = harness::doctor::inspect();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if !report.problems.is_empty() {
        bail!("doctor found {} problem(s), listed above", report.problems.len());
    }
    Ok(())
}

/// `harness loss-check`: every loss kind builds, runs and decreases under Adam.
fn loss_check(steps: usize, device: &str) -> Result<()> {
    let device = harness::device::resolve_device(device).context("--device")?;
    println!("| loss | initial | after {steps} steps | effective centres/class |");
    println!("|---|---|---|---|");
    for config in harness::loss_check::default_configs() {
        let r = harness::loss_check::check(&config, steps, device)?;
        let eff = r.effective_centers.map_or("–".to_string(), |e| format!("{e:.2}"));
        println!("| `{}` | {:.4} | {:.4} | {eff} |", r.config, r.initial, r.last);
    }
    println!("\nall loss kinds built, ran forward and backward, and decreased under Adam.");
    Ok(())
}

/// `harness loss-check --parity`: every loss kind on the CPU against `device`, one table row each.
fn loss_parity(device: &str, tolerance: f64) -> Result<()> {
    let device = harness::device::resolve_device(device).context("--device")?;
    if tolerance.is_nan() || tolerance <= 0.0 {
        bail!("--tolerance {tolerance}: expected a positive number");
    }
    println!("| loss | CPU | {device:?} | loss rel. diff | gradient rel. diff |");
    println!("|---|---|---|---|---|");
    let mut failed = vec![];
    for config in harness::loss_check::default_configs() {
        let p = harness::loss_check::parity(&config, device)?;
        let (l, g) = (p.loss_rel_diff(), p.grad_rel_diff);
        println!("| `{}` | {:.6} | {:.6} | {l:.2e} | {g:.2e} |", p.config, p.loss_cpu, p.loss_device);
        if l.is_nan() || g.is_nan() || l > tolerance || g > tolerance {
            failed.push(config.label());
        }
    }
    if !failed.is_empty() {
        bail!("{} differ between the CPU and {device:?} by more than {tolerance:e}", failed.join(", "));
    }
    println!("\nevery loss kind agrees between the CPU and {device:?} within {tolerance:e} (relative).");
    Ok(())
}

/// `harness loss-bench`: the median forward + backward time of one loss at one size, as JSON.
fn loss_bench(loss: &str, [classes, batch, dim]: [i64; 3], iters: usize, device: &str) -> Result<()> {
    let config: losses::LossConfig = serde_yaml::from_str(loss)
        .with_context(|| format!("--loss `{loss}`: expected a loss map such as '{{kind: soft_triple}}'"))?;
    if classes < 1 || batch < 2 || dim < 1 {
        bail!("--classes {classes} --batch {batch} --dim {dim}: expected at least 1 class, 2 samples and 1 dimension");
    }
    let device = harness::device::resolve_device(device).context("--device")?;
    let median = harness::loss_check::time_step(&config, classes, batch, dim, device, iters)?;
    let out = serde_json::json!({"loss": config.label(), "config": config, "classes": classes, "batch": batch,
        "dim": dim, "device": format!("{device:?}"), "iters": iters, "median_s": median});
    println!("{out}");
    Ok(())
}

/// `harness slurm`: a job-array script for a sweep (printed, or written with `--output`).
fn slurm(args: SlurmArgs) -> Result<()> {
    let sweep = harness::sweep::Sweep::load(&args.file)?;
    let n = sweep.runs.len();
    let tasks = args.tasks.unwrap_or_else(|| n.clamp(1, 100));
    if tasks == 0 || tasks > n {
        bail!("--tasks {tasks}: expected 1..={n} (the sweep has {n} runs)");
    }
    let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let results = abs(&args.results.unwrap_or_else(|| std::path::PathBuf::from("results").join(&sweep.name)));
    let opts = harness::slurm::SlurmOptions {
        tasks,
        partition: args.partition,
        gpus_per_task: args.gpus_per_task,
        cpus_per_task: args.cpus_per_task,
        time: args.time,
        max_parallel: args.max_parallel,
        job_name: sweep.name.clone(),
    };
    let exe = std::env::current_exe().context("locating the harness binary")?;
    let text = harness::slurm::script(&exe, &abs(&args.file), &results, &opts);
    // Slurm opens each task's --output file before the script runs: the folder must exist.
    let logs = results.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    match args.output {
        Some(o) => {
            harness::fsio::write_atomic(&o, text.as_bytes())?;
            eprintln!("wrote {} ({tasks} array tasks); submit with: sbatch {}", o.display(), o.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `harness regress`: the accuracy check; an error (exit 1) on a regression or a refused cell.
fn regress(
    baseline: &std::path::Path,
    current: &std::path::Path,
    opts: RegressOptions,
    output: Option<std::path::PathBuf>,
) -> Result<()> {
    let mut problems = vec![];
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        problems.push(format!("--alpha {}: expected a level in (0, 1)", opts.alpha));
    }
    if opts.tolerance.is_nan() || opts.tolerance < 0.0 {
        problems.push(format!("--tolerance {}: expected points >= 0", opts.tolerance));
    }
    if let Some(t) = opts.diagnostics_tolerance.filter(|t| t.is_nan() || *t < 0.0) {
        problems.push(format!("--diagnostics-tolerance {t}: expected a percentage >= 0"));
    }
    let b = harness::store::read_records(baseline).map_err(|e| problems.push(format!("--baseline: {e:#}"))).ok();
    let c = harness::store::read_records(current).map_err(|e| problems.push(format!("--current: {e:#}"))).ok();
    let (Some(b), Some(c), true) = (b, c, problems.is_empty()) else { bail!("{}", problems.join("\n")) };
    let r = harness::regress::check(&b, &c, &opts);
    print!("{}", r.markdown);
    if let Some(o) = output {
        harness::fsio::write_atomic(&o, r.markdown.as_bytes())?;
    }
    if r.regressions > 0 || r.refused > 0 {
        bail!(
            "the accuracy check failed: {} regression(s), {} cell(s) not compared (table above)",
            r.regressions,
            r.refused
        );
    }
    Ok(())
}

/// `harness eval`: validates every option first, then loads, evaluates and prints.
fn eval(args: EvalArgs) -> Result<()> {
    let mut problems = vec![];
    let device = parse_device(&args.device).map_err(|e| problems.push(format!("--device: {e}"))).ok();
    let init = args.kmeans_init.parse().map_err(|e| problems.push(format!("--kmeans-init: {e}"))).ok();
    let budget = parse_bytes(&args.memory_budget).map_err(|e| problems.push(format!("--memory-budget: {e}"))).ok();
    if !(args.tol >= 0.0 && args.tol.is_finite()) {
        problems.push(format!("--tol: {} is not a tolerance: expected a finite number >= 0, e.g. 1e-4", args.tol));
    }
    if !matches!(args.format.as_str(), "markdown" | "json") {
        problems.push(format!("--format: unknown format `{}`: expected `markdown` or `json`", args.format));
    }
    if let Some(tch::Device::Cuda(_)) = device {
        if !harness::device::cuda_available() {
            problems.push("--device: CUDA asked for, but libtorch sees no CUDA device (see `harness doctor`)".into());
        }
    }
    let (emb_path, lab_path) = match &args.run {
        Some(dir) => (dir.join("embeddings.npy"), dir.join("labels.npy")),
        None => (args.embeddings.clone().unwrap_or_default(), args.labels.clone().unwrap_or_default()),
    };
    for p in [&emb_path, &lab_path] {
        if !p.is_file() {
            problems.push(format!("{}: no such file", p.display()));
        }
    }
    if !problems.is_empty() {
        bail!("{} problem(s) with the options:\n  {}", problems.len(), problems.join("\n  "));
    }
    let config = harness::eval::EvalConfig {
        recall_at: args.recall_at.clone(),
        nmi: !args.no_nmi,
        kmeans_restarts: args.restarts,
        kmeans_max_iter: args.max_iter,
        kmeans_tol: args.tol,
        kmeans_init: init.unwrap(),
        seed: args.seed,
        memory_budget: budget.unwrap(),
    };
    let device = device.unwrap();
    let embeddings = harness::npy::read_embeddings(&emb_path)?.to_device(device);
    let labels = harness::npy::read_labels(&lab_path)?.to_device(device);
    let report = harness::eval::evaluate(&embeddings, &labels, &config)
        .with_context(|| format!("evaluating {} with {}", emb_path.display(), lab_path.display()))?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}

/// `harness train`: one run from a YAML file, its record written at once (the sweep's run path).
fn train(file: &std::path::Path, out: &std::path::Path, device: Option<String>, save_embeddings: bool) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut config: harness::train::RunConfig =
        serde_yaml::from_str(&text).with_context(|| format!("{}: not a valid run file", file.display()))?;
    if let Some(d) = device {
        harness::device::resolve_device(&d).context("--device")?;
        config.train.device = d;
    }
    let mut problems = config.problems();
    if let Err(e) = config.loss.prepare(&[config.dim]) {
        problems.push(format!("`loss`: {e}")); // a plug-in's file hash joins the config here
    }
    if !problems.is_empty() {
        bail!("{}: {} problem(s):\n  {}", file.display(), problems.len(), problems.join("\n  "));
    }
    let slug = harness::store::slug(&config);
    tracing::info!("run {slug} ({})", harness::store::run_id(&config));
    let bar = std::cell::RefCell::new(harness::progress::SweepProgress::new(1, config.train.epochs as u64));
    bar.borrow_mut().start_run(&slug, config.train.epochs as u64);
    let executed = harness::execute::execute_run(
        &config,
        out,
        &harness::execute::ExecuteOptions { save_embeddings, shard: None, replace_unfinished: true },
        &|e| match e {
            harness::train::RunEvent::Epoch { loss, .. } => bar.borrow_mut().epoch(loss),
            harness::train::RunEvent::Resumed { epoch } => {
                bar.borrow().println(&format!("resumed after epoch {epoch}"))
            }
        },
    )?;
    bar.borrow_mut().finish_run();
    use harness::execute::Executed;
    let (record, path) = match executed {
        Executed::Ran(record, path) => (record, path),
        Executed::Busy => bail!("another process is running this run into {} (its lock is held)", out.display()),
        Executed::AlreadyRecorded(record, path) => {
            tracing::info!("already recorded (a finished record is never replaced)");
            (record, path)
        }
    };
    tracing::info!("record: {}", path.display());
    let o = &record.outcome;
    match (&o.metrics, o.status) {
        (Some(m), _) => print!("{}", m.to_markdown()),
        (None, harness::train::RunStatus::Diverged) => {
            println!("run diverged: loss not finite at step {}", o.diagnostics.diverged_at_step.unwrap_or(0))
        }
        (None, _) => bail!("the run failed (recorded in {}): {}", path.display(), o.error.clone().unwrap_or_default()),
    }
    Ok(())
}

/// `harness data check`: counts, fingerprint and missing files of a data set.
fn data_check(kind: &str, root: &std::path::Path, subset: bool, decode: bool) -> Result<()> {
    // The data set config a run file would hold, so the kinds and their fields are the config's own.
    let mut yaml = serde_yaml::Mapping::new();
    yaml.insert("kind".into(), kind.into());
    yaml.insert("root".into(), root.to_string_lossy().to_string().into());
    if subset {
        yaml.insert("subset".into(), true.into());
    }
    let config: harness::data::DatasetConfig = serde_yaml::from_value(yaml.into())
        .with_context(|| format!("--kind {kind}{}", if subset { " --subset" } else { "" }))?;
    let Some(list) = config.image_list() else { bail!("--kind `{kind}` is not read from image files") };
    let list = list?;
    println!("data set     {kind} at {}", root.display());
    for (name, items) in [("train", &list.train), ("test", &list.test)] {
        println!("{name:<12} {} classes, {} images", harness::data::class_count(items), items.len());
    }
    for note in &list.notes {
        println!("{note}");
    }
    println!("fingerprint  {}", list.fingerprint());
    let missing = list.missing_files();
    if !missing.is_empty() {
        for m in missing.iter().take(20) {
            println!("missing      {}", m.display());
        }
        if missing.len() > 20 {
            println!("missing      … and {} more", missing.len() - 20);
        }
        bail!("{} image file(s) listed by the data set are missing under {}", missing.len(), root.display());
    }
    println!("all {} image files are present", list.train.len() + list.test.len());
    decode_images(&list, decode)
}

/// Images `data check` decodes without `--decode`: this many, spread evenly over the data set.
const DECODE_SAMPLE: usize = 200;

/// `data check`: decodes every image with `all`, else an even sample of [`DECODE_SAMPLE`] (all
/// cores, a bar on a terminal), and names the bad ones on one line each.
fn decode_images(list: &harness::data::ImageList, all: bool) -> Result<()> {
    let every: Vec<std::path::PathBuf> = list.train.iter().chain(&list.test).map(|i| list.root.join(&i.path)).collect();
    let total = every.len();
    let paths: Vec<std::path::PathBuf> = if all || total <= DECODE_SAMPLE {
        every
    } else {
        (0..DECODE_SAMPLE).map(|k| every[k * total / DECODE_SAMPLE].clone()).collect()
    };
    let sampled = paths.len() < total;
    let bar = harness::progress::counter(paths.len() as u64, "decoding");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bad = harness::data::pipeline::undecodable(&paths, threads, &|| bar.inc(1));
    bar.finish_and_clear();
    for (p, why) in bad.iter().take(50) {
        println!("undecodable  {}: {why}", p.display());
    }
    if bad.len() > 50 {
        println!("undecodable  … and {} more", bad.len() - 50);
    }
    if !bad.is_empty() {
        let (of, whole) = if sampled {
            ("of a sample of ", format!("; `--decode` decodes all {total} and names every bad one"))
        } else {
            ("of ", String::new())
        };
        bail!(
            "{} {of}{} images cannot be decoded (listed above){whole}; fix or remove them, or train with `on_bad_image: skip`",
            bad.len(),
            paths.len()
        );
    }
    if sampled {
        println!("a sample of {} of the {total} images decodes; the others were not decoded (`--decode` decodes every image)", paths.len());
    } else {
        println!("all {} images decode", paths.len());
    }
    Ok(())
}

/// `harness plan`: the expanded runs of a sweep.
fn plan(file: &std::path::Path) -> Result<()> {
    let sweep = harness::sweep::Sweep::load(file)?;
    println!("| # | id | run |\n|---|---|---|");
    for (i, r) in sweep.runs.iter().enumerate() {
        println!("| {i} | {} | {} |", r.id, r.slug);
    }
    println!("\n{} runs in sweep `{}` (fingerprint {})", sweep.runs.len(), sweep.name, sweep.fingerprint());
    if let Some(p) = &sweep.protocol {
        let studies = harness::sweep::search::studies(&sweep, p);
        let (runs, epochs) = harness::sweep::budget(&studies, p);
        println!(
            "Under its `protocol:` block these are the declared settings and seeds of {} searches: each gets {} trials on {} fold(s) of the training classes, beside its declared setting, then its best setting and its default are trained at each seed{} and tested once{}: at most {runs} runs and {epochs} epochs (model selection stops runs early).",
            studies.len(),
            p.search.trials,
            p.split.folds(),
            if p.split.folds() > 1 { ", one model per fold," } else { "" },
            if p.concatenated { ", also as the fold models' embeddings concatenated (no training)" } else { "" }
        );
    }
    let data = harness::sweep::data_problems(&sweep);
    if !data.is_empty() {
        bail!("{}: its runs cannot start until the data is in place:\n  {}", file.display(), data.join("\n  "));
    }
    Ok(())
}

/// `harness sweep`: runs what is missing, shard by shard.
fn sweep(
    file: &std::path::Path,
    results: Option<std::path::PathBuf>,
    (shard, device, retry_failed, allow_changed, save_embeddings): (Option<String>, Option<String>, bool, bool, bool),
    (jobs, threads): (Option<usize>, Option<usize>),
    report: Option<(std::path::PathBuf, String)>,
) -> Result<()> {
    let mut problems = vec![];
    let shard = harness::sweep::shard_from_env(shard.as_deref()).map_err(|e| problems.push(format!("{e:#}"))).ok();
    if let Some(d) = &device {
        if let Err(e) = harness::device::resolve_device(d) {
            problems.push(format!("--device: {e:#}"));
        }
    }
    let sweep = harness::sweep::Sweep::load(file).map_err(|e| problems.push(format!("{e:#}"))).ok();
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    let sweep = sweep.unwrap();
    let data = harness::sweep::data_problems(&sweep);
    if !data.is_empty() {
        bail!("{}: no run was started and nothing was recorded:\n  {}", file.display(), data.join("\n  "));
    }
    let results = results.unwrap_or_else(|| std::path::PathBuf::from("results").join(&sweep.name));
    if let Some(jobs) = jobs {
        return start_workers(jobs, threads, &results, report.as_ref().map(|r| r.0.as_path()));
    }
    let watch = ThreadWatch::start(&results, threads)?;
    let check_threads = || watch.check();
    let opts = harness::sweep::SweepOptions {
        results: results.clone(),
        shard: shard.unwrap(),
        device,
        retry_failed,
        allow_changed,
        save_embeddings,
    };
    let source = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if sweep.protocol.is_some() {
        if allow_changed {
            bail!("{}: --allow-changed does not apply under a `protocol:` block: a changed search needs a new results folder (--results)", file.display());
        }
        return tune(&sweep, &source, &opts, report, &check_threads);
    }
    plain_sweep(&sweep, &source, &opts, report, &check_threads)
}

/// `harness sweep` of a file without a `protocol:` block: the shard's runs that have no record
/// (the report rewritten after each round with `--report`); exits 1 while any run of the shard is
/// recorded as failed.
fn plain_sweep(
    sweep: &harness::sweep::Sweep,
    source: &str,
    opts: &harness::sweep::SweepOptions,
    report: Option<(std::path::PathBuf, String)>,
    check_threads: &dyn Fn(),
) -> Result<()> {
    let results = &opts.results;
    let display = std::cell::RefCell::new(harness::progress::SweepDisplay::default());
    // A report that cannot be written now is written at the next round or by `harness report`.
    let unwritten = |err: anyhow::Error| tracing::warn!("the round's report was not written: {err:#}");
    let rounds = report.map(|(output, baseline)| {
        let r = RoundReports { sweep, results: results.clone(), output, baseline };
        r.before_runs().unwrap_or_else(unwritten);
        r
    });
    let summary = harness::sweep::run_sweep(sweep, source, opts, &|e| {
        if matches!(e, harness::sweep::SweepEvent::RunStarted { .. }) {
            check_threads();
        }
        let finished = match &e {
            harness::sweep::SweepEvent::RunFinished { slug, .. } => Some(slug.clone()),
            _ => None,
        };
        display.borrow_mut().show(e);
        if let (Some(slug), Some(r)) = (finished, &rounds) {
            r.after_run(&slug).unwrap_or_else(unwritten);
        }
    })?;
    display.borrow_mut().finish();
    let (i, n) = opts.shard;
    let s = &summary;
    tracing::info!(
        "shard {i}/{n}: {} runs, {} already recorded, {} finished, {} diverged, {} failed, {} left to another process running them; records in {}",
        s.in_shard,
        s.skipped,
        s.finished,
        s.diverged,
        s.failed,
        s.busy,
        results.join("runs").display()
    );
    let failed = s.failed + s.failed_before;
    if failed > 0 {
        bail!(
            "{failed} run(s) of this shard are recorded as failed ({} now, {} by an earlier invocation); their errors are in the report and the records; rerun with --retry-failed once the cause is fixed",
            s.failed,
            s.failed_before
        );
    }
    Ok(())
}

/// This process as a worker of a results folder: its libtorch threads set and registered, and a
/// warning, once, when the folder's live workers ask for more threads than the machine has cores.
struct ThreadWatch {
    results: std::path::PathBuf,
    warned: std::cell::Cell<bool>,
    _registration: harness::sweep::workers::Registration,
}

impl ThreadWatch {
    /// Sets the threads (see [`set_threads`]), registers this worker and checks once.
    fn start(results: &std::path::Path, threads: Option<usize>) -> Result<Self> {
        let threads = set_threads(threads);
        let _registration = harness::sweep::workers::register(results, threads)?;
        let watch = Self { results: results.into(), warned: std::cell::Cell::new(false), _registration };
        watch.check();
        Ok(watch)
    }

    /// Warns if the workers oversubscribe the cores, unless it already did.
    fn check(&self) {
        if !self.warned.get() {
            self.warned.set(oversubscription_warning(&self.results));
        }
    }
}

/// Sets this process's libtorch threads from `--threads` (else OMP_NUM_THREADS or libtorch's
/// default stands), logs the count and where it came from, and returns it.
fn set_threads(threads: Option<usize>) -> usize {
    let source = match threads {
        Some(t) => {
            tch::set_num_threads(t as i32);
            "--threads"
        }
        None if std::env::var("OMP_NUM_THREADS").is_ok() => "OMP_NUM_THREADS",
        None => "libtorch's default",
    };
    let n = tch::get_num_threads().max(1) as usize;
    tracing::info!("libtorch threads: {n} ({source})");
    n
}

/// Warns (once: returns true when it did) when the live workers of `results` on this machine ask
/// for more libtorch threads in all than it has cores.
fn oversubscription_warning(results: &std::path::Path) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = harness::sweep::workers::live_threads(results);
    if !harness::sweep::workers::oversubscribed(cores, &threads) {
        return false;
    }
    tracing::warn!(
        "{} sweep processes share {} on this machine with {} libtorch threads in all on {cores} cores: their thread pools oversubscribe the cores and every run slows down (two such processes took 20 times as long as one, reports/perf.md); start one `harness sweep --jobs {}` instead (it divides the cores), or give each process `--threads` so that they add up to {cores}",
        threads.len(),
        results.display(),
        threads.iter().sum::<usize>(),
        threads.len()
    );
    true
}

/// `sweep --jobs N`: starts N workers (this binary, the same arguments without --jobs, and
/// --threads T: the given one or the cores divided among them) on one results folder and waits for
/// them; their log lines are passed on prefixed with the worker's number. Fails if any worker did.
fn start_workers(
    jobs: usize,
    threads: Option<usize>,
    results: &std::path::Path,
    report: Option<&std::path::Path>,
) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = threads.unwrap_or_else(|| harness::sweep::workers::threads_per_worker(cores, jobs));
    tracing::info!(
        "--jobs {jobs}: {jobs} worker(s) of {t} libtorch thread(s) on {cores} cores, sharing {}",
        results.display()
    );
    let args = worker_args(std::env::args().skip(1).collect(), t);
    let exe = std::env::current_exe().context("finding this binary to start the workers")?;
    let mut children = vec![];
    for k in 1..=jobs {
        let mut child = std::process::Command::new(&exe)
            .args(&args)
            .env("OMP_NUM_THREADS", t.to_string())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting worker {k} ({})", exe.display()))?;
        let stderr = child.stderr.take().context("a worker's standard error")?;
        let relay = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[worker {k}] {line}");
            }
        });
        children.push((k, child, relay));
    }
    let mut failed = vec![];
    for (k, mut child, relay) in children {
        let status = child.wait().with_context(|| format!("waiting for worker {k}"))?;
        let _ = relay.join();
        if !status.success() {
            failed.push(format!("worker {k} ({status})"));
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {jobs} worker(s) failed: {} (their errors are above; records of finished runs are kept)",
            failed.len(),
            failed.join(", ")
        );
    }
    if let Some(r) = report {
        tracing::info!("every worker is done; the last round's report is {}", r.display());
    }
    Ok(())
}

/// A worker's arguments: the command line's without `--jobs N` (or `--jobs=N`) and any
/// `--threads`, with `--threads T` added.
fn worker_args(args: Vec<String>, threads: usize) -> Vec<String> {
    let mut out = vec![];
    let mut skip_value = false;
    for a in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if a == "--jobs" || a == "--threads" {
            skip_value = true;
        } else if !(a.starts_with("--jobs=") || a.starts_with("--threads=")) {
            out.push(a);
        }
    }
    out.extend(["--threads".to_string(), threads.to_string()]);
    out
}

/// `harness sweep` of a file with a `protocol:` block: the searches and final phases until every
/// run is recorded, then the report. A failed or diverged trial is part of the search (it scores
/// the worst value and is counted in the report), so it does not fail the command; a failed or
/// diverged final-phase run leaves a loss without its result, so it does (exit 1, naming each).
fn tune(
    sweep: &harness::sweep::Sweep,
    source: &str,
    opts: &harness::sweep::SweepOptions,
    report: Option<(std::path::PathBuf, String)>,
    check_threads: &dyn Fn(),
) -> Result<()> {
    let display = std::cell::RefCell::new(harness::progress::SweepDisplay::default());
    let s = harness::sweep::run_protocol_sweep(sweep, source, opts, &|e| {
        if matches!(e, harness::sweep::SweepEvent::RunStarted { .. }) {
            check_threads();
        }
        display.borrow_mut().show(e)
    })?;
    display.borrow_mut().finish();
    let records = harness::store::read_records(&opts.results)?;
    let (trials, finals) = harness::sweep::unfinished_by_phase(&records);
    tracing::info!(
        "protocol: {} runs finished here, {} diverged, {} failed; in the folder {} trial(s) did not finish (each scores the worst value and stays part of the search) and {} final-phase run(s); records in {}",
        s.finished,
        s.diverged,
        s.failed,
        trials.len(),
        finals.len(),
        opts.results.join("runs").display()
    );
    if let Some((output, baseline)) = report {
        write_report(&records, &output, &format!("Report: {}", sweep.name), &baseline, "")?;
        tracing::info!("report written to {}", output.display());
    }
    if !finals.is_empty() {
        bail!(
            "the final phase did not finish: {} run(s) on the test split failed or diverged, so their losses have no test result:\n  {}\nfix the cause, then rerun with --retry-failed (it runs the failed final-phase runs again; trials are never rerun)",
            finals.len(),
            finals.join("\n  ")
        );
    }
    Ok(())
}

/// Renders `records` into `output` (Markdown, `footer` its last line unless empty) and its charts
/// beside it, each written atomically.
fn write_report(
    records: &[harness::store::RunRecord],
    output: &std::path::Path,
    title: &str,
    baseline: &str,
    footer: &str,
) -> Result<()> {
    let stem = output.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "report".into());
    let opts = harness::report::ReportOptions {
        title: title.into(),
        baseline: baseline.into(),
        plot_stem: stem,
        floors: floors(records),
    };
    let (text, plots) = harness::report::render_with_plots(records, &opts);
    let folder = output.parent().unwrap_or(std::path::Path::new("."));
    for p in &plots {
        harness::fsio::write_atomic(&folder.join(&p.file_name), p.svg.as_bytes())?;
    }
    let text = if footer.is_empty() { text } else { format!("{text}\n{footer}\n") };
    harness::fsio::write_atomic(output, text.as_bytes())?;
    Ok(())
}

/// `sweep --report`: rewrites the report each time a round (every run of one seed, the seeds in
/// order) is complete in the results folder, from the complete rounds' records alone.
struct RoundReports<'a> {
    sweep: &'a harness::sweep::Sweep,
    results: std::path::PathBuf,
    output: std::path::PathBuf,
    baseline: String,
}

impl RoundReports<'_> {
    /// The seeds whose every run is recorded (the seeds in order, up to the first incomplete one)
    /// and the records.
    fn complete_rounds(&self) -> Result<(Vec<u64>, Vec<harness::store::RunRecord>)> {
        let records = harness::store::read_records(&self.results)?;
        let recorded: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let seeds: std::collections::BTreeSet<u64> = self.sweep.runs.iter().map(|r| r.config.seed).collect();
        let complete: Vec<u64> = seeds
            .iter()
            .copied()
            .take_while(|s| {
                self.sweep.runs.iter().filter(|r| r.config.seed == *s).all(|r| recorded.contains(r.id.as_str()))
            })
            .collect();
        Ok((complete, records))
    }

    /// Before any run: the report of the rounds a resumed sweep finds complete.
    fn before_runs(&self) -> Result<()> {
        if !self.results.join("runs").is_dir() {
            return Ok(());
        }
        self.write()
    }

    /// After a run of this process: writes the report when the run's round is complete (the run
    /// completed it, or re-ran one of its runs). A round that another process's run completed is
    /// that process's to write (two processes sharing a results folder each wrote every round's
    /// report, each taking seconds from its runs).
    fn after_run(&self, slug: &str) -> Result<()> {
        let (complete, _) = self.complete_rounds()?;
        let seed = self.sweep.runs.iter().find(|r| r.slug == slug).map(|r| r.config.seed);
        if seed.is_some_and(|s| complete.contains(&s)) {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the report of the complete rounds' records alone, unless the report holds these
    /// records already. The rounds are read under a lock beside the report, so a process whose
    /// round completed first but whose write comes last cannot put an older report back over a
    /// newer one, and two processes that completed a round at once write it once.
    fn write(&self) -> Result<()> {
        let name = self.output.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let folder = self.output.parent().unwrap_or(std::path::Path::new("."));
        let _lock = harness::fsio::lock(&folder.join(format!(".{name}.lock")))?;
        let (complete, records) = self.complete_rounds()?;
        if complete.is_empty() {
            return Ok(());
        }
        let seeds: std::collections::BTreeSet<u64> = self.sweep.runs.iter().map(|r| r.config.seed).collect();
        let ids: std::collections::HashSet<&str> =
            self.sweep.runs.iter().filter(|r| complete.contains(&r.config.seed)).map(|r| r.id.as_str()).collect();
        let done: Vec<harness::store::RunRecord> =
            records.into_iter().filter(|r| ids.contains(r.id.as_str())).collect();
        let rounds = if complete.len() == seeds.len() {
            "every round".to_string()
        } else {
            format!(
                "round {} of {} (seeds {complete:?} of {:?}; written while the sweep runs)",
                complete.len(),
                seeds.len(),
                seeds.iter().collect::<Vec<_>>()
            )
        };
        let title = format!("Report: {}, {rounds}", self.sweep.name);
        let mark = format!("<!-- sweep --report of records {} -->", records_mark(&title, &self.baseline, &done));
        if std::fs::read_to_string(&self.output).is_ok_and(|t| t.contains(&mark)) {
            tracing::debug!("the report of {rounds} is written already: {}", self.output.display());
            return Ok(());
        }
        write_report(&done, &self.output, &title, &self.baseline, &mark)?;
        tracing::info!("report of {rounds}: {}", self.output.display());
        Ok(())
    }
}

/// What a report was made of: the hash of its title, its baseline and its records' ids and finish
/// times (a re-run record changes it).
fn records_mark(title: &str, baseline: &str, records: &[harness::store::RunRecord]) -> String {
    let mut keys: Vec<String> = records.iter().map(|r| format!("{} {}", r.id, r.finished_at)).collect();
    keys.sort();
    harness::store::short_hash(&format!("{title}\n{baseline}\n{}", keys.join("\n")), 8)
}

/// The floor of every (data set, embedding size) whose floor a report shows, from the
/// settings of its lowest-seed finished run; skipped (with a warning) where the data the code
/// generates today is not the data the records were trained on.
fn floors(records: &[harness::store::RunRecord]) -> BTreeMap<(String, i64), harness::train::Floor> {
    let mut first: BTreeMap<(String, i64), &harness::store::RunRecord> = BTreeMap::new();
    for r in records.iter().filter(|r| r.config.data.has_floor() && r.outcome.metrics.is_some()) {
        let slot = first.entry((r.config.data.name().to_string(), r.config.dim)).or_insert(r);
        if r.config.seed < slot.config.seed {
            *slot = r;
        }
    }
    let mut out = BTreeMap::new();
    for (key, r) in first {
        let mut config = r.config.clone();
        config.train.device = "cpu".into();
        match harness::train::floor(&config) {
            Ok(f) if f.split_fingerprint == r.outcome.split_fingerprint => {
                out.insert(key, f);
            }
            Ok(f) => tracing::warn!(
                "{} d{}: no floor: today's data ({}) is not the records' ({})",
                key.0,
                key.1,
                f.split_fingerprint,
                r.outcome.split_fingerprint
            ),
            Err(e) => tracing::warn!("{} d{}: no floor: {e:#}", key.0, key.1),
        }
    }
    out
}

/// `harness report`: Markdown from the records of a results folder.
fn report(results: &std::path::Path, output: Option<std::path::PathBuf>, baseline: &str) -> Result<()> {
    let records = harness::store::read_records(results)?;
    if records.is_empty() {
        bail!("{}: no run records yet (run `harness sweep` first)", results.display());
    }
    let name = results.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "report".into());
    let output = output.unwrap_or_else(|| std::path::PathBuf::from("reports").join(format!("{name}.md")));
    write_report(&records, &output, &format!("Report: {name}"), baseline, "")?;
    let (csv, parquet) = harness::table::export(results, &records)?;
    tracing::info!(
        "report: {} ({} runs); tables: {}, {}",
        output.display(),
        records.len(),
        csv.display(),
        parquet.display()
    );
    Ok(())
}
