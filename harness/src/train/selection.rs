//! A run of the fair-comparison protocol (`crate::protocol`): train on a fold's training classes,
//! evaluate its validation classes every few epochs, keep the best epoch and stop on patience. The
//! search phase loads the training split alone ([`splits::load_train`]); only the final phase
//! loads the test split, once, after training.
use super::splits::{self, Split};
use super::trainer::{EpochEnd, Trainer};
use super::{CheckpointPlan, Diagnostics, RunEvent, RunOutcome, RunStatus};
use crate::config::RunConfig;
use crate::eval::{evaluate, EvalConfig};
use crate::protocol::{Phase, RunProtocol, SelectMetric};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::Device;

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `patience` evaluations passed without a better validation score.
    Patience,
    /// `train.epochs` (or `train.max_steps`) was reached.
    MaxEpochs,
    /// The run trained the fixed number of epochs its setting selected (no validation split).
    FixedEpochs,
    /// The loss stopped being finite.
    Diverged,
}

/// What model selection did in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionOutcome {
    /// The metric maximised (`MAP@R`, `R@1`, `RP`).
    pub metric: String,
    /// `(epoch from 1, value in %)` of each validation evaluation.
    pub curve: Vec<(u32, f64)>,
    /// The best epoch (from 1); the epochs trained when there was no validation split.
    pub best_epoch: u32,
    /// Its validation value in % (`None` without a validation split).
    pub best_value: Option<f64>,
    /// Why training stopped.
    pub stop: StopReason,
    /// Classes trained on.
    pub training_classes: usize,
    /// Validation classes (0 without a validation split).
    pub validation_classes: usize,
    /// Validation items.
    pub validation_items: usize,
}

/// The validation metric of the model now, in %.
fn validate(trainer: &Trainer, val: &Split, config: &RunConfig, metric: SelectMetric) -> Result<f64> {
    let (emb, labels, _) = splits::embed_test(&trainer.model, val, trainer.device, &config.train)?;
    let eval = EvalConfig { recall_at: vec![1], nmi: false, ..config.eval.clone() };
    let m = evaluate(&emb, &labels, &eval)?.retrieval;
    let v = match metric {
        SelectMetric::MapAtR => m.map_at_r,
        SelectMetric::RecallAt1 => m.recall_at_k.first().map_or(f64::NAN, |x| x.1),
        SelectMetric::RPrecision => m.r_precision,
    };
    // A score that is not a number (no query had a match) is the worst, so a record stays valid JSON.
    Ok(if v.is_finite() { 100.0 * v } else { crate::protocol::WORST })
}

/// The fold's training and validation parts of the training split, and their fingerprint.
fn fold_parts(
    full: Split,
    classes: usize,
    p: &RunProtocol,
    fingerprint: &str,
) -> Result<(Split, Option<Split>, String)> {
    let Some(fold) = p.fold else { return Ok((full, None, format!("{fingerprint}-all"))) };
    let val_pos = p.split.validation_positions(classes, fold);
    let fit_pos: Vec<usize> = (0..classes).filter(|c| !val_pos.contains(c)).collect();
    if val_pos.len() < 2 || fit_pos.len() < 2 {
        bail!("`protocol.split`: fold {fold} of {classes} training classes leaves {} validation and {} training classes; each needs at least 2", val_pos.len(), fit_pos.len());
    }
    let val = full.classes(&val_pos)?;
    let labels = val.labels();
    if let Some(c) = (0..val_pos.len() as i64).find(|c| labels.iter().filter(|&&l| l == *c).count() < 2) {
        bail!(
            "`protocol.split`: validation class {} of fold {fold} has fewer than 2 items; a query needs a match",
            val_pos[c as usize]
        );
    }
    let lines: Vec<String> = val_pos.iter().map(|c| c.to_string()).collect();
    let fp = format!("{fingerprint}-fold{fold}-{}", crate::data::fingerprint_lines(&lines));
    Ok((full.classes(&fit_pos)?, Some(val), fp))
}

/// Trains one protocol run: a search run scores its validation split and never loads the test
/// split; a final run is then evaluated on the test split once, from its best epoch (its test
/// embeddings and labels written into `save_embeddings` when given).
pub(super) fn run_protocol(
    config: &RunConfig,
    p: &RunProtocol,
    device: Device,
    checkpoint: Option<&CheckpointPlan>,
    save_embeddings: Option<&std::path::Path>,
    progress: &dyn Fn(RunEvent),
) -> Result<RunOutcome> {
    if p.is_concatenated_evaluation() {
        bail!("a concatenated evaluation trains nothing: `harness sweep` runs it from its fold runs' kept test embeddings");
    }
    let t = &config.train;
    let (full, classes, input_dim, fingerprint) = splits::load_train(&config.data, t)?;
    let mut cache = vec![];
    let full = super::features::freeze(full, "train", config, device, &mut cache)?;
    let original = config;
    let (trained, features_dim) = super::features::trained(config)?;
    let (config, input_dim) = (trained.as_ref(), features_dim.or(input_dim));
    let (fit, val, fingerprint) = fold_parts(full, classes as usize, p, &fingerprint)?;
    let fit_labels = fit.labels();
    let fit_classes = fit_labels.iter().max().map_or(0, |m| m + 1);
    let mut trainer = Trainer::build(config, device, fit_classes, input_dim)?;
    let (start_epoch, mut diag) = super::resume(&mut trainer, checkpoint, progress)?;
    let epochs = p.fixed_epochs.unwrap_or(t.epochs);
    let started = Instant::now();
    let (status, stop) =
        train_selected(&mut trainer, &fit, val.as_ref(), p, epochs, start_epoch, &mut diag, checkpoint, progress)?;
    let curve = diag.validation_curve.clone();
    let best = curve.iter().copied().fold(None, |b: Option<(u32, f64)>, x| match b {
        Some(b) if b.1 >= x.1 => Some(b),
        _ => Some(x),
    });
    let trained = diag.epoch_loss.len() as u32;
    let selection = SelectionOutcome {
        metric: p.selection.metric.name().into(),
        curve,
        best_epoch: best.map_or(trained, |b| b.0),
        best_value: best.map(|b| b.1),
        stop,
        training_classes: fit_classes as usize,
        validation_classes: val.as_ref().map_or(0, |v| v.labels().iter().max().map_or(0, |m| *m as usize + 1)),
        validation_items: val.as_ref().map_or(0, Split::len),
    };
    let mut outcome = RunOutcome {
        status,
        metrics: None,
        diagnostics: diag,
        train_seconds: started.elapsed().as_secs_f64(),
        eval_seconds: 0.0,
        split_fingerprint: fingerprint,
        device: format!("{device:?}"),
        error: None,
        selection: Some(selection),
        feature_cache: cache,
    };
    if status == RunStatus::Diverged || p.phase == Phase::Search {
        return Ok(outcome);
    }
    // The final phase: the best epoch's variables, then the test split, read here for the first time.
    trainer.restore_best();
    let eval_start = Instant::now();
    let data = splits::load_data(&config.data, t)?;
    // On all training classes the run saw the data set as a plain run does: its split's fingerprint.
    if p.fold.is_none() {
        outcome.split_fingerprint = data.fingerprint.clone();
    }
    let test = super::features::freeze(data.test, "test", original, device, &mut outcome.feature_cache)?;
    let (emb, labels, skipped) = splits::embed_test(&trainer.model, &test, device, t)?;
    outcome.diagnostics.skipped_test_images = skipped;
    if let Some(dir) = save_embeddings {
        super::save_test_embeddings(dir, &emb, &labels)?;
    }
    outcome.metrics = Some(evaluate(&emb, &labels, &config.eval)?);
    outcome.eval_seconds = eval_start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Evaluations after the best one (0 when the last is the best or there is none). The best is the
/// first evaluation with the highest score: a later tie is no improvement.
fn evaluations_since_best(curve: &[(u32, f64)]) -> usize {
    let best_at = (0..curve.len()).fold(0, |b, i| if curve[i].1 > curve[b].1 { i } else { b });
    curve.len().saturating_sub(best_at + 1)
}

/// The epochs of a protocol run with validation every `selection.every` epochs (and at the last),
/// keeping the best variables and stopping after `selection.patience` evaluations without a
/// better score; a checkpoint after every epoch holds the curve and the best variables.
#[allow(clippy::too_many_arguments)]
fn train_selected(
    trainer: &mut Trainer,
    fit: &Split,
    val: Option<&Split>,
    p: &RunProtocol,
    epochs: u32,
    start_epoch: u32,
    diag: &mut Diagnostics,
    checkpoint: Option<&CheckpointPlan>,
    progress: &dyn Fn(RunEvent),
) -> Result<(RunStatus, StopReason)> {
    let (labels, s) = (fit.labels(), &p.selection);
    let mut stop = if val.is_some() { StopReason::MaxEpochs } else { StopReason::FixedEpochs };
    for epoch in start_epoch..epochs {
        // Checked before an epoch for a run resumed from the checkpoint of the epoch that ended it.
        if super::steps_spent(&trainer.config.train, diag) {
            break;
        }
        if val.is_some() && evaluations_since_best(&diag.validation_curve) >= s.patience as usize {
            stop = StopReason::Patience;
            break;
        }
        if let EpochEnd::Diverged = trainer.epoch(fit, &labels, epoch, diag)? {
            return Ok((RunStatus::Diverged, StopReason::Diverged));
        }
        progress(RunEvent::Epoch { epoch: epoch + 1, epochs, loss: diag.last_loss.unwrap_or(f64::NAN) });
        let last = epoch + 1 == epochs || super::steps_spent(&trainer.config.train, diag);
        if let Some(val) = val.filter(|_| (epoch + 1) % s.every.max(1) == 0 || last) {
            let value = validate(trainer, val, trainer.config, s.metric)?;
            diag.validation_curve.push((epoch + 1, value));
            let since_best = evaluations_since_best(&diag.validation_curve);
            if since_best == 0 {
                trainer.keep_best();
            }
            if since_best >= s.patience as usize && !last {
                stop = StopReason::Patience;
            }
        }
        if let Some(plan) = checkpoint {
            trainer.save(plan, epoch, diag)?;
        }
        if last || stop == StopReason::Patience {
            break;
        }
    }
    Ok((RunStatus::Finished, stop))
}
