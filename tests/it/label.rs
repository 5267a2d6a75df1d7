//! `cinestream label` with the Burn engine on phantom data: the Dice of a labelled validation
//! selection equals the one training printed; reruns write nothing; `--overwrite` swaps a
//! labeller's rows in one commit; a run killed mid-way and rerun leaves one row per frame; bad
//! input fails clearly and commits nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use rand::{Rng, SeedableRng};

use crate::common::*;
use crate::train::{dice_of, phantom_data, pipeline};
use cinestream::model::metrics::dice;

/// Trains the tiny model of the train tests briefly; returns its `model` folder and the Dice
/// it printed.
fn tiny_model(dir: &Path, data: &str) -> (String, (f64, f64)) {
    let p = pipeline(dir, "tiny", 96, 2, 64, 0);
    let (ok, out, err) = cli(&["-q", "train", &p, "--data", data]);
    assert!(ok, "{err}");
    (format!("{data}/models/tiny/model"), dice_of(&out))
}

/// Mean per-image Dice (LV, MY) of `labeller` against the phantom's masks, and the frames compared.
async fn dice_against_phantom(data: &str, labeller: &str) -> (f64, f64, usize) {
    let rows = sql(
        data,
        &format!(
            "SELECT a.mask AS a, b.mask AS b FROM labels a JOIN labels b \
             ON a.study_id = b.study_id AND a.slice_index = b.slice_index AND a.frame_index = b.frame_index \
             WHERE a.labeller = '{labeller}' AND b.labeller = 'phantom'"
        ),
    )
    .await;
    let (mut lv, mut my, mut n) = (0.0, 0.0, 0);
    for b in &rows {
        let (a, t) = (b.column_by_name("a").unwrap().as_binary::<i32>(), b.column_by_name("b").unwrap().as_binary::<i32>());
        for i in 0..b.num_rows() {
            lv += dice(a.value(i), t.value(i), 1u8);
            my += dice(a.value(i), t.value(i), 2u8);
            n += 1;
        }
    }
    (lv / n.max(1) as f64, my / n.max(1) as f64, n)
}

fn label(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["label"];
    all.extend_from_slice(args);
    cli(&all)
}

async fn count(data: &str, q: &str) -> i64 {
    i64s(&sql(data, q).await, "n")[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelling_reproduces_trainings_dice_and_runs_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = phantom_data(dir.path(), 5).await;
    let (model, (train_lv, train_my)) = tiny_model(dir.path(), &data);
    let (ok, out, err) = label(&["--data", &data, "--model", &model, "--labeller", "tiny", "--selection", "tiny_valid"]);
    assert!(ok, "{err}");
    assert!(out.contains("label summary") && out.contains("EDV mL"), "{out}");
    let valid_frames = count(&data, "SELECT count(*) AS n FROM frames WHERE split = 'validate'").await;
    let (lv, my, n) = dice_against_phantom(&data, "tiny").await;
    assert_eq!(n as i64, valid_frames, "every frame of the selection labelled once");
    assert!(
        (lv - train_lv).abs() < 1e-4 && (my - train_my).abs() < 1e-4,
        "labelling's Dice LV {lv:.6} MY {my:.6} against training's {train_lv} {train_my}"
    );
    let qc = sql(&data, "SELECT count(*) AS n, count(DISTINCT study_id) AS s FROM label_qc WHERE labeller = 'tiny'").await;
    assert_eq!((i64s(&qc, "n")[0], i64s(&qc, "s")[0]), (1, 1), "one QC row for the validation study");
    // The counts in `labels` are the masks' own.
    let wrong =
        count(&data, "SELECT count(*) AS n FROM labels WHERE labeller = 'tiny' AND lv_pixels + my_pixels + rv_pixels > height * width")
            .await;
    assert_eq!(wrong, 0);

    // A rerun labels nothing and commits nothing.
    let versions = |d: &str| {
        let (ok, log, err) = cli(&["log", "--data", d, "labels"]);
        assert!(ok, "{err}");
        log.lines().count()
    };
    let before = versions(&data);
    let (ok, out, err) = label(&["--data", &data, "--model", &model, "--labeller", "tiny", "--selection", "tiny_valid"]);
    assert!(ok && out.contains("1 already labelled"), "{out}{err}");
    assert_eq!(versions(&data), before, "nothing committed");
    assert_eq!(count(&data, "SELECT count(*) AS n FROM labels WHERE labeller = 'tiny'").await, valid_frames);

    // --overwrite replaces the labeller's rows in one commit: same rows, new version.
    let (ok, out, err) = label(&["--data", &data, "--model", &model, "--labeller", "tiny", "--where", "split = 'validate'", "--overwrite"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("replaced              {valid_frames} earlier rows")), "{out}");
    assert_eq!(count(&data, "SELECT count(*) AS n FROM labels WHERE labeller = 'tiny'").await, valid_frames);
    assert_eq!(count(&data, "SELECT count(*) AS n FROM label_qc WHERE labeller = 'tiny'").await, 1);
    assert_eq!(dice_against_phantom(&data, "tiny").await.0, lv, "the same model gives the same masks");
    assert_eq!(versions(&data), before + 1, "one commit of labels");
    // Other labellers' rows are untouched.
    assert_eq!(
        count(&data, "SELECT count(*) AS n FROM labels WHERE labeller = 'phantom'").await,
        count(&data, "SELECT count(*) AS n FROM frames").await
    );
}

/// A labelling run SIGKILLed at seeded points and rerun ends with exactly one committed row per
/// frame, and cinestream's readers never see part of a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_labelling_run_reruns_to_one_row_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    // 4 studies: the fewest that leave a validation study to train the tiny model with.
    let studies = 4;
    let data = phantom_data(dir.path(), studies).await;
    let (model, _) = tiny_model(dir.path(), &data);
    let frames = count(&data, "SELECT count(*) AS n FROM frames").await;
    let args = |labeller: &str| {
        vec!["label".to_string(), "--data".into(), data.clone(), "--model".into(), model.clone(), "--labeller".into(), labeller.into()]
    };
    let started = Instant::now();
    let (ok, _, err) = cli(&args("clean").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let clean = started.elapsed();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for point in 0..sized(2, 4) {
        let labeller = format!("killed{point}");
        let at = Duration::from_secs_f64(rng.random_range(0.1..1.0) * clean.as_secs_f64());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
            .args(args(&labeller))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        child.kill().unwrap_or(());
        child.wait().unwrap();
        let seen = count(&data, &format!("SELECT count(*) AS n FROM labels WHERE labeller = '{labeller}'")).await;
        let qc = count(&data, &format!("SELECT count(*) AS n FROM label_qc WHERE labeller = '{labeller}'")).await;
        println!(
            "kill point {point}: SIGKILL after {:.2} s of a {:.2} s run: {seen} label rows, {qc} QC rows visible",
            at.as_secs_f64(),
            clean.as_secs_f64()
        );
        assert!(
            (seen, qc) == (0, 0) || (seen, qc) == (frames, studies as i64),
            "kill point {point}: a partial run is visible: {seen} rows, {qc} QC rows"
        );
        let (ok, _, err) = cli(&args(&labeller).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "kill point {point}: the rerun failed: {err}");
        let rows = sql(&data, &format!("SELECT count(*) AS n, count(DISTINCT concat(study_id, '/', slice_index, '/', frame_index)) AS d FROM labels WHERE labeller = '{labeller}'")).await;
        assert_eq!((i64s(&rows, "n")[0], i64s(&rows, "d")[0]), (frames, frames), "kill point {point}: one row per frame");
        let same = count(&data, &format!("SELECT count(*) AS n FROM labels a JOIN labels b ON a.study_id = b.study_id AND a.slice_index = b.slice_index AND a.frame_index = b.frame_index WHERE a.labeller = 'clean' AND b.labeller = '{labeller}' AND a.mask = b.mask")).await;
        assert_eq!(same, frames, "kill point {point}: the rerun's masks are the clean run's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_labelling_input_fails_clearly_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = phantom_data(dir.path(), 5).await;
    let log_lines = || cli(&["log", "--data", &data]).1.lines().count();
    let before = log_lines();
    let missing = dir.path().join("no-model").display().to_string();
    let (ok, _, err) = label(&["--data", &data, "--model", &missing, "--labeller", "x"]);
    assert!(!ok && err.contains("model.json") && err.contains("no-model"), "{err}");
    // A real model for the rest.
    let (model, _) = tiny_model(dir.path(), &data);
    let (ok, _, err) = label(&["--data", &data, "--model", &model, "--labeller", "x", "--where", "split = 'nowhere'"]);
    assert!(!ok && err.contains("no frame matches") && err.contains("split = 'nowhere'"), "{err}");
    let (ok, _, err) = label(&["--data", &data, "--model", &model, "--labeller", "x", "--where", "no_such_column = 1"]);
    assert!(!ok && err.contains("no_such_column"), "{err}");
    let (ok, _, err) = label(&["--data", &data, "--model", &model, "--labeller", "bad name"]);
    assert!(!ok && err.contains("labeller"), "{err}");
    let (ok, _, err) = label(&["--data", &format!("{}/absent", dir.path().display()), "--model", &model, "--labeller", "x"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    // An S3 endpoint nobody listens on: the client retries, then the run stops with the
    // "may pass" exit status a scheduler retries, and says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
        .args(["label", "--data", "s3://cinestream-nowhere/data", "--model", &model, "--labeller", "x"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-never-printed")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "unreachable store: {err}");
    assert!(err.contains("cinestream-nowhere") && err.contains("run the same command again"), "{err}");
    assert!(!err.contains("test-secret-never-printed"), "a credential was printed: {err}");
    // A model whose weights were changed is refused by its card's checksum.
    let weights = format!("{model}/model.bin");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let (ok, _, err) = label(&["--data", &data, "--model", &model, "--labeller", "x"]);
    assert!(!ok && err.contains("SHA-256"), "{err}");
    let labels: BTreeSet<String> =
        strs(&sql(&data, "SELECT DISTINCT labeller FROM labels").await, "labeller").into_iter().flatten().collect();
    assert_eq!(labels, BTreeSet::from(["phantom".to_string()]), "nothing was committed");
    assert_eq!(log_lines(), before, "no table commit");
}
