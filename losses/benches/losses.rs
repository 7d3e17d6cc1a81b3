//! Criterion bench: forward + backward of every loss kind over the grid of `losses::bench_cases`.
use criterion::{criterion_group, criterion_main, Criterion};
use losses::bench_cases::bench_cases;
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

criterion_group!(benches, forward_backward);
criterion_main!(benches);
