//! `harness slurm`: an sbatch script for a Slurm job array in which task i runs
//! `harness sweep FILE --shard i/n` into one shared results folder, with one log per task.
use std::path::Path;

/// Options of the emitted script.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// Number of array tasks (shards).
    pub tasks: usize,
    /// Slurm partition, if any.
    pub partition: Option<String>,
    /// GPUs per task (0: CPU only).
    pub gpus_per_task: u32,
    /// CPUs per task.
    pub cpus_per_task: u32,
    /// Time limit (Slurm syntax, e.g. 24:00:00).
    pub time: String,
    /// At most this many tasks at once (`%N` of `--array`).
    pub max_parallel: Option<usize>,
    /// Job name.
    pub job_name: String,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script text. `harness` is the absolute path of the binary; paths are made absolute so the
/// job runs from any working directory. The caller creates `<results>/logs` (Slurm opens the log
/// files before the script starts).
pub fn script(harness: &Path, sweep_file: &Path, results: &Path, opts: &SlurmOptions) -> String {
    let n = opts.tasks;
    let array = match opts.max_parallel {
        Some(p) => format!("0-{}%{p}", n - 1),
        None => format!("0-{}", n - 1),
    };
    let logs = results.join("logs");
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("#SBATCH --job-name={}\n", opts.job_name));
    s.push_str(&format!("#SBATCH --array={array}\n"));
    s.push_str(&format!("#SBATCH --output={}/%x-%A-%a.out\n", logs.display()));
    s.push_str(&format!("#SBATCH --error={}/%x-%A-%a.err\n", logs.display()));
    s.push_str(&format!("#SBATCH --time={}\n", opts.time));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task));
    s.push_str("#SBATCH --ntasks=1\n");
    if let Some(p) = &opts.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if opts.gpus_per_task > 0 {
        s.push_str(&format!("#SBATCH --gpus-per-task={}\n", opts.gpus_per_task));
    }
    s.push_str(&format!(
        "# Written by `harness slurm`: {n} array tasks; task i runs shard i/{n} of the sweep into one results\n\
         # folder (each run's record is its own file, written atomically, so tasks never collide). Submit\n\
         # with `sbatch` from anywhere; resubmitting runs only what has no record yet.\n"
    ));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("mkdir -p {}\n", quote(&logs.to_string_lossy())));
    let device = if opts.gpus_per_task > 0 { "cuda" } else { "cpu" };
    s.push_str(&format!(
        "exec {} sweep {} --results {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\" --device {device}\n",
        quote(&harness.to_string_lossy()),
        quote(&sweep_file.to_string_lossy()),
        quote(&results.to_string_lossy())
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_the_array_resources_logs_and_the_shard_command() {
        let o = SlurmOptions {
            tasks: 4,
            partition: Some("gpu".into()),
            gpus_per_task: 1,
            cpus_per_task: 8,
            time: "24:00:00".into(),
            max_parallel: Some(2),
            job_name: "paper-cub".into(),
        };
        let s = script(Path::new("/opt/h/harness"), Path::new("/w/cub.yaml"), Path::new("/w/results/paper-cub"), &o);
        for needle in [
            "#SBATCH --array=0-3%2",
            "#SBATCH --partition=gpu",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --output=/w/results/paper-cub/logs/%x-%A-%a.out",
            "exec '/opt/h/harness' sweep '/w/cub.yaml' --results '/w/results/paper-cub' --shard \"${SLURM_ARRAY_TASK_ID}/4\" --device cuda",
        ] {
            assert!(s.contains(needle), "`{needle}` missing in:\n{s}");
        }
        let cpu = script(
            Path::new("/h"),
            Path::new("/s.yaml"),
            Path::new("/r"),
            &SlurmOptions { gpus_per_task: 0, partition: None, max_parallel: None, ..o },
        );
        assert!(cpu.contains("--array=0-3\n") && !cpu.contains("gpus") && cpu.contains("--device cpu"));
    }
}
