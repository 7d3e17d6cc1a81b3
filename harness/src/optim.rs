//! Optimisers with parameter groups (backbone, head, loss centres each with their own learning
//! rate), written on tensors so that their state is saved in checkpoints and a resumed run
//! continues exactly where it stopped (libtorch's C++ optimiser state is not reachable from tch).
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which update rule, as written in YAML (`optimizer: {kind: adam, eps: 0.01}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma & Ba) with L2 weight decay added to the gradient, as `torch.optim.Adam`.
    Adam {
        /// ε in the denominator (paper.md §3: 0.01).
        #[serde(default = "default_adam_eps")]
        eps: f64,
        /// β1.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// β2.
        #[serde(default = "default_beta2")]
        beta2: f64,
    },
    /// SGD with momentum.
    Sgd {
        /// Momentum.
        #[serde(default)]
        momentum: f64,
    },
    /// RMSprop, as `torch.optim.RMSprop`.
    Rmsprop {
        /// Smoothing constant.
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// ε.
        #[serde(default = "default_rms_eps")]
        eps: f64,
    },
}

fn default_adam_eps() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_alpha() -> f64 {
    0.99
}
fn default_rms_eps() -> f64 {
    1e-8
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam { eps: default_adam_eps(), beta1: default_beta1(), beta2: default_beta2() }
    }
}

/// A group of parameters sharing a learning rate and weight decay.
#[derive(Debug)]
pub struct ParamGroup {
    /// Group name (`backbone`, `head`, `centers`).
    pub name: String,
    /// The parameters.
    pub params: Vec<Tensor>,
    /// Base learning rate (before the schedule).
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
}

/// An optimiser over parameter groups, with its per-parameter state.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// The groups.
    pub groups: Vec<ParamGroup>,
    first: Vec<Vec<Tensor>>,
    second: Vec<Vec<Tensor>>,
    /// The gradients of the last [`Optimizer::backward`], per group and parameter (undefined for a
    /// parameter the loss does not reach); taken by the next [`Optimizer::step`].
    grads: Vec<Vec<Tensor>>,
    /// Steps taken.
    pub step: i64,
}

impl Optimizer {
    /// An optimiser with zero state.
    pub fn new(config: OptimizerConfig, groups: Vec<ParamGroup>) -> Self {
        let zeros = |g: &ParamGroup| g.params.iter().map(|p| p.zeros_like()).collect::<Vec<_>>();
        let first = groups.iter().map(zeros).collect();
        let second = groups.iter().map(zeros).collect();
        Self { config, groups, first, second, grads: vec![], step: 0 }
    }

    /// Computes the gradients of `loss` with respect to every parameter, for the next step.
    ///
    /// They are returned by the autograd engine (as `torch.autograd.grad` does), not accumulated
    /// into each parameter's `.grad`: no zeroing pass and no accumulating add over every parameter
    /// each step. They are never changed in place, since one tensor may be the gradient of two.
    pub fn backward(&mut self, loss: &Tensor) -> Result<(), tch::TchError> {
        let params: Vec<&Tensor> = self.groups.iter().flat_map(|g| &g.params).collect();
        let mut flat = Tensor::f_run_backward(&[loss], &params, false, false)?.into_iter();
        self.grads = self.groups.iter().map(|g| flat.by_ref().take(g.params.len()).collect()).collect();
        Ok(())
    }

    /// Scales the gradients of the last [`Optimizer::backward`] so that their global L2 norm is at
    /// most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let mut grads: Vec<&mut Tensor> = self.grads.iter_mut().flatten().filter(|g| g.defined()).collect();
        let total = tch::no_grad(|| {
            grads.iter().map(|g| f64::try_from(g.square().sum(tch::Kind::Double)).unwrap()).sum::<f64>().sqrt()
        });
        if total > max_norm {
            let scale = max_norm / (total + 1e-6);
            tch::no_grad(|| {
                for g in grads.iter_mut() {
                    **g = g.g_mul_scalar(scale);
                }
            });
        }
        total
    }

    /// One update from the gradients of the last [`Optimizer::backward`] (a parameter without one
    /// is left as it is), with every group's learning rate multiplied by `lr_scale` (the schedule).
    pub fn step(&mut self, lr_scale: f64) {
        self.step += 1;
        let t = self.step as f64;
        let grads = std::mem::take(&mut self.grads);
        tch::no_grad(|| {
            for (gi, g) in self.groups.iter_mut().enumerate() {
                let lr = g.lr * lr_scale;
                for (pi, p) in g.params.iter_mut().enumerate() {
                    let Some(grad) = grads.get(gi).and_then(|gs| gs.get(pi)).filter(|t| t.defined()) else {
                        continue;
                    };
                    // g + λ·p as one kernel: addcmul with λ as a 0-dim tensor of p's kind, on p's
                    // device (a ternary op takes no CPU scalar beside CUDA tensors; libtorch's `add`
                    // with alpha is not in tch's API). Not in place: the engine may hand one tensor
                    // out as the gradient of two parameters.
                    let grad = if g.weight_decay != 0.0 {
                        grad.addcmul(&*p, &Tensor::scalar_tensor(g.weight_decay, (p.kind(), p.device())))
                    } else {
                        grad.shallow_clone()
                    };
                    let m = &mut self.first[gi][pi];
                    let v = &mut self.second[gi][pi];
                    match self.config {
                        OptimizerConfig::Adam { eps, beta1, beta2 } => {
                            // torch.optim.Adam's single-tensor update, in place where it can be:
                            // m ← m + (1−β₁)(g − m), v ← v + (1−β₂)(g² − v) (= β₂v + (1−β₂)g²),
                            // p ← p − (lr/bc₁)·m / (√v/√bc₂ + ε), the last as one addcdiv with the
                            // step folded into the denominator (libtorch's addcdiv_ has value 1).
                            let _ = m.lerp_(&grad, 1.0 - beta1);
                            let _ = v.lerp_(&grad.square(), 1.0 - beta2);
                            let step = lr / (1.0 - beta1.powf(t));
                            let root_bc2 = (1.0 - beta2.powf(t)).sqrt();
                            let mut denom = v.sqrt();
                            let _ = denom.g_mul_scalar_(-1.0 / (step * root_bc2)).g_add_scalar_(-eps / step);
                            let _ = p.addcdiv_(&*m, &denom);
                        }
                        OptimizerConfig::Sgd { momentum } => {
                            if momentum > 0.0 {
                                let _ = m.g_mul_scalar_(momentum).g_add_(&grad);
                                let _ = p.g_sub_(&(&*m * lr));
                            } else {
                                let _ = p.g_sub_(&(grad * lr));
                            }
                        }
                        OptimizerConfig::Rmsprop { alpha, eps } => {
                            let _ = v.g_mul_scalar_(alpha).g_add_(&(grad.square() * (1.0 - alpha)));
                            let _ = p.g_sub_(&(&grad / (v.sqrt() + eps) * lr));
                        }
                    }
                }
            }
        });
    }

    /// The state as named tensors (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optimizer.step".to_string(), Tensor::from_slice(&[self.step]))];
        for (gi, g) in self.groups.iter().enumerate() {
            for pi in 0..g.params.len() {
                out.push((format!("optimizer.{}.{pi}.m", g.name), self.first[gi][pi].shallow_clone()));
                out.push((format!("optimizer.{}.{pi}.v", g.name), self.second[gi][pi].shallow_clone()));
            }
        }
        out
    }

    /// Restores the state written by [`Optimizer::state`].
    pub fn load_state(&mut self, named: &std::collections::HashMap<String, Tensor>) -> Result<(), String> {
        let get = |k: &str| named.get(k).ok_or_else(|| format!("checkpoint lacks `{k}`"));
        self.step = i64::try_from(get("optimizer.step")?).map_err(|e| e.to_string())?;
        for (gi, g) in self.groups.iter().enumerate() {
            for pi in 0..g.params.len() {
                let m = get(&format!("optimizer.{}.{pi}.m", g.name))?;
                let v = get(&format!("optimizer.{}.{pi}.v", g.name))?;
                tch::no_grad(|| {
                    self.first[gi][pi].copy_(m);
                    self.second[gi][pi].copy_(v);
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_matches_the_closed_form_first_step_and_minimises_a_quadratic() {
        // First Adam step moves each coordinate by lr · g/(|g| + eps') ≈ lr · sign(g).
        let p = Tensor::from_slice(&[3.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Optimizer::new(
            OptimizerConfig::Adam { eps: 1e-8, beta1: 0.9, beta2: 0.999 },
            vec![ParamGroup { name: "x".into(), params: vec![p.shallow_clone()], lr: 0.1, weight_decay: 0.0 }],
        );
        opt.backward(&p.square().sum(tch::Kind::Double)).unwrap();
        opt.step(1.0);
        let v = Vec::<f64>::try_from(&p.detach()).unwrap();
        assert!((v[0] - 2.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6, "{v:?}");
        for _ in 0..500 {
            opt.backward(&p.square().sum(tch::Kind::Double)).unwrap();
            opt.step(1.0);
        }
        assert!(f64::try_from(p.detach().abs().max()).unwrap() < 0.05);
    }

    #[test]
    fn adam_follows_torch_optim_adams_update_with_weight_decay_step_by_step() {
        // The reference: torch.optim.Adam's formula per coordinate in f64 (L2 decay added to the
        // gradient; bias-corrected moments; eps added to the corrected root), on f(x) = Σ c·x³/3.
        let (lr, wd, eps, b1, b2) = (0.05, 0.01, 0.01, 0.9, 0.999);
        let c = [1.0f64, -0.5, 2.0, 0.25];
        let mut x = vec![1.5f64, -0.7, 0.3, 2.0];
        let (mut m, mut v) = (vec![0.0; 4], vec![0.0; 4]);
        let p = Tensor::from_slice(&x).set_requires_grad(true);
        let coef = Tensor::from_slice(&c);
        let mut opt = Optimizer::new(
            OptimizerConfig::Adam { eps, beta1: b1, beta2: b2 },
            vec![ParamGroup { name: "x".into(), params: vec![p.shallow_clone()], lr, weight_decay: wd }],
        );
        for step in 1..=25 {
            let scale = if step > 15 { 0.1 } else { 1.0 };
            opt.backward(&(&coef * p.pow_tensor_scalar(3.0) / 3.0).sum(tch::Kind::Double)).unwrap();
            opt.step(scale);
            for i in 0..4 {
                let g = c[i] * x[i] * x[i] + wd * x[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let (bc1, bc2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
                x[i] -= lr * scale / bc1 * m[i] / ((v[i] / bc2).sqrt() + eps);
            }
            let ours = Vec::<f64>::try_from(&p.detach()).unwrap();
            for i in 0..4 {
                assert!((ours[i] - x[i]).abs() < 1e-12 * x[i].abs().max(1.0), "step {step}: {ours:?} vs {x:?}");
            }
        }
    }

    #[test]
    fn parameters_sharing_one_gradient_tensor_are_each_decayed_and_clipped_once() {
        // d(Σp + Σq)/dp and /dq are both views of one tensor of ones, so an update that changed a
        // gradient in place would clip or decay it twice (or fail on the expanded view). Clipping
        // scales the raw gradients (global norm √4 = 2) by s = 1/(2 + 1e-6); the step then adds the
        // decay: with SGD at lr 1, x ← x − (s + λx) for every coordinate of both parameters.
        let p = Tensor::from_slice(&[1.0f64, 2.0]).set_requires_grad(true);
        let q = Tensor::from_slice(&[-1.0f64, 3.0]).set_requires_grad(true);
        let lambda = 0.1;
        let mut opt = Optimizer::new(
            OptimizerConfig::Sgd { momentum: 0.0 },
            vec![ParamGroup {
                name: "x".into(),
                params: vec![p.shallow_clone(), q.shallow_clone()],
                lr: 1.0,
                weight_decay: lambda,
            }],
        );
        opt.backward(&(p.sum(tch::Kind::Double) + q.sum(tch::Kind::Double))).unwrap();
        let norm = opt.clip_grad_norm(1.0);
        assert!((norm - 2.0).abs() < 1e-12, "{norm}");
        opt.step(1.0);
        let s = 1.0 / (2.0 + 1e-6);
        for (t, x0) in [(&p, [1.0, 2.0]), (&q, [-1.0, 3.0])] {
            let got = Vec::<f64>::try_from(&t.detach()).unwrap();
            for i in 0..2 {
                let want = x0[i] - (s + lambda * x0[i]);
                assert!((got[i] - want).abs() < 1e-12, "{got:?} vs {want}");
            }
        }
    }

    #[test]
    fn state_round_trips() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mk = |p: &Tensor| {
            Optimizer::new(
                OptimizerConfig::default(),
                vec![ParamGroup { name: "x".into(), params: vec![p.shallow_clone()], lr: 0.01, weight_decay: 1e-4 }],
            )
        };
        let mut a = mk(&p);
        a.backward(&p.square().sum(tch::Kind::Float)).unwrap();
        a.step(1.0);
        let state: std::collections::HashMap<_, _> = a.state().into_iter().collect();
        let q = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut b = mk(&q);
        b.load_state(&state).unwrap();
        assert_eq!(b.step, 1);
        assert!(b.first[0][0].equal(&a.first[0][0]) && b.second[0][0].equal(&a.second[0][0]));
    }
}
