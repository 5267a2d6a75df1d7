//! Phantom cine studies in the Kaggle layout, with known truth and planted defects.
//!
//! `cinestream synth` writes `<split>/<id>/study/sax_<series>/IM-<series>-<frame>.dcm`, the truth
//! CSVs (`train.csv`, `validate.csv`: Id,Systole,Diastole; `solution.csv` for test ids in Kaggle's
//! format), one truth-mask Parquet file per study under `truth/` (keyed by object key), and
//! `synth.json` (defects, ED/ES frames and volumes per study). Truth volumes follow docs/science.md §1
//! on the clean stack's masks, so they are exact for the discrete phantom.
//!
//! Two domains ([`Domain`]): `clinical` (the Kaggle-like default) and `7t` ([`seven_tesla`]:
//! 7T gradient-echo cine, study ids from 7001, so both domains can share one data prefix).

pub mod defects;
pub mod dicom;
pub mod phantom;
pub mod seven_tesla;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::geometry::{APEX_DIRECTION_LPS, Grid, V3, add, cross, normalize, rotate, scale};
use crate::progress::Progress;
use crate::source::layout::kaggle_split;
use crate::store::{StoreLocation, explain};
use crate::tables::label_rows::class_counts;
use defects::Defect;
use dicom::{Identity, ImageAttrs};
use phantom::{Heart, Look};
pub use seven_tesla::Domain;

/// Errors of `synth`.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("--studies {0}: the Kaggle id ranges hold at most 1140 studies (500 train, 200 validate, 440 test)")]
    TooMany(usize),
    #[error("--studies {0}: the 7T domain's ids (7001–7999) hold at most 999 volunteers")]
    TooManyVolunteers(usize),
    #[error("writing `{object}`: {}", explain(source))]
    Write { object: String, source: object_store::Error },
    #[error("a rendering task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("encoding the truth table: {0}")]
    Truth(#[from] arrow::error::ArrowError),
    #[error("encoding the truth table: {0}")]
    TruthParquet(#[from] parquet::errors::ParquetError),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub domain: Domain,
    pub studies: usize,
    pub seed: u64,
    pub defects: Vec<Defect>,
    /// Concurrent object writes.
    pub write_concurrency: usize,
}

/// Truth of one generated study.
#[derive(Debug, Clone, Serialize)]
pub struct StudyTruth {
    pub study_id: String,
    pub split: String,
    pub n_slices: usize,
    pub n_frames: usize,
    pub esv_ml: f64,
    pub edv_ml: f64,
    pub ed_frame: usize,
    pub es_frame: usize,
    pub defects: Vec<&'static str>,
    pub files: usize,
    #[serde(skip)]
    pub identity: Identity,
}

/// What `synth` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SynthReport {
    pub domain: Domain,
    pub studies: Vec<StudyTruth>,
    pub files: usize,
    pub bytes: u64,
}

/// (split, id) of the `index`-th study: 3 of 5 train, 1 validate, 1 test.
pub fn study_place(index: usize) -> (&'static str, u32) {
    let (round, slot) = (index / 5, index % 5);
    match slot {
        0..=2 => ("train", (round * 3 + slot + 1) as u32),
        3 => ("validate", (501 + round) as u32),
        _ => ("test", (701 + round) as u32),
    }
}

/// Identity planted in study `id` of a run with `seed`.
pub fn identity(seed: u64, id: u32) -> Identity {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9d1_5eed ^ ((id as u64) << 20));
    let root = format!("1.2.826.0.1.3680043.9.{}.{}", seed % 1_000_000 + 1, id);
    Identity {
        patient_name: format!("Zzphantom^Jane{id:04}^Q"),
        patient_id: format!("PHI{seed}X{id:05}"),
        birth_date: format!("19{}{:02}{:02}", rng.random_range(40..90), rng.random_range(1..13), rng.random_range(10..29)),
        address: format!("{id} Phantom Lane {}, Testtown", rng.random_range(1000..9999)),
        study_uid: format!("{root}.1"),
        frame_of_reference_uid: format!("{root}.2"),
        uid_root: root,
        sex: if rng.random_bool(0.5) { "F" } else { "M" }.into(),
        age: format!("{:03}Y", rng.random_range(25..80)),
    }
}

/// Everything needed to render one study.
struct Spec {
    split: &'static str,
    id: u32,
    n_slices: usize,
    n_frames: usize,
    spacing: f64,
    thickness: f64,
    rr_ms: f64,
    field_t: f64,
    heart: Heart,
    look: Look,
    /// Grid of slice k (0 = basal).
    grids: Vec<Grid>,
    normal: V3,
    defects: Vec<Defect>,
    identity: Identity,
    seed: u64,
    /// The static gain map's field (the 7T domain); None: the clinical bias field.
    field: Option<seven_tesla::Field>,
    /// Frames by which the cycle is rotated: end-diastole falls at frame (T − shift) mod T.
    ed_shift: usize,
}

impl Spec {
    /// Fraction of the cardiac cycle at frame `f` (0 = end-diastole).
    fn phase(&self, f: usize) -> f64 {
        ((f + self.ed_shift) % self.n_frames) as f64 / self.n_frames as f64
    }
}

/// A phantom's short-axis stack: slices, their spacing (mm), pixel size (mm) and matrix.
struct Stack {
    n_slices: usize,
    spacing: f64,
    pixel: f64,
    rows: u32,
    cols: u32,
}

/// Places a heart and its stack with `rng`, in this order: the long axis (jittered around the
/// typical direction), the in-plane axes, the wall, the size (`c_outer`, the outer long
/// semi-axis, from the domain's rule, which may draw too), the cavity radii and position, the
/// contraction, the slice normal's sign, the in-plane rotation and an offset of up to
/// `offset_mm`. Slice 0 lies 0.4 slices above the base. Returns the heart, the slice normal and
/// the slices' grids (0 = basal).
fn place_heart(
    rng: &mut ChaCha8Rng,
    stack: &Stack,
    c_outer: impl FnOnce(&mut ChaCha8Rng) -> f64,
    offset_mm: f64,
) -> (Heart, V3, Vec<Grid>) {
    let jitter = |rng: &mut ChaCha8Rng| rng.random_range(-0.2..0.2);
    let axis = normalize(add(APEX_DIRECTION_LPS, [jitter(rng), jitter(rng), jitter(rng)]));
    let helper = if axis[2].abs() < 0.9 { [0.0, 0.0, 1.0] } else { [1.0, 0.0, 0.0] };
    let e1 = rotate(normalize(cross(axis, helper)), axis, rng.random_range(0.0..360.0));
    let e2 = cross(axis, e1);
    let wall = rng.random_range(8.0..10.5);
    let c_outer = c_outer(rng);
    let a = rng.random_range(21.0..27.0);
    let heart = Heart {
        centre: [rng.random_range(-20.0..20.0), rng.random_range(-40.0..0.0), rng.random_range(-10.0..30.0)],
        axis,
        e1,
        e2,
        a,
        b: a * rng.random_range(0.85..1.0),
        c: (c_outer - wall).max(20.0),
        wall,
        base_w: -0.35 * c_outer,
        shortening: rng.random_range(0.22..0.32),
        long_shortening: rng.random_range(0.05..0.12),
    };
    let normal = if rng.random_bool(0.5) { axis } else { scale(axis, -1.0) };
    let row_dir = rotate(e1, axis, rng.random_range(0.0..360.0));
    let col_dir = cross(normal, row_dir);
    let offset = add(scale(row_dir, rng.random_range(-offset_mm..offset_mm)), scale(col_dir, rng.random_range(-offset_mm..offset_mm)));
    let w0 = heart.base_w - 0.4 * stack.spacing;
    let (px, rows, cols) = ([stack.pixel; 2], stack.rows, stack.cols);
    let template = Grid { origin: [0.0; 3], row_dir, col_dir, spacing: px, rows, cols };
    let grids = (0..stack.n_slices)
        .map(|k| template.centred_at(add(add(heart.centre, scale(axis, w0 + k as f64 * stack.spacing)), offset), px, rows, cols))
        .collect();
    (heart, normal, grids)
}

fn spec(seed: u64, index: usize, defects: Vec<Defect>) -> Spec {
    let (split, id) = study_place(index);
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
    let n_slices = rng.random_range(8..=14);
    let n_frames = rng.random_range(20..=30);
    let spacing = [8.0, 9.0, 10.0][rng.random_range(0..3)];
    let (mut rows, mut cols) = [(256, 208), (256, 192), (224, 224), (192, 256), (208, 256), (256, 256)][rng.random_range(0..6)];
    let mut ps = [1.25, 1.328125, 1.40625, 1.5, 1.5625][rng.random_range(0..5)];
    if defects.contains(&Defect::LargeImage) {
        (rows, cols, ps) = (512, 512, ps * 0.5);
    }
    let stack = Stack { n_slices, spacing, pixel: ps, rows, cols };
    let (heart, normal, grids) = place_heart(&mut rng, &stack, |_| (n_slices as f64 - 1.9) * spacing / 1.35, 15.0);
    let look = Look {
        blood: rng.random_range(700.0..1000.0),
        muscle: rng.random_range(220.0..320.0),
        tissue: rng.random_range(150.0..200.0),
        air: 5.0,
        noise: rng.random_range(15.0..30.0),
        bias: rng.random_range(0.08..0.2),
        phase: rng.random_range(0.0..6.0),
        gre: None,
    };
    Spec {
        split,
        id,
        n_slices,
        n_frames,
        spacing,
        thickness: spacing - rng.random_range(1.0..3.0),
        rr_ms: rng.random_range(700.0..1000.0),
        field_t: if rng.random_bool(0.7) { 1.5 } else { 3.0 },
        heart,
        look,
        grids,
        normal,
        defects,
        identity: identity(seed, id),
        seed,
        field: None,
        ed_shift: 0,
    }
}

/// A truth mask: rows, columns, classes.
type Mask = (u32, u32, Vec<u8>);

/// One rendered object.
struct OutFile {
    key: String,
    bytes: Vec<u8>,
    mask: Option<Mask>,
}

/// One acquisition to render.
struct Acq {
    series: i32,
    grid: Grid,
    acq_time_s: f64,
    skip_frame: Option<usize>,
}

fn render(spec: &Spec) -> (Vec<OutFile>, StudyTruth) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ ((spec.id as u64) << 32) ^ 0xA5A5);
    let s = spec.n_slices;
    let has = |d: Defect| spec.defects.contains(&d);
    // Interior slices around the middle, handed out to defects in order.
    let mut pool: Vec<usize> = vec![s / 2, s / 2 - 1, s / 2 + 1, s / 2 - 2, s / 2 + 2, s / 2 - 3, s / 2 + 3]
        .into_iter()
        .filter(|k| *k >= 1 && *k + 1 < s)
        .collect();
    pool.dedup();
    let n = spec.normal;
    let mut special: BTreeMap<usize, Grid> = BTreeMap::new();
    // The missing location is mid-ventricular (nearest the cavity's equator), where missing
    // slices hurt least and where acquisitions are most often interrupted.
    let w0 = spec.heart.base_w - 0.4 * spec.spacing;
    let equator = ((-w0 / spec.spacing).round() as usize).clamp(1, s - 2);
    let missing_slice = has(Defect::MissingSlice).then(|| {
        pool.retain(|k| *k != equator);
        equator
    });
    let mut take = || if pool.is_empty() { s / 2 } else { pool.remove(0) };
    let rotated = |k: usize, angle: f64, swap: bool, special: &mut BTreeMap<usize, Grid>| {
        let g = spec.grids[k];
        let (rows, cols) = if swap { (g.cols, g.rows) } else { (g.rows, g.cols) };
        let r = Grid { row_dir: rotate(g.row_dir, n, angle), col_dir: rotate(g.col_dir, n, angle), ..g };
        special.insert(k, r.centred_at(g.centre(), g.spacing, rows, cols));
    };
    if has(Defect::Rotated90) {
        rotated(take(), 90.0, true, &mut special);
        rotated(take(), -90.0, true, &mut special);
    }
    if has(Defect::RotatedArbitrary) {
        rotated(take(), 30.0, false, &mut special);
        rotated(take(), -17.0, false, &mut special);
    }
    if has(Defect::Scaled) {
        let k = take();
        let g = spec.grids[k];
        let f = 1.25;
        let (rows, cols) = ((g.rows as f64 / f).round() as u32, (g.cols as f64 / f).round() as u32);
        special.insert(
            k,
            g.centred_at(g.centre(), [g.spacing[0] * g.rows as f64 / rows as f64, g.spacing[1] * g.cols as f64 / cols as f64], rows, cols),
        );
    }
    if has(Defect::ImageSize) {
        let k = take();
        let g = spec.grids[k];
        special.insert(k, g.recentred(g.spacing, g.rows, g.cols + 32));
    }
    let missing_frame = has(Defect::MissingTimePoint).then(|| (take(), spec.n_frames / 3));
    let repeated = has(Defect::RepeatedSlice).then(&mut take);

    let t0 = 8.0 * 3600.0 + (spec.id % 50) as f64 * 60.0;
    let mut acqs: Vec<Acq> = Vec::new();
    for k in 0..s {
        if Some(k) == missing_slice {
            continue;
        }
        let grid = special.get(&k).copied().unwrap_or(spec.grids[k]);
        let skip_frame = missing_frame.filter(|(mk, _)| *mk == k).map(|(_, f)| f);
        acqs.push(Acq { series: 5 + k as i32, grid, acq_time_s: t0 + k as f64 * 12.0, skip_frame });
    }
    if let Some(k) = repeated {
        let g = spec.grids[k];
        let shifted = Grid { origin: add(g.origin, scale(spec.heart.axis, 0.3)), ..g };
        acqs.push(Acq { series: 100 + k as i32, grid: shifted, acq_time_s: t0 + 600.0, skip_frame: None });
    }
    if has(Defect::RepeatedStack) {
        for k in 0..s {
            acqs.push(Acq { series: 200 + k as i32, grid: spec.grids[k], acq_time_s: t0 + 1800.0 + k as f64 * 12.0, skip_frame: None });
        }
    }
    if has(Defect::NonParallel) {
        let g = spec.grids[s / 2];
        let axis_in_plane = g.row_dir;
        let tilted = Grid { row_dir: g.row_dir, col_dir: rotate(g.col_dir, axis_in_plane, 30.0), ..g };
        acqs.push(Acq {
            series: 300,
            grid: tilted.centred_at(g.centre(), g.spacing, g.rows, g.cols),
            acq_time_s: t0 + 900.0,
            skip_frame: None,
        });
    }

    let t = spec.n_frames;
    let mut files = Vec::new();
    let folder = format!("{}/{}/study", spec.split, spec.id);
    for acq in &acqs {
        let gain = spec.field.as_ref().map(|f| f.map(&acq.grid));
        for f in 0..t {
            if acq.skip_frame == Some(f) {
                continue;
            }
            let phase = spec.phase(f);
            let (px, mask) = spec.heart.render(&acq.grid, phase, &spec.look, gain.as_deref(), &mut rng);
            let attrs = ImageAttrs {
                identity: &spec.identity,
                grid: &acq.grid,
                series_number: acq.series,
                instance_number: f as i32 + 1,
                trigger_time_ms: (f as f64 / t as f64 * spec.rr_ms * 10.0).round() / 10.0,
                cardiac_images: t as u32,
                acquisition_time_s: acq.acq_time_s,
                slice_location: crate::geometry::dot(acq.grid.origin, n),
                slice_thickness: spec.thickness,
                field_strength_t: spec.field_t,
                with_pixels: true,
            };
            let key = format!("{folder}/sax_{}/IM-{:04}-{:04}.dcm", acq.series, acq.series, f + 1);
            files.push(OutFile { key, bytes: dicom::encode(&attrs, &px), mask: Some((acq.grid.rows, acq.grid.cols, mask)) });
        }
    }
    if has(Defect::BrokenFiles) {
        let acq = &acqs[0];
        let gain = spec.field.as_ref().map(|f| f.map(&acq.grid));
        let (px, _) = spec.heart.render(&acq.grid, spec.phase(0), &spec.look, gain.as_deref(), &mut rng);
        let attrs = |with_pixels| ImageAttrs {
            identity: &spec.identity,
            grid: &acq.grid,
            series_number: acq.series,
            instance_number: 9001,
            trigger_time_ms: 0.0,
            cardiac_images: t as u32,
            acquisition_time_s: acq.acq_time_s,
            slice_location: 0.0,
            slice_thickness: spec.thickness,
            field_strength_t: spec.field_t,
            with_pixels,
        };
        let whole = dicom::encode(&attrs(true), &px);
        let name = |n: u32| format!("{folder}/sax_{}/IM-{:04}-{n:04}.dcm", acq.series, acq.series);
        files.push(OutFile { key: name(9001), bytes: whole[..whole.len() * 3 / 5].to_vec(), mask: None });
        files.push(OutFile { key: name(9002), bytes: b"This is a note about the scan, not an image.\n".to_vec(), mask: None });
        files.push(OutFile { key: name(9003), bytes: Vec::new(), mask: None });
        files.push(OutFile { key: name(9004), bytes: dicom::encode(&attrs(false), &[]), mask: None });
    }

    // Truth: LV volume per frame over the clean nominal stack.
    let area = spec.grids[0].pixel_area();
    let vols: Vec<f64> = (0..t)
        .map(|f| {
            let phase = spec.phase(f);
            let lv: usize = spec
                .grids
                .iter()
                .map(|g| {
                    (0..g.rows)
                        .flat_map(|i| (0..g.cols).map(move |j| (i, j)))
                        .filter(|(i, j)| spec.heart.label(g.point(*i as f64, *j as f64), phase) == 1)
                        .count()
                })
                .sum();
            lv as f64 * area * spec.spacing / 1000.0
        })
        .collect();
    let (ed, es) = ed_es(&vols);
    let truth = StudyTruth {
        study_id: spec.id.to_string(),
        split: spec.split.to_string(),
        n_slices: s,
        n_frames: t,
        esv_ml: vols[es],
        edv_ml: vols[ed],
        ed_frame: ed,
        es_frame: es,
        defects: spec.defects.iter().map(|d| d.name()).collect(),
        files: files.len(),
        identity: spec.identity.clone(),
    };
    (files, truth)
}

/// ED = frame of maximum volume (ties → highest frame); ES = minimum (ties → lowest).
pub fn ed_es(vols: &[f64]) -> (usize, usize) {
    let mut ed = 0;
    let mut es = 0;
    for (i, v) in vols.iter().enumerate() {
        if *v >= vols[ed] {
            ed = i;
        }
        if *v < vols[es] {
            es = i;
        }
    }
    (ed, es)
}

fn truth_batch(study_id: &str, files: &[OutFile]) -> Result<RecordBatch, SynthError> {
    let rows: Vec<(&str, &Mask)> = files.iter().filter_map(|f| f.mask.as_ref().map(|m| (f.key.as_str(), m))).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("object_key", DataType::Utf8, false),
        Field::new("study_id", DataType::Utf8, false),
        Field::new("labeller", DataType::Utf8, false),
        Field::new("height", DataType::Int32, false),
        Field::new("width", DataType::Int32, false),
        Field::new("lv_pixels", DataType::Int64, false),
        Field::new("my_pixels", DataType::Int64, false),
        Field::new("mask", DataType::Binary, false),
    ]));
    let counts: Vec<[i64; 4]> = rows.iter().map(|(_, m)| class_counts(&m.2)).collect();
    let count = |c: usize| Arc::new(Int64Array::from_iter_values(counts.iter().map(|n| n[c]))) as ArrayRef;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from(vec![study_id; rows.len()])),
        Arc::new(StringArray::from(vec!["phantom"; rows.len()])),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1.0 as i32))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1.1 as i32))),
        count(1),
        count(2),
        Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.1.2.as_slice()))),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>, SynthError> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    w.write(batch)?;
    Ok(w.into_inner()?)
}

async fn put(out: &StoreLocation, key: &str, bytes: Vec<u8>) -> Result<u64, SynthError> {
    let path = out.child(key);
    let n = bytes.len() as u64;
    out.store.put(&path, PutPayload::from(bytes)).await.map_err(|source| SynthError::Write { object: out.object_url(&path), source })?;
    Ok(n)
}

/// Generates the studies and writes them under `out`, advancing `progress` by one per study.
pub async fn run(out: &StoreLocation, cfg: &SynthConfig, progress: &dyn Progress) -> Result<SynthReport, SynthError> {
    match cfg.domain {
        Domain::Clinical if cfg.studies > 1140 => return Err(SynthError::TooMany(cfg.studies)),
        Domain::SevenTesla if cfg.studies > 999 => return Err(SynthError::TooManyVolunteers(cfg.studies)),
        _ => {}
    }
    let mut per_study: Vec<Vec<Defect>> = vec![Vec::new(); cfg.studies];
    if cfg.studies > 0 {
        for (j, d) in cfg.defects.iter().enumerate() {
            per_study[j % cfg.studies].push(*d);
        }
    }
    progress.start(cfg.studies as u64, "studies");
    let (seed, domain) = (cfg.seed, cfg.domain);
    let mut rendered = futures::stream::iter(per_study.into_iter().enumerate())
        .map(|(i, defects)| {
            tokio::task::spawn_blocking(move || {
                let sp = match domain {
                    Domain::Clinical => spec(seed, i, defects),
                    Domain::SevenTesla => seven_tesla::spec(seed, i, defects),
                };
                let (files, truth) = render(&sp);
                let table = truth_batch(&truth.study_id, &files).and_then(|b| parquet_bytes(&b));
                (files, truth, table)
            })
        })
        .buffered(2);
    let mut report = SynthReport { domain, studies: Vec::new(), files: 0, bytes: 0 };
    while let Some(r) = rendered.next().await {
        let (files, truth, table) = r?;
        let table = table?;
        report.bytes += put(out, &format!("truth/{}.parquet", truth.study_id), table).await?;
        let bytes: Vec<u64> = futures::stream::iter(files)
            .map(|f| async move { put(out, &f.key, f.bytes).await })
            .buffer_unordered(cfg.write_concurrency.max(1))
            .try_collect()
            .await?;
        report.files += bytes.len();
        report.bytes += bytes.iter().sum::<u64>();
        progress.advance(1, &truth.study_id);
        report.studies.push(truth);
    }
    let csv = |split: &str| {
        let mut s = String::from("Id,Systole,Diastole\n");
        for t in report.studies.iter().filter(|t| t.split == split) {
            s.push_str(&format!("{},{:.4},{:.4}\n", t.study_id, t.esv_ml, t.edv_ml));
        }
        s
    };
    let mut solution = String::from("Id,Volume,Usage\n");
    for t in report.studies.iter().filter(|t| t.split == "test") {
        solution.push_str(&format!("{}_Diastole,{:.4},Private\n{}_Systole,{:.4},Private\n", t.study_id, t.edv_ml, t.study_id, t.esv_ml));
    }
    put(out, "train.csv", csv("train").into_bytes()).await?;
    put(out, "validate.csv", csv("validate").into_bytes()).await?;
    put(out, "solution.csv", solution.into_bytes()).await?;
    put(out, "synth.json", serde_json::to_vec_pretty(&report).expect("report serialises")).await?;
    debug_assert!(
        domain != Domain::Clinical
            || report.studies.iter().all(|t| kaggle_split(t.study_id.parse().unwrap_or(0)) == Some(t.split.as_str()))
    );
    Ok(report)
}
