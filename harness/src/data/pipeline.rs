//! The image pipeline: decode JPEG/PNG, training transforms (RandomResizedCrop, horizontal flip),
//! evaluation transforms (resize the shorter side, centre crop), normalisation presets, and worker
//! threads that prepare batches ahead of the trainer through bounded queues.
//!
//! Determinism: a sample's random crop and flip come from a generator seeded by (seed, epoch,
//! sample index), and batch b is built by worker b mod W and read back in order, so the batches are
//! the same whatever the number of workers.
use super::synthetic::SplitMix64;
use super::DataError;
use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use tch::Tensor;

/// Pixel normalisation of the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// BN-Inception (paper.md §3): BGR channel order, 0..255, mean [104, 117, 128] subtracted.
    #[default]
    BnInception,
    /// torchvision ImageNet models: RGB, 0..1, mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225].
    Imagenet,
    /// EfficientNet-Lite (TensorFlow's reference): RGB, (x · 255 − 127.5) / 128.
    EfficientnetLite,
}

/// Image transforms of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformConfig {
    /// Output side in pixels (square).
    pub size: u32,
    /// Evaluation: the shorter side is resized to this before the centre crop.
    pub resize: u32,
    /// RandomResizedCrop's area fraction range.
    pub scale: (f64, f64),
    /// RandomResizedCrop's aspect ratio range.
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip in training.
    pub flip: f64,
    /// Normalisation preset.
    pub normalization: Normalization,
}

impl Default for TransformConfig {
    fn default() -> Self {
        Self {
            size: 224,
            resize: 256,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: 0.5,
            normalization: Normalization::BnInception,
        }
    }
}

/// What to do with an image that cannot be read or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BadImagePolicy {
    /// Stop with an error naming the file.
    #[default]
    Fail,
    /// Leave it out of its batch and count it.
    Skip,
}

/// Decodes an image file into RGB. JPEGs are decoded strictly: a file that ends before its image
/// data does (a truncated download or copy) is an error, not a picture padded with grey.
pub fn decode(path: &Path) -> Result<RgbImage, DataError> {
    let bad = |reason: String| DataError::Image { path: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return decode_jpeg_strict(&bytes).map_err(bad);
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes));
    let reader =
        reader.with_guessed_format().map_err(|e| DataError::Image { path: path.into(), reason: e.to_string() })?;
    Ok(reader.decode().map_err(|e| DataError::Image { path: path.into(), reason: e.to_string() })?.to_rgb8())
}

/// Decodes every file on `threads` threads; returns the ones that cannot be decoded with why (one
/// line, without the path), in the order given. `tick` is called once per file (a progress bar).
pub fn undecodable(paths: &[PathBuf], threads: usize, tick: &(dyn Fn() + Sync)) -> Vec<(PathBuf, String)> {
    let chunk = paths.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut bad = vec![];
                    for p in part {
                        match decode(p) {
                            Err(DataError::Image { reason, .. }) => bad.push((p.clone(), one_line(&reason))),
                            Err(e) => bad.push((p.clone(), one_line(&e.to_string()))),
                            Ok(_) => {}
                        }
                        tick();
                    }
                    bad
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// A message on one line: runs of white space (a decoder's line breaks) become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A JPEG decoded by zune-jpeg (the decoder the `image` crate uses) in strict mode, as RGB.
fn decode_jpeg_strict(bytes: &[u8]) -> Result<RgbImage, String> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder.decode().map_err(|e| format!("not a complete JPEG ({e:?})"))?;
    let (w, h) = decoder.dimensions().ok_or("JPEG without dimensions")?;
    RgbImage::from_raw(w as u32, h as u32, pixels).ok_or_else(|| format!("JPEG data does not fill {w} × {h} RGB"))
}

/// RandomResizedCrop (torchvision's algorithm: 10 tries at a random area and log-uniform ratio,
/// then a centre crop fallback) followed by an optional horizontal flip.
pub fn train_transform(img: &RgbImage, cfg: &TransformConfig, g: &mut SplitMix64) -> Result<RgbImage, String> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let area = w * h;
    let mut crop = None;
    for _ in 0..10 {
        let target = area * g.range(cfg.scale.0, cfg.scale.1);
        let ar = g.range(cfg.ratio.0.ln(), cfg.ratio.1.ln()).exp();
        let cw = (target * ar).sqrt().round();
        let ch = (target / ar).sqrt().round();
        if cw > 0.0 && ch > 0.0 && cw <= w && ch <= h {
            let x = (g.uniform() * (w - cw + 1.0)).floor();
            let y = (g.uniform() * (h - ch + 1.0)).floor();
            crop = Some((x as u32, y as u32, cw as u32, ch as u32));
            break;
        }
    }
    let (x, y, cw, ch) = crop.unwrap_or_else(|| {
        let in_ratio = w / h;
        let (cw, ch) = if in_ratio < cfg.ratio.0 {
            (w, (w / cfg.ratio.0).round())
        } else if in_ratio > cfg.ratio.1 {
            ((h * cfg.ratio.1).round(), h)
        } else {
            (w, h)
        };
        (((w - cw) / 2.0) as u32, ((h - ch) / 2.0) as u32, cw as u32, ch as u32)
    });
    let mut out = resize_crop(img, (x, y, cw, ch), cfg.size, cfg.size)?;
    if g.uniform() < cfg.flip {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    Ok(out)
}

/// Resize the shorter side to `cfg.resize`, then centre-crop `cfg.size` × `cfg.size`.
pub fn eval_transform(img: &RgbImage, cfg: &TransformConfig) -> Result<RgbImage, String> {
    let (w, h) = (img.width(), img.height());
    let (nw, nh) = if w <= h {
        (cfg.resize, ((h as f64) * cfg.resize as f64 / w as f64).round() as u32)
    } else {
        (((w as f64) * cfg.resize as f64 / h as f64).round() as u32, cfg.resize)
    };
    let resized = resize_crop(img, (0, 0, w, h), nw, nh)?;
    let (x, y) = ((nw.saturating_sub(cfg.size)) / 2, (nh.saturating_sub(cfg.size)) / 2);
    Ok(image::imageops::crop_imm(&resized, x, y, cfg.size.min(nw), cfg.size.min(nh)).to_image())
}

thread_local! {
    static RESIZER: std::cell::RefCell<Resizer> = std::cell::RefCell::new(Resizer::new());
}

/// Resizes the `(x, y, w, h)` region of `img` to `out_w × out_h` with an antialiased bilinear
/// filter (as PIL's BILINEAR, which torchvision uses), SIMD-accelerated; one resizer per thread.
pub fn resize_crop(
    img: &RgbImage,
    (x, y, w, h): (u32, u32, u32, u32),
    out_w: u32,
    out_h: u32,
) -> Result<RgbImage, String> {
    let (out_w, out_h) = (out_w.max(1), out_h.max(1));
    let mut out = RgbImage::new(out_w, out_h);
    let opts = ResizeOptions::new()
        .crop(x as f64, y as f64, w.max(1) as f64, h.max(1) as f64)
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    // Typed to RGB8: `Resizer::resize` dispatches on the pixel type at run time, so it would
    // instantiate the convolutions of all 13 pixel types in this crate (45 % of its compiled code).
    let failed = |e: &dyn std::fmt::Display| format!("resize failed: {e}");
    {
        let src =
            TypedImageRef::<U8x3>::from_buffer(img.width(), img.height(), img.as_raw()).map_err(|e| failed(&e))?;
        let mut dst = TypedImage::<U8x3>::from_buffer(out_w, out_h, &mut out).map_err(|e| failed(&e))?;
        RESIZER.with(|r| r.borrow_mut().resize_typed(&src, &mut dst, &opts)).map_err(|e| failed(&e))?;
    }
    Ok(out)
}

/// Writes a normalised image into `out` (3 × H × W, channel-major) following the preset.
pub fn normalize_into(img: &RgbImage, preset: Normalization, out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    for (i, p) in img.pixels().enumerate() {
        match preset {
            Normalization::BnInception => {
                const MEAN: [f32; 3] = [104.0, 117.0, 128.0]; // B, G, R
                out[i] = p[2] as f32 - MEAN[0];
                out[plane + i] = p[1] as f32 - MEAN[1];
                out[2 * plane + i] = p[0] as f32 - MEAN[2];
            }
            Normalization::EfficientnetLite => {
                for c in 0..3 {
                    out[c * plane + i] = (p[c] as f32 - 127.5) / 128.0;
                }
            }
            Normalization::Imagenet => {
                const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
                const STD: [f32; 3] = [0.229, 0.224, 0.225];
                for c in 0..3 {
                    out[c * plane + i] = (p[c] as f32 / 255.0 - MEAN[c]) / STD[c];
                }
            }
        }
    }
}

/// A prepared batch: images N × 3 × S × S, labels N, and the files left out under `Skip`.
#[derive(Debug)]
pub struct Batch {
    /// Normalised images.
    pub images: Tensor,
    /// Labels.
    pub labels: Tensor,
    /// Files that could not be read and were skipped.
    pub skipped: Vec<PathBuf>,
}

/// Files, labels and settings shared by the workers.
#[derive(Debug)]
pub struct ImageSource {
    /// Absolute image paths.
    pub paths: Vec<PathBuf>,
    /// Label of each path.
    pub labels: Vec<i64>,
    /// Transforms.
    pub transform: TransformConfig,
    /// Training (random) or evaluation (deterministic) transforms.
    pub train: bool,
    /// Bad image policy.
    pub on_bad_image: BadImagePolicy,
}

/// Builds one batch from sample indices.
pub fn build_batch(src: &ImageSource, indices: &[usize], seed: u64, epoch: u64) -> Result<Batch, DataError> {
    let s = src.transform.size as usize;
    let mut data = vec![0f32; indices.len() * 3 * s * s];
    let mut labels = Vec::with_capacity(indices.len());
    let mut skipped = vec![];
    let mut filled = 0;
    for &i in indices {
        let img = match decode(&src.paths[i]) {
            Ok(img) => img,
            Err(e) if src.on_bad_image == BadImagePolicy::Skip => {
                let _ = e;
                skipped.push(src.paths[i].clone());
                continue;
            }
            Err(e) => return Err(e),
        };
        let out = if src.train {
            let mut g = SplitMix64::derive(seed, &[epoch, i as u64]);
            train_transform(&img, &src.transform, &mut g)
        } else {
            eval_transform(&img, &src.transform)
        }
        .map_err(|reason| DataError::Image { path: src.paths[i].clone(), reason })?;
        normalize_into(&out, src.transform.normalization, &mut data[filled * 3 * s * s..(filled + 1) * 3 * s * s]);
        labels.push(src.labels[i]);
        filled += 1;
    }
    data.truncate(filled * 3 * s * s);
    Ok(Batch {
        images: Tensor::from_slice(&data).view([filled as i64, 3, s as i64, s as i64]),
        labels: Tensor::from_slice(&labels),
        skipped,
    })
}

/// Batches prepared by `workers` threads, `prefetch` batches ahead per worker, returned in order.
pub struct BatchStream {
    receivers: Vec<Receiver<Result<Batch, DataError>>>,
    next: usize,
    total: usize,
}

impl BatchStream {
    /// Starts the workers for `batches` (lists of sample indices) of one epoch.
    pub fn start(
        src: Arc<ImageSource>,
        batches: Vec<Vec<usize>>,
        workers: usize,
        prefetch: usize,
        seed: u64,
        epoch: u64,
    ) -> Self {
        let workers = workers.max(1);
        let total = batches.len();
        let batches = Arc::new(batches);
        let receivers = (0..workers)
            .map(|w| {
                let (tx, rx) = sync_channel(prefetch.max(1));
                let (src, batches) = (src.clone(), batches.clone());
                std::thread::spawn(move || {
                    for b in (w..batches.len()).step_by(workers) {
                        let r = build_batch(&src, &batches[b], seed, epoch);
                        let failed = r.is_err();
                        if tx.send(r).is_err() || failed {
                            return; // the consumer stopped, or the error has been handed over
                        }
                    }
                });
                rx
            })
            .collect();
        Self { receivers, next: 0, total }
    }
}

impl Iterator for BatchStream {
    type Item = Result<Batch, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == self.total {
            return None;
        }
        let w = self.next % self.receivers.len();
        self.next += 1;
        Some(
            self.receivers[w]
                .recv()
                .unwrap_or_else(|_| Err(DataError::Config("a pipeline worker stopped unexpectedly".into()))),
        )
    }
}
