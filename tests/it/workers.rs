//! `--shard i/N`: workers that each take a share of the studies, in any order, overlapping or
//! repeated, write exactly what one unsplit run writes.

use std::sync::Arc;

use cinestream::ingest;
use cinestream::progress::Quiet;
use cinestream::workers::WorkShare;

use crate::common::*;
use crate::train::pipeline;

fn share(text: &str) -> WorkShare {
    WorkShare::parse_with_env(text, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_split_ingest_and_labelling_by_study_and_repeats_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in").to_str().unwrap().to_string();
    synth(&input, 9, 5, "all").await;
    let (whole, split) = (dir.path().join("whole").to_str().unwrap().to_string(), dir.path().join("split").to_str().unwrap().to_string());
    let full = ingest_phantom(&input, &whole).await;

    // Three workers, worker 1 twice (a retried pod), the last one by JOB_COMPLETION_INDEX.
    let mut studies = 0;
    for (i, s) in ["1/3", "0/3", "1/3"].into_iter().enumerate() {
        let mut cfg = phantom_config(&input, &split);
        cfg.share = Some(share(s));
        let r = ingest::run(&cfg, Arc::new(Quiet)).await.unwrap();
        r.reconcile().unwrap();
        assert_eq!(r.image_files, full.image_files, "every worker lists everything");
        assert_eq!(
            r.files_other_workers + r.frames_from_files + r.files_quarantined + r.files_excluded + r.files_skipped,
            full.image_files
        );
        if i == 2 {
            assert_eq!(r.sources_new, 0, "a repeated worker finds its studies present: {r:?}");
            assert!(!r.sources_present.is_empty());
        } else {
            studies += r.sources_new;
        }
    }
    let mut args = phantom_ingest_args(&input, &split);
    args.extend(["--shard".into(), "/3".into()]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream")).args(&args).env("JOB_COMPLETION_INDEX", "2").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("not worker 2/3's share"), "{stdout}");
    let new_line = stdout.lines().find(|l| l.contains("source studies")).unwrap();
    studies += new_line.split(':').nth(1).unwrap().split_whitespace().next().unwrap().parse::<usize>().unwrap();
    assert_eq!(studies, full.sources_new, "each study ingested by exactly one worker");
    assert_eq!(all_rows(&split).await, all_rows(&whole).await, "the workers' tables equal one run's");

    // Labelling: two workers and a repeat label what one run labels.
    let model_dir = tempfile::tempdir().unwrap();
    let p = pipeline(model_dir.path(), "tiny", 16, 1, 64, 0);
    let (ok, _, err) = cli(&["-q", "train", &p, "--data", &whole]);
    assert!(ok, "{err}");
    let model = format!("{whole}/models/tiny/model");
    let (ok, _, err) = cli(&["-q", "label", "--data", &whole, "--model", &model, "--labeller", "tiny", "--where", "split = 'test'"]);
    assert!(ok, "{err}");
    for s in ["1/2", "1/2", "0/2"] {
        let (ok, out, err) =
            cli(&["label", "--data", &split, "--model", &model, "--labeller", "tiny", "--where", "split = 'test'", "--shard", s]);
        assert!(ok, "{err}");
        assert!(out.contains(&format!("worker {s}")), "{out}");
    }
    let labelled = |data: String| async move {
        table_rows(&data, "labels", RUN_COLUMNS).await.into_iter().filter(|l| l.contains("|tiny|")).collect::<Vec<_>>()
    };
    let (a, b) = (labelled(whole.clone()).await, labelled(split.clone()).await);
    assert!(!a.is_empty());
    assert_eq!(a, b, "the workers' labels equal one run's, none twice");
    let qc = |data: String| async move { i64s(&sql(&data, "SELECT count(*) AS n FROM label_qc WHERE labeller = 'tiny'").await, "n")[0] };
    assert_eq!(qc(whole.clone()).await, qc(split.clone()).await);
}
