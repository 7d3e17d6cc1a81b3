//! The `harness` binary: parses the command line, runs it, prints `error: …` on failure.
use anyhow::{bail, Result};
use clap::Parser;
use harness::cli::{parse_device, Cli, Command};

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
    }
}
