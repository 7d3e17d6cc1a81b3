//! The results folder under stress: several sweep processes on one folder while processes are
//! killed at random, an infrastructure fault (a checkpoint that cannot be written), and a disk that
//! fills up. Nothing finished is lost or replaced, nothing is recorded as failed that did not fail,
//! and every fault ends in a clear message and exit 1.
mod common;

use harness::sweep::Sweep;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 18 runs of about half a second each.
const SWEEP: &str = r#"
name: stress
data:
  - {kind: synthetic, classes: 6, modes_per_class: 2, images_per_mode: 4, resolution: 16, seed: 1}
losses:
  - {kind: softmax_norm}
  - {kind: soft_triple}
centers_per_class: [1, 2]
dims: [16]
seeds: [0, 1, 2, 3, 4, 5]
model: {backbone: {kind: small_cnn, channels: [8]}}
train: {device: cpu, epochs: 10, batch_size: 12, sampler: {kind: class_balanced, m: 2}, lr: {backbone: 0.003, head: 0.003}}
eval: {recall_at: [1, 2], kmeans_restarts: 1}
"#;

fn tmp(name: &str) -> PathBuf {
    common::scratch("rel", name)
}

fn sweep_cmd(file: &Path, results: &Path, shard: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.arg("sweep").arg(file).arg("--results").arg(results);
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// (slug, status, metrics and loss curve as JSON) of every record, in slug order.
fn outcomes(results: &Path) -> Vec<(String, String, String)> {
    harness::store::read_records(results)
        .unwrap()
        .into_iter()
        .map(|r| {
            let m = serde_json::to_string(&(&r.outcome.metrics, &r.outcome.diagnostics.epoch_loss)).unwrap();
            (r.slug, format!("{:?}", r.outcome.status), m)
        })
        .collect()
}

/// A small deterministic generator for kill times (the seed is printed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn three_sweeps_on_one_folder_under_random_kills_lose_and_duplicate_nothing() {
    let dir = tmp("stress");
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, SWEEP).unwrap();
    let clean = dir.join("clean");
    assert!(sweep_cmd(&file, &clean, None).status().unwrap().success());

    let stress = dir.join("stress");
    let roles = [Some("0/2"), Some("1/2"), None]; // two shards and a duplicate of the whole sweep
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut rng = Lcg(seed);
    let mut children: Vec<Child> = roles.iter().map(|r| sweep_cmd(&file, &stress, *r).spawn().unwrap()).collect();
    let (mut kills, deadline) = (0, Instant::now() + Duration::from_secs(240));
    while kills < 12 {
        assert!(Instant::now() < deadline, "only {kills} kills landed before the deadline");
        std::thread::sleep(Duration::from_millis(80 + rng.below(320)));
        let i = rng.below(3) as usize;
        match children[i].try_wait().unwrap() {
            Some(status) => assert!(status.success(), "role {:?} exited with {status}", roles[i]),
            None => {
                children[i].kill().unwrap(); // SIGKILL, wherever it is
                children[i].wait().unwrap();
                kills += 1;
            }
        }
        if children.iter_mut().all(|c| c.try_wait().unwrap().is_some()) && kills < 12 {
            // Everything finished before 12 kills landed: the kills so far must do, at least 10.
            assert!(kills >= 10, "the sweep finished after {kills} kills; make it longer");
            break;
        }
        children[i] = sweep_cmd(&file, &stress, roles[i]).spawn().unwrap();
    }
    for mut c in children {
        let _ = c.wait();
    }
    // Whatever the kills interrupted last is finished by one more plain sweep.
    assert!(sweep_cmd(&file, &stress, None).status().unwrap().success());

    let planned: Vec<String> = Sweep::parse(SWEEP).unwrap().runs.into_iter().map(|r| r.id).collect();
    let mut files: Vec<String> = std::fs::read_dir(stress.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), planned.len(), "one record file per run, no temporary files: {files:?}");
    for id in &planned {
        assert_eq!(files.iter().filter(|f| f.ends_with(&format!("-{id}.json"))).count(), 1, "{id}: {files:?}");
    }
    let got = outcomes(&stress);
    assert!(got.iter().all(|o| o.1 == "Finished"), "{got:?}");
    assert_eq!(got, outcomes(&clean), "metrics and curves equal a clean run bit for bit");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_the_sweep_and_records_no_failure() {
    let dir = tmp("infra");
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, SWEEP).unwrap();
    let results = dir.join("results");
    let first = &Sweep::parse(SWEEP).unwrap().runs[0];
    // A folder where the first run's checkpoint file must go: its first save fails.
    let blocker = results.join("work").join(&first.id).join("checkpoint.ot");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let out = sweep_cmd(&file, &results, None).stderr(Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&blocker.display().to_string()), "the message names the file: {err}");
    let records = std::fs::read_dir(results.join("runs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(records, 0, "an infrastructure fault is not a failed run: nothing recorded");
    // Once the fault is gone, a plain rerun does everything.
    std::fs::remove_dir_all(&blocker).unwrap();
    assert!(sweep_cmd(&file, &results, None).status().unwrap().success());
    assert_eq!(harness::store::read_records(&results).unwrap().len(), 18);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Mounts a tmpfs of `size` at `at` (this test needs root, as CI has).
fn mount_tmpfs(at: &Path, size: &str) {
    std::fs::create_dir_all(at).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status();
    assert!(st.is_ok_and(|s| s.success()), "mounting a tmpfs at {} needs root (CI runs as root)", at.display());
}

#[test]
fn a_full_disk_ends_with_a_clear_message_exit_1_and_nothing_corrupt() {
    let dir = tmp("full");
    // A model whose checkpoint (weights and Adam state) is larger than the disk.
    let text = SWEEP.replace("channels: [8]", "channels: [64, 128]").replace("seeds: [0, 1, 2, 3, 4, 5]", "seeds: [0]");
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, &text).unwrap();
    let disk = dir.join("disk");
    mount_tmpfs(&disk, "600k");
    let results = disk.join("results");
    let out = sweep_cmd(&file, &results, None).stderr(Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    // Free space, then finish the sweep where it stopped.
    let grown = Command::new("mount").args(["-o", "remount,size=64m"]).arg(&disk).status().unwrap().success();
    let leftovers: Vec<String> = walk(&results).into_iter().filter(|p| p.ends_with(".tmp")).collect();
    let again = sweep_cmd(&file, &results, None).status().unwrap();
    let resumed = outcomes(&results);
    let _ = Command::new("umount").arg(&disk).status();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device") && err.contains(&results.display().to_string()), "{err}");
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    assert!(grown && again.success());
    let clean = dir.join("clean");
    assert!(sweep_cmd(&file, &clean, None).status().unwrap().success());
    assert_eq!(resumed, outcomes(&clean), "the sweep finished after the disk filled equals a clean one");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
