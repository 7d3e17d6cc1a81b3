//! `harness eval` as a user runs it: numpy-written .npy files in, Markdown or JSON out, and a clear
//! error for every kind of bad file.
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy").join(name)
}

fn eval(emb: &str, labels: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["eval", "--device", "cpu", "--embeddings"])
        .arg(fixture(emb))
        .arg("--labels")
        .arg(fixture(labels))
        .args(extra)
        .output()
        .expect("harness runs")
}

#[test]
fn json_output_matches_numpy_brute_force_recall() {
    let out = eval("emb.npy", "labels.npy", &["--format", "json", "--restarts", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    for pair in report["retrieval"]["recall_at_k"].as_array().unwrap() {
        let k = pair[0].as_i64().unwrap().to_string();
        let ours = pair[1].as_f64().unwrap();
        let theirs = expected["recall_at_k"][&k].as_f64().unwrap();
        assert!((ours - theirs).abs() < 1e-12, "R@{k}: {ours} vs numpy {theirs}");
    }
    assert_eq!(report["nmi"]["restarts"].as_array().unwrap().len(), 2);
    assert_eq!(report["samples"], 40);
}

#[test]
fn markdown_is_the_default_and_lists_the_restarts() {
    let out = eval("emb.npy", "labels.npy", &["--recall-at", "1,10"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("| R@1 | R@10 | R-Precision | MAP@R | NMI |"), "{text}");
    assert!(text.contains("headline = restart"), "{text}");
}

#[test]
fn the_harness_reads_back_what_it_writes() {
    let dir = std::env::temp_dir().join(format!("harness-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = tch::Tensor::randn([30, 4], tch::kind::FLOAT_CPU);
    let y = tch::Tensor::arange(30, (tch::Kind::Int64, tch::Device::Cpu)).remainder(5);
    harness::npy::write(&dir.join("embeddings.npy"), &x).unwrap();
    harness::npy::write(&dir.join("labels.npy"), &y).unwrap();
    assert!(harness::npy::read_embeddings(&dir.join("embeddings.npy")).unwrap().equal(&x));
    assert!(harness::npy::read_labels(&dir.join("labels.npy")).unwrap().equal(&y));
    let out =
        Command::new(env!("CARGO_BIN_EXE_harness")).args(["eval", "--no-nmi", "--run"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The Markdown table is well formed: header, separator and row have the same number of cells.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let table: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).take(3).collect();
    let cells: Vec<usize> = table.iter().map(|l| l.matches('|').count()).collect();
    assert!(cells.len() == 3 && cells.iter().all(|&c| c == cells[0]), "{table:?}");
    assert!(table[1].chars().all(|c| c == '|' || c == '-'), "{table:?}");
    // Labels that are all unique define no retrieval metric: refused, not NaN.
    harness::npy::write(&dir.join("labels.npy"), &tch::Tensor::arange(30, (tch::Kind::Int64, tch::Device::Cpu)))
        .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_harness")).args(["eval", "--no-nmi", "--run"]).arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("every one of the 30 labels is unique"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_get_errors_that_name_the_file_and_the_fix() {
    let cases: [(&str, &str, &[&str]); 6] = [
        ("emb_float64.npy", "labels.npy", &["emb_float64.npy", "float32", "astype(np.float32)"]),
        ("emb.npy", "labels_int32.npy", &["labels_int32.npy", "int64", "'<i4'"]),
        ("emb.npy", "labels_short.npy", &["one per embedding row"]),
        ("emb.npy", "labels_one_class.npy", &["at least two classes"]),
        ("emb_nan.npy", "labels.npy", &["NaN", "row 3"]),
        ("not_npy.npy", "labels.npy", &["not_npy.npy", "not a valid .npy file"]),
    ];
    for (emb, labels, needles) in cases {
        let out = eval(emb, labels, &["--no-nmi"]);
        assert!(!out.status.success(), "{emb} {labels} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "{emb}/{labels}: `{n}` missing in: {err}");
        }
    }
}

#[test]
fn all_option_problems_are_reported_together_before_any_work() {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["eval", "--device", "tpu", "--kmeans-init", "best", "--format", "xml", "--embeddings"])
        .arg(fixture("missing.npy"))
        .arg("--labels")
        .arg(fixture("labels.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for n in ["4 problem(s)", "--device", "--kmeans-init", "--format", "missing.npy: no such file"] {
        assert!(err.contains(n), "`{n}` missing in: {err}");
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_harness_quietly() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("harness-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 3,000 runs: far more output than a pipe holds.
    let seeds: Vec<String> = (0..3000).map(|s| s.to_string()).collect();
    let sweep = format!(
        "name: pipe\ndata: [{{kind: synthetic}}]\nlosses: [{{kind: softmax_norm}}]\ndims: [8]\nseeds: [{}]\n",
        seeds.join(", ")
    );
    std::fs::write(dir.join("s.yaml"), sweep).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("plan")
        .arg(dir.join("s.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the reader goes away, as `head` does
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && out.status.code() != Some(101), "{:?}: {err}", out.status);
    std::fs::remove_dir_all(&dir).unwrap();
}
