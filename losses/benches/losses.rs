//! Criterion bench: forward + backward of every loss kind over the grid of `losses::bench_cases`.
use criterion::{criterion_group, criterion_main, Criterion};
use losses::bench_cases::bench_cases;
use std::time::Duration;
use tch::{nn, Device, Kind, Tensor};

fn forward_backward(c: &mut Criterion) {
    tch::set_num_threads(std::env::var("BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2));
    let mut group = c.benchmark_group("loss_forward_backward");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(10);
    for case in bench_cases() {
        let vs = nn::VarStore::new(Device::Cpu);
        let loss = case.config.build(&vs.root(), case.num_classes, case.dim).expect("build");
        let x = Tensor::randn([case.batch, case.dim], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = Tensor::arange(case.batch, (Kind::Int64, Device::Cpu))
            .divide_scalar_mode(4, "floor")
            .remainder(case.num_classes);
        // Gradients w.r.t. the embeddings and the centres, returned rather than accumulated into `.grad`.
        let mut inputs = vs.trainable_variables();
        inputs.push(x.shallow_clone());
        group.bench_function(case.id(), |b| {
            b.iter(|| {
                let out = loss.forward(&x, &y).expect("forward");
                let grads = Tensor::run_backward(&[&out.loss], &inputs, false, false);
                assert_eq!(grads.len(), inputs.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward_backward);
criterion_main!(benches);
