//! Times forward + backward of every benchmark case and prints one JSON object per line, for
//! `bench/peers/losses.py` to compare against PyTorch in the same run.
//!
//! Usage: `loss_timing [--threads N] [--filter SUBSTRING] [--exact ID] [--min-seconds S]`
use losses::bench_cases::bench_cases;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let threads: i32 = opt("--threads").map_or(2, |v| v.parse().expect("--threads N"));
    let filter = opt("--filter").unwrap_or_default();
    let exact = opt("--exact");
    let min_seconds: f64 = opt("--min-seconds").map_or(1.0, |v| v.parse().expect("--min-seconds S"));
    tch::set_num_threads(threads);
    for case in
        bench_cases().into_iter().filter(|c| c.id().contains(&filter) && exact.as_ref().is_none_or(|e| &c.id() == e))
    {
        tch::manual_seed(0);
        let prepared = case.prepare();
        let step = || prepared.step();
        step();
        let start = Instant::now();
        let mut iters = 0u32;
        let mut times = vec![];
        while start.elapsed().as_secs_f64() < min_seconds || iters < 5 {
            let t = Instant::now();
            step();
            times.push(t.elapsed().as_secs_f64());
            iters += 1;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = times[times.len() / 2];
        println!(
            "{{\"id\":\"{}\",\"kind\":\"{}\",\"config\":{},\"batch\":{},\"dim\":{},\"num_classes\":{},\"median_s\":{median:.9},\"iters\":{iters}}}",
            case.id(),
            case.config.kind(),
            serde_json_string(&case.config),
            case.batch,
            case.dim,
            case.num_classes
        );
    }
}

/// The config as a JSON object (via YAML's flow form, which serde_yaml writes as valid JSON-ish maps).
fn serde_json_string(c: &losses::LossConfig) -> String {
    let v: serde_json::Value = serde_yaml::from_str(&serde_yaml::to_string(c).unwrap()).unwrap();
    v.to_string()
}
