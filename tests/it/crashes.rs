//! Crashes anywhere: ingest, labelling and the scheduler are SIGKILLed at seeded random points
//! (printed; 2 + 2 + 1 in the test command, 10 + 10 + 6 in a soak run), their tables checked
//! after every kill (only committed runs visible, nothing twice, no study in part), and rerun;
//! the end state equals a clean run's, with every folder marked done once and no lease left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;
use crate::schedule::{inbox_and_model, schedule_file};

/// Runs `args` to completion; returns how long it took.
fn timed(args: &[String]) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cinestream")).args(args).envs([crate::schedule::TEST_KEY]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    t.elapsed()
}

/// Starts `args`, SIGKILLs it after `after` (unless it finished first); returns whether it was
/// killed.
fn kill_after(args: &[String], after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cinestream"))
        .args(args)
        .envs([crate::schedule::TEST_KEY])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// Rows of `table` (see [`table_rows`]).
async fn rows(data: &str, table: &str) -> Vec<String> {
    if !Path::new(data).join(table).join("_delta_log").exists() {
        return Vec::new();
    }
    table_rows(data, table, RUN_COLUMNS).await
}

/// What is visible in `data` is a part of what `clean` holds: no row twice, no row a clean run
/// lacks, and each study whole or absent (an uncommitted run shows nothing).
async fn visible_is_committed(data: &str, clean: &str, tables: &[&str], what: &str) {
    for t in tables {
        let (got, want) = (rows(data, t).await, rows(clean, t).await);
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), got.len(), "{what}: {t} has a row twice");
        let want_set: std::collections::BTreeSet<&String> = want.iter().collect();
        assert!(got.iter().all(|r| want_set.contains(r)), "{what}: {t} has a row a clean run does not");
        // Whole studies: for every study (and labeller) with a visible row, all its clean rows
        // are visible.
        let key: &[usize] = match *t {
            "labels" => &[0, 4],
            "label_qc" => &[0, 1],
            _ => &[0],
        };
        let study = |r: &String| {
            let f: Vec<&str> = r.split('|').collect();
            key.iter().map(|&i| f[i]).collect::<Vec<_>>().join("|")
        };
        let seen: std::collections::BTreeSet<String> = got.iter().map(study).collect();
        let expected = want.iter().filter(|r| seen.contains(&study(r))).count();
        assert_eq!(got.len(), expected, "{what}: {t} shows part of a study");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_anywhere_then_rerun_gives_a_clean_runs_tables() {
    let seed: u64 = std::env::var("CINESTREAM_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261202);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    eprintln!("crash seed {seed} (CINESTREAM_CRASH_SEED replays it)");
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox").display().to_string();
    let studies = sized(4, 6);
    let model = inbox_and_model(dir.path(), studies, &inbox).await;
    let raw = dir.path().join("raw").display().to_string();
    let path = |n: &str| dir.path().join(n).display().to_string();
    let ingest = |out: &str| phantom_ingest_args(&raw, out);
    let label =
        |data: &str| -> Vec<String> { ["label", "--data", data, "--model", &model, "--labeller", "tiny"].map(String::from).to_vec() };
    let (mut points, mut kills) = (0, 0);
    // Kill times as fractions of a clean run, ascending: a run killed later has no less work left
    // (a killed run commits nothing but what it had committed), so every attempt is a real kill.
    let mut fractions = |n: usize| {
        let mut f: Vec<f64> = (0..n).map(|_| rng.random_range(0.03..0.97)).collect();
        f.sort_by(f64::total_cmp);
        f
    };

    // The clean run, and how long each stage takes.
    let clean = path("clean");
    let t_ingest = timed(&ingest(&clean));
    eprintln!("clean ingest: {:.1} s", t_ingest.as_secs_f64());

    // Ingest, killed at 2 points (10 in a soak run), each checked, then finished.
    let crash = path("crash");
    for (i, f) in fractions(sized(2, 10)).into_iter().enumerate() {
        let at = t_ingest.mul_f64(f);
        let killed = kill_after(&ingest(&crash), at);
        eprintln!("kill point {points}: ingest attempt {i} at {} ms ({})", at.as_millis(), if killed { "killed" } else { "had finished" });
        points += 1;
        kills += usize::from(killed);
        visible_is_committed(
            &crash,
            &clean,
            &["frames", "labels", "studies", "curation_log", "sources"],
            &format!("after ingest kill {i}"),
        )
        .await;
    }
    timed(&ingest(&crash));
    assert!(all_rows(&crash).await == all_rows(&clean).await, "ingest after kills = a clean ingest");
    let t_label = timed(&label(&clean));
    eprintln!("clean labelling: {:.1} s", t_label.as_secs_f64());

    // Labelling, killed at 2 points (10), each checked, then finished.
    for (i, f) in fractions(sized(2, 10)).into_iter().enumerate() {
        let at = t_label.mul_f64(f);
        let killed = kill_after(&label(&crash), at);
        eprintln!("kill point {points}: label attempt {i} at {} ms ({})", at.as_millis(), if killed { "killed" } else { "had finished" });
        points += 1;
        kills += usize::from(killed);
        visible_is_committed(&crash, &clean, &["labels", "label_qc"], &format!("after label kill {i}")).await;
    }
    timed(&label(&crash));
    assert!(rows(&crash, "labels").await == rows(&clean, "labels").await, "labelling after kills = a clean labelling");
    assert!(rows(&crash, "label_qc").await == rows(&clean, "label_qc").await, "label_qc after kills = a clean labelling's");

    // The scheduler on the inbox, killed at 1 point (6); its reruns take over the dead leases.
    let sched_clean = path("sched-clean");
    let file_clean = schedule_file(dir.path(), &inbox, &sched_clean, &[("crash-job", &model)], "");
    let t_sched = timed(&["schedule".to_string(), file_clean.display().to_string(), "--once".into()]);
    let sched = path("sched-crash");
    let file = schedule_file(dir.path(), &inbox, &sched, &[("crash-job", &model)], "");
    let args = ["schedule".to_string(), file.display().to_string(), "--once".into()];
    eprintln!("clean scheduler run: {:.1} s", t_sched.as_secs_f64());
    for (i, f) in fractions(sized(1, 6)).into_iter().enumerate() {
        let at = t_sched.mul_f64(f);
        let killed = kill_after(&args, at);
        eprintln!(
            "kill point {points}: scheduler attempt {i} at {} ms ({})",
            at.as_millis(),
            if killed { "killed" } else { "had finished" }
        );
        points += 1;
        kills += usize::from(killed);
        visible_is_committed(&sched, &sched_clean, &["frames", "labels", "label_qc", "sources"], &format!("after scheduler kill {i}"))
            .await;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cinestream")).args(&args).envs([crate::schedule::TEST_KEY]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("final scheduler run: {}", String::from_utf8_lossy(&out.stdout).trim());
    for t in ["frames", "labels", "label_qc", "studies", "curation_log"] {
        assert!(rows(&sched, t).await == rows(&sched_clean, t).await, "scheduler after kills = a clean scheduler run: {t}");
    }
    let leases = Path::new(&sched).join("_schedule/crash-job/leases");
    let left: Vec<_> = if leases.exists() { files_under(&leases) } else { Vec::new() }
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("_probe"))
        .collect();
    assert!(left.is_empty(), "no lease left: {left:?}");
    assert_eq!(files_under(&Path::new(&sched).join("_schedule/crash-job/done")).len(), studies, "every folder marked done once");
    eprintln!("{points} kill points, {kills} of them killed a running process");
    assert!(kills * 4 >= points * 3, "at least three kills in four attempts: {kills} of {points}");
}
