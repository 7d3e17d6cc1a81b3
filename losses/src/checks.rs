//! Input validation shared by every loss: shapes, dtypes, label range and finiteness.
use crate::LossError;
use tch::{Kind, Tensor};

/// Checks `embeddings` (N × dim, floating point, finite) and `labels` (N, int64, in 0..num_classes).
///
/// All value checks are reduced on the device and read back in one transfer.
pub fn check_batch(embeddings: &Tensor, labels: &Tensor, dim: i64, num_classes: Option<i64>) -> Result<(), LossError> {
    let size = embeddings.size();
    if size.len() != 2 || size[1] != dim {
        return Err(LossError::BadShape {
            what: "embeddings",
            expected: format!("[batch, {dim}]"),
            got: format!("{size:?}"),
        });
    }
    if !matches!(embeddings.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) {
        return Err(LossError::BadShape {
            what: "embeddings",
            expected: "a floating-point tensor".into(),
            got: format!("{:?}", embeddings.kind()),
        });
    }
    let n = size[0];
    if n == 0 {
        return Err(LossError::EmptyBatch);
    }
    let lsize = labels.size();
    if lsize != [n] {
        return Err(LossError::BadShape {
            what: "labels",
            expected: format!("[{n}] (one label per embedding)"),
            got: format!("{lsize:?}"),
        });
    }
    if labels.kind() != Kind::Int64 {
        return Err(LossError::BadShape {
            what: "labels",
            expected: "an int64 tensor".into(),
            got: format!("{:?}", labels.kind()),
        });
    }
    let summary =
        Tensor::stack(&[embeddings.f_isfinite()?.f_all()?.to_kind(Kind::Int64), labels.f_min()?, labels.f_max()?], 0)
            .f_to_device(tch::Device::Cpu)?;
    let values: Vec<i64> = Vec::<i64>::try_from(&summary)?;
    if values[0] == 0 {
        return Err(LossError::NonFiniteEmbeddings);
    }
    if let Some(c) = num_classes {
        if values[1] < 0 || values[2] >= c {
            return Err(LossError::LabelOutOfRange { min: values[1], max: values[2], num_classes: c });
        }
    }
    Ok(())
}

/// Checks that a config value is finite and strictly positive.
pub fn positive(field: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(LossError::InvalidConfig { field, value: value.to_string(), expected: "a finite number > 0" })
    }
}

/// Checks that a config value is finite and not negative.
pub fn non_negative(field: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(LossError::InvalidConfig { field, value: value.to_string(), expected: "a finite number >= 0" })
    }
}

/// Checks that a config value is finite (it may be negative or zero).
pub fn finite(field: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(LossError::InvalidConfig { field, value: value.to_string(), expected: "a finite number" })
    }
}

/// Checks the number of classes and the embedding size given to `build`.
pub fn build_sizes(num_classes: i64, dim: i64) -> Result<(), LossError> {
    if num_classes < 1 {
        return Err(LossError::InvalidConfig {
            field: "num_classes",
            value: num_classes.to_string(),
            expected: "at least 1 class",
        });
    }
    if dim < 1 {
        return Err(LossError::InvalidConfig {
            field: "dim",
            value: dim.to_string(),
            expected: "an embedding size >= 1",
        });
    }
    Ok(())
}
