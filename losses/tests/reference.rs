//! Loss values and gradients against the independent float64 implementation in
//! `tests/fixtures/make_reference.py` (and pytorch-metric-learning where it shares the convention).
mod common;

use common::*;
use losses::LossConfig;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    config: LossConfig,
    num_classes: i64,
    dim: i64,
    embeddings: Vec<Vec<f64>>,
    labels: Vec<i64>,
    centers: Option<Vec<Vec<f64>>>,
    loss: f64,
    grad_embeddings: Vec<Vec<f64>>,
    grad_centers: Option<Vec<Vec<f64>>>,
    pml_loss: Option<f64>,
    classification: Option<f64>,
    regularizer: Option<f64>,
    active_fraction: Option<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

const TOL: f64 = 1e-5;

#[test]
fn losses_and_gradients_match_the_reference_implementation() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference_losses.json"))
        .expect("fixture");
    let fixture: Fixture = serde_json::from_str(&text).expect("fixture parses");
    assert!(fixture.cases.len() >= 12, "fixture lost cases");
    let mut kinds = std::collections::BTreeSet::new();
    for case in &fixture.cases {
        kinds.insert(case.config.kind());
        let built = build(&case.config, case.num_classes, case.dim);
        if let Some(c) = &case.centers {
            built.set_centers(&matrix(c));
        }
        let x = matrix(&case.embeddings).set_requires_grad(true);
        let y = labels(&case.labels);
        let out = built.loss.forward(&x, &y).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let value = f64::try_from(&out.loss).unwrap();
        assert!((value - case.loss).abs() < TOL, "{}: loss {value} vs reference {}", case.name, case.loss);
        if let Some(p) = case.pml_loss {
            assert!((value - p).abs() < TOL, "{}: loss {value} vs pytorch-metric-learning {p}", case.name);
        }
        if let Some(c) = case.classification {
            let ours = f64::try_from(&out.classification).unwrap();
            assert!((ours - c).abs() < TOL, "{}: classification term {ours} vs {c}", case.name);
        }
        match (case.regularizer, &out.regularizer) {
            (Some(r), Some(ours)) => {
                let ours = f64::try_from(ours).unwrap();
                assert!((ours - r).abs() < TOL, "{}: regularizer {ours} vs {r}", case.name);
            }
            (None, None) => {}
            (r, o) => panic!("{}: regularizer presence differs: reference {r:?}, ours {}", case.name, o.is_some()),
        }
        if let Some(f) = case.active_fraction {
            let ours = f64::try_from(out.active_fraction.as_ref().expect("active fraction")).unwrap();
            assert!((ours - f).abs() < 1e-12, "{}: active fraction {ours} vs {f}", case.name);
        }
        out.loss.backward();
        let gx = x.grad();
        let d = max_abs_diff(&gx, &matrix(&case.grad_embeddings));
        assert!(d < TOL, "{}: embedding gradient differs by {d}", case.name);
        if let Some(gc) = &case.grad_centers {
            let d = max_abs_diff(&built.centers().grad(), &matrix(gc));
            assert!(d < TOL, "{}: centre gradient differs by {d}", case.name);
        }
    }
    assert_eq!(kinds.len(), 5, "every loss kind must have a reference case: {kinds:?}");
}
