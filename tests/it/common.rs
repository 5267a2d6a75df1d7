//! Helpers shared by the integration tests: S3 availability, phantom + ingest runs, SQL.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use cinestream::ingest::IngestConfig;
use cinestream::ingest::{self, IngestReport};
use cinestream::progress::Quiet;
use cinestream::query::{Session, SessionOptions};
use cinestream::store::{self, StoreLocation};
use cinestream::synth::{self, Domain, SynthConfig, SynthReport, defects};

/// The test bucket when an S3 server is configured (scripts/test.sh starts Ceph RGW).
/// Without one: panics when CINESTREAM_REQUIRE_S3 is set (CI), else says the test is skipped.
pub fn s3_bucket(test: &str) -> Option<String> {
    match (std::env::var("AWS_ENDPOINT_URL"), std::env::var("CINESTREAM_TEST_BUCKET")) {
        (Ok(_), Ok(b)) if !b.is_empty() => Some(b),
        _ if std::env::var("CINESTREAM_REQUIRE_S3").is_ok() => {
            panic!("{test}: CINESTREAM_REQUIRE_S3 is set but AWS_ENDPOINT_URL / CINESTREAM_TEST_BUCKET are not")
        }
        _ => {
            eprintln!("SKIPPED {test}: no S3 server configured (run scripts/test.sh, which starts one)");
            None
        }
    }
}

/// Whether the long tests run at full size: `scripts/soak.sh` sets `CINESTREAM_SOAK=1`. The
/// test command runs them smaller, at a size that still finds what they exist to find.
/// `../shared/reference/<sub>` (or `$CINESTREAM_REFERENCE_DIR/<sub>`) when it holds `probe`;
/// where the test command demands every tool (`CINESTREAM_REQUIRE_TOOLS`), its absence fails the
/// test, elsewhere the test is skipped with a note.
pub fn reference(test: &str, sub: &str, probe: &str) -> Option<std::path::PathBuf> {
    let root = std::env::var("CINESTREAM_REFERENCE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
    let dir = root.join(sub);
    if dir.join(probe).exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(),
        "{test}: the authors' tables are not at {} (set CINESTREAM_REFERENCE_DIR)",
        dir.display()
    );
    eprintln!("SKIPPED {test}: the authors' tables are not at {} (set CINESTREAM_REFERENCE_DIR)", dir.display());
    None
}

pub fn soak() -> bool {
    std::env::var_os("CINESTREAM_SOAK").is_some_and(|v| v != "0")
}

/// `quick` in the test command, `full` in a soak run.
pub fn sized(quick: usize, full: usize) -> usize {
    if soak() { full } else { quick }
}

/// A prefix no other test run uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

pub fn open(url: &str) -> StoreLocation {
    store::open(url, &Default::default()).unwrap()
}

pub async fn synth(out: &str, studies: usize, seed: u64, defects: &str) -> SynthReport {
    synth_domain(out, Domain::Clinical, studies, seed, defects).await
}

pub async fn synth_domain(out: &str, domain: Domain, studies: usize, seed: u64, defects: &str) -> SynthReport {
    let cfg = SynthConfig { domain, studies, seed, defects: defects::parse_list(defects).unwrap(), write_concurrency: 16 };
    synth::run(&open(out), &cfg, &Quiet).await.unwrap()
}

/// The ingest settings for a phantom output with its truth CSVs and truth masks.
pub fn phantom_config(input: &str, output: &str) -> IngestConfig {
    let mut cfg = IngestConfig::new(input, output);
    let base = input.trim_end_matches('/');
    cfg.truth = ["train.csv", "validate.csv", "solution.csv"].iter().map(|f| format!("{base}/{f}")).collect();
    cfg.labels = Some(format!("{base}/truth"));
    cfg.labeller = "phantom".into();
    cfg
}

/// Ingests a phantom output with its truth CSVs and truth masks.
pub async fn ingest_phantom(input: &str, output: &str) -> IngestReport {
    ingest::run(&phantom_config(input, output), Arc::new(Quiet)).await.unwrap()
}

/// The CLI arguments of [`ingest_phantom`].
pub fn phantom_ingest_args(input: &str, output: &str) -> Vec<String> {
    let base = input.trim_end_matches('/');
    let mut args: Vec<String> = vec![
        "ingest".into(),
        "--input".into(),
        input.into(),
        "--output".into(),
        output.into(),
        "--labels".into(),
        format!("{base}/truth"),
        "--labeller".into(),
        "phantom".into(),
    ];
    for f in ["train.csv", "validate.csv", "solution.csv"] {
        args.extend(["--truth".to_string(), format!("{base}/{f}")]);
    }
    args
}

/// Runs SQL (saved queries included) over the committed tables of a data prefix.
pub async fn sql(data: &str, q: &str) -> Vec<RecordBatch> {
    let session = Session::open(Some(&open(data)), &SessionOptions::default()).await.unwrap();
    run_sql(&session, q).await
}

/// Runs SQL in a session; panics with the query and the error.
pub async fn run_sql(session: &Session, q: &str) -> Vec<RecordBatch> {
    session.sql(q).await.unwrap_or_else(|e| panic!("{q}: {e}")).collect().await.unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// Starts the binary with `args`, its output discarded (a run to kill).
pub fn spawn_quiet(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs the CLI; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// One column of query results as f64 / i64 / strings (nulls → None).
pub fn f64s(batches: &[RecordBatch], col: &str) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column_by_name(col).unwrap(), &DataType::Float64).unwrap();
            let a = c.as_primitive::<Float64Type>().clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i)))
        })
        .collect()
}
pub fn i64s(batches: &[RecordBatch], col: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column_by_name(col).unwrap(), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}
pub fn strs(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column_by_name(col).unwrap(), &DataType::Utf8).unwrap();
            let a = c.as_string::<i32>().clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        })
        .collect()
}
/// ESV/EDV (mL) per study from the labels table, by the saved `volumes` query (docs/science.md §1;
/// checked against hand-computed answers in `sql.rs`).
pub async fn label_volumes(data: &str) -> HashMap<String, (f64, f64)> {
    let b = sql(data, "SELECT study_id, esv_ml, edv_ml FROM volumes").await;
    let (ids, esv, edv) = (strs(&b, "study_id"), f64s(&b, "esv_ml"), f64s(&b, "edv_ml"));
    ids.into_iter().zip(esv.into_iter().zip(edv)).map(|(id, (s, d))| (id.unwrap(), (s.unwrap(), d.unwrap()))).collect()
}

/// Relative difference.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Every file under a local folder, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { files.push(p) }
        }
    }
    files
}

/// Every file under `dir` as raw bytes, plus every Parquet file's values decoded (strings as
/// text, binaries as bytes), so a search sees through compression.
pub fn output_texts(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let files = files_under(dir);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")), "no Parquet under {}", dir.display());
    let mut texts = Vec::new();
    for f in files {
        texts.push((f.display().to_string(), std::fs::read(&f).unwrap()));
        if f.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap()).unwrap().build().unwrap();
        let mut decoded = Vec::new();
        for batch in reader {
            for col in batch.unwrap().columns() {
                if col.data_type() == &DataType::Binary {
                    let a = col.as_binary::<i32>();
                    (0..a.len()).filter(|i| !a.is_null(*i)).for_each(|i| decoded.extend_from_slice(a.value(i)));
                } else {
                    let s = arrow::compute::cast(col, &DataType::Utf8).unwrap();
                    let a = s.as_string::<i32>();
                    (0..a.len()).filter(|i| !a.is_null(*i)).for_each(|i| {
                        decoded.extend_from_slice(a.value(i).as_bytes());
                        decoded.push(b'\n');
                    });
                }
            }
        }
        texts.push((format!("{} (decoded)", f.display()), decoded));
    }
    texts
}

/// Every row of `table` as a line (binary columns as their SHA-256), sorted, leaving out
/// `skip` columns (run ids, times): two tables with equal lines hold the same rows.
pub async fn table_rows(data: &str, table: &str, skip: &[&str]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let batches = sql(data, &format!("SELECT * FROM {table}")).await;
    let mut rows = Vec::new();
    for b in &batches {
        let cols: Vec<(usize, bool)> = b
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !skip.contains(&f.name().as_str()))
            .map(|(i, f)| (i, f.data_type() == &DataType::Binary))
            .collect();
        let text: Vec<Arc<dyn Array>> = cols
            .iter()
            .map(|(i, bin)| if *bin { b.column(*i).clone() } else { arrow::compute::cast(b.column(*i), &DataType::Utf8).unwrap() })
            .collect();
        for r in 0..b.num_rows() {
            let line: Vec<String> = cols
                .iter()
                .zip(&text)
                .map(|((_, bin), a)| match (a.is_null(r), bin) {
                    (true, _) => "∅".into(),
                    (false, true) => hex::encode(Sha256::digest(a.as_binary::<i32>().value(r))),
                    (false, false) => a.as_string::<i32>().value(r).to_string(),
                })
                .collect();
            rows.push(line.join("|"));
        }
    }
    rows.sort();
    rows
}

/// Columns that differ between two runs of the same work.
pub const RUN_COLUMNS: &[&str] = &["run_id", "ingested_at"];

/// Every ingest table's rows (see [`table_rows`]).
pub async fn all_rows(data: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for t in cinestream::tables::TABLES {
        out.push((t.to_string(), table_rows(data, t, RUN_COLUMNS).await));
    }
    out
}

/// `studies` phantom studies (seed, defects) written to `dir/in` and ingested by the CLI, with
/// their truth masks and volumes, into `dir/data`; returns (input, data, what synth wrote).
pub async fn phantom_data(dir: &std::path::Path, studies: usize, seed: u64, defects: &str) -> (String, String, SynthReport) {
    let (input, data) = (dir.join("in").to_str().unwrap().to_string(), dir.join("data").to_str().unwrap().to_string());
    let report = synth(&input, studies, seed, defects).await;
    let args = phantom_ingest_args(&input, &data);
    let (ok, _, err) = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "ingest failed: {err}");
    (input, data, report)
}

/// A PNG file's width, height, pixels and samples per pixel.
pub fn png_pixels(path: &std::path::Path) -> (u32, u32, Vec<u8>, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, info.color_type.samples())
}

/// Uploads the files of a local folder whose relative paths pass `keep` below `url`, at the same
/// relative keys.
pub async fn upload(dir: &std::path::Path, url: &str, keep: impl Fn(&str) -> bool) {
    use object_store::{ObjectStoreExt, PutPayload};
    let loc = open(url);
    for f in files_under(dir) {
        let rel = f.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
        if keep(&rel) {
            loc.store.put(&loc.child(&rel), PutPayload::from(std::fs::read(&f).unwrap())).await.unwrap();
        }
    }
}
