//! SQL benchmark: the saved `confidence_sets` and `volumes` queries over 1,149 studies and
//! 433,460 label rows, timed from opening the session (reading the Delta logs and footers) to
//! the last row, with the bytes read from the store — the proof that mask bytes stay unread.
//!
//!     cargo bench --bench query        # BENCH_DIR (default /var/tmp/cinestream-bench)
//!
//! The data set is generated once (cached in BENCH_DIR/query-1149) through the same shard
//! writer ingest uses: 1,140 Kaggle ids plus 9 `_rot90` variants; 862 studies of 13 slices ×
//! 29 frames and 287 of 14 × 27 (433,460 rows); each row a real 192 × 192 mask (an LV blood
//! pool in a myocardial ring that contracts over the cycle and tapers to the apex) with its
//! pixel counts; truth volumes scattered around the masks' volumes so the confidence sets are
//! not trivial.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BinaryArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use cinestream::query::{Session, SessionOptions};
use cinestream::store::{self, StoreLocation};
use cinestream::synth::phantom::contraction;
use cinestream::tables;
use cinestream::tables::writer::ShardConfig;
use cinestream::tables::{RunInfo, ShardSet, TableChange, commit_run};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STUDIES: usize = 1149;
const SIZE: usize = 192;

/// (slices, frames) of study `i`: 287 × (14, 27) then 862 × (13, 29) = 433,460 rows.
fn shape(i: usize) -> (usize, usize) {
    if i < 287 { (14, 27) } else { (13, 29) }
}

fn study_id(i: usize) -> String {
    if i < 1140 { (i + 1).to_string() } else { format!("{}_rot90", 1001 + (i - 1140)) }
}

/// One mask by row spans; returns (mask, lv pixels, my pixels).
fn mask(a: f64, b: f64, wall: f64, cx: f64, cy: f64) -> (Vec<u8>, i64, i64) {
    let mut m = vec![0u8; SIZE * SIZE];
    let (mut lv, mut my) = (0i64, 0i64);
    for r in 0..SIZE {
        let dy = r as f64 - cy;
        let half = |ra: f64, rb: f64| if dy.abs() < rb { ra * (1.0 - (dy / rb).powi(2)).sqrt() } else { -1.0 };
        let (inner, outer) = (half(a, b), half(a + wall, b + wall));
        if outer < 0.0 {
            continue;
        }
        let clamp = |x: f64| x.round().clamp(0.0, SIZE as f64) as usize;
        let (o0, o1) = (clamp(cx - outer), clamp(cx + outer));
        let row = &mut m[r * SIZE..(r + 1) * SIZE];
        row[o0..o1].fill(2);
        my += (o1 - o0) as i64;
        if inner >= 0.0 {
            let (i0, i1) = (clamp(cx - inner), clamp(cx + inner));
            row[i0..i1].fill(1);
            lv += (i1 - i0) as i64;
            my -= (i1 - i0) as i64;
        }
    }
    (m, lv, my)
}

/// The label rows and the studies row of study `i`.
fn study(i: usize) -> (RecordBatch, RecordBatch) {
    let id = study_id(i);
    // A `_rot90` variant: the same study read again, its masks 3% wider.
    let (base, variant) = if i < 1140 { (i + 1, 1.0) } else { (1001 + (i - 1140), 1.03) };
    let mut rng = ChaCha8Rng::seed_from_u64(base as u64);
    let (slices, frames) = shape(i);
    let spacing = rng.random_range(1.25..1.6);
    let slice_mm = [8.0, 10.0][rng.random_range(0..2)];
    let (a_mm, wall_mm) = (rng.random_range(22.0..30.0) * variant, rng.random_range(7.0..10.0));
    let split = cinestream::query::udf::kaggle_split(&id).unwrap_or("train");
    let n = slices * frames;
    let (mut slice_idx, mut frame_idx, mut lv, mut my, mut masks, mut keys) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut lv_per_frame = vec![0i64; frames];
    for s in 0..slices {
        // Slice 0 is the apex: the cavity tapers like a half-ellipsoid towards it.
        let z = 1.0 - (s as f64 + 0.5) / slices as f64;
        let taper = (1.0 - z * z).max(0.0).sqrt();
        for (f, lv_frame) in lv_per_frame.iter_mut().enumerate() {
            let k = contraction(f as f64 / frames as f64);
            let r = (1.0 - 0.27 * k) * taper * a_mm / spacing;
            let (m, l, y) = mask(r, r * 0.92, wall_mm * (1.0 + 0.35 * k) / spacing * taper.max(0.5), 96.0, 100.0);
            slice_idx.push(s as i32);
            frame_idx.push(f as i32);
            lv.push(l);
            my.push(y);
            *lv_frame += l;
            masks.push(m);
            keys.push(format!("train/{base}/study/sax_{}/IM-{:04}-{:04}.dcm", s + 5, s + 5, f + 1));
        }
    }
    let ml = |px: i64| px as f64 * spacing * spacing * slice_mm / 1000.0;
    let (edv, esv) = (ml(*lv_per_frame.iter().max().unwrap()), ml(*lv_per_frame.iter().min().unwrap()));
    // Truth within ±25% of the masks' volumes: about a fifth of the studies land within 5%.
    let (t_edv, t_esv) = (edv * rng.random_range(0.8..1.25), esv * rng.random_range(0.8..1.25));
    let strs = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let f64s = |v: f64| Arc::new(Float64Array::from(vec![v; n])) as ArrayRef;
    let i32s = |v: i32| Arc::new(Int32Array::from(vec![v; n])) as ArrayRef;
    let labels = RecordBatch::try_new(
        tables::schema("labels").unwrap(),
        vec![
            strs(&id),
            strs(split),
            Arc::new(Int32Array::from(slice_idx)),
            Arc::new(Int32Array::from(frame_idx)),
            strs("ukbb"),
            i32s(SIZE as i32),
            i32s(SIZE as i32),
            f64s(spacing),
            f64s(spacing),
            f64s(slice_mm),
            Arc::new(Int64Array::from(lv)),
            Arc::new(Int64Array::from(my)),
            Arc::new(Int64Array::from(vec![0i64; n])),
            Arc::new(StringArray::from(keys)),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(BinaryArray::from_iter_values(masks.iter())),
        ],
    )
    .unwrap();
    let one_s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let one_f = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    let one_i = |v: i32| Arc::new(Int32Array::from(vec![v])) as ArrayRef;
    let studies = RecordBatch::try_new(
        tables::schema("studies").unwrap(),
        vec![
            one_s(&id),
            one_s(&base.to_string()),
            one_s(split),
            one_i(slices as i32),
            one_i(frames as i32),
            one_i(SIZE as i32),
            one_i(SIZE as i32),
            one_f(spacing),
            one_f(spacing),
            one_f(slice_mm),
            one_f(slice_mm),
            one_f(1.0),
            one_f(1.5),
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(Float32Array::from(vec![None::<f32>])),
            one_f(t_esv),
            one_f(t_edv),
            one_i(n as i32),
        ]
        .into_iter()
        // The grid in patient coordinates: origin 0, rows along x, columns along y, apex → base along z.
        .chain([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0].map(one_f))
        .collect(),
    )
    .unwrap();
    (labels, studies)
}

async fn generate(data: &StoreLocation) {
    let mut shards = ShardSet::new(data, "bench-query", &ShardConfig::default(), &tables::INGEST, &Default::default());
    let t = Instant::now();
    let mut rows = 0;
    for i in 0..STUDIES {
        let (labels, studies) = tokio::task::spawn_blocking(move || study(i)).await.unwrap();
        rows += labels.num_rows();
        shards.write(&tables::LABELS, labels).await.unwrap();
        shards.write(&tables::STUDIES, studies).await.unwrap();
    }
    assert_eq!(rows, 433_460);
    let files = shards.finish().await.unwrap();
    let changes = files.into_iter().map(|(t, adds)| (t, TableChange { adds, ..Default::default() })).collect();
    let run = RunInfo {
        app_id: "bench-query-generator".into(),
        command: "bench query generator".into(),
        run_id: "bench-query".into(),
        summary: serde_json::json!({ "label_rows": rows }),
        config: serde_json::json!({}),
    };
    commit_run(data, &run, &tables::INGEST, changes).await.unwrap();
    eprintln!("generated {STUDIES} studies, {rows} label rows in {:.0} s", t.elapsed().as_secs_f64());
}

/// (total bytes, mask column bytes) of the Parquet files under `dir`.
fn sizes(dir: &Path) -> (u64, u64) {
    let (mut total, mut masks) = (0, 0);
    for table in ["labels", "studies"] {
        for f in std::fs::read_dir(dir.join(table)).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_none_or(|e| e != "parquet") {
                continue; // _delta_log/
            }
            total += std::fs::metadata(&f).unwrap().len();
            let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            for rg in parquet::file::reader::FileReader::metadata(&reader).row_groups() {
                masks +=
                    rg.columns().iter().filter(|c| c.column_path().string() == "mask").map(|c| c.compressed_size() as u64).sum::<u64>();
            }
        }
    }
    (total, masks)
}

async fn count(session: &Session, sql: &str) -> usize {
    session.sql(sql).await.unwrap().collect().await.unwrap().iter().map(|b| b.num_rows()).sum()
}

fn main() {
    let dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cinestream-bench".into())).join("query-1149");
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let data = store::open(dir.to_str().unwrap(), &Default::default()).unwrap();
        if !dir.join("labels/_delta_log").exists() {
            generate(&data).await;
        }
        let (total, masks) = sizes(&dir);
        let mut runs = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            let session = Session::open(Some(&data), &SessionOptions::default()).await.unwrap();
            let sets = count(&session, "SELECT * FROM confidence_sets").await;
            let volumes = count(&session, "SELECT * FROM volumes").await;
            runs.push((t.elapsed().as_secs_f64(), session.io(), sets, volumes));
        }
        let session = Session::open(Some(&data), &SessionOptions::default()).await.unwrap();
        let p5 = count(&session, "SELECT * FROM confidence_sets WHERE p5").await;
        let rows = count(&session, "SELECT * FROM labels").await;
        let mut secs: Vec<f64> = runs.iter().map(|r| r.0).collect();
        secs.sort_by(f64::total_cmp);
        let (_, io, sets, volumes) = runs[0];
        println!(
            "\nquery benchmark: confidence_sets + volumes, from session open to last row ({} cores)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        println!("label rows {rows}, studies {volumes}, confidence_sets rows {sets} (p5: {p5})");
        println!("seconds: min {:.3}, median {:.3}, max {:.3} (7 runs)", secs[0], secs[3], secs[6]);
        println!(
            "bytes read {} in {} requests, of {} on disk ({:.3}%); mask column chunks {} ({:.1}% of the data)",
            io.bytes_read,
            io.reads,
            total,
            100.0 * io.bytes_read as f64 / total as f64,
            masks,
            100.0 * masks as f64 / total as f64
        );
        assert!(io.bytes_read < total - masks, "read more than every non-mask byte");
    });
}
