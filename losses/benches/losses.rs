//! Criterion bench: forward + backward of every loss kind over the grid of `losses::bench_cases`.
use criterion::{criterion_group, criterion_main, Criterion};
use losses::bench_cases::{bench_cases, BenchCase};
use losses::LossConfig;
use std::time::Duration;

fn forward_backward(c: &mut Criterion) {
    tch::set_num_threads(std::env::var("BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2));
    let mut group = c.benchmark_group("loss_forward_backward");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    for case in bench_cases() {
        let prepared = case.prepare();
        group.bench_function(case.id(), |b| b.iter(|| prepared.step()));
    }
    group.finish();
}

/// The scripted SoftTriple of `plugins/` against the built-in, side by side at the paper's sizes
/// (K = 10; CUB/Cars-sized and SOP-sized class counts): the per-step cost of calling TorchScript.
fn plugin_overhead(c: &mut Criterion) {
    tch::set_num_threads(std::env::var("BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2));
    let mut group = c.benchmark_group("plugin_overhead");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/soft_triple.pt");
    let built_in = "{kind: soft_triple, centers_per_class: 10}".to_string();
    let scripted = format!(
        "{{kind: torchscript, path: '{script}', name: SoftTriple-TS, centers_per_class: 10, params: {{la: 20, gamma: 0.1, tau: 0.2, margin: 0.01}}}}"
    );
    for (batch, dim, num_classes) in [(32, 64, 100), (32, 512, 100), (128, 512, 11_318)] {
        for (name, yaml) in [("built_in", &built_in), ("scripted", &scripted)] {
            let config: LossConfig = serde_yaml::from_str(yaml).expect("config");
            let prepared = BenchCase { config, batch, dim, num_classes }.prepare();
            group.bench_function(format!("{name}/C{num_classes}/d{dim}/b{batch}"), |b| b.iter(|| prepared.step()));
        }
    }
    group.finish();
}

criterion_group!(benches, forward_backward, plugin_overhead);
criterion_main!(benches);
