//! Progress display: bars for sweeps (epochs done / to do, time left) and runs (epochs), drawn only
//! when standard error is a terminal; log lines go through `tracing`, filtered by `HARNESS_LOG`
//! (an `EnvFilter` directive: `warn`, `debug`, `harness=debug`, …; default `info`).
use crate::sweep::{Skipped, SweepEvent};
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

/// Bars for a sweep and for the run in progress; hidden when not on a terminal. The sweep bar counts
/// epochs (a run cut short counts its whole length when it ends), so the time left is estimated from
/// the first epoch on. A run skipped because another process is running it counts once this process
/// ends its next run (by then the other has most likely finished it): counted at once, the other's
/// work in progress would look done, and the time left would come out too short.
pub struct SweepProgress {
    multi: MultiProgress,
    /// Epochs of this invocation's runs.
    pub runs: ProgressBar,
    epochs: Option<ProgressBar>,
    /// Runs to do, runs started.
    run_count: (u64, u64),
    /// The run in progress: its epochs, and how many of them the sweep bar has counted.
    current: (u64, u64),
    /// Epochs trained by this process.
    trained: u64,
    /// Runs skipped as in progress elsewhere, not yet counted: their slugs and epochs.
    deferred: std::collections::BTreeMap<String, u64>,
    /// Runs in progress elsewhere whose epochs the bar has counted (a protocol sweep may find the
    /// same run busy again on a later pass: it counts once).
    counted: std::collections::BTreeSet<String>,
    /// The slug of the run in progress.
    name: String,
}

impl SweepProgress {
    /// A sweep bar over `runs` runs of `epochs` epochs in all.
    pub fn new(runs: u64, epochs: u64) -> Self {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let bar = multi.add(ProgressBar::new(epochs));
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} epochs [{elapsed_precise}, about {eta} left] {msg}",
            )
            .expect("valid template"),
        );
        if !bar.is_hidden() {
            bar.enable_steady_tick(std::time::Duration::from_millis(500));
        }
        Self {
            multi,
            runs: bar,
            epochs: None,
            run_count: (runs, 0),
            current: (0, 0),
            trained: 0,
            deferred: Default::default(),
            counted: Default::default(),
            name: String::new(),
        }
    }

    /// Starts the epoch bar of a run.
    pub fn start_run(&mut self, name: &str, epochs: u64) {
        self.run_count.1 += 1;
        self.current = (epochs, 0);
        self.name = name.to_string();
        self.runs.set_message(format!("run {}/{}: {name}", self.run_count.1, self.run_count.0));
        let bar = self.multi.add(ProgressBar::new(epochs));
        bar.set_style(
            ProgressStyle::with_template("  epochs {bar:30.green/white} {pos}/{len} {msg}").expect("valid template"),
        );
        self.epochs = Some(bar);
    }

    /// Reports a finished epoch with its mean loss.
    pub fn epoch(&mut self, loss: f64) {
        if let Some(b) = &self.epochs {
            b.inc(1);
            b.set_message(format!("loss {loss:.4}"));
        }
        self.trained += 1;
        if self.current.1 < self.current.0 {
            self.current.1 += 1;
            self.runs.inc(1);
        }
    }

    /// Ends the run in progress (the sweep bar counts the epochs it did not see, and those of the
    /// runs skipped before it as in progress elsewhere).
    pub fn finish_run(&mut self) {
        let unseen = self.end_run();
        let deferred = std::mem::take(&mut self.deferred);
        self.runs.inc(unseen + deferred.values().sum::<u64>());
        self.counted.extend(deferred.into_keys());
    }

    /// Drops the run in progress, not run here: counted at once if it is already recorded, after
    /// this process's next run if another process is running it (once, however often it is found
    /// busy). A busy run is not one of this process's runs: the run counter steps back.
    pub fn skip_run(&mut self, why: Skipped) {
        let unseen = self.end_run();
        match why {
            Skipped::Busy => {
                self.run_count.1 -= 1;
                if !self.counted.contains(&self.name) {
                    self.deferred.insert(self.name.clone(), unseen);
                }
            }
            Skipped::RecordedMeanwhile => {
                if self.counted.insert(self.name.clone()) {
                    self.deferred.remove(&self.name);
                    self.runs.inc(unseen);
                }
            }
        }
    }

    /// Removes the epoch bar of the run in progress and returns its epochs the sweep bar did not see.
    fn end_run(&mut self) -> u64 {
        if let Some(b) = self.epochs.take() {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        let (length, seen) = std::mem::take(&mut self.current);
        length - seen
    }

    /// The estimated time left, once this process has trained an epoch (before that, the epochs
    /// counted are only runs skipped at once, and their rate says nothing).
    pub fn time_left(&self) -> Option<std::time::Duration> {
        let (pos, len) = (self.runs.position(), self.runs.length()?);
        (self.trained > 0).then(|| self.runs.elapsed().mul_f64((len - pos.min(len)) as f64 / pos.max(1) as f64))
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

/// Shows a sweep's events: bars on a terminal, a log line per run otherwise. A run's line is
/// logged once it trains (its first epoch, with the time left from it) or ends, so a run that
/// another process took is not announced here: it gets a `debug` line only.
#[derive(Default)]
pub struct SweepDisplay {
    bar: Option<SweepProgress>,
    /// The run started but not yet announced: its slug and id.
    pending: Option<(String, String)>,
}

impl SweepDisplay {
    /// Shows one event.
    pub fn show(&mut self, e: SweepEvent) {
        match e {
            SweepEvent::Planned { in_shard, skipped, todo, epochs } => {
                tracing::info!("{in_shard} runs in this shard: {skipped} already recorded, {todo} to run");
                self.bar = Some(SweepProgress::new(todo as u64, epochs));
            }
            SweepEvent::RunStarted { slug, id, epochs } => {
                if let Some(b) = self.bar.as_mut() {
                    b.start_run(&slug, epochs as u64);
                    self.pending = Some((slug, id));
                }
            }
            SweepEvent::Run(RunEvent::Epoch { loss, .. }) => {
                if let Some(b) = self.bar.as_mut() {
                    b.epoch(loss)
                }
                self.announce();
            }
            SweepEvent::Run(RunEvent::Resumed { epoch }) => {
                self.announce();
                tracing::info!("    resumed after epoch {epoch} from its checkpoint")
            }
            SweepEvent::RunSkipped { slug, why } => {
                self.pending = None;
                if let Some(b) = self.bar.as_mut() {
                    b.skip_run(why);
                }
                tracing::debug!("{slug}: not run here: {why}");
            }
            SweepEvent::RunFinished { slug, status, error } => {
                self.announce();
                if let Some(b) = self.bar.as_mut() {
                    b.finish_run();
                    if status != RunStatus::Finished {
                        b.println(&format!("{slug}: {status:?} {}", error.unwrap_or_default()));
                    }
                }
            }
        }
    }

    /// Logs the line of the run in progress, once, when there are no bars.
    fn announce(&mut self) {
        let (Some(b), Some((slug, id))) = (self.bar.as_ref(), self.pending.take()) else { return };
        if b.runs.is_hidden() {
            let left = b.time_left().map_or(String::new(), |d| format!(", about {} left", indicatif::HumanDuration(d)));
            tracing::info!("[{}/{}] {slug} ({id}){left}", b.run_count.1, b.run_count.0);
        }
    }

    /// Clears the bars.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.runs.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SweepProgress;
    use crate::sweep::Skipped;

    #[test]
    fn time_left_waits_for_a_trained_epoch_and_counts_a_run_busy_elsewhere_after_the_next_run() {
        let mut p = SweepProgress::new(4, 40);
        p.start_run("a", 10);
        p.skip_run(Skipped::RecordedMeanwhile);
        assert_eq!(p.runs.position(), 10, "a run recorded meanwhile is done");
        assert!(p.time_left().is_none(), "a skip alone says nothing about the rate");
        p.start_run("b", 10);
        p.skip_run(Skipped::Busy);
        assert_eq!(p.runs.position(), 10, "a run in progress elsewhere is not done yet");
        p.start_run("c", 10);
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.epoch(1.0);
        assert_eq!(p.runs.position(), 11);
        let left = p.time_left().expect("an estimate after a trained epoch");
        // 29 of 40 epochs left after 11: 29/11 of the time so far (2.6×; 0.9× had b counted done).
        assert!(left >= p.runs.elapsed() * 2, "{left:?} left after {:?}", p.runs.elapsed());
        p.finish_run();
        assert_eq!(p.runs.position(), 30, "c's unseen epochs and b's count once c ends");
        p.start_run("d", 10);
        p.finish_run();
        assert_eq!(p.runs.position(), 40, "b is counted once only");
    }

    #[test]
    fn a_run_found_busy_on_every_pass_is_counted_once_and_the_run_counter_never_passes_its_total() {
        // A protocol sweep's process polls: the same run, busy elsewhere, is tried on each pass.
        let mut p = SweepProgress::new(3, 30);
        let mut shown = vec![];
        for pass in 0..4 {
            p.start_run("busy", 10);
            p.skip_run(Skipped::Busy);
            if pass < 2 {
                p.start_run(&format!("mine{pass}"), 10);
                shown.push(p.run_count.1);
                p.finish_run();
            }
        }
        p.start_run("busy", 10);
        p.skip_run(Skipped::RecordedMeanwhile);
        shown.push(p.run_count.1);
        assert_eq!(shown, vec![1, 2, 3], "the counter of the [k/N] lines");
        assert!(p.run_count.1 <= p.run_count.0);
        assert_eq!(p.runs.position(), 30, "the busy run's epochs once, not once per pass");
    }
}
