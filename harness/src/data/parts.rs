//! `parts`: images generated in memory from a seed, built so that retrieval has to be learned, as in
//! fine-grained birds and cars. Every image shows one object, a body with a head, on a cluttered
//! background; everything about it is nuisance drawn per image (background, the body's colour,
//! place, size and rotation, clutter that may occlude, brightness and contrast, pixel noise)
//! except the pattern on the head, which carries the identity. Each class has M views, each with its
//! own head pattern (two colours in stripes of its own count and angle), drawn independently, so a
//! class's views are genuinely distinct; M is known, so the effective number of centres can be
//! compared with it. Train and test classes are disjoint.
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Settings of the `parts` data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartsConfig {
    /// Training classes (test classes are as many more, disjoint).
    pub classes: i64,
    /// Distinct views M of each class (each its own head pattern).
    pub views_per_class: i64,
    /// Images of each view, in each split.
    pub images_per_view: i64,
    /// Image side in pixels (square, 3 channels).
    pub resolution: i64,
    /// Clutter shapes per image: the first two thirds (rounded down) are drawn behind the object,
    /// the rest over it (occluders; a single shape is an occluder).
    pub clutter: u32,
    /// Amplitude of the uniform pixel noise (images are in [0, 1]).
    pub noise: f64,
    /// Seed of the generator (independent of the training seed: the data stay the same across runs).
    pub seed: u64,
}

impl Default for PartsConfig {
    fn default() -> Self {
        Self {
            classes: 48,
            views_per_class: 3,
            images_per_view: 12,
            resolution: 32,
            clutter: 1,
            noise: 0.05,
            seed: 2019,
        }
    }
}

/// One generated split.
#[derive(Debug)]
pub struct PartsSplit {
    /// N × 3 × R × R, float32 in [0, 1].
    pub images: Tensor,
    /// Class of each image, 0..classes.
    pub labels: Tensor,
    /// View of each image within its class (a diagnostic, never given to the model).
    pub views: Vec<i64>,
}

type Rgb = [f64; 3];

fn colour(g: &mut SplitMix64) -> Rgb {
    [g.uniform(), g.uniform(), g.uniform()]
}

/// A colour mixed towards its grey: the scene's large surfaces (background, body) vary in hue and
/// lightness per image but are less saturated than the head's pattern, as plumage is to a perch.
fn muted(g: &mut SplitMix64) -> Rgb {
    let c = colour(g);
    let grey = (c[0] + c[1] + c[2]) / 3.0;
    c.map(|v| grey + (v - grey) * MUTED_SATURATION)
}

/// Saturation kept by [`muted`] colours.
const MUTED_SATURATION: f64 = 0.35;

/// The identity of one view of one class: the head's pattern.
struct Pattern {
    colours: [Rgb; 2],
    stripes: f64,
    angle: f64,
}

/// A filled shape in image coordinates (fractions of the side).
struct Blob {
    centre: (f64, f64),
    radii: (f64, f64),
    rotation: f64,
    colour: Rgb,
    square: bool,
}

impl Blob {
    /// Coordinates of (u, v) in the blob's frame, scaled so the blob is the unit disc (or square).
    fn local(&self, u: f64, v: f64) -> (f64, f64) {
        let (c, s) = (self.rotation.cos(), self.rotation.sin());
        let (du, dv) = (u - self.centre.0, v - self.centre.1);
        ((du * c + dv * s) / self.radii.0, (-du * s + dv * c) / self.radii.1)
    }

    fn contains(&self, u: f64, v: f64) -> bool {
        let (a, b) = self.local(u, v);
        if self.square {
            a.abs() < 1.0 && b.abs() < 1.0
        } else {
            a * a + b * b < 1.0
        }
    }
}

fn clutter_blob(g: &mut SplitMix64) -> Blob {
    let r = g.range(0.05, 0.12);
    Blob {
        centre: (g.uniform(), g.uniform()),
        radii: (r, r * g.range(0.5, 1.0)),
        rotation: g.range(0.0, std::f64::consts::TAU),
        colour: colour(g),
        square: g.uniform() < 0.5,
    }
}

/// Everything drawn in one image but the head's pattern.
struct Scene {
    background: [Rgb; 2],
    gradient: f64,
    body: Blob,
    head: Blob,
    under: Vec<Blob>,
    over: Vec<Blob>,
    brightness: f64,
    contrast: f64,
}

fn scene(g: &mut SplitMix64, clutter: u32) -> Scene {
    let background = [muted(g), muted(g)];
    let gradient = g.range(0.0, std::f64::consts::TAU);
    let (size, rotation) = (g.range(0.16, 0.26), g.range(0.0, std::f64::consts::TAU));
    let centre = (g.range(0.3, 0.7), g.range(0.3, 0.7));
    let body = Blob { centre, radii: (size, size * g.range(0.55, 0.8)), rotation, colour: muted(g), square: false };
    // The head sits at the front of the body, along its long axis.
    let head_centre = (centre.0 + 0.95 * size * rotation.cos(), centre.1 + 0.95 * size * rotation.sin());
    let head_r = size * 0.7;
    let head = Blob { centre: head_centre, radii: (head_r, head_r), rotation, colour: [0.0; 3], square: false };
    let mut under: Vec<Blob> = (0..clutter).map(|_| clutter_blob(g)).collect();
    let over = under.split_off(under.len() * 2 / 3);
    Scene {
        background,
        gradient,
        body,
        head,
        under,
        over,
        brightness: g.range(-0.15, 0.15),
        contrast: g.range(0.7, 1.2),
    }
}

/// Draws one image into `out` (3 × r × r, channel-major).
fn draw(out: &mut [f32], r: usize, pattern: &Pattern, s: &Scene, noise: f64, g: &mut SplitMix64) {
    let (gc, gs) = (s.gradient.cos(), s.gradient.sin());
    let plane = r * r;
    for y in 0..r {
        for x in 0..r {
            let (u, v) = ((x as f64 + 0.5) / r as f64, (y as f64 + 0.5) / r as f64);
            let t = ((u - 0.5) * gc + (v - 0.5) * gs + 0.5).clamp(0.0, 1.0);
            let mut px: Rgb = std::array::from_fn(|k| s.background[0][k] * (1.0 - t) + s.background[1][k] * t);
            for b in s.under.iter().filter(|b| b.contains(u, v)) {
                px = b.colour;
            }
            if s.body.contains(u, v) {
                px = s.body.colour;
            }
            if s.head.contains(u, v) {
                // Stripes across the head, at the pattern's angle to the body's axis.
                let (a, b) = s.head.local(u, v);
                let w = a * pattern.angle.cos() + b * pattern.angle.sin();
                px = pattern.colours[((w + 1.0) * pattern.stripes).floor().rem_euclid(2.0) as usize];
            }
            for b in s.over.iter().filter(|b| b.contains(u, v)) {
                px = b.colour;
            }
            for (k, p) in px.iter().enumerate() {
                let value = (p - 0.5) * s.contrast + 0.5 + s.brightness + (g.uniform() - 0.5) * noise;
                out[k * plane + y * r + x] = value.clamp(0.0, 1.0) as f32;
            }
        }
    }
}

/// Generates the training split (`test = false`) or the test split (the next `classes` classes).
pub fn generate(c: &PartsConfig, test: bool) -> PartsSplit {
    let r = c.resolution as usize;
    let first_class = if test { c.classes } else { 0 };
    let n = (c.classes * c.views_per_class * c.images_per_view) as usize;
    let mut pixels = vec![0f32; n * 3 * r * r];
    let (mut labels, mut views) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut i = 0;
    for class in 0..c.classes {
        let gc = (first_class + class) as u64;
        for view in 0..c.views_per_class {
            let mut gv = SplitMix64::derive(c.seed, &[gc, view as u64]);
            let pattern = Pattern {
                colours: [colour(&mut gv), colour(&mut gv)],
                stripes: 1.0 + (gv.next_u64() % 3) as f64,
                angle: gv.range(0.0, std::f64::consts::PI),
            };
            for item in 0..c.images_per_view {
                let mut g = SplitMix64::derive(c.seed, &[gc, view as u64, item as u64 + 1]);
                let s = scene(&mut g, c.clutter);
                draw(&mut pixels[i * 3 * r * r..(i + 1) * 3 * r * r], r, &pattern, &s, c.noise, &mut g);
                labels.push(class);
                views.push(view);
                i += 1;
            }
        }
    }
    let images = Tensor::from_slice(&pixels).view([n as i64, 3, r as i64, r as i64]).to_kind(Kind::Float);
    PartsSplit { images, labels: Tensor::from_slice(&labels), views }
}

/// Every setting that cannot work, each naming its key.
pub fn problems(c: &PartsConfig) -> Vec<String> {
    let mut p = vec![];
    for (key, v) in
        [("classes", c.classes), ("views_per_class", c.views_per_class), ("images_per_view", c.images_per_view)]
    {
        if v < 1 {
            p.push(format!("`data.{key}`: {v}: expected at least 1"));
        }
    }
    if c.resolution < 8 {
        p.push(format!("`data.resolution`: {}: expected at least 8 pixels", c.resolution));
    }
    if !c.noise.is_finite() || c.noise < 0.0 {
        p.push(format!("`data.noise`: {}: expected a finite number >= 0", c.noise));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> PartsConfig {
        PartsConfig { classes: 4, views_per_class: 2, images_per_view: 3, resolution: 24, ..PartsConfig::default() }
    }

    #[test]
    fn same_seed_same_images_and_the_test_split_holds_other_classes() {
        let (a, b) = (generate(&small(), false), generate(&small(), false));
        assert!(a.images.equal(&b.images));
        assert_eq!(a.images.size(), [24, 3, 24, 24]);
        assert!(!generate(&small(), true).images.equal(&a.images));
        let (lo, hi) = (f64::try_from(a.images.min()).unwrap(), f64::try_from(a.images.max()).unwrap());
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && hi - lo > 0.5);
        assert_eq!(a.views[..6], [0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn the_nuisance_changes_per_image_and_the_head_carries_the_view() {
        // Two images of one view differ almost everywhere (per-image nuisance) ...
        let c = PartsConfig { noise: 0.0, clutter: 0, ..small() };
        let s = generate(&c, false);
        let differ = s.images.get(0).ne_tensor(&s.images.get(1)).to_kind(Kind::Float).mean(Kind::Float);
        assert!(f64::try_from(differ).unwrap() > 0.5);
        // ... while a head drawn with one view's pattern in one scene changes when only the
        // pattern changes.
        let mut g = SplitMix64(1);
        let scene = scene(&mut g, 0);
        let p = |colours| Pattern { colours, stripes: 2.0, angle: 0.3 };
        let (mut x, mut y) = (vec![0f32; 3 * 24 * 24], vec![0f32; 3 * 24 * 24]);
        draw(&mut x, 24, &p([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), &scene, 0.0, &mut SplitMix64(2));
        draw(&mut y, 24, &p([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]), &scene, 0.0, &mut SplitMix64(2));
        let changed = x.iter().zip(&y).filter(|(a, b)| a != b).count();
        assert!(changed > 0 && changed < x.len() / 4, "{changed} of {} values", x.len());
    }
}
