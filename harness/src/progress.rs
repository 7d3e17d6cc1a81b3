//! Progress display: bars for sweeps (runs done / to do, time left) and runs (epochs), drawn only
//! when standard error is a terminal; log lines go through `tracing`, filtered by `HARNESS_LOG`
//! (an `EnvFilter` directive: `warn`, `debug`, `harness=debug`, …; default `info`).
use crate::sweep::SweepEvent;
use crate::train::{RunEvent, RunStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Installs the `tracing` subscriber writing to standard error.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .with_env_var("HARNESS_LOG")
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A bar counting `total` items on a terminal (hidden otherwise).
pub fn counter(total: u64, what: &str) -> ProgressBar {
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30.cyan/blue}} {{pos}}/{{len}} [{{elapsed_precise}}, about {{eta}} left]"
        ))
        .expect("valid template"),
    );
    bar
}

/// Bars for a sweep and for the run in progress; hidden when not on a terminal.
pub struct SweepProgress {
    multi: MultiProgress,
    /// Runs of this invocation.
    pub runs: ProgressBar,
    epochs: Option<ProgressBar>,
}

impl SweepProgress {
    /// A sweep bar over `total` runs.
    pub fn new(total: u64) -> Self {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let runs = multi.add(ProgressBar::new(total));
        runs.set_style(
            ProgressStyle::with_template(
                "runs {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}, about {eta} left] {msg}",
            )
            .expect("valid template"),
        );
        if !runs.is_hidden() {
            runs.enable_steady_tick(std::time::Duration::from_millis(500));
        }
        Self { multi, runs, epochs: None }
    }

    /// Starts the epoch bar of a run.
    pub fn start_run(&mut self, name: &str, epochs: u64) {
        self.runs.set_message(name.to_string());
        let bar = self.multi.add(ProgressBar::new(epochs));
        bar.set_style(
            ProgressStyle::with_template("  epochs {bar:30.green/white} {pos}/{len} {msg}").expect("valid template"),
        );
        self.epochs = Some(bar);
    }

    /// Reports a finished epoch with its mean loss.
    pub fn epoch(&self, loss: f64) {
        if let Some(b) = &self.epochs {
            b.inc(1);
            b.set_message(format!("loss {loss:.4}"));
        }
    }

    /// Ends the run in progress.
    pub fn finish_run(&mut self) {
        if let Some(b) = self.epochs.take() {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        self.runs.inc(1);
    }

    /// Prints a line above the bars (or plainly without them).
    pub fn println(&self, line: &str) {
        if self.runs.is_hidden() {
            tracing::info!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}

/// Shows a sweep's events: bars on a terminal, a log line per run otherwise.
#[derive(Default)]
pub struct SweepDisplay {
    bar: Option<SweepProgress>,
}

impl SweepDisplay {
    /// Shows one event.
    pub fn show(&mut self, e: SweepEvent) {
        match e {
            SweepEvent::Planned { in_shard, skipped, todo } => {
                tracing::info!("{in_shard} runs in this shard: {skipped} already recorded, {todo} to run");
                self.bar = Some(SweepProgress::new(todo as u64));
            }
            SweepEvent::RunStarted { slug, id, epochs } => {
                if let Some(b) = self.bar.as_mut() {
                    if b.runs.is_hidden() {
                        tracing::info!("[{}/{}] {slug} ({id})", b.runs.position() + 1, b.runs.length().unwrap_or(0));
                    }
                    b.start_run(&slug, epochs as u64);
                }
            }
            SweepEvent::Run(RunEvent::Epoch { loss, .. }) => {
                if let Some(b) = self.bar.as_ref() {
                    b.epoch(loss)
                }
            }
            SweepEvent::Run(RunEvent::Resumed { epoch }) => {
                tracing::info!("    resumed after epoch {epoch} from its checkpoint")
            }
            SweepEvent::RunSkipped { slug, why } => {
                if let Some(b) = self.bar.as_mut() {
                    b.finish_run();
                    b.println(&format!("{slug}: not run here: {why}"));
                }
            }
            SweepEvent::RunFinished { slug, status, error } => {
                if let Some(b) = self.bar.as_mut() {
                    b.finish_run();
                    if status != RunStatus::Finished {
                        b.println(&format!("{slug}: {status:?} {}", error.unwrap_or_default()));
                    }
                }
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.runs.finish_and_clear();
        }
    }
}
