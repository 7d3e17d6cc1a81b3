//! The floor of a data set: what its test split scores without learning, with the run's metrics —
//! the raw inputs themselves, and the model as initialised (before any step). A benchmark shows
//! something only where trained losses rise well above it.
use super::{splits, Trainer};
use crate::eval::{evaluate, EvalReport};
use crate::train::RunConfig;
use anyhow::{Context, Result};
use tch::Kind;

/// Test-split metrics of the raw inputs and of the untrained model.
#[derive(Debug, Clone)]
pub struct Floor {
    /// Raw inputs, flattened (pixels or feature vectors), as embeddings.
    pub raw: EvalReport,
    /// The model built from `config` (its seed) before any training step.
    pub untrained: EvalReport,
    /// The split fingerprint of the data it was computed on.
    pub split_fingerprint: String,
}

/// Computes the floor of `config`'s data set, model and evaluation settings.
pub fn floor(config: &RunConfig) -> Result<Floor> {
    let device = crate::device::resolve_device(&config.train.device)?;
    let data = splits::load_data(&config.data, &config.train)
        .with_context(|| format!("loading data set `{}`", config.data.name()))?;
    let (x, y) = test_inputs(&data.test, &config.train)?;
    let raw = evaluate(&x.flatten(1, -1).to_kind(Kind::Float), &y, &config.eval)?;
    let trainer = Trainer::build(config, device, data.num_classes, data.input_dim)?;
    let (emb, labels, _) = splits::embed_test(&trainer.model, &data.test, device, &config.train)?;
    let untrained = evaluate(&emb, &labels, &config.eval)?;
    Ok(Floor { raw, untrained, split_fingerprint: data.fingerprint })
}

/// The raw floor of an image data set holds its whole test split in memory: at most this many values
/// (1 GiB of float32; Omniglot's test split at 28 px: 0.3 M values a class).
pub const MAX_RAW_VALUES: usize = 1 << 28;

/// The test split's inputs and labels in memory, as the model sees them (images through the
/// evaluation transform); an image split too large to hold is an error that says so.
fn test_inputs(test: &splits::Split, train: &crate::config::TrainConfig) -> Result<(tch::Tensor, tch::Tensor)> {
    match test {
        splits::Split::Memory { x, y } => Ok((x.shallow_clone(), y.shallow_clone())),
        splits::Split::Images(src) => {
            let side = src.transform.size as usize;
            let values = src.paths.len() * 3 * side * side;
            if values > MAX_RAW_VALUES {
                anyhow::bail!(
                    "the raw floor would hold {} test images of 3 × {side} × {side} in memory ({values} values, over {MAX_RAW_VALUES})",
                    src.paths.len()
                );
            }
            let (mut xs, mut ys) = (vec![], vec![]);
            for b in test.batches(splits::index_chunks(src.paths.len(), 256), train.workers, 0, 0) {
                let b = b?;
                xs.push(b.x);
                ys.push(b.y);
            }
            Ok((tch::Tensor::cat(&xs, 0), tch::Tensor::cat(&ys, 0)))
        }
        splits::Split::Fresh { .. } => anyhow::bail!("a test split is never drawn anew each epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_floor_is_the_test_inputs_evaluated_as_they_are_and_the_untrained_one_is_the_model_s() {
        let yaml = "{data: {kind: views, classes: 6, views_per_class: 2, items_per_view: 4, input_dim: 12}, \
                    model: {backbone: {kind: mlp, hidden: [8]}}, loss: {kind: softmax_norm}, dim: 4, seed: 0, \
                    eval: {recall_at: [1], kmeans_restarts: 1}}";
        let config: RunConfig = serde_yaml::from_str(yaml).unwrap();
        let f = floor(&config).unwrap();
        let views = match &config.data {
            crate::data::DatasetConfig::Views(v) => crate::data::views::generate(v, true),
            _ => unreachable!(),
        };
        let direct = evaluate(&views.x, &views.labels, &config.eval).unwrap();
        assert_eq!(f.raw.retrieval, direct.retrieval);
        assert_ne!(f.untrained.retrieval, f.raw.retrieval, "a 4-d random embedding is not the 12-d input");
        assert!(f.split_fingerprint.starts_with("views-"));
        let again = floor(&config).unwrap();
        assert_eq!(again.untrained.retrieval, f.untrained.retrieval, "the model is built from the run's seed");
    }
}
