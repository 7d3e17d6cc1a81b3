//! The records as one table (a row per run), built with polars and exported beside the records as
//! `runs.csv` and `runs.parquet`.
use crate::store::RunRecord;
use anyhow::Result;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Names of the metric columns, in first-seen order (R@K…, NMI, MAP@R, RP).
fn metric_names(records: &[RunRecord]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    records
        .iter()
        .flat_map(|r| crate::analysis::metric_values(r).into_iter().map(|(k, _)| k))
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

fn col<T, V>(name: &str, values: V) -> Column
where
    Series: NamedFrom<V, T>,
    T: ?Sized,
{
    Column::new(name.into(), values)
}

/// One row per run: identity, config axes, status, timings, diagnostics, metrics (in %).
pub fn dataframe(records: &[RunRecord]) -> PolarsResult<DataFrame> {
    let strs = |f: &dyn Fn(&RunRecord) -> String| records.iter().map(f).collect::<Vec<String>>();
    let mut columns = vec![
        col("id", strs(&|r| r.id.clone())),
        col("slug", strs(&|r| r.slug.clone())),
        col("data", strs(&|r| r.config.data.name().to_string())),
        col("dim", records.iter().map(|r| r.config.dim).collect::<Vec<i64>>()),
        col("loss", strs(&|r| r.config.loss.kind().to_string())),
        col(
            "centers_per_class",
            records.iter().map(|r| r.config.loss.centers_per_class()).collect::<Vec<Option<i64>>>(),
        ),
        col("tau", records.iter().map(|r| r.config.loss.regularizer_weight()).collect::<Vec<Option<f64>>>()),
        col("seed", records.iter().map(|r| r.config.seed).collect::<Vec<u64>>()),
        col("status", strs(&|r| format!("{:?}", r.outcome.status).to_lowercase())),
        col("train_s", records.iter().map(|r| r.outcome.train_seconds).collect::<Vec<f64>>()),
        col("eval_s", records.iter().map(|r| r.outcome.eval_seconds).collect::<Vec<f64>>()),
        col(
            "effective_centers",
            records.iter().map(|r| r.outcome.diagnostics.effective_centers_per_class).collect::<Vec<Option<f64>>>(),
        ),
        col("split_fingerprint", strs(&|r| r.outcome.split_fingerprint.clone())),
    ];
    for m in metric_names(records) {
        let values: Vec<Option<f64>> = records
            .iter()
            .map(|r| crate::analysis::metric_values(r).into_iter().find(|(k, _)| *k == m).map(|(_, v)| v))
            .collect();
        columns.push(col(&m, values));
    }
    DataFrame::new(records.len(), columns)
}

/// Writes `runs.csv` and `runs.parquet` beside the `runs/` folder (each through a temporary file
/// and a rename); returns their paths.
pub fn export(results_dir: &Path, records: &[RunRecord]) -> Result<(PathBuf, PathBuf)> {
    let mut df = anyhow::Context::context(dataframe(records), "building the records table")?;
    let write = |name: &str, df: &mut DataFrame, csv: bool| -> Result<PathBuf> {
        let path = results_dir.join(name);
        crate::fsio::write_atomic_with(&path, |tmp| -> PolarsResult<()> {
            let mut f = std::fs::File::create(tmp)?;
            if csv {
                CsvWriter::new(&mut f).finish(df)
            } else {
                ParquetWriter::new(&mut f).finish(df).map(|_| ())
            }
        })?;
        Ok(path)
    };
    let csv = write("runs.csv", &mut df, true)?;
    let parquet = write("runs.parquet", &mut df, false)?;
    Ok((csv, parquet))
}
