//! The tables ingest writes — their Arrow schemas (with a description per column, mirrored in
//! `schemas/<table>.json`) and builders from curated studies to record batches.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, BooleanArray, Float32Array, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::label_rows::{FrameGrid, LabelRow, labels_batch};
use super::spec::{Lanes, TableSpec};
use crate::curate::CuratedStudy;
use crate::curate::findings::Finding;

/// Version of the table layouts; bumped on any schema change.
pub const SCHEMA_VERSION: u32 = 3;

/// Version of what the rows hold for the same input, part of every study's fingerprint: bumped
/// when re-ingesting the same input would write other values into existing columns, not when
/// columns are added that older rows leave null (schema 3 added `studies`' geometry).
pub const ROWS_VERSION: u32 = 2;

/// The table whose commit publishes a run: committed last by every run that committed anything
/// ([`super::publish`]).
pub const PUBLISHING_TABLE: &str = SOURCES.name;

/// Columns with Delta data-skipping statistics (those a table has); never the blobs.
pub const STATS_COLUMNS: &[&str] = &["study_id", "source_study_id", "split", "slice_index", "frame_index", "labeller", "problem"];

/// Columns holding image or mask bytes.
pub const BLOB_COLUMNS: &[&str] = &["pixels", "mask"];

pub const FRAMES: TableSpec = TableSpec {
    name: "frames",
    schema_fn: frames_schema,
    blobs: &["pixels"],
    stats: STATS_COLUMNS,
    lanes: Lanes::Encoders,
    study_key: "source_study_id",
    about: "one curated image (pixels: u16 LE)",
    example: "SELECT split, count(*) FROM frames GROUP BY split",
};

pub const LABELS: TableSpec = TableSpec {
    name: "labels",
    schema_fn: labels_schema,
    blobs: &["mask"],
    stats: STATS_COLUMNS,
    lanes: Lanes::Encoders,
    study_key: "study_id",
    about: "one mask of one frame by one labeller (lv/my/rv_pixels, mask)",
    example: "SELECT labeller, sum(lv_pixels) FROM labels GROUP BY labeller",
};

pub const CURATION_LOG: TableSpec = TableSpec {
    name: "curation_log",
    schema_fn: curation_log_schema,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study_id",
    about: "one curation finding",
    example: "SELECT problem, count(*) FROM curation_log GROUP BY problem",
};

pub const STUDIES: TableSpec = TableSpec {
    name: "studies",
    schema_fn: studies_schema,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "source_study_id",
    about: "one study: geometry, scale factor, truth volumes",
    example: "SELECT study_id, n_slices, truth_edv_ml FROM studies ORDER BY study_id",
};

pub const SOURCES: TableSpec = TableSpec {
    name: "sources",
    schema_fn: sources_schema,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "source_study_id",
    about: "one ingested source study: fingerprints, run",
    example: "SELECT run_id, count(*) FROM sources GROUP BY run_id",
};

pub const LABEL_QC: TableSpec = TableSpec {
    name: "label_qc",
    schema_fn: label_qc_schema,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study_id",
    about: "one labelled study × labeller: automatic quality control, ED/ES, volumes, EF",
    example: "SELECT labeller, passed, count(*) FROM label_qc GROUP BY labeller, passed",
};

/// The tables ingest writes, in the order a run commits them: `studies` after the rows that
/// describe a study, and `sources` — the record of which source studies are in, and the table
/// that publishes a run — last.
pub const INGEST: [&TableSpec; 5] = [&FRAMES, &LABELS, &CURATION_LOG, &STUDIES, &SOURCES];

/// The tables `cinestream label` writes, in commit order (then `sources`, which publishes).
pub const LABEL: [&TableSpec; 2] = [&LABELS, &LABEL_QC];

/// Every table cinestream writes under a data prefix. Readers register these (empty when
/// absent) and any other Delta table they find there.
pub const REGISTRY: [&TableSpec; 6] = [&FRAMES, &LABELS, &CURATION_LOG, &STUDIES, &SOURCES, &LABEL_QC];

/// The names of [`INGEST`]'s tables, in commit order.
pub const TABLES: [&str; 5] = [FRAMES.name, LABELS.name, CURATION_LOG.name, STUDIES.name, SOURCES.name];

/// A registered table by name.
pub fn spec(table: &str) -> Option<&'static TableSpec> {
    REGISTRY.iter().copied().find(|s| s.name == table)
}

/// A column with its description (the `description` metadata every table schema carries).
pub(crate) fn f(name: &str, dt: DataType, nullable: bool, description: &str) -> Field {
    Field::new(name, dt, nullable).with_metadata([("description".to_string(), description.to_string())].into())
}

const STUDY_ID: &str = "Pseudonymous study id: the Kaggle id, or `s` + a keyed hash of StudyInstanceUID; `_a`, `_b`, … when a repeated complete stack was split";
const SPLIT: &str = "train / validate / test (Kaggle ids 1–500 / 501–700 / 701–1140, or the split folder); null when unknown";

fn geometry_fields(out: &mut Vec<Field>) {
    out.push(f("height", DataType::Int32, false, "Image rows after curation"));
    out.push(f("width", DataType::Int32, false, "Image columns after curation"));
    out.push(f("pixel_spacing_row_mm", DataType::Float64, false, "Distance between rows of the curated grid (mm)"));
    out.push(f("pixel_spacing_col_mm", DataType::Float64, false, "Distance between columns of the curated grid (mm)"));
    out.push(f("slice_spacing_mm", DataType::Float64, false, "Empirical slice spacing: mode of the rounded differences of slice positions (mm), not SliceThickness"));
}

/// Schema of a registered table by name.
pub fn schema(table: &str) -> Option<SchemaRef> {
    spec(table).map(TableSpec::schema)
}

fn study_id() -> Field {
    f("study_id", DataType::Utf8, false, STUDY_ID)
}

fn frames_schema() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("source_study_id", DataType::Utf8, false, "Id of the input study this one came from (differs from study_id for split stacks)"));
    c.push(f("split", DataType::Utf8, true, SPLIT));
    c.push(f("slice_index", DataType::Int32, false, "Slice position in the stack, 0 = most apical"));
    c.push(f("frame_index", DataType::Int32, false, "Time point in the cardiac cycle, ordered by TriggerTime, 0-based"));
    c.push(f("slice_location_mm", DataType::Float64, false, "Position of the slice plane along the LV axis, increasing towards the apex (mm)"));
    c.push(f("trigger_time_ms", DataType::Float64, true, "TriggerTime of the source image (ms after the R wave)"));
    geometry_fields(&mut c);
    c.push(f("slice_thickness_mm", DataType::Float64, true, "SliceThickness (mm), for reference only"));
    c.push(f("field_strength_t", DataType::Float64, true, "MagneticFieldStrength (T)"));
    c.push(f("source_key", DataType::Utf8, false, "Object key of the source image relative to the input prefix (for a filled frame: the image it was copied from)"));
    c.push(f("fill", DataType::Utf8, true, "null for an acquired image; `previous_frame` or `previous_slice` when the image was copied to fill a missing time point or slice"));
    c.push(f("resampled", DataType::Boolean, false, "Whether the image was resampled (rotation, pixel spacing, size, down-scaling)"));
    c.push(f("pixels", DataType::Binary, false, "Image: height × width unsigned 16-bit little-endian values, row-major, as stored (no rescale applied)"));
    Arc::new(Schema::new(c))
}

fn labels_schema() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("split", DataType::Utf8, true, SPLIT));
    c.push(f("slice_index", DataType::Int32, false, "Slice position in the stack, 0 = most apical"));
    c.push(f("frame_index", DataType::Int32, false, "Time point in the cardiac cycle, 0-based"));
    c.push(f("labeller", DataType::Utf8, false, "Who made the mask: a model name, `manual`, or `phantom`"));
    geometry_fields(&mut c);
    c.push(f("lv_pixels", DataType::Int64, false, "Pixels labelled LV (1)"));
    c.push(f("my_pixels", DataType::Int64, false, "Pixels labelled MY (2)"));
    c.push(f("rv_pixels", DataType::Int64, false, "Pixels labelled RV (3)"));
    c.push(f("source_key", DataType::Utf8, false, "Object key of the source image the mask belongs to"));
    c.push(f("fill", DataType::Utf8, true, "null, or how the frame was filled (`previous_frame`, `previous_slice`)"));
    c.push(f("mask", DataType::Binary, false, "Mask: height × width u8, row-major; 0 background, 1 LV, 2 MY, 3 RV"));
    Arc::new(Schema::new(c))
}

fn studies_schema() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("source_study_id", DataType::Utf8, false, "Id of the input study this one came from"));
    c.push(f("split", DataType::Utf8, true, SPLIT));
    c.push(f("n_slices", DataType::Int32, false, "Slices after curation"));
    c.push(f("n_frames", DataType::Int32, false, "Frames per slice: mode of CardiacNumberOfImages"));
    geometry_fields(&mut c);
    c.push(f("slice_thickness_mm", DataType::Float64, true, "Mode of SliceThickness (mm)"));
    c.push(f("scale_factor", DataType::Float64, false, "Curated pixel spacing ÷ native pixel spacing (1 unless images over 256 px were scaled down)"));
    c.push(f("field_strength_t", DataType::Float64, true, "MagneticFieldStrength (T)"));
    c.push(f("sex", DataType::Utf8, true, "PatientSex (M/F/O)"));
    c.push(f("age_years", DataType::Float32, true, "PatientAge in years"));
    c.push(f("truth_esv_ml", DataType::Float64, true, "True end-systolic volume from the truth CSVs (mL)"));
    c.push(f("truth_edv_ml", DataType::Float64, true, "True end-diastolic volume from the truth CSVs (mL)"));
    c.push(f("source_files", DataType::Int32, false, "Source files that became frames"));
    study_geometry_fields(&mut c);
    Arc::new(Schema::new(c))
}

/// The curated grid in patient coordinates (DICOM LPS, mm), so a volume can be rebuilt from the
/// tables alone: the centre of pixel (row r, column c) of slice k is
/// `origin + c·pixel_spacing_col_mm·orientation_row + r·pixel_spacing_row_mm·orientation_col +
/// (slice_location_mm[0] − slice_location_mm[k])·slice_direction`, which is
/// `k·slice_spacing_mm·slice_direction` for a regular stack. Null for studies ingested before
/// the columns existed (`cinestream upgrade` adds them to older tables).
pub const STUDY_GEOMETRY: [(&str, &str); 12] = [
    ("origin_x_mm", "Centre of pixel (row 0, column 0) of slice 0 (the most apical), patient x (LPS: towards the patient's left), mm"),
    ("origin_y_mm", "Same point, patient y (LPS: towards the back), mm"),
    ("origin_z_mm", "Same point, patient z (LPS: towards the head), mm"),
    ("orientation_row_x", "Unit vector along an image row (increasing column index), x: ImageOrientationPatient[0] of the curated grid"),
    ("orientation_row_y", "Unit vector along an image row, y: ImageOrientationPatient[1]"),
    ("orientation_row_z", "Unit vector along an image row, z: ImageOrientationPatient[2]"),
    ("orientation_col_x", "Unit vector down an image column (increasing row index), x: ImageOrientationPatient[3] of the curated grid"),
    ("orientation_col_y", "Unit vector down an image column, y: ImageOrientationPatient[4]"),
    ("orientation_col_z", "Unit vector down an image column, z: ImageOrientationPatient[5]"),
    ("slice_direction_x", "Unit vector from slice 0 towards slice 1 (apex → base, perpendicular to the image planes), x"),
    ("slice_direction_y", "Unit vector from slice 0 towards slice 1, y"),
    ("slice_direction_z", "Unit vector from slice 0 towards slice 1, z"),
];

fn study_geometry_fields(out: &mut Vec<Field>) {
    out.extend(STUDY_GEOMETRY.iter().map(|(name, about)| f(name, DataType::Float64, true, about)));
}

fn curation_log_schema() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("problem", DataType::Utf8, false, "What was found: unreadable_file, non_parallel_plane, rotation, repeated_slice_location, repeated_stack, missing_slice, slice_spacing_outlier, slice_spacing_interspersed, missing_time_point, extra_time_points, pixel_spacing, image_size, image_size_gt_256, field_of_view, unusable_study, label_mismatch"));
    c.push(f("resolution", DataType::Utf8, false, "What was done (quarantined, slice removed, rotated, study split, previous slice copied, …)"));
    c.push(f("object_key", DataType::Utf8, true, "The object the finding is about, relative to the input prefix"));
    c.push(f("detail", DataType::Utf8, false, "Specifics: positions, angles, sizes, reasons"));
    c.push(f("excluded_files", DataType::Int32, false, "Source files this finding removed from the output (quarantined or excluded)"));
    Arc::new(Schema::new(c))
}

fn label_qc_schema() -> SchemaRef {
    let mut c = vec![study_id()];
    c.push(f("labeller", DataType::Utf8, false, "The labeller whose masks were checked (a `cinestream label --labeller` name)"));
    c.push(f("passed", DataType::Boolean, false, "Every check passed"));
    c.push(f("failures", DataType::Utf8, false, "The failed checks, comma-separated (empty when passed): class_missing, too_few_slices, slice_gap, lv_not_enclosed, implausible_volumes"));
    c.push(f("ed_frame", DataType::Int32, true, "End-diastolic frame: maximum LV volume, ties → highest frame (null: no frames)"));
    c.push(f("es_frame", DataType::Int32, true, "End-systolic frame: minimum LV volume, ties → lowest frame"));
    c.push(f("edv_ml", DataType::Float64, false, "LV volume at ED (mL): LV pixels × pixel area × slice spacing / 1000"));
    c.push(f("esv_ml", DataType::Float64, false, "LV volume at ES (mL)"));
    c.push(f("ef_pct", DataType::Float64, true, "Ejection fraction 100 × (EDV − ESV) / EDV (%); null when EDV is 0"));
    c.push(f("min_class_pixels", DataType::Int64, false, "Fewest pixels of a class the model labels, at ED or ES (check: ≥ min_class_pixels)"));
    c.push(f("slices", DataType::Int32, false, "Slices of the study that were labelled"));
    c.push(f("slices_lv_my_ed", DataType::Int32, false, "Slices with both LV and MY at ED"));
    c.push(f("slices_lv_my_es", DataType::Int32, false, "Slices with both LV and MY at ES"));
    c.push(f("lv_enclosed", DataType::Float64, true, "Share of the LV's boundary pixels (4-neighbourhood) that touch MY, at ED and ES; null without LV"));
    c.push(f("model_sha256", DataType::Utf8, false, "SHA-256 of the model file that made the masks"));
    c.push(f("run_id", DataType::Utf8, false, "The labelling run that wrote it"));
    Arc::new(Schema::new(c))
}

fn sources_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("source_study_id", DataType::Utf8, false, "Id of the input study (Kaggle id, or `s` + a keyed hash of StudyInstanceUID); one row per ingested source study"),
        f("fingerprint", DataType::Utf8, false, "SHA-256 over the study's source objects (relative key and SHA-256 of each), its truth volumes, labeller and curation settings; empty for studies upgraded from the manifest format"),
        f("listing_fingerprint", DataType::Utf8, false, "SHA-256 over the listing of the study's objects (key, size, ETag): an unchanged listing is recognised without reading the objects"),
        f("image_files", DataType::Int32, false, "Image files of the study in the input"),
        f("study_ids", DataType::Utf8, false, "The study_id values written for it, comma-separated (several when a repeated stack was split; empty when nothing was usable)"),
        f("run_id", DataType::Utf8, false, "The ingest run that wrote it"),
        f("ingested_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false, "When that run committed (UTC)"),
    ]))
}

/// One `sources` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub source_study_id: String,
    pub fingerprint: String,
    pub listing_fingerprint: String,
    pub image_files: usize,
    pub study_ids: Vec<String>,
}

/// Rows of `sources` for one run.
pub fn sources_batch(rows: &[SourceRow], run_id: &str, at: chrono::DateTime<chrono::Utc>) -> RecordBatch {
    let n = rows.len();
    batch(
        &SOURCES,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.source_study_id.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.fingerprint.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.listing_fingerprint.as_str()))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.image_files as i32))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.study_ids.join(",")))),
            Arc::new(StringArray::from(vec![run_id; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n]).with_timezone("UTC")),
        ],
    )
}

fn batch(table: &TableSpec, cols: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema(), cols).expect("columns match the schema")
}

/// Truth volumes of a study (mL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub esv_ml: f64,
    pub edv_ml: f64,
}

/// Rows of one study for each table.
pub struct StudyBatches {
    pub frames: RecordBatch,
    pub labels: Option<RecordBatch>,
    pub studies: RecordBatch,
}

/// Builds the rows of one curated study.
pub fn study_batches(s: &CuratedStudy, truth: Option<Truth>, labeller: &str) -> StudyBatches {
    let g = FrameGrid { height: s.grid.rows as i32, width: s.grid.cols as i32, pixel_spacing_row_mm: s.grid.spacing[0], pixel_spacing_col_mm: s.grid.spacing[1], slice_spacing_mm: s.slice_spacing_mm };
    let frames: Vec<(usize, usize, f64, &crate::curate::CuratedFrame)> = s
        .slices
        .iter()
        .enumerate()
        .flat_map(|(k, sl)| sl.frames.iter().enumerate().map(move |(t, fr)| (k, t, sl.position_mm, fr)))
        .collect();
    let n = frames.len();
    let split = |n: usize| Arc::new(StringArray::from(vec![s.split.as_deref(); n])) as ArrayRef;

    let mut pixels = BinaryBuilder::with_capacity(n, n * g.pixels() * 2);
    for (_, _, _, fr) in &frames {
        pixels.append_value(pixel_bytes(&fr.pixels));
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![s.study_id.as_str(); n])),
        Arc::new(StringArray::from(vec![s.source_study_id.as_str(); n])),
        split(n),
        Arc::new(Int32Array::from_iter_values(frames.iter().map(|x| x.0 as i32))),
        Arc::new(Int32Array::from_iter_values(frames.iter().map(|x| x.1 as i32))),
        Arc::new(Float64Array::from_iter_values(frames.iter().map(|x| x.2))),
        Arc::new(Float64Array::from_iter(frames.iter().map(|x| x.3.trigger_time_ms))),
    ];
    cols.extend(g.columns(n));
    cols.extend([
        Arc::new(Float64Array::from(vec![s.slice_thickness_mm; n])) as ArrayRef,
        Arc::new(Float64Array::from(vec![s.field_strength_t; n])),
        Arc::new(StringArray::from_iter_values(frames.iter().map(|x| x.3.source_key.as_str()))),
        Arc::new(StringArray::from_iter(frames.iter().map(|x| x.3.fill.map(|f| f.as_str())))),
        Arc::new(BooleanArray::from_iter(frames.iter().map(|x| Some(x.3.resampled)))),
        Arc::new(pixels.finish()),
    ]);
    let frames_batch = batch(&FRAMES, cols);

    let label_rows: Vec<LabelRow> = frames
        .iter()
        .filter_map(|(k, t, _, fr)| {
            let mask = fr.mask.as_deref()?.as_slice();
            Some(LabelRow {
                study_id: &s.study_id,
                split: s.split.as_deref(),
                slice_index: *k as i32,
                frame_index: *t as i32,
                labeller,
                grid: g,
                source_key: &fr.source_key,
                fill: fr.fill.map(|f| f.as_str()),
                mask,
            })
        })
        .collect();
    let labels = (!label_rows.is_empty()).then(|| labels_batch(&label_rows));

    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![s.study_id.as_str()])),
        Arc::new(StringArray::from(vec![s.source_study_id.as_str()])),
        split(1),
        Arc::new(Int32Array::from(vec![s.slices.len() as i32])),
        Arc::new(Int32Array::from(vec![s.n_frames as i32])),
    ];
    cols.extend(g.columns(1));
    cols.extend([
        Arc::new(Float64Array::from(vec![s.slice_thickness_mm])) as ArrayRef,
        Arc::new(Float64Array::from(vec![s.scale_factor])),
        Arc::new(Float64Array::from(vec![s.field_strength_t])),
        Arc::new(StringArray::from(vec![s.sex.as_deref()])),
        Arc::new(Float32Array::from(vec![s.age_years])),
        Arc::new(Float64Array::from(vec![truth.map(|t| t.esv_ml)])),
        Arc::new(Float64Array::from(vec![truth.map(|t| t.edv_ml)])),
        Arc::new(Int32Array::from(vec![s.source_files as i32])),
    ]);
    let toward_base = crate::geometry::scale(s.axis, -1.0);
    cols.extend(s.grid.origin.iter().chain(&s.grid.row_dir).chain(&s.grid.col_dir).chain(&toward_base).map(|v| Arc::new(Float64Array::from(vec![*v])) as ArrayRef));
    StudyBatches { frames: frames_batch, labels, studies: batch(&STUDIES, cols) }
}

/// Rows of `curation_log`.
pub fn findings_batch(findings: &[Finding]) -> RecordBatch {
    batch(
        &CURATION_LOG,
        vec![
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.study_id.as_str()))),
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.problem.as_str()))),
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.resolution.as_str()))),
            Arc::new(StringArray::from_iter(findings.iter().map(|f| f.object_key.as_deref()))),
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.detail.as_str()))),
            Arc::new(Int32Array::from_iter_values(findings.iter().map(|f| f.excluded_files as i32))),
        ],
    )
}

/// Every table with a schema file in `schemas/`: ingest's and labelling's tables, the training
/// log, and the evaluation's tables.
pub const DOCUMENTED: [&str; 9] = ["frames", "labels", "studies", "curation_log", "sources", "label_qc", "training_log", "evaluation_images", "evaluation_studies"];

/// The schema of any documented table.
pub fn documented_schema(table: &str) -> Option<SchemaRef> {
    schema(table).or_else(|| match table {
        "training_log" => Some(crate::train::log::schema()),
        "evaluation_images" => Some(crate::evaluate::tables::images_schema()),
        "evaluation_studies" => Some(crate::evaluate::tables::studies_schema()),
        _ => None,
    })
}

/// A documented table's schema as the JSON kept in `schemas/`.
pub fn schema_json(table: &str) -> Option<serde_json::Value> {
    let s = documented_schema(table)?;
    let columns: Vec<serde_json::Value> = s
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "nullable": f.is_nullable(),
                "description": f.metadata().get("description").cloned().unwrap_or_default(),
            })
        })
        .collect();
    Some(serde_json::json!({ "table": table, "schema_version": SCHEMA_VERSION, "columns": columns }))
}

/// The `frames.pixels` encoding of an image: u16 little-endian ([`pixel_values`] reads it). On
/// little-endian machines that is the image's memory as it is (no per-pixel work: a per-pixel
/// `extend_from_slice` cost 10% of an ingest in the dev profile, where it was not inlined).
pub fn pixel_bytes(pixels: &[u16]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(pixels))
    } else {
        std::borrow::Cow::Owned(pixels.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// The values of a `frames.pixels` cell: little-endian u16, row-major (as `frames` writes them).
pub fn pixel_values(pixels: &[u8]) -> impl Iterator<Item = u16> + '_ {
    pixel_vec(pixels).into_iter()
}

/// [`pixel_values`] as a vector: on little-endian machines one copy of the bytes (a cell's
/// bytes need not be aligned for u16), not a decode per pixel, which the labelling profile
/// showed at 10% of its CPU time in the dev build.
pub fn pixel_vec(pixels: &[u8]) -> Vec<u16> {
    let even = &pixels[..pixels.len() & !1];
    if cfg!(target_endian = "little") { bytemuck::pod_collect_to_vec(even) } else { even.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_little_endian_u16_and_read_back() {
        let px = [0u16, 1, 0x1234, u16::MAX];
        assert_eq!(&*pixel_bytes(&px), &[0, 0, 1, 0, 0x34, 0x12, 0xff, 0xff]);
        assert_eq!(pixel_values(&pixel_bytes(&px)).collect::<Vec<_>>(), px);
        // An unaligned cell (Arrow packs binary values back to back) and a stray odd byte.
        let mut odd = vec![9u8];
        odd.extend_from_slice(&pixel_bytes(&px));
        odd.push(7);
        assert_eq!(pixel_vec(&odd[1..]), px);
    }
}
