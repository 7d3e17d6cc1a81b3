//! `views`: feature vectors generated in memory from a seed, for studies that need thousands of
//! steps (K × τ) on a CPU. Each class has M *views*, each a prototype in an identity latent space
//! (drawn independently, so a class's views are genuinely distinct, as a car from the front and from
//! the side); an item is its view's prototype plus per-item spread, joined by per-item nuisance
//! latents that carry no class information, and sent through a fixed random non-linear map
//! (tanh layer, then linear) into the input space. Train and test classes are disjoint; the map is
//! shared, as a camera is. M is known, so the effective number of centres can be compared with it.
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Settings of the `views` data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViewsConfig {
    /// Training classes.
    pub classes: i64,
    /// Test classes, disjoint from the training ones (unset: as many as `classes`). More test classes
    /// measure each model more precisely, though on the quickstart's data four times as many lowered
    /// the seed-to-seed spread of paired R@1 differences by only about 15 % (bench/test-classes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_classes: Option<i64>,
    /// Distinct views M of each class.
    pub views_per_class: i64,
    /// Items of each view, in each split.
    pub items_per_view: i64,
    /// Size of the identity latent (where view prototypes live).
    pub latent_dim: i64,
    /// Size of the per-item nuisance latent.
    pub nuisance_dim: i64,
    /// Standard deviation of the nuisance latents (the prototypes' is 1).
    pub nuisance: f64,
    /// Standard deviation of an item around its view's prototype.
    pub spread: f64,
    /// Width of the hidden tanh layer of the map into the input space.
    pub map_hidden: i64,
    /// Size of the input vectors.
    pub input_dim: i64,
    /// Gain of the tanh layer: larger is more non-linear.
    pub gain: f64,
    /// Seed of the generator (independent of the training seed: the data stay the same across runs).
    pub seed: u64,
    /// Draw the training items anew every epoch (the same classes, views and map; new spread and
    /// nuisance), as augmentation makes every epoch's images new: the model cannot memorise items,
    /// so its training loss levels off once it has learnt what there is to learn. The test split is
    /// drawn once. Off: one fixed training split.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fresh_train_items: bool,
}

impl Default for ViewsConfig {
    fn default() -> Self {
        Self {
            classes: 100,
            test_classes: None,
            views_per_class: 4,
            items_per_view: 8,
            latent_dim: 8,
            nuisance_dim: 24,
            nuisance: 0.6,
            spread: 0.2,
            map_hidden: 128,
            input_dim: 64,
            gain: 1.0,
            seed: 2019,
            fresh_train_items: false,
        }
    }
}

/// One generated split: inputs (N × input_dim, float32), labels 0..classes, and each item's view.
#[derive(Debug)]
pub struct ViewsSplit {
    /// The input vectors.
    pub x: Tensor,
    /// Class of each item, 0..classes.
    pub labels: Tensor,
    /// View of each item within its class (a diagnostic, never given to the model).
    pub views: Vec<i64>,
}

/// A standard normal draw (Box–Muller).
fn normal(g: &mut SplitMix64) -> f64 {
    let u = g.uniform().max(f64::MIN_POSITIVE);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * g.uniform()).cos()
}

fn normals(g: &mut SplitMix64, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| normal(g) * scale).collect()
}

/// The fixed map latent → input: `W2 · tanh(gain · W1 · h)`, weights scaled by 1/√fan-in.
struct Map {
    w1: Vec<f64>,
    w2: Vec<f64>,
    fan_in: usize,
    hidden: usize,
    out: usize,
    gain: f64,
}

impl Map {
    fn new(c: &ViewsConfig) -> Self {
        let fan_in = (c.latent_dim + c.nuisance_dim) as usize;
        let (hidden, out) = (c.map_hidden as usize, c.input_dim as usize);
        let mut g = SplitMix64::derive(c.seed, &[u64::MAX]);
        let w1 = normals(&mut g, hidden * fan_in, 1.0 / (fan_in as f64).sqrt());
        let w2 = normals(&mut g, out * hidden, 1.0 / (hidden as f64).sqrt());
        Self { w1, w2, fan_in, hidden, out, gain: c.gain }
    }

    fn apply(&self, h: &[f64], out: &mut [f32]) {
        let a: Vec<f64> = (0..self.hidden)
            .map(|j| {
                let row = &self.w1[j * self.fan_in..(j + 1) * self.fan_in];
                (self.gain * row.iter().zip(h).map(|(w, x)| w * x).sum::<f64>()).tanh()
            })
            .collect();
        for (o, slot) in out.iter_mut().enumerate().take(self.out) {
            let row = &self.w2[o * self.hidden..(o + 1) * self.hidden];
            *slot = row.iter().zip(&a).map(|(w, x)| w * x).sum::<f64>() as f32;
        }
    }
}

/// Generates the training split (`test = false`) or the test split (the next `test_classes` classes).
pub fn generate(c: &ViewsConfig, test: bool) -> ViewsSplit {
    draw(c, test, None)
}

/// The training items of epoch `epoch` (from 0) when `fresh_train_items` is set: the training
/// classes and views of [`generate`], each item's spread and nuisance drawn from (seed, class, view,
/// item, epoch).
pub fn generate_epoch(c: &ViewsConfig, epoch: u64) -> ViewsSplit {
    draw(c, false, Some(epoch))
}

fn draw(c: &ViewsConfig, test: bool, epoch: Option<u64>) -> ViewsSplit {
    let map = Map::new(c);
    let (first_class, classes) = if test { (c.classes, c.test_classes.unwrap_or(c.classes)) } else { (0, c.classes) };
    let (latent, nuisance) = (c.latent_dim as usize, c.nuisance_dim as usize);
    let n = (classes * c.views_per_class * c.items_per_view) as usize;
    let mut x = vec![0f32; n * c.input_dim as usize];
    let (mut labels, mut views) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut i = 0;
    for class in 0..classes {
        let gc = (first_class + class) as u64;
        for view in 0..c.views_per_class {
            let prototype = normals(&mut SplitMix64::derive(c.seed, &[gc, view as u64]), latent, 1.0);
            for item in 0..c.items_per_view {
                let key = [gc, view as u64, item as u64 + 1, epoch.map_or(0, |e| e + 1)];
                let mut g = SplitMix64::derive(c.seed, &key[..if epoch.is_some() { 4 } else { 3 }]);
                let mut h: Vec<f64> = prototype.iter().map(|p| p + normal(&mut g) * c.spread).collect();
                h.extend(normals(&mut g, nuisance, c.nuisance));
                let d = c.input_dim as usize;
                map.apply(&h, &mut x[i * d..(i + 1) * d]);
                labels.push(class);
                views.push(view);
                i += 1;
            }
        }
    }
    ViewsSplit { x: Tensor::from_slice(&x).view([n as i64, c.input_dim]), labels: Tensor::from_slice(&labels), views }
}

/// Every setting that cannot work, each naming its key.
pub fn problems(c: &ViewsConfig) -> Vec<String> {
    let mut p = vec![];
    for (key, v) in [
        ("classes", c.classes),
        ("test_classes", c.test_classes.unwrap_or(1)),
        ("views_per_class", c.views_per_class),
        ("items_per_view", c.items_per_view),
        ("latent_dim", c.latent_dim),
        ("map_hidden", c.map_hidden),
        ("input_dim", c.input_dim),
    ] {
        if v < 1 {
            p.push(format!("`data.{key}`: {v}: expected at least 1"));
        }
    }
    if c.nuisance_dim < 0 {
        p.push(format!("`data.nuisance_dim`: {}: expected 0 or more", c.nuisance_dim));
    }
    if c.test_classes == Some(c.classes) {
        p.push(format!(
            "`data.test_classes`: {}: the same as `data.classes`, which is the default: leave it out, so that these \
             runs keep the ids of runs that never set it",
            c.classes
        ));
    }
    for (key, v) in [("nuisance", c.nuisance), ("spread", c.spread), ("gain", c.gain)] {
        if !v.is_finite() || v < 0.0 {
            p.push(format!("`data.{key}`: {v}: expected a finite number >= 0"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ViewsConfig {
        ViewsConfig { classes: 5, views_per_class: 3, items_per_view: 4, ..ViewsConfig::default() }
    }

    #[test]
    fn same_seed_same_data_and_splits_differ() {
        let (a, b) = (generate(&small(), false), generate(&small(), false));
        assert!(a.x.equal(&b.x) && a.labels.equal(&b.labels));
        assert_eq!(a.x.size(), [60, 64]);
        let test = generate(&small(), true);
        assert!(!test.x.equal(&a.x), "test classes are other classes");
        let other = generate(&ViewsConfig { seed: 7, ..small() }, false);
        assert!(!other.x.equal(&a.x));
    }

    #[test]
    fn views_of_a_class_are_farther_apart_than_items_of_a_view() {
        // Without nuisance, items of one view cluster; a class's views are distinct clusters.
        let c = ViewsConfig { nuisance: 0.0, ..small() };
        let s = generate(&c, false);
        let x = Vec::<f32>::try_from(s.x.view([-1])).unwrap();
        let d = c.input_dim as usize;
        let dist = |i: usize, j: usize| -> f64 {
            (0..d).map(|k| (x[i * d + k] - x[j * d + k]) as f64).map(|v| v * v).sum::<f64>().sqrt()
        };
        let per_view = c.items_per_view as usize;
        let (mut within, mut across) = (0.0, 0.0);
        for class in 0..c.classes as usize {
            let base = class * c.views_per_class as usize * per_view;
            within += dist(base, base + 1);
            across += dist(base, base + per_view);
        }
        assert!(across > 2.0 * within, "views {across} vs items {within}");
        assert_eq!(s.views[..8], [0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn fresh_training_items_change_every_epoch_keep_labels_and_leave_ids_alone() {
        let c = ViewsConfig { fresh_train_items: true, ..small() };
        let fixed = generate(&c, false);
        let (e0, e1, again) = (generate_epoch(&c, 0), generate_epoch(&c, 1), generate_epoch(&c, 1));
        assert!(e1.x.equal(&again.x), "an epoch's items are reproducible (resume)");
        assert!(!e0.x.equal(&e1.x) && !e0.x.equal(&fixed.x), "new items every epoch");
        assert!(e0.labels.equal(&fixed.labels) && e0.views == fixed.views, "same classes and views, same order");
        // Items of one view stay near each other across epochs: the same prototype, new nuisance.
        let same_view = (e0.x.get(0) - e1.x.get(0)).norm().double_value(&[]);
        let other_view = (e0.x.get(0) - e1.x.get(c.items_per_view)).norm().double_value(&[]);
        assert!(same_view < other_view, "{same_view} vs {other_view}");
        // Off by default and then not written, so existing run ids do not change.
        let text = serde_json::to_string(&small()).unwrap();
        assert!(!text.contains("fresh_train_items"), "{text}");
        assert!(serde_json::to_string(&c).unwrap().contains("\"fresh_train_items\":true"));
    }

    #[test]
    fn more_test_classes_extend_the_test_split_and_leave_training_and_ids_alone() {
        let more = ViewsConfig { test_classes: Some(8), ..small() };
        let (test, longer) = (generate(&small(), true), generate(&more, true));
        assert_eq!(longer.x.size(), [8 * 12, 64]);
        assert_eq!(i64::try_from(longer.labels.max()).unwrap(), 7, "labels 0..test_classes");
        assert!(longer.x.narrow(0, 0, 60).equal(&test.x), "the default test split is its first classes");
        assert!(generate(&more, false).x.equal(&generate(&small(), false).x), "training split unchanged");
        let fewer = generate(&ViewsConfig { test_classes: Some(2), ..small() }, true);
        assert!(fewer.x.equal(&test.x.narrow(0, 0, 24)));
        assert!(!serde_json::to_string(&small()).unwrap().contains("test_classes"), "unset: not written");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let p = problems(&ViewsConfig { views_per_class: 0, spread: f64::NAN, test_classes: Some(0), ..small() });
        assert!(p.iter().any(|m| m.contains("`data.test_classes`: 0: expected at least 1")), "{p:?}");
        let same = problems(&ViewsConfig { test_classes: Some(5), ..small() });
        assert!(same.len() == 1 && same[0].contains("`data.test_classes`: 5: the same as `data.classes`"), "{same:?}");
        assert!(problems(&ViewsConfig { test_classes: Some(6), ..small() }).is_empty());
        assert!(p.iter().any(|m| m.contains("`data.views_per_class`")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("`data.spread`")), "{p:?}");
    }
}
