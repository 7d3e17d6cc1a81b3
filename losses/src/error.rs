//! Errors a loss can report instead of panicking or returning a silent wrong number.
use thiserror::Error;

/// Everything that can go wrong when building or evaluating a loss.
#[derive(Debug, Error)]
pub enum LossError {
    /// A configuration value is outside its valid range.
    #[error("invalid loss config: `{field}` = {value}: {expected}")]
    InvalidConfig {
        /// The config field, as spelt in YAML.
        field: &'static str,
        /// The offending value, printed.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A tensor has the wrong rank, size or dtype.
    #[error("bad {what}: expected {expected}, got {got}")]
    BadShape {
        /// Which input (`embeddings`, `labels`).
        what: &'static str,
        /// The expected shape or dtype.
        expected: String,
        /// The shape or dtype received.
        got: String,
    },
    /// The batch is empty.
    #[error("empty batch: the loss needs at least one embedding")]
    EmptyBatch,
    /// A label is negative or not below the number of classes.
    #[error("label out of range: found labels in [{min}, {max}], but the loss was built for {num_classes} classes (valid labels are 0..{num_classes}); check that the data set's labels are re-indexed from 0 and that num_classes matches the training split")]
    LabelOutOfRange {
        /// Smallest label seen.
        min: i64,
        /// Largest label seen.
        max: i64,
        /// Number of classes the loss was built for.
        num_classes: i64,
    },
    /// The embeddings contain NaN or infinity.
    #[error(
        "non-finite embeddings: the batch holds NaN or infinite values (the model diverged or the input is corrupt)"
    )]
    NonFiniteEmbeddings,
    /// A triplet batch holds no (anchor, positive, negative) triplet at all.
    #[error("no valid triplet in the batch: {reason}; use class-balanced batches (m >= 2 images of each of at least 2 classes)")]
    NoValidTriplet {
        /// Why no triplet could be formed.
        reason: String,
    },
    /// A TorchScript loss plug-in cannot be used.
    #[error("loss plug-in {}: {problem}", path.display())]
    Plugin {
        /// The plug-in's file, as the config names it.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// libtorch raised an error.
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
}
