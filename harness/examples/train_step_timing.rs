//! Training steps per second of the small CNN + SoftTriple on one fixed synthetic batch, through
//! the harness's model, loss and optimiser, for `bench/peers/train_step.py`. Prints one JSON object.
//!
//! Usage: `train_step_timing [--threads 2] [--min-seconds 3]`
use harness::model::{BackboneConfig, EmbeddingModel, ModelConfig};
use harness::optim::{Optimizer, OptimizerConfig, ParamGroup};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let threads: i32 = opt("--threads").map_or(2, |v| v.parse().unwrap());
    let min_seconds: f64 = opt("--min-seconds").map_or(3.0, |v| v.parse().unwrap());
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let (classes, k, dim, batch) = (32i64, 4i64, 64i64, 32i64);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig { backbone: BackboneConfig::SmallCnn { channels: vec![16, 32, 64] }, ..Default::default() };
    let model = EmbeddingModel::build(&cfg, &mut vs, "backbone", "head", dim, None).unwrap();
    let loss: losses::LossConfig =
        serde_yaml::from_str(&format!("{{kind: soft_triple, centers_per_class: {k}}}")).unwrap();
    let loss = loss.build(&vs.root().sub("loss"), classes, dim).unwrap();
    let group = |prefix: &str, lr: f64| ParamGroup {
        name: prefix.into(),
        params: vs
            .variables()
            .into_iter()
            .filter(|(n, v)| n.starts_with(prefix) && v.requires_grad())
            .map(|(_, v)| v)
            .collect(),
        lr,
        weight_decay: 1e-4,
    };
    let mut optim = Optimizer::new(
        OptimizerConfig::default(),
        vec![group("backbone.", 3e-3), group("head.", 3e-3), group("loss.", 1e-2)],
    );
    let x = Tensor::rand([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::arange(batch, (Kind::Int64, Device::Cpu)).remainder(classes);
    let mut step = || {
        let out = loss.forward(&model.forward(&x, true), &y).unwrap();
        optim.backward(&out.loss).unwrap();
        optim.step(1.0);
    };
    for _ in 0..5 {
        step();
    }
    let start = Instant::now();
    let mut steps = 0u32;
    while start.elapsed().as_secs_f64() < min_seconds {
        step();
        steps += 1;
    }
    println!(
        "{{\"steps_per_s\":{:.3},\"steps\":{steps},\"threads\":{threads}}}",
        steps as f64 / start.elapsed().as_secs_f64()
    );
}
