//! `synthetic`: images generated in memory from a seed — no files, no download, deterministic.
//!
//! Each class has a *signature* (a motif shape and two colours) shared by all its images, and several
//! visually distinct *modes* (a background gradient, the motif's place and size) — as a bird seen
//! from the front and from the side. With `unrelated_modes`, every mode draws its own shape and
//! colours too, so a class's modes share nothing visible. A one-centre-per-class loss must pull a class's modes onto one point;
//! K centres can give each mode its own. Train and test classes are disjoint, as in the paper's split.
pub use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Settings of the synthetic data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Training classes (test classes are as many more, disjoint).
    pub classes: i64,
    /// Visually distinct modes per class.
    pub modes_per_class: i64,
    /// Images of each mode, in each split.
    pub images_per_mode: i64,
    /// Image side in pixels (square, 3 channels).
    pub resolution: i64,
    /// Seed of the generator (independent of the training seed: the data stay the same across runs).
    pub seed: u64,
    /// Amplitude of the uniform pixel noise (images are in [0, 1]).
    pub noise: f64,
    /// Largest shift of the motif, as a fraction of the image side.
    pub jitter: f64,
    /// Give every mode its own motif shape and colours, so that a class's modes share nothing
    /// visible: a class is then truly multi-modal and one centre must merge unrelated clusters.
    pub unrelated_modes: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            classes: 24,
            modes_per_class: 3,
            images_per_mode: 8,
            resolution: 32,
            seed: 2019,
            noise: 0.1,
            jitter: 0.06,
            unrelated_modes: false,
        }
    }
}

/// Generated images (N × 3 × R × R, float32 in [0, 1]) and labels (0-based within the split).
#[derive(Debug)]
pub struct SyntheticSplit {
    /// The images.
    pub images: Tensor,
    /// Class of each image, 0..classes.
    pub labels: Tensor,
    /// Mode of each image within its class (a diagnostic, never given to the model).
    pub modes: Vec<i64>,
    /// Stable names `class/mode/index` for the split fingerprint.
    pub names: Vec<String>,
}

struct ClassSignature {
    colours: [[f64; 3]; 2],
    shape: u64,
}

struct Mode {
    background: [[f64; 3]; 2],
    angle: f64,
    centre: (f64, f64),
    radius: f64,
}

fn colour(g: &mut SplitMix64) -> [f64; 3] {
    [g.range(0.0, 1.0), g.range(0.0, 1.0), g.range(0.0, 1.0)]
}

/// Generates the train (`test = false`) or test split: classes `0..classes` of the split map to
/// generator classes offset by the split, so the two never share a class.
pub fn generate(config: &SyntheticConfig, test: bool) -> SyntheticSplit {
    let r = config.resolution as usize;
    let first_class = if test { config.classes } else { 0 };
    let n = (config.classes * config.modes_per_class * config.images_per_mode) as usize;
    let mut pixels = vec![0f32; n * 3 * r * r];
    let mut labels = Vec::with_capacity(n);
    let mut modes = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut i = 0;
    for c in 0..config.classes {
        let gc = (first_class + c) as u64;
        let mut g = SplitMix64::derive(config.seed, &[gc]);
        let sig = ClassSignature { colours: [colour(&mut g), colour(&mut g)], shape: g.next_u64() % 4 };
        for m in 0..config.modes_per_class {
            let mut gm = SplitMix64::derive(config.seed, &[gc, m as u64 + 1]);
            let own_signature = config
                .unrelated_modes
                .then(|| ClassSignature { colours: [colour(&mut gm), colour(&mut gm)], shape: gm.next_u64() % 4 });
            let mode = Mode {
                background: [colour(&mut gm), colour(&mut gm)],
                angle: gm.range(0.0, std::f64::consts::TAU),
                centre: (gm.range(0.3, 0.7), gm.range(0.3, 0.7)),
                radius: gm.range(0.15, 0.3),
            };
            for s in 0..config.images_per_mode {
                let mut gs =
                    SplitMix64::derive(config.seed, &[gc, m as u64 + 1, s as u64 + 1 + (test as u64) * 1_000_003]);
                draw(
                    &mut pixels[i * 3 * r * r..(i + 1) * 3 * r * r],
                    r,
                    own_signature.as_ref().unwrap_or(&sig),
                    &mode,
                    config,
                    &mut gs,
                );
                labels.push(c);
                modes.push(m);
                names.push(format!("{gc}/{m}/{s}"));
                i += 1;
            }
        }
    }
    let images = Tensor::from_slice(&pixels).view([n as i64, 3, r as i64, r as i64]).to_kind(Kind::Float);
    SyntheticSplit { images, labels: Tensor::from_slice(&labels), modes, names }
}

/// Draws one image: the mode's background gradient, the class's two-colour motif at the mode's
/// place (jittered), brightness jitter and pixel noise.
fn draw(out: &mut [f32], r: usize, sig: &ClassSignature, mode: &Mode, config: &SyntheticConfig, g: &mut SplitMix64) {
    let j = config.jitter;
    let (dx, dy) = (g.range(-j, j), g.range(-j, j));
    let scale = g.range(0.85, 1.15);
    let bright = g.range(0.85, 1.15);
    let (ca, sa) = (mode.angle.cos(), mode.angle.sin());
    let (cx, cy, rad) = (mode.centre.0 + dx, mode.centre.1 + dy, mode.radius * scale);
    let plane = r * r;
    for y in 0..r {
        for x in 0..r {
            let (u, v) = ((x as f64 + 0.5) / r as f64, (y as f64 + 0.5) / r as f64);
            let t = ((u - 0.5) * ca + (v - 0.5) * sa + 0.5).clamp(0.0, 1.0);
            let mut px = [0.0; 3];
            for (k, p) in px.iter_mut().enumerate() {
                *p = mode.background[0][k] * (1.0 - t) + mode.background[1][k] * t;
            }
            let (ru, rv) = ((u - cx) / rad, (v - cy) / rad);
            let inside = match sig.shape {
                0 => ru * ru + rv * rv < 1.0,                                                  // disc
                1 => ru.abs() < 0.8 && rv.abs() < 0.8,                                         // square
                2 => (0.45..1.0).contains(&(ru * ru + rv * rv)),                               // ring
                _ => (ru.abs() < 0.3 && rv.abs() < 1.0) || (rv.abs() < 0.3 && ru.abs() < 1.0), // cross
            };
            if inside {
                // Two-colour stripes inside the motif: the class's signature.
                let stripe = (((ru + rv) * 3.0).floor() as i64).rem_euclid(2) as usize;
                px = sig.colours[stripe];
            }
            for (k, p) in px.iter().enumerate() {
                let noise = (g.uniform() - 0.5) * config.noise;
                out[k * plane + y * r + x] = ((p * bright) + noise).clamp(0.0, 1.0) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_images_and_splits_are_class_disjoint() {
        let cfg = SyntheticConfig {
            classes: 4,
            modes_per_class: 2,
            images_per_mode: 3,
            resolution: 16,
            seed: 5,
            ..Default::default()
        };
        let a = generate(&cfg, false);
        let b = generate(&cfg, false);
        assert!(a.images.equal(&b.images));
        assert_eq!(a.images.size(), vec![24, 3, 16, 16]);
        let test = generate(&cfg, true);
        let train_classes: std::collections::BTreeSet<_> =
            a.names.iter().map(|n| n.split('/').next().unwrap().to_string()).collect();
        assert!(test.names.iter().all(|n| !train_classes.contains(n.split('/').next().unwrap())));
        let other = generate(&SyntheticConfig { seed: 6, ..cfg.clone() }, false);
        assert!(!a.images.equal(&other.images));
        let (lo, hi) = (f64::try_from(a.images.min()).unwrap(), f64::try_from(a.images.max()).unwrap());
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && hi - lo > 0.5);
    }

    #[test]
    fn modes_of_a_class_differ_more_than_images_of_a_mode() {
        let cfg = SyntheticConfig {
            classes: 6,
            modes_per_class: 3,
            images_per_mode: 4,
            resolution: 24,
            seed: 1,
            ..Default::default()
        };
        let s = generate(&cfg, false);
        let x = s.images.view([s.images.size()[0], -1]);
        let d = |i: i64, j: i64| f64::try_from((x.get(i) - x.get(j)).square().mean(Kind::Float)).unwrap();
        let (mut within_mode, mut across_modes) = (0.0, 0.0);
        for c in 0..6 {
            let base = c * 12;
            within_mode += d(base, base + 1) + d(base + 4, base + 5);
            across_modes += d(base, base + 4) + d(base + 4, base + 8);
        }
        assert!(across_modes > 2.0 * within_mode, "modes are not distinct: {across_modes} vs {within_mode}");
    }
}
