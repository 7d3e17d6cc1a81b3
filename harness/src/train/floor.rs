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
    let splits::Split::Memory { x, y } = &data.test else {
        anyhow::bail!("the floor is computed for data sets held in memory (synthetic, parts, views, features)");
    };
    let raw = evaluate(&x.flatten(1, -1).to_kind(Kind::Float), y, &config.eval)?;
    let trainer = Trainer::build(config, device, data.num_classes, data.input_dim)?;
    let (emb, labels, _) = splits::embed_test(&trainer.model, &data.test, device, &config.train)?;
    let untrained = evaluate(&emb, &labels, &config.eval)?;
    Ok(Floor { raw, untrained, split_fingerprint: data.fingerprint })
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
