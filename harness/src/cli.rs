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
    },
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` into a tch device.
pub fn parse_device(s: &str) -> anyhow::Result<tch::Device> {
    match s {
        "cpu" => Ok(tch::Device::Cpu),
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cuda" => Ok(tch::Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(tch::Device::Cuda(n)),
            _ => anyhow::bail!("unknown device `{s}`: expected `cpu`, `auto`, `cuda` or `cuda:N` (N a GPU index)"),
        },
    }
}
