//! The transfer-learning study's summary and report: the authors' published 7T log (all 27
//! runs) through `authors_study_log` and `study_summary`, checked against an independent reading
//! of their files, and the Fig. 6 report drawn from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::{cli, png_pixels, reference};

/// The authors' log read by hand: model → (epoch, Dice LV, Dice MY) by epoch.
fn authors_log(path: &std::path::Path) -> BTreeMap<String, Vec<(i64, f64, f64)>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (epoch, lv, my, model) = (col("epoch"), col("diceLV"), col("diceMY"), col("model"));
    let mut out: BTreeMap<String, Vec<(i64, f64, f64)>> = BTreeMap::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let v: Vec<&str> = l.split(',').collect();
        out.entry(v[model].to_string()).or_default().push((v[epoch].parse().unwrap(), v[lv].parse().unwrap(), v[my].parse().unwrap()));
    }
    for runs in out.values_mut() {
        runs.sort_by_key(|r| r.0);
    }
    out
}

/// Subset sizes from the membership file: `full` and each TRUE/FALSE column.
fn subset_sizes(path: &std::path::Path) -> HashMap<String, i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split('\t').map(String::from).collect();
    let mut sizes: HashMap<String, i64> = HashMap::new();
    for l in lines.filter(|l| !l.is_empty()) {
        *sizes.entry("full".into()).or_default() += 1;
        for (h, v) in header.iter().zip(l.split('\t')) {
            if v == "TRUE" {
                *sizes.entry(h.clone()).or_default() += 1;
            }
        }
    }
    sizes
}

fn authors_args(dir: &std::path::Path) -> Vec<String> {
    vec![
        "--table".into(),
        format!("authors_log={}", dir.join("train_log_combined.csv").display()),
        "--table".into(),
        format!("authors_subsets={}", dir.join("image_subsets.tsv").display()),
        "--view".into(),
        "study_log=SELECT * FROM authors_study_log".into(),
    ]
}

fn run_cli(args: &[String]) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = cli(&refs);
    assert!(ok, "{args:?}: {err}");
    out
}

#[test]
fn the_authors_log_goes_through_the_study_summary_and_fig6() {
    let Some(dir) = reference("the_authors_log_goes_through_the_study_summary_and_fig6", "cmr-seg-tl/7T", "train_log_combined.csv") else {
        return;
    };
    let log = authors_log(&dir.join("train_log_combined.csv"));
    let sizes = subset_sizes(&dir.join("image_subsets.tsv"));
    assert_eq!(log.len(), 27);
    let n_full = sizes["full"];

    let mut args: Vec<String> = ["sql", "--format", "csv", "study_summary"].map(String::from).to_vec();
    args.extend(authors_args(&dir));
    let out = run_cli(&args);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<HashMap<&str, &str>> = lines.map(|l| header.iter().copied().zip(l.split(',')).collect()).collect();
    assert_eq!(rows.len(), 27, "{out}");
    let num = |r: &HashMap<&str, &str>, c: &str| -> f64 { r[c].parse().unwrap_or_else(|_| panic!("{c} = {:?}", r[c])) };
    let mut first_full: HashMap<String, (f64, f64)> = HashMap::new();
    let mut peak_full: HashMap<String, (f64, f64)> = HashMap::new();
    for r in &rows {
        let run = r["run"];
        let points = &log[run];
        let n = num(r, "subset_images") as i64;
        assert_eq!(n, sizes[r["subset"]], "{run}: the subset's size");
        // Every run's logged epochs follow the rule: two stages of round(10 · N_full / N).
        let per_stage = (10.0 * n_full as f64 / n as f64).round() as i64;
        assert_eq!(num(r, "epochs") as i64, 2 * per_stage, "{run}");
        assert_eq!(num(r, "points") as usize, points.len(), "{run}");
        assert_eq!(points.len() as i64, 2 * per_stage, "{run}: the log itself");
        let (first, last) = (points[0], points[points.len() - 1]);
        let peak = |k: usize| {
            points.iter().map(|p| if k == 0 { (p.1, p.0) } else { (p.2, p.0) }).fold((f64::MIN, 0), |b, v| if v.0 > b.0 { v } else { b })
        };
        let close = |c: &str, want: f64| assert!((num(r, c) - want).abs() < 1e-9, "{run}: {c} = {} but the log says {want}", r[c]);
        close("first_dice_lv", first.1);
        close("first_dice_my", first.2);
        close("peak_dice_lv", peak(0).0);
        close("peak_dice_my", peak(1).0);
        close("final_dice_lv", last.1);
        close("final_dice_my", last.2);
        let per_epoch = 8 * (n / 8);
        assert_eq!(num(r, "peak_images_lv") as i64, (peak(0).1 + 1) * per_epoch, "{run}");
        assert_eq!(num(r, "first_images") as i64, per_epoch, "{run}");
        assert_eq!(num(r, "final_images") as i64, 2 * per_stage * per_epoch, "{run}");
        // The smoothed peak lies within the curve's range (a local quadratic may overshoot the
        // raw peak a little at a plateau's end).
        for (s, raw) in [("smooth_peak_dice_lv", peak(0).0), ("smooth_peak_dice_my", peak(1).0)] {
            let v = num(r, s);
            let lowest = points.iter().map(|p| if s.ends_with("lv") { p.1 } else { p.2 }).fold(f64::MAX, f64::min);
            assert!(v <= raw + 0.01 && v >= lowest - 0.02, "{run}: {s} = {v}, raw peak {raw}, lowest {lowest}");
        }
        if r["subset"] == "full" {
            first_full.insert(r["start"].into(), (num(r, "first_dice_lv"), num(r, "first_dice_my")));
            peak_full.insert(r["start"].into(), (num(r, "peak_dice_lv"), num(r, "peak_dice_my")));
        }
    }
    // The facts the reference README pins down, to three decimals.
    let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let three = |m: &HashMap<String, (f64, f64)>, s: &str| (r3(m[s].0), r3(m[s].1));
    assert_eq!(three(&first_full, "R"), (0.574, 0.248));
    assert_eq!(three(&first_full, "TL"), (0.772, 0.513));
    assert_eq!(three(&first_full, "TL2"), (0.900, 0.775));
    assert_eq!(three(&peak_full, "R"), (0.894, 0.770));
    assert_eq!(three(&peak_full, "TL"), (0.909, 0.794));
    assert_eq!(three(&peak_full, "TL2"), (0.920, 0.813));

    // The same log makes the report: both figures, every run in the tables.
    let out_dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["--json", "study", "--out", out_dir.path().to_str().unwrap()].map(String::from).to_vec();
    args.extend(authors_args(&dir));
    let printed: serde_json::Value = serde_json::from_str(run_cli(&args).trim()).unwrap();
    assert_eq!(printed["runs"].as_array().unwrap().len(), 27);
    let (w, h, rgb, _) = png_pixels(&out_dir.path().join("fig6.png"));
    assert!(w > 1000 && h >= 600, "fig6 is {w}×{h}");
    for (start, colour) in [("R", [80, 80, 80]), ("TL", [40, 100, 210]), ("TL2", [210, 40, 40])] {
        let n = rgb.chunks_exact(3).filter(|p| *p == colour).count();
        assert!(n > 2000, "fig6 draws {start}'s curves ({n} px of its colour)");
    }
    let (_, _, rgb, _) = png_pixels(&out_dir.path().join("peaks.png"));
    assert!(rgb.chunks_exact(3).filter(|p| *p == [210, 40, 40]).count() > 200, "peaks.png marks TL2's peaks");
    let html = std::fs::read_to_string(out_dir.path().join("report.html")).unwrap();
    for run in log.keys() {
        let (start, subset) = match run.split_once('_') {
            Some((_, s)) => (run.as_str(), s),
            None => (run.as_str(), "full"),
        };
        assert!(html.contains(&format!("<td>{subset}</td>")), "report.html lists {start}");
    }
    assert_eq!(html.matches("data:image/png;base64,").count(), 2);
    let md = std::fs::read_to_string(out_dir.path().join("summary.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| authors_7T |")).count(), 27, "{md}");
}

#[test]
fn a_study_report_without_a_log_says_what_to_give() {
    let out = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli(&["study", "--out", out.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("--data") && err.contains("study_log"), "{err}");
    // A log with no rows of the study asked for.
    let log = out.path().join("log.csv");
    std::fs::write(&log, "study,run,start,subset,subset_images,stage,epoch,global_epoch,steps,images_seen,lr_max,frozen,train_loss,valid_loss,dice_lv,dice_my,seconds\n\
        a,R_full,R,full,100,0,0,0,12,96,0.0001,false,0.5,0.5,0.6,0.4,10\n").unwrap();
    let table = format!("study_log={}", log.display());
    let (ok, _, err) = cli(&["study", "--out", out.path().to_str().unwrap(), "--table", &table, "--study", "b"]);
    assert!(!ok);
    assert!(err.contains("no runs of study `b`"), "{err}");
    // One run, one point: a report all the same.
    let (ok, _, err) = cli(&["study", "--out", out.path().to_str().unwrap(), "--table", &table]);
    assert!(ok, "{err}");
    assert!(std::fs::read_to_string(out.path().join("summary.md")).unwrap().contains("| a | R | full | 100 | 1 |"));
}

/// A pipeline with a tiny base model (`[train]`, the TL2 start) and a tiny study: starts R and
/// TL2 × `subsets` (e.g. `"v1", "esed"`), 32² images, every run capped at 32 images (one
/// validation point).
fn tiny_study(dir: &std::path::Path, name: &str, data: &str, subsets: &str) -> String {
    let text = format!(
        r#"[train]
name = "base"
train = {{ name = "base_train", query = "subset_images", params = {{ images = "48", seed = "1", pool_split = "train" }} }}
valid = {{ name = "base_valid", query = "subset_pool", params = {{ pool_split = "validate" }} }}
batch_size = 8
image_size = 32
max_images = 32
stages = [ {{ epochs = 1, lr_max = 1e-2 }} ]

[study]
name = "{name}"
train = "split = 'train'"
valid = "split = 'validate'"
test = "split = 'test'"
labeller = "phantom"
subsets = [{subsets}]

[[study.start]]
name = "R"
init = "random"

[[study.start]]
name = "TL2"
init = {{ checkpoint = "{data}/models/base/model" }}

[study.recipe]
epochs = 1
batch_size = 8
image_size = 32
augment = "s1"
validate_every = 0.05
max_images = 32

[model]
encoder = "resnet34"
width = 8
blocks = [1, 1, 1, 1]
"#
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The study's bookkeeping on phantom data: the runs it plans and commits, the epoch rule, the
/// subsets, each model's card, the test Dice against `evaluate`'s, and a rerun that trains
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_study_keeps_its_books() {
    use crate::common::{f64s, i64s, sql, strs};
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::phantom_data(dir.path(), 5).await;
    let p = tiny_study(dir.path(), "tiny", &data, r#""v1", "esed""#);
    let (ok, _, err) = cli(&["-q", "train", &p, "--data", &data]);
    assert!(ok, "{err}");
    let report: serde_json::Value =
        serde_json::from_str(run_cli(&["--json".into(), "study".into(), p.clone(), "--data".into(), data.clone()]).trim()).unwrap();
    let trained: Vec<&str> = report["trained"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(trained, ["R_v1", "R_esed", "TL2_base", "TL2_v1", "TL2_esed"], "{report}");

    let runs = sql(
        &data,
        "SELECT run, subset, subset_images, epochs_per_stage, test_dice_lv, test_dice_my, model_url FROM study_runs ORDER BY run",
    )
    .await;
    let names: Vec<String> = strs(&runs, "run").into_iter().flatten().collect();
    assert_eq!(names, ["R_esed", "R_v1", "TL2_base", "TL2_esed", "TL2_v1"]);
    // study_runs' curve figures (computed as the runs commit) are study_summary's (SQL over
    // study_log).
    let agree = sql(
        &data,
        "SELECT COUNT(*) AS n, SUM(CASE WHEN (r.first_dice_lv IS NOT DISTINCT FROM s.first_dice_lv) \
           AND (r.peak_dice_my IS NOT DISTINCT FROM s.peak_dice_my) AND (r.peak_images_lv IS NOT DISTINCT FROM s.peak_images_lv) \
           AND (r.smooth_peak_dice_lv IS NOT DISTINCT FROM s.smooth_peak_dice_lv) AND (r.final_dice_my IS NOT DISTINCT FROM s.final_dice_my) \
           THEN 1 ELSE 0 END) AS same FROM study_runs r JOIN study_summary s ON s.study = r.study AND s.run = r.run",
    )
    .await;
    assert_eq!((i64s(&agree, "n")[0], i64s(&agree, "same")[0]), (4, 4), "study_runs = study_summary for every trained run");
    // The epoch rule, from the subsets as committed.
    let full = i64s(&sql(&data, "SELECT COUNT(*) AS n FROM labels WHERE labeller = 'phantom' AND split = 'train'").await, "n")[0];
    let sizes = sql(&data, "SELECT subset, COUNT(*) AS n FROM study_subsets WHERE study = 'tiny' GROUP BY subset ORDER BY subset").await;
    let size: HashMap<String, i64> = strs(&sizes, "subset").into_iter().flatten().zip(i64s(&sizes, "n")).collect();
    for (i, subset) in strs(&runs, "subset").into_iter().flatten().enumerate() {
        if subset == "base" {
            continue;
        }
        assert_eq!(i64s(&runs, "subset_images")[i], size[&subset], "{subset}");
        assert_eq!(i64s(&runs, "epochs_per_stage")[i], (full as f64 / size[&subset] as f64).round() as i64, "{subset}");
    }
    // v1 is one volunteer's every image; esed two frames of each training study.
    let v1 = sql(&data, "SELECT COUNT(DISTINCT volunteer) AS v, COUNT(*) AS n FROM study_subsets WHERE subset = 'v1'").await;
    assert_eq!(i64s(&v1, "v")[0], 1);
    let esed =
        sql(&data, "SELECT study_id, COUNT(DISTINCT frame_index) AS f FROM study_subsets WHERE subset = 'esed' GROUP BY study_id").await;
    assert_eq!(i64s(&esed, "f").len(), 3);
    assert!(i64s(&esed, "f").iter().all(|f| *f == 2), "{:?}", i64s(&esed, "f"));

    // Each model's card names its subset's selection and its start.
    let urls: Vec<String> = strs(&runs, "model_url").into_iter().flatten().collect();
    let tl2_v1 = &urls[names.iter().position(|n| n == "TL2_v1").unwrap()];
    let card_path = tl2_v1.trim_start_matches("file://").to_string() + "/model.json";
    let card = cinestream::model::card::ModelCard::parse(&std::fs::read(&card_path).unwrap(), "model.json").unwrap();
    assert_eq!(card.lineage.selections[0].name, "study-tiny-v1");
    assert_eq!(card.training["init"]["checkpoint"].as_str().unwrap(), format!("{data}/models/base/model"));
    assert_eq!(card.training["stages"][0]["frozen"], true);

    // The test Dice in study_runs is evaluate's for that model.
    let eval_dir = dir.path().join("eval");
    let ev: serde_json::Value = serde_json::from_str(
        run_cli(
            &[
                "--json",
                "evaluate",
                "--data",
                &data,
                "--labeller",
                "study-tiny-TL2_v1",
                "--reference",
                "phantom",
                "--where",
                "split = 'test'",
                "--out",
                eval_dir.to_str().unwrap(),
            ]
            .map(String::from),
        )
        .trim(),
    )
    .unwrap();
    let i = names.iter().position(|n| n == "TL2_v1").unwrap();
    assert!((ev["dice"]["mean"][0].as_f64().unwrap() - f64s(&runs, "test_dice_lv")[i].unwrap()).abs() < 1e-12);
    assert!((ev["dice"]["mean"][1].as_f64().unwrap() - f64s(&runs, "test_dice_my")[i].unwrap()).abs() < 1e-12);

    // A rerun trains nothing and commits nothing.
    let again: serde_json::Value =
        serde_json::from_str(run_cli(&["--json".into(), "study".into(), p.clone(), "--data".into(), data.clone()]).trim()).unwrap();
    assert_eq!(again["trained"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_committed"].as_array().unwrap().len(), 5);
    assert_eq!(i64s(&sql(&data, "SELECT COUNT(*) AS n FROM study_runs").await, "n")[0], 5);
    assert!(std::path::Path::new(&data).join("studies/tiny/report/fig6.png").exists());

    // Bad input fails before any training: a validation set without labelled images, and a
    // membership file naming an image the data does not hold.
    let text = std::fs::read_to_string(&p).unwrap().replace("name = \"tiny\"", "name = \"bad\"");
    let no_valid = dir.path().join("no-valid.toml");
    std::fs::write(&no_valid, text.replace("valid = \"split = 'validate'\"", "valid = \"split = 'nowhere'\"")).unwrap();
    let (ok, _, err) = cli(&["study", no_valid.to_str().unwrap(), "--data", &data]);
    assert!(!ok && err.contains("the validation set (`split = 'nowhere'`) has no images labelled by `phantom`"), "{err}");
    let membership = dir.path().join("members.tsv");
    std::fs::write(&membership, "file\tId\tframe\tslice\tv1\tesed\n99_x\t99\t0\t0\tTRUE\tTRUE\n").unwrap();
    let with_file = dir.path().join("membership.toml");
    let line = format!("[study]\nmembership = \"{}\"", membership.display());
    std::fs::write(&with_file, text.replacen("[study]", &line, 1)).unwrap();
    let (ok, _, err) = cli(&["study", with_file.to_str().unwrap(), "--data", &data]);
    assert!(!ok && err.contains("99 slice 0 frame 0"), "{err}");
    assert!(!std::path::Path::new(&data).join("studies/bad").exists(), "nothing trained or written for the bad studies");
    assert_eq!(i64s(&sql(&data, "SELECT COUNT(*) AS n FROM study_runs WHERE study = 'bad'").await, "n")[0], 0);
}

/// A study's `study_runs` rows without what differs between two equal runs (the study's name,
/// wall time, where the model went), one string per run.
async fn run_rows(data: &str, study: &str) -> Vec<String> {
    let cols = "run, start, subset, subset_images, epochs_per_stage, images_seen, first_dice_lv, peak_dice_lv, peak_images_lv, \
        smooth_peak_dice_lv, final_dice_lv, first_dice_my, peak_dice_my, smooth_peak_dice_my, final_dice_my, test_dice_lv, \
        test_dice_lv_nonempty, test_dice_my, test_dice_my_nonempty, test_studies, test_ef_error_mean, test_edv_error_mean_ml";
    let q = format!("SELECT {cols} FROM study_runs WHERE study = '{study}' ORDER BY run");
    let batches = crate::common::sql(data, &q).await;
    let mut rows = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b.columns().iter().map(|c| arrow::util::display::array_value_to_string(c, r).unwrap()).collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

/// The runs of `study` committed so far, read from the `study_runs` log as it lands.
fn committed_runs(data: &str, study: &str) -> usize {
    let log = std::path::Path::new(data).join("study_runs/_delta_log");
    let Ok(entries) = std::fs::read_dir(log) else { return 0 };
    let mark = format!("\"study:{study}:run:");
    entries.flatten().filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&mark))).count()
}

fn study_json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = cli(args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap()
}

fn names(v: &serde_json::Value, key: &str) -> BTreeSet<String> {
    v[key].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// The killed and sharded studies' one subset: ED/ES frames from several studies (a training
/// cache whose order once depended on thread timing).
const ESED: &str = r#""esed""#;

/// Beyond one worker: a study SIGKILLed after its first run commits, then rerun, trains only
/// the missing runs; two workers (`--shard 0/2`, `--shard 1/2`) started together on one prefix
/// train each run once. Both end with a single uninterrupted worker's `study_runs` rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_sharded_studies_end_as_one_worker_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::phantom_data(dir.path(), 5).await;
    let (ok, _, err) = cli(&["-q", "train", &tiny_study(dir.path(), "one", &data, ESED), "--data", &data]);
    assert!(ok, "{err}");
    let one = study_json(&["--json", "study", &tiny_study(dir.path(), "one", &data, ESED), "--data", &data]);
    let all = names(&one, "trained");
    assert_eq!(all.len(), 3, "R_esed, TL2_base, TL2_esed: {one}");
    let want = run_rows(&data, "one").await;
    assert_eq!(want.len(), 3);

    // Killed once its first run is committed.
    let killed = tiny_study(dir.path(), "killed", &data, ESED);
    let mut child = crate::common::spawn_quiet(&["-q", "study", &killed, "--data", &data]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(50);
    while committed_runs(&data, "killed") == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the study ended before it could be killed");
        assert!(std::time::Instant::now() < deadline, "no run committed in 50 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // What readers see: the runs whose last commit (`sources`) landed. A kill right after a
    // run's `study_runs` commit leaves that run unpublished, and the rerun does it again.
    let published: BTreeSet<String> =
        crate::common::strs(&crate::common::sql(&data, "SELECT run FROM study_runs WHERE study = 'killed'").await, "run")
            .into_iter()
            .flatten()
            .collect();
    assert!(published.len() < 3, "the kill came before the last run");
    let rerun = study_json(&["--json", "study", &killed, "--data", &data]);
    let (trained, skipped) = (names(&rerun, "trained"), names(&rerun, "already_committed"));
    assert_eq!(skipped, published, "{rerun}");
    assert!(trained.is_disjoint(&skipped) && trained.union(&skipped).cloned().collect::<BTreeSet<_>>() == all, "{rerun}");
    assert_eq!(run_rows(&data, "killed").await, want, "a killed and rerun study = an uninterrupted one");

    // Two workers started together.
    let sharded = tiny_study(dir.path(), "sharded", &data, ESED);
    let worker = |i: usize| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
            .args(["--json", "study", &sharded, "--data", &data, "--shard", &format!("{i}/2")])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (w0, w1) = (worker(0), worker(1));
    let reports: Vec<serde_json::Value> = [w0, w1]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    let (a, b) = (names(&reports[0], "trained"), names(&reports[1], "trained"));
    eprintln!("worker 0/2 trained {a:?}, worker 1/2 {b:?}");
    // The three run names hash to both workers (one and two runs).
    assert!(!a.is_empty() && !b.is_empty(), "both workers had work: {a:?} and {b:?}");
    assert!(a.is_disjoint(&b), "a run trained twice: {a:?} and {b:?}");
    assert_eq!(a.union(&b).cloned().collect::<BTreeSet<_>>(), all, "every run trained once");
    assert_eq!(names(&reports[0], "other_workers"), b);
    assert_eq!(run_rows(&data, "sharded").await, want, "two workers = one worker");
    let subsets =
        crate::common::i64s(&crate::common::sql(&data, "SELECT COUNT(*) AS n FROM study_subsets WHERE study = 'sharded'").await, "n")[0];
    let once = crate::common::i64s(&crate::common::sql(&data, "SELECT COUNT(*) AS n FROM study_subsets WHERE study = 'one'").await, "n")[0];
    assert_eq!(subsets, once, "the subsets committed once");
}
