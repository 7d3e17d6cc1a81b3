//! Criterion benches of the evaluation at growing N (1k, 10k, 60k samples, 512-d, ~5.35 samples per
//! class as in SOP): the chunked kNN, k-means (5 Lloyd iterations, random init) and the full
//! evaluation (Recall@1/10/100, MAP@R, and NMI at 1k and 10k). The 60k cases take minutes each.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use harness::eval::kmeans::{kmeans, KMeansConfig, KMeansInit};
use harness::eval::knn::{nearest_neighbours, DEFAULT_MEMORY_BUDGET};
use harness::eval::{evaluate, EvalConfig};
use std::time::Duration;
use tch::{Kind, Tensor};

fn data(n: i64) -> (Tensor, Tensor) {
    tch::manual_seed(0);
    let classes = (n as f64 / 5.35).round() as i64;
    let labels = Tensor::arange(n, (Kind::Int64, tch::Device::Cpu)).remainder(classes);
    let centres = Tensor::randn([classes, 512], tch::kind::FLOAT_CPU);
    let x = centres.index_select(0, &labels) + Tensor::randn([n, 512], tch::kind::FLOAT_CPU) * 1.6;
    let unit = &x / x.linalg_norm(2, [1].as_slice(), true, None::<Kind>);
    (unit, labels)
}

fn benches(c: &mut Criterion) {
    tch::set_num_threads(std::env::var("BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2));
    let mut g = c.benchmark_group("eval");
    g.sample_size(10).warm_up_time(Duration::from_millis(100)).measurement_time(Duration::from_secs(2));
    for n in [1_000i64, 10_000, 60_000] {
        let (x, labels) = data(n);
        g.bench_with_input(BenchmarkId::new("knn_top100", n), &n, |b, _| {
            b.iter(|| nearest_neighbours(&x, 100.min(n - 1), DEFAULT_MEMORY_BUDGET))
        });
        let km = KMeansConfig {
            clusters: (n as f64 / 5.35).round() as i64,
            restarts: 1,
            max_iter: 5,
            tol: 0.0,
            seed: 0,
            init: KMeansInit::Random,
        };
        g.bench_with_input(BenchmarkId::new("kmeans_5_iterations", n), &n, |b, _| {
            b.iter(|| kmeans(&x, &km, DEFAULT_MEMORY_BUDGET))
        });
        let cfg = EvalConfig {
            recall_at: vec![1, 10, 100],
            nmi: n <= 10_000,
            kmeans_restarts: 1,
            kmeans_max_iter: 5,
            ..Default::default()
        };
        g.bench_with_input(BenchmarkId::new("evaluate", n), &n, |b, _| b.iter(|| evaluate(&x, &labels, &cfg).unwrap()));
    }
    g.finish();
}

criterion_group!(eval_benches, benches);
criterion_main!(eval_benches);
