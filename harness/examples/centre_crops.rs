//! Writes photographs as the harness's evaluation transform makes them (decode, shorter side resized
//! to 224, centre crop 224), as raw RGB bytes N × 224 × 224 × 3, for
//! `bench/weights/efficientnet_parity.py`: the independent PyTorch pass then starts from exactly the
//! pixels `harness/tests/efficientnet.rs` computes from the same files (no image is committed).
//!
//! Usage: `centre_crops OUT.u8 IMAGE...`
use harness::data::pipeline::{decode, eval_transform, TransformConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).expect("usage: centre_crops OUT.u8 IMAGE...");
    let transform = TransformConfig { size: 224, resize: 224, ..Default::default() };
    let mut bytes = vec![];
    for path in &args[2..] {
        let img = decode(std::path::Path::new(path)).unwrap();
        bytes.extend_from_slice(eval_transform(&img, &transform).unwrap().as_raw());
    }
    std::fs::write(out, bytes).unwrap();
}
