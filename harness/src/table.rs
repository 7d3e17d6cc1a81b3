//! The records as one flat table (a row per run), exported beside the records.
use crate::store::RunRecord;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Column names of the flat table, metrics last.
pub fn rows(records: &[RunRecord]) -> (Vec<String>, Vec<Vec<String>>) {
    let metric_names: Vec<String> = {
        let mut v: Vec<String> =
            records.iter().flat_map(|r| crate::report::metric_values(r).into_iter().map(|(k, _)| k)).collect();
        v.dedup();
        let mut seen = std::collections::BTreeSet::new();
        v.retain(|k| seen.insert(k.clone()));
        v
    };
    let mut header: Vec<String> = [
        "id",
        "slug",
        "data",
        "dim",
        "loss",
        "centers_per_class",
        "tau",
        "seed",
        "status",
        "train_s",
        "eval_s",
        "effective_centers",
        "split_fingerprint",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(metric_names.iter().cloned());
    let body = records
        .iter()
        .map(|r| {
            let tau = match &r.config.loss {
                losses::LossConfig::SoftTriple(c) => c.tau.to_string(),
                _ => String::new(),
            };
            let mut row = vec![
                r.id.clone(),
                r.slug.clone(),
                r.config.data.name().to_string(),
                r.config.dim.to_string(),
                r.config.loss.kind().to_string(),
                r.config.loss.centers_per_class().map(|k| k.to_string()).unwrap_or_default(),
                tau,
                r.config.seed.to_string(),
                format!("{:?}", r.outcome.status).to_lowercase(),
                format!("{:.3}", r.outcome.train_seconds),
                format!("{:.3}", r.outcome.eval_seconds),
                r.outcome.diagnostics.effective_centers_per_class.map(|v| format!("{v:.3}")).unwrap_or_default(),
                r.outcome.split_fingerprint.clone(),
            ];
            let values = crate::report::metric_values(r);
            for m in &metric_names {
                row.push(values.iter().find(|(k, _)| k == m).map(|(_, v)| format!("{v:.6}")).unwrap_or_default());
            }
            row
        })
        .collect();
    (header, body)
}

/// Writes `runs.csv` beside the `runs/` folder; returns its path.
pub fn write_csv(results_dir: &Path, records: &[RunRecord]) -> Result<PathBuf> {
    let (header, body) = rows(records);
    let quote =
        |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let mut out = header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in body {
        out.push_str(&r.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    let path = results_dir.join("runs.csv");
    crate::store::write_atomic(&path, out.as_bytes())?;
    Ok(path)
}
