//! The `harness` binary: parses the command line, runs it, prints `error: …` on failure.
use anyhow::{bail, Context, Result};
use clap::Parser;
use harness::cli::{parse_bytes, parse_device, Cli, Command, EvalArgs};

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Doctor { json } => {
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
        Command::LossCheck { steps, device } => {
            let device = parse_device(&device)?;
            if let tch::Device::Cuda(_) = device {
                if !tch::Cuda::is_available() {
                    bail!("--device cuda asked for, but libtorch sees no CUDA device (run `harness doctor`)");
                }
            }
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
        Command::Eval(args) => eval(args),
    }
}

/// `harness eval`: validates every option first, then loads, evaluates and prints.
fn eval(args: EvalArgs) -> Result<()> {
    let mut problems = vec![];
    let device = parse_device(&args.device).map_err(|e| problems.push(format!("--device: {e}"))).ok();
    let init = args.kmeans_init.parse().map_err(|e| problems.push(format!("--kmeans-init: {e}"))).ok();
    let budget = parse_bytes(&args.memory_budget).map_err(|e| problems.push(format!("--memory-budget: {e}"))).ok();
    if !matches!(args.format.as_str(), "markdown" | "json") {
        problems.push(format!("--format: unknown format `{}`: expected `markdown` or `json`", args.format));
    }
    if let Some(tch::Device::Cuda(_)) = device {
        if !tch::Cuda::is_available() {
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
        kmeans_tol: 1e-4,
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
