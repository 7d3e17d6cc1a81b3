//! Analytic gradients against central finite differences in float64, for every loss kind, with
//! respect to the embeddings and the centres.
mod common;

use common::*;
use tch::Tensor;

/// Central difference of `f` at every coordinate of `t` (modified in place and restored).
fn numeric_gradient(t: &Tensor, f: &dyn Fn() -> f64) -> Tensor {
    let h = 1e-6;
    let flat = t.view([-1]);
    let n = flat.size()[0];
    let mut out = vec![0.0; n as usize];
    for (i, g) in out.iter_mut().enumerate() {
        let orig = f64::try_from(flat.get(i as i64)).unwrap();
        tch::no_grad(|| {
            let _ = flat.get(i as i64).fill_(orig + h);
        });
        let up = f();
        tch::no_grad(|| {
            let _ = flat.get(i as i64).fill_(orig - h);
        });
        let down = f();
        tch::no_grad(|| {
            let _ = flat.get(i as i64).fill_(orig);
        });
        *g = (up - down) / (2.0 * h);
    }
    Tensor::from_slice(&out).view(t.size().as_slice())
}

#[test]
fn analytic_gradients_match_finite_differences_for_every_kind() {
    tch::manual_seed(7);
    let (n, dim, classes) = (9_i64, 5_i64, 3_i64);
    let y = labels(&[0, 0, 0, 1, 1, 1, 2, 2, 2]);
    for config in all_kinds() {
        let built = build(&config, classes, dim);
        let x = randn(&[n, dim]).set_requires_grad(true);
        let out = built.loss.forward(&x, &y).unwrap();
        out.loss.backward();
        let gx = x.grad().copy();
        let num = tch::no_grad(|| numeric_gradient(&x, &|| built.value(&x, &y)));
        let d = max_abs_diff(&gx, &num);
        assert!(d < 1e-6, "{}: embedding gradient off by {d}", config.kind());
        assert!(f64::try_from(gx.abs().max()).unwrap() > 1e-8, "{}: gradient is all zero", config.kind());
        if let Some(c) = built.loss.centers() {
            let gc = c.var.grad().copy();
            let num = tch::no_grad(|| numeric_gradient(&c.var, &|| built.value(&x, &y)));
            let d = max_abs_diff(&gc, &num);
            assert!(d < 1e-6, "{}: centre gradient off by {d}", config.kind());
            assert!(f64::try_from(gc.abs().max()).unwrap() > 1e-8, "{}: centre gradient is zero", config.kind());
        }
    }
}
