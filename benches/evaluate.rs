//! Evaluation and viewer-export benchmark: `evaluate` (two labellers' masks, per-image Dice,
//! volumes, plots, report) and `export` (NIfTI and PNG) on phantom data sets of growing size,
//! with images per second and the peak resident memory of each step — memory should stay flat
//! as the input grows (a few studies' masks at a time).
//!
//!     cargo bench --bench evaluate                  # BENCH_DIR (default /var/tmp/cinestream-bench)
//!     cargo bench --profile dev --bench evaluate    # no release build (our code at opt-level 1)
//!     BENCH_SIZES=12,48 cargo bench --bench evaluate
//!
//! Set-up (once per size, cached in `BENCH_DIR/evaluate-N`): `synth` + `ingest` of N phantom
//! studies with their truth masks (labeller `phantom`), and a second labeller `shift2` (the
//! truth masks moved two pixels right) appended as one published run. Each step is the
//! `cinestream` command itself, run under GNU time (`/usr/bin/time`): wall seconds from start to
//! exit and the process's peak resident memory.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use cinestream::ingest;
use cinestream::progress::Quiet;
use cinestream::query::{Session, SessionOptions};
use cinestream::store::{self, StoreLocation};
use cinestream::synth::{self, Domain, SynthConfig};
use cinestream::tables::label_rows::{FrameGrid, LabelRow, append_labels};

fn open(url: &str) -> StoreLocation {
    store::open(url, &Default::default()).unwrap()
}

/// The phantom data set of `n` studies with a second labeller, made once.
async fn data_set(root: &std::path::Path, n: usize) -> String {
    let dir = root.join(format!("evaluate-{n}"));
    let data = dir.join("data");
    let done = dir.join("ready");
    let data_url = data.to_str().unwrap().to_string();
    if done.exists() {
        return data_url;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let input = dir.join("input");
    let input_url = input.to_str().unwrap().to_string();
    eprintln!("evaluate bench: making {n} phantom studies in {}", dir.display());
    synth::run(
        &open(&input_url),
        &SynthConfig { domain: Domain::Clinical, studies: n, seed: 7, defects: Vec::new(), write_concurrency: 16 },
        &Quiet,
    )
    .await
    .unwrap();
    let mut cfg = cinestream::ingest::IngestConfig::new(&input_url, &data_url);
    cfg.truth = ["train.csv", "validate.csv", "solution.csv"].iter().map(|f| format!("{input_url}/{f}")).collect();
    cfg.labels = Some(format!("{input_url}/truth"));
    cfg.labeller = "phantom".into();
    ingest::run(&cfg, Arc::new(Quiet)).await.unwrap();
    // The second labeller, a few studies per run (memory stays bounded while making it).
    let session = Session::open(Some(&open(&data_url)), &SessionOptions::default()).await.unwrap();
    let ids: Vec<String> = {
        let b = session.sql("SELECT DISTINCT study_id FROM labels ORDER BY study_id").await.unwrap().collect().await.unwrap();
        b.iter()
            .flat_map(|b| {
                arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for (k, chunk) in ids.chunks(8).enumerate() {
        let list: Vec<String> = chunk.iter().map(|s| format!("'{s}'")).collect();
        let sql = format!(
            "SELECT study_id, split, slice_index, frame_index, height, width, pixel_spacing_row_mm, pixel_spacing_col_mm, slice_spacing_mm, source_key, mask FROM labels WHERE labeller = 'phantom' AND study_id IN ({})",
            list.join(", ")
        );
        let batches = session.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut owned = Vec::new();
        for b in &batches {
            let s = |n: &str| arrow::compute::cast(b.column_by_name(n).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
            let (id, split, key) = (s("study_id"), s("split"), s("source_key"));
            let i32c = |n: &str| b.column_by_name(n).unwrap().as_primitive::<arrow::datatypes::Int32Type>().clone();
            let f64c = |n: &str| b.column_by_name(n).unwrap().as_primitive::<arrow::datatypes::Float64Type>().clone();
            let (z, t, h, w) = (i32c("slice_index"), i32c("frame_index"), i32c("height"), i32c("width"));
            let (sr, sc, ss) = (f64c("pixel_spacing_row_mm"), f64c("pixel_spacing_col_mm"), f64c("slice_spacing_mm"));
            let masks = b.column_by_name("mask").unwrap().as_binary::<i32>();
            for i in 0..b.num_rows() {
                let width = w.value(i) as usize;
                let mut moved = vec![0u8; masks.value(i).len()];
                for (r, row) in masks.value(i).chunks(width).enumerate() {
                    moved[r * width + 2..(r + 1) * width].copy_from_slice(&row[..width - 2]);
                }
                let grid = FrameGrid {
                    height: h.value(i),
                    width: w.value(i),
                    pixel_spacing_row_mm: sr.value(i),
                    pixel_spacing_col_mm: sc.value(i),
                    slice_spacing_mm: ss.value(i),
                };
                let split = split.as_string::<i32>();
                owned.push((
                    id.as_string::<i32>().value(i).to_string(),
                    split.is_valid(i).then(|| split.value(i).to_string()),
                    z.value(i),
                    t.value(i),
                    grid,
                    key.as_string::<i32>().value(i).to_string(),
                    moved,
                ));
            }
        }
        let rows: Vec<LabelRow> = owned
            .iter()
            .map(|(id, split, z, t, grid, key, mask)| LabelRow {
                study_id: id,
                split: split.as_deref(),
                slice_index: *z,
                frame_index: *t,
                labeller: "shift2",
                grid: *grid,
                source_key: key,
                fill: None,
                mask,
            })
            .collect();
        append_labels(&open(&data_url), &format!("bench-shift2-{k}"), &rows).await.unwrap();
    }
    std::fs::write(&done, "").unwrap();
    data_url
}

struct Step {
    name: String,
    images: u64,
    seconds: f64,
    peak_mib: f64,
}

/// Runs the `cinestream` binary under GNU time: (wall seconds, peak RSS MiB, stdout).
fn timed(args: &[&str]) -> (f64, f64, String) {
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%e %M", env!("CARGO_BIN_EXE_cinestream"), "--quiet"])
        .args(args)
        .output()
        .expect("GNU time (/usr/bin/time) runs the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cinestream {args:?} failed: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace().map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
    let (secs, kib) = (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN));
    (secs, kib / 1024.0, String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn measure(root: &std::path::Path, n: usize) -> Vec<Step> {
    let data = data_set(root, n).await;
    let images = {
        let session = Session::open(Some(&open(&data)), &SessionOptions::default()).await.unwrap();
        let b = session.sql("SELECT count(*) AS n FROM labels WHERE labeller = 'shift2'").await.unwrap().collect().await.unwrap();
        b[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0) as u64
    };
    let out_root = root.join(format!("evaluate-{n}-out"));
    let _ = std::fs::remove_dir_all(&out_root);
    let out = |name: &str| out_root.join(name).to_str().unwrap().to_string();
    let mut steps = Vec::new();
    let (secs, peak, stdout) =
        timed(&["evaluate", "--data", &data, "--labeller", "shift2", "--reference", "phantom", "--out", &out("eval")]);
    assert!(stdout.contains(&format!("{images}")), "evaluate scored every image: {stdout}");
    steps.push(Step { name: "evaluate shift2 vs phantom".into(), images, seconds: secs, peak_mib: peak });
    for format in ["nifti", "png"] {
        let (secs, peak, _) = timed(&["export", "--data", &data, "--labeller", "shift2", "--format", format, "--out", &out(format)]);
        steps.push(Step { name: format!("export {format}"), images, seconds: secs, peak_mib: peak });
    }
    steps
}

fn main() {
    let root = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cinestream-bench".into()));
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "12,48".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_SIZES: numbers"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("| studies | step | images | seconds | images/s | peak RSS (MiB) |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in sizes {
        for s in rt.block_on(measure(&root, n)) {
            println!("| {n} | {} | {} | {:.2} | {:.0} | {:.0} |", s.name, s.images, s.seconds, s.images as f64 / s.seconds, s.peak_mib);
        }
    }
}
