//! The SQL layer: saved queries against the authors' published tables, hand-computed answers on
//! crafted tables, the phantom truth after ingest, selections on S3, push-down, and errors.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use cinestream::query::external::ExternalTable;
use cinestream::query::saved::Catalog;
use cinestream::query::selection::{self, QuerySource, SelectionError};
use cinestream::query::{Session, SessionOptions};

use crate::common::{cli, f64s, i64s, ingest_phantom, open, reference, rel, run_sql, s3_bucket, strs, synth, unique};

fn reference_kaggle(test: &str) -> Option<PathBuf> {
    reference(test, "cmr-seg-tl/kaggle", "confidence_by_patient.tsv")
}

/// The authors' volumes and the Kaggle truth CSVs through the saved views, via the CLI.
#[test]
fn reference_confidence_sets_select_175_520_763() {
    let Some(k) = reference_kaggle("reference_confidence_sets_select_175_520_763") else { return };
    let k = k.display().to_string();
    let authors = format!("authors={k}/confidence_by_patient.tsv");
    let volumes = format!("kaggle_volumes={k}/truth/train.csv,{k}/truth/validate.csv");
    let solution = format!("kaggle_solution={k}/truth/solution.csv");
    let view = r#"volumes=SELECT CAST("Id" AS VARCHAR) AS study_id, 'ukbb' AS labeller, "predicted_LVEDV" AS edv_ml, "predicted_LVESV" AS esv_ml FROM authors"#;
    let base = [
        "sql",
        "--format",
        "csv",
        "--table",
        &authors,
        "--table",
        &volumes,
        "--table",
        &solution,
        "--view",
        "truth=SELECT * FROM kaggle_truth",
        "--view",
        view,
    ];
    let run = |extra: &[&str]| -> Vec<Vec<String>> {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (ok, out, err) = cli(&args);
        assert!(ok, "{args:?}: {err}");
        out.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect()
    };
    let rows = run(&["SELECT split, count(*) AS n, count(*) FILTER (WHERE p5) AS p5, count(*) FILTER (WHERE p10) AS p10, \
                      count(*) FILTER (WHERE p15) AS p15 FROM confidence_sets GROUP BY split ORDER BY split"]);
    let by_split: HashMap<String, [i64; 4]> = rows.iter().map(|r| (r[0].clone(), [1, 2, 3, 4].map(|i| r[i].parse().unwrap()))).collect();
    let total = |i: usize| by_split.values().map(|v| v[i]).sum::<i64>();
    assert_eq!([total(0), total(1), total(2), total(3)], [1149, 175, 520, 763], "{by_split:?}");
    assert_eq!([by_split["train"][1], by_split["validate"][1], by_split["test"][1]], [75, 27, 73]);
    // The threshold parameter drives `in_set`.
    let rows = run(&["--param", "threshold=0.10", "SELECT count(*) FILTER (WHERE in_set) FROM confidence_sets"]);
    assert_eq!(rows[0][0], "520");
    // Our confidence equals the one the authors published, study by study.
    let rows = run(&["SELECT count(*), max(abs(c.confidence - a.confidence)) FROM confidence_sets c \
                      JOIN authors a ON CAST(a.\"Id\" AS VARCHAR) = c.study_id"]);
    assert_eq!(rows[0][0], "1149");
    assert!(rows[0][1].parse::<f64>().unwrap() < 1e-12, "{rows:?}");
}

/// Writes a CSV and returns its path.
fn csv(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Ties, empty frames, a single-slice and a single-frame study, two labellers: the saved views
/// against answers worked out by hand.
#[tokio::test]
async fn volumes_and_esed_agree_with_hand_computed_answers() {
    let dir = tempfile::tempdir().unwrap();
    // Study A (labeller m): 2 slices × 4 frames, pixel area 2 mm², spacing 10 mm → 0.02 mL/pixel.
    //   LV per frame 50, 150, 150, 50 → ED = frame 2 (tie → highest), ES = frame 0 (tie → lowest).
    // Study B: 1 slice, area 1.5625, spacing 8 → 0.0125 mL/pixel; LV 80, 0, 40 → ED 0, ES 1 (empty).
    // Study C: every frame empty → EDV 0, EF NULL; ED = 2 (all tie → highest), ES = 0.
    // Study D: 3 slices, one frame → ED = ES = 0, EF 0.
    // Study A (labeller x): 1 slice, LV 10, 5, 5 → ED 0, ES 1 (tie → lowest).
    let mut rows = vec!["study_id,labeller,slice_index,frame_index,lv_pixels,my_pixels,pixel_area_mm2,slice_spacing_mm".to_string()];
    let mut add = |s: &str, l: &str, slice: i32, frame: i32, lv: i64, my: i64, area: f64, sp: f64| {
        rows.push(format!("{s},{l},{slice},{frame},{lv},{my},{area},{sp}"))
    };
    for (f, (lv, my)) in [((30, 20), (10, 10)), ((100, 50), (5, 5)), ((50, 100), (20, 30)), ((25, 25), (0, 0))].iter().enumerate() {
        add("A", "m", 0, f as i32, lv.0, my.0, 2.0, 10.0);
        add("A", "m", 1, f as i32, lv.1, my.1, 2.0, 10.0);
    }
    for (f, (lv, my)) in [(80, 16), (0, 0), (40, 8)].iter().enumerate() {
        add("B", "m", 0, f as i32, *lv, *my, 1.5625, 8.0);
    }
    for f in 0..3 {
        for s in 0..2 {
            add("C", "m", s, f, 0, 0, 1.0, 10.0);
        }
    }
    for (s, lv) in [10, 20, 30].iter().enumerate() {
        add("D", "m", s as i32, 0, *lv, 0, 1.0, 10.0);
    }
    for (f, lv) in [10, 5, 5].iter().enumerate() {
        add("A", "x", 0, f as i32, *lv, 1, 2.0, 10.0);
    }
    let counts = csv(dir.path(), "counts.csv", &(rows.join("\n") + "\n"));
    let truth = csv(dir.path(), "truth.csv", "study_id,systole_ml,diastole_ml\nA,1.25,3.0\nB,0.1,1.0\nC,1,2\nD,0.3,0.6\n");
    let opts = SessionOptions {
        tables: vec![
            ExternalTable::parse(&format!("pixel_counts={counts}")).unwrap(),
            ExternalTable::parse(&format!("truth={truth}")).unwrap(),
        ],
        ..Default::default()
    };
    let session = Session::open(None, &opts).await.unwrap();
    let b = run_sql(&session, "SELECT * FROM volumes ORDER BY study_id, labeller").await;
    let key: Vec<String> =
        strs(&b, "study_id").into_iter().zip(strs(&b, "labeller")).map(|(s, l)| format!("{}/{}", s.unwrap(), l.unwrap())).collect();
    assert_eq!(key, ["A/m", "A/x", "B/m", "C/m", "D/m"]);
    assert_eq!(i64s(&b, "ed_frame"), [2, 0, 0, 2, 0]);
    assert_eq!(i64s(&b, "es_frame"), [0, 1, 1, 0, 0]);
    assert_eq!(i64s(&b, "frames"), [4, 3, 3, 3, 1]);
    assert_eq!(i64s(&b, "slices"), [2, 1, 1, 2, 3]);
    assert_eq!(f64s(&b, "edv_ml"), [Some(3.0), Some(10.0 * 0.02), Some(1.0), Some(0.0), Some(0.6)]);
    assert_eq!(f64s(&b, "esv_ml"), [Some(1.0), Some(0.1), Some(0.0), Some(0.0), Some(0.6)]);
    assert_eq!(f64s(&b, "ef_pct"), [Some(200.0 / 3.0), Some(50.0), Some(100.0), None, Some(0.0)]);
    // MY at ED × 1.05 g/mL: A frame 2 has 50 MY pixels (1.0 mL); B frame 0 has 16 (0.2 mL).
    assert_eq!(f64s(&b, "myo_mass_ed_g")[..3], [Some(1.05), Some(1.0 * 0.02 * 1.05), Some(0.2 * 1.05)]);
    let per_frame = b[0].column_by_name("lv_ml_per_frame").unwrap();
    let first = arrow::array::AsArray::as_list::<i32>(per_frame).value(0);
    assert_eq!(
        f64s(&[arrow::array::RecordBatch::try_from_iter([("v", first)]).unwrap()], "v"),
        [Some(1.0), Some(3.0), Some(3.0), Some(1.0)]
    );

    let e = run_sql(&session, "SELECT * FROM esed_frames ORDER BY study_id, labeller, phase").await;
    let got: Vec<String> = strs(&e, "study_id")
        .into_iter()
        .zip(strs(&e, "labeller"))
        .zip(strs(&e, "phase"))
        .zip(i64s(&e, "frame_index"))
        .map(|(((s, l), p), f)| format!("{}/{}/{}={f}", s.unwrap(), l.unwrap(), p.unwrap()))
        .collect();
    assert_eq!(
        got,
        ["A/m/ED=2", "A/m/ES=0", "A/x/ED=0", "A/x/ES=1", "B/m/ED=0", "B/m/ES=1", "C/m/ED=2", "C/m/ES=0", "D/m/ED=0", "D/m/ES=0"]
    );
    // Every tied frame, and which one `volumes` chose.
    let t = run_sql(&session, "SELECT * FROM esed_ties WHERE tied_frames > 1 ORDER BY study_id, labeller, phase, frame_index").await;
    let chosen = t.iter().flat_map(|b| {
        let c = arrow::array::AsArray::as_boolean(b.column_by_name("chosen").unwrap().as_ref()).clone();
        (0..c.len()).map(move |i| c.value(i))
    });
    let got: Vec<String> = strs(&t, "study_id")
        .into_iter()
        .zip(strs(&t, "labeller"))
        .zip(strs(&t, "phase"))
        .zip(i64s(&t, "frame_index"))
        .zip(chosen)
        .map(|((((s, l), p), f), c)| format!("{}/{}/{}={f}{}", s.unwrap(), l.unwrap(), p.unwrap(), if c { "*" } else { "" }))
        .collect();
    assert_eq!(
        got,
        [
            "A/m/ED=1",
            "A/m/ED=2*",
            "A/m/ES=0*",
            "A/m/ES=3",
            "A/x/ES=1*",
            "A/x/ES=2",
            "C/m/ED=0",
            "C/m/ED=1",
            "C/m/ED=2*",
            "C/m/ES=0*",
            "C/m/ES=1",
            "C/m/ES=2"
        ]
    );

    // The labeller parameter filters every view built on frame_volumes.
    let only_x = Session::open(None, &SessionOptions { params: vec!["labeller=x".into()], ..opts.clone() }).await.unwrap();
    let b = run_sql(&only_x, "SELECT study_id, labeller FROM volumes").await;
    assert_eq!(strs(&b, "labeller"), [Some("x".to_string())]);

    // Against truth: A's ESV is 20% low (confidence 0.2); B's ESV of 0 vs 0.1 is 100% off; C's EF
    // cannot be computed (error 100).
    let q = run_sql(&session, "SELECT study_id, confidence, ef_error_pct FROM label_quality WHERE labeller = 'm' ORDER BY study_id").await;
    assert_eq!(strs(&q, "study_id").len(), 4);
    let conf = f64s(&q, "confidence");
    assert!((conf[0].unwrap() - 0.2).abs() < 1e-12 && (conf[1].unwrap() - 1.0).abs() < 1e-12, "{conf:?}");
    let err = f64s(&q, "ef_error_pct");
    let want = [200.0 / 3.0 - 100.0 * 1.75 / 3.0, 10.0, 100.0, 50.0];
    for (g, w) in err.iter().zip(want) {
        assert!((g.unwrap() - w).abs() < 1e-9, "{err:?} vs {want:?}");
    }
    let s = run_sql(&session, "SELECT * FROM ef_error_stats WHERE labeller = 'm'").await;
    let mut sorted = want;
    sorted.sort_by(f64::total_cmp);
    let mean = want.iter().sum::<f64>() / 4.0;
    let sd = (want.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    let q1 = sorted[0] + 0.75 * (sorted[1] - sorted[0]);
    let q3 = sorted[2] + 0.25 * (sorted[3] - sorted[2]);
    let got = ["mean", "sd", "median", "q1", "q3", "iqr"].map(|c| f64s(&s, c)[0].unwrap());
    let want = [mean, sd, (sorted[1] + sorted[2]) / 2.0, q1, q3, q3 - q1];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-9, "ef_error_stats {got:?} vs {want:?}");
    }
    assert_eq!((i64s(&s, "studies")[0], i64s(&s, "not_computable")[0]), (4, 1));
}

/// Every file in pipelines/queries is built in, and every saved query runs on ingested phantom
/// data; `volumes` and `esed_frames` equal the phantom's truth; the Kaggle truth CSVs the phantom
/// wrote give the same truth as the studies table.
#[tokio::test]
async fn every_saved_query_runs_and_volumes_match_the_phantom() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let catalog = Catalog::builtin();
    assert_eq!(on_disk, catalog.names().map(String::from).collect::<BTreeSet<_>>(), "pipelines/queries and the built-in list differ");
    for q in catalog.iter() {
        let used: BTreeSet<&str> = q.sql.split("${").skip(1).filter_map(|s| s.split('}').next()).collect();
        let declared: BTreeSet<&str> = q.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(used, declared, "{}: every ${{param}} it uses is declared in its header", q.name);
    }

    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    let (raw, data) = (raw.to_str().unwrap(), data.to_str().unwrap());
    let report = synth(raw, 10, 3, "repeated_stack").await;
    ingest_phantom(raw, data).await;
    let mut opts = SessionOptions {
        tables: vec![
            ExternalTable::parse(&format!("kaggle_volumes={raw}/train.csv,{raw}/validate.csv")).unwrap(),
            ExternalTable::parse(&format!("kaggle_solution={raw}/solution.csv")).unwrap(),
        ],
        ..Default::default()
    };
    // The study's queries run over the authors' published 7T log (the phantom has no study).
    let authors = reference("every_saved_query_runs_and_volumes_match_the_phantom", "cmr-seg-tl/7T", "train_log_combined.csv");
    if let Some(a) = &authors {
        opts.tables.push(ExternalTable::parse(&format!("authors_log={}", a.join("train_log_combined.csv").display())).unwrap());
        opts.tables.push(ExternalTable::parse(&format!("authors_subsets={}", a.join("image_subsets.tsv").display())).unwrap());
        opts.views.push(("study_log".into(), "SELECT * FROM authors_study_log".into()));
    }
    let session = Session::open(Some(&open(data)), &opts).await.unwrap();
    // dataset_esed needs a NIfTI dataset's ED/ES (tests/it/nifti.rs runs it); the phantom is DICOM.
    let runs = |q: &&cinestream::query::saved::SavedQuery| {
        q.name != "dataset_esed" && (authors.is_some() || !["study_summary", "authors_study_log"].contains(&q.name.as_str()))
    };
    for q in catalog.iter().filter(runs) {
        let b = run_sql(&session, &format!("SELECT * FROM {}", q.name)).await;
        let rows: usize = b.iter().map(|b| b.num_rows()).sum();
        assert!(rows > 0, "saved query {} returned nothing on the phantom", q.name);
    }

    let v = run_sql(&session, "SELECT study_id, ed_frame, es_frame, edv_ml, esv_ml FROM volumes WHERE labeller = 'phantom'").await;
    let got: HashMap<String, (i64, i64, f64, f64)> = strs(&v, "study_id")
        .into_iter()
        .zip(i64s(&v, "ed_frame").into_iter().zip(i64s(&v, "es_frame")))
        .zip(f64s(&v, "edv_ml").into_iter().zip(f64s(&v, "esv_ml")))
        .map(|((id, (ed, es)), (edv, esv))| (id.unwrap(), (ed, es, edv.unwrap(), esv.unwrap())))
        .collect();
    let mut compared = 0;
    for t in &report.studies {
        let ids: Vec<String> = if t.defects.contains(&"repeated_stack") {
            vec![format!("{}_a", t.study_id), format!("{}_b", t.study_id)]
        } else {
            vec![t.study_id.clone()]
        };
        for id in ids {
            let (ed, es, edv, esv) = got[&id];
            assert_eq!((ed, es), (t.ed_frame as i64, t.es_frame as i64), "{id}: ED/ES frames");
            assert!(rel(edv, t.edv_ml) < 1e-9 && rel(esv, t.esv_ml) < 1e-9, "{id}: {edv}/{esv} vs truth {}/{}", t.edv_ml, t.esv_ml);
            compared += 1;
        }
    }
    assert_eq!(compared, got.len());
    let e = run_sql(
        &session,
        "SELECT count(*) AS n FROM esed_frames e JOIN volumes v USING (study_id, labeller) \
                               WHERE (e.phase = 'ED' AND e.frame_index = v.ed_frame) OR (e.phase = 'ES' AND e.frame_index = v.es_frame)",
    )
    .await;
    assert_eq!(i64s(&e, "n"), [2 * got.len() as i64]);

    let k = run_sql(
        &session,
        "SELECT count(*) AS n, max(abs(k.systole_ml - t.systole_ml) + abs(k.diastole_ml - t.diastole_ml)) AS d \
                               FROM kaggle_truth k JOIN truth t ON t.study_id = k.study_id",
    )
    .await;
    assert_eq!(i64s(&k, "n"), [report.studies.iter().filter(|t| !t.defects.contains(&"repeated_stack")).count() as i64]);
    assert_eq!(f64s(&k, "d"), [Some(0.0)]);

    // The same through the CLI: a selection, then the same name again.
    let esed = run_sql(&session, "SELECT count(*) AS n FROM subset_esed").await;
    let (ok, out, err) = cli(&["select", "--data", data, "--query", "subset_esed", "--name", "esed"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("selection `esed`: {} frames", i64s(&esed, "n")[0])), "{out}");
    let (ok, _, err) = cli(&["select", "--data", data, "--query", "subset_esed", "--name", "esed"]);
    assert!(!ok && err.contains("already exists") && err.contains("--replace"), "{err}");
    let (ok, _, err) = cli(&["select", "--data", data, "--query", "subset_esd", "--name", "x"]);
    assert!(!ok && err.contains("no saved query `subset_esd`"), "{err}");
}

/// A metadata query reads Parquet footers and the columns it needs, never pixel or mask bytes.
#[tokio::test]
async fn metadata_queries_never_read_pixel_or_mask_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    let (raw, data) = (raw.to_str().unwrap(), data.to_str().unwrap());
    synth(raw, 5, 5, "none").await;
    ingest_phantom(raw, data).await;
    let (mut total, mut heavy, mut masks) = (0u64, 0u64, 0u64);
    let parquet_files: Vec<PathBuf> = crate::common::files_under(&dir.path().join("data"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    {
        for f in parquet_files {
            total += std::fs::metadata(&f).unwrap().len();
            let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            let meta = parquet::file::reader::FileReader::metadata(&reader);
            for rg in meta.row_groups() {
                for c in rg.columns().iter().filter(|c| ["pixels", "mask"].contains(&c.column_path().string().as_str())) {
                    heavy += c.compressed_size() as u64;
                    if c.column_path().string() == "mask" {
                        masks += c.compressed_size() as u64;
                    }
                }
            }
        }
    }
    assert!(heavy > total / 2, "the fixture should be mostly pixel/mask bytes: {heavy} of {total}");
    let session = Session::open(Some(&open(data)), &SessionOptions::default()).await.unwrap();
    run_sql(&session, "SELECT * FROM volumes").await;
    run_sql(&session, "SELECT * FROM confidence_sets").await;
    run_sql(&session, "SELECT split, count(*) FROM frames GROUP BY split").await;
    let io = session.io();
    assert!(io.bytes_read > 0);
    assert!(io.bytes_read <= total - heavy, "read {} bytes; everything but pixels and masks is {}", io.bytes_read, total - heavy);
    // And reading the masks does show up: every mask byte.
    run_sql(&session, "SELECT sum(length(mask)) FROM labels").await;
    assert!(session.io().bytes_read >= io.bytes_read + masks, "{:?} vs {io:?} + {masks}", session.io());
}

/// Selections on S3: committed with lineage, prefix-stable subsets, create-only, checked input,
/// tamper-evident.
#[tokio::test]
async fn selections_on_s3_record_lineage_and_refuse_bad_results() {
    let Some(bucket) = s3_bucket("selections_on_s3_record_lineage_and_refuse_bad_results") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let raw = raw.to_str().unwrap();
    let data_url = format!("s3://{bucket}/{}", unique("selections"));
    synth(raw, 10, 9, "none").await;
    ingest_phantom(raw, &data_url).await;
    let data = open(&data_url);
    let session_with = |params: Vec<String>| {
        let data = open(&data_url);
        async move { Session::open(Some(&data), &SessionOptions { params, ..Default::default() }).await.unwrap() }
    };
    let named = |name: &str| QuerySource { label: name.into(), sql: format!("SELECT * FROM {name}") };

    // An external table straight from S3.
    use object_store::ObjectStoreExt;
    let csv_path = data.child("external/train.csv");
    data.store.put(&csv_path, std::fs::read(format!("{raw}/train.csv")).unwrap().into()).await.unwrap();
    let table = ExternalTable::parse(&format!("kaggle_volumes={}", data.object_url(&csv_path))).unwrap();
    let s = Session::open(Some(&data), &SessionOptions { tables: vec![table], ..Default::default() }).await.unwrap();
    let n = run_sql(&s, "SELECT count(*) AS n FROM kaggle_volumes").await;
    assert_eq!(i64s(&n, "n"), [6], "train.csv of 10 phantom studies has 6 rows");

    let s = session_with(vec!["splits=train,test".into(), "threshold=0.05".into()]).await;
    let want = run_sql(&s, "SELECT count(*) AS n FROM confidence_frames").await;
    let record = selection::create(&s, &data, "p5_train", &named("confidence_frames"), false).await.unwrap();
    assert_eq!(record.rows as i64, i64s(&want, "n")[0]);
    assert_eq!(record.tables, s.versions());
    assert!(record.tables.iter().any(|t| t.table == "frames" && t.version.is_some() && t.files > 0), "{:?}", record.tables);
    assert!(record.views.contains_key("volumes") && record.views.contains_key("label_quality"), "{:?}", record.views.keys());
    assert_eq!(record.params["splits"], "train,test");
    let (loaded, batches) = selection::load(&data, "p5_train").await.unwrap();
    assert_eq!(loaded, record);
    let splits: BTreeSet<String> = strs(&batches, "split").into_iter().flatten().collect();
    assert_eq!(splits, ["test", "train"].map(String::from).into());
    assert_eq!(&record.columns[..3], ["study_id", "slice_index", "frame_index"]);

    // Create-only, unless replaced.
    let again = selection::create(&s, &data, "p5_train", &named("confidence_frames"), false).await;
    assert!(matches!(again, Err(SelectionError::Exists { .. })), "{again:?}");
    selection::create(&s, &data, "p5_train", &named("confidence_frames"), true).await.unwrap();

    // Prefix-stable subsets: for one seed, 1 ⊂ 2 ⊂ 5 volunteers (of 6 in train) and 10 ⊂ 40 images.
    let mut frames_of = Vec::new();
    for (query, param, n) in [
        ("subset_volunteers", "volunteers", 1),
        ("subset_volunteers", "volunteers", 2),
        ("subset_volunteers", "volunteers", 5),
        ("subset_images", "images", 10),
        ("subset_images", "images", 40),
    ] {
        let s = session_with(vec![format!("{param}={n}"), "seed=4".into()]).await;
        let name = format!("{query}_{n}");
        let r = selection::create(&s, &data, &name, &named(query), false).await.unwrap();
        let (_, b) = selection::load(&data, &name).await.unwrap();
        let keys: BTreeSet<String> = strs(&b, "study_id")
            .into_iter()
            .zip(i64s(&b, "slice_index"))
            .zip(i64s(&b, "frame_index"))
            .map(|((s, k), f)| format!("{}/{k}/{f}", s.unwrap()))
            .collect();
        if query == "subset_images" {
            assert_eq!(r.rows, n as u64);
        } else {
            assert_eq!(r.studies, n as u64);
        }
        frames_of.push(keys);
    }
    assert!(frames_of[0].is_subset(&frames_of[1]) && frames_of[1].is_subset(&frames_of[2]), "volunteer subsets are not nested");
    assert!(frames_of[3].is_subset(&frames_of[4]), "image subsets are not nested");
    let s = session_with(vec![]).await;
    let esed = selection::create(&s, &data, "esed", &named("subset_esed"), false).await.unwrap();
    let random = selection::create(&s, &data, "random_esed", &named("subset_random_esed"), false).await.unwrap();
    assert_eq!(esed.rows, random.rows);

    // Bad results are refused before anything is written.
    let inline = |sql: &str| QuerySource { label: "inline".into(), sql: sql.into() };
    let dup = selection::create(
        &s,
        &data,
        "dup",
        &inline("SELECT study_id, slice_index, frame_index FROM frames UNION ALL SELECT study_id, slice_index, frame_index FROM frames"),
        false,
    )
    .await;
    assert!(matches!(dup, Err(SelectionError::Duplicates { .. })), "{dup:?}");
    let unknown =
        selection::create(&s, &data, "unknown", &inline("SELECT 'no_such_study' AS study_id, 0 AS slice_index, 0 AS frame_index"), false)
            .await;
    assert!(matches!(unknown, Err(SelectionError::UnknownFrames { count: 1, .. })), "{unknown:?}");
    let missing = selection::create(&s, &data, "missing", &inline("SELECT study_id FROM studies"), false).await;
    assert!(matches!(missing, Err(SelectionError::MissingColumn { .. })), "{missing:?}");
    for name in ["dup", "unknown", "missing"] {
        assert!(selection::load(&data, name).await.is_err(), "{name} must not exist");
    }

    // A changed frames file is detected.
    let path = data.child("selections/esed/frames.parquet");
    data.store.put(&path, bytes::Bytes::from_static(b"tampered").into()).await.unwrap();
    let e = selection::load(&data, "esed").await.unwrap_err().to_string();
    assert!(e.contains("changed after it was made"), "{e}");
}

/// Mistakes get the close match; `sql --help` lists tables, saved queries and examples.
#[tokio::test]
async fn errors_suggest_and_help_teaches() {
    replacing_tables_is_done_or_refused().await;
    let session = Session::open(None, &SessionOptions::default()).await.unwrap();
    let e = session.sql("SELECT * FROM volume").await.err().unwrap().to_string();
    assert!(e.contains("did you mean `volumes`"), "{e}");
    let e = session.sql("SELECT edv FROM volumes").await.err().unwrap().to_string();
    assert!(e.contains("did you mean `edv_ml`"), "{e}");
    let e =
        Session::open(None, &SessionOptions { params: vec!["treshold=0.1".into()], ..Default::default() }).await.err().unwrap().to_string();
    assert!(e.contains("did you mean `threshold`"), "{e}");
    let e = Session::open(None, &SessionOptions { params: vec!["volunteers=many".into()], ..Default::default() })
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("integer"), "{e}");

    let (ok, _, err) = cli(&["sql", "--table", "t=/no/such.csv", "SELECT 1"]);
    assert!(!ok && err.contains("/no/such.csv") && err.contains("check the path"), "{err}");
    let (ok, _, err) = cli(&["sql", "--data", "/no/such/data", "volumes"]);
    assert!(!ok && err.contains("/no/such/data"), "{err}");

    let (ok, help, _) = cli(&["sql", "--help"]);
    assert!(ok);
    for name in ["frames", "labels", "studies", "curation_log"].into_iter().chain(Catalog::builtin().names()) {
        let line = help
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from sql --help"));
        assert!(help.lines().nth(line + 1).unwrap().contains("e.g."), "{name} has no example in sql --help");
    }
}

/// A `--view` or `--table` named like an ingested table replaces it (conformed to its schema) or
/// is refused naming the columns; a saved query run by name keeps its ORDER BY; a `.sql` path is
/// a query; an empty saved query says why.
async fn replacing_tables_is_done_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    let (raw, data) = (raw.to_str().unwrap(), data.to_str().unwrap());
    let report = synth(raw, 3, 4, "none").await;
    ingest_phantom(raw, data).await;
    let gone = &report.studies[0].study_id;

    // --view studies=… replaces the table, and the saved views built on it follow.
    let view = format!("studies=SELECT * FROM studies WHERE study_id <> '{gone}'");
    let (ok, out, err) = cli(&[
        "sql",
        "--data",
        data,
        "--view",
        &view,
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM studies) AS s, (SELECT count(*) FROM truth) AS t",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().nth(1), Some("2,2"), "{out}");
    // A replacement lacking required columns, or with text where numbers belong, is refused by name.
    let (ok, _, err) = cli(&["sql", "--data", data, "--view", "labels=SELECT study_id, labeller FROM labels", "SELECT 1"]);
    assert!(!ok && err.contains("replaces the table `labels`") && err.contains("`slice_index`") && err.contains("`mask`"), "{err}");
    let bad = csv(
        dir.path(),
        "studies.csv",
        "study_id,source_study_id,n_slices,n_frames,height,width,pixel_spacing_row_mm,pixel_spacing_col_mm,slice_spacing_mm,slice_thickness_mm,scale_factor,source_files\n1,1,ten,30,256,256,1.4,1.4,10,8,1,300\n",
    );
    let (ok, _, err) = cli(&["sql", "--data", data, "--table", &format!("studies={bad}"), "SELECT 1"]);
    assert!(!ok && err.contains("`n_slices` is text"), "{err}");
    // … and a complete one (numbers as numbers; the other columns read as null) is used.
    let good = bad.replace("studies.csv", "studies2.csv");
    std::fs::write(&good, std::fs::read_to_string(&bad).unwrap().replace(",ten,", ",10,")).unwrap();
    let (ok, out, err) = cli(&[
        "sql",
        "--data",
        data,
        "--table",
        &format!("studies={good}"),
        "--format",
        "csv",
        "SELECT study_id, n_slices, truth_edv_ml FROM studies",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().nth(1), Some("1,10,"), "{out}");

    // A saved query's own ORDER BY holds when it is run by name.
    let qdir = dir.path().join("queries");
    std::fs::create_dir_all(&qdir).unwrap();
    std::fs::write(
        qdir.join("backwards.sql"),
        "-- Studies, last first.\n-- @example cinestream sql backwards\nSELECT study_id FROM studies ORDER BY study_id DESC\n",
    )
    .unwrap();
    let q = qdir.to_str().unwrap();
    let mut ids: Vec<String> = report.studies.iter().map(|s| s.study_id.clone()).collect();
    ids.sort();
    ids.reverse();
    for _ in 0..2 {
        let (ok, out, err) = cli(&["sql", "--data", data, "--queries", q, "--format", "csv", "backwards"]);
        assert!(ok, "{err}");
        assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ids, "{out}");
    }
    // A .sql file as the query argument.
    let file = qdir.join("backwards.sql");
    let (ok, out, err) = cli(&["sql", "--data", data, "--format", "csv", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ids, "{out}");
    // A declared type a value does not fit: the error says how to fix the declaration.
    let ids = csv(dir.path(), "ids.csv", "study_id,n\n1,2\n1052_rot90,3\n");
    let (ok, _, err) = cli(&["sql", "--table", &format!("ids={ids}:study_id=int"), "SELECT * FROM ids"]);
    assert!(!ok && err.contains("1052_rot90") && err.contains(":column=text"), "{err}");
    // No truth: ef_error_stats says why it is empty.
    let (ok, _, err) = cli(&[
        "sql",
        "--data",
        data,
        "--view",
        "truth=SELECT study_id, truth_esv_ml AS systole_ml, truth_edv_ml AS diastole_ml FROM studies WHERE false",
        "ef_error_stats",
    ]);
    assert!(ok && err.contains("returned no rows") && err.contains("truth volumes"), "{err}");
}
