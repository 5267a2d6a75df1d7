//! The registry of cinestream's tables: the spec of every Delta table a data prefix holds (name,
//! schema, blob and statistics columns, writer lanes, commit order), the documented tables with
//! their schema files, and the rows of `sources`, the table whose commit publishes a run.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;

use super::schemas;
use super::spec::{Lanes, TableSpec};

/// Version of the table layouts; bumped on any schema change.
pub const SCHEMA_VERSION: u32 = 4;

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
    schema_fn: schemas::frames,
    blobs: &["pixels"],
    stats: STATS_COLUMNS,
    lanes: Lanes::Encoders,
    study_key: "source_study_id",
    about: "one curated image (pixels: u16 LE)",
    example: "SELECT split, count(*) FROM frames GROUP BY split",
};

pub const LABELS: TableSpec = TableSpec {
    name: "labels",
    schema_fn: schemas::labels,
    blobs: &["mask"],
    stats: STATS_COLUMNS,
    lanes: Lanes::Encoders,
    study_key: "study_id",
    about: "one mask of one frame by one labeller (lv/my/rv_pixels, mask)",
    example: "SELECT labeller, sum(lv_pixels) FROM labels GROUP BY labeller",
};

pub const CURATION_LOG: TableSpec = TableSpec {
    name: "curation_log",
    schema_fn: schemas::curation_log,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study_id",
    about: "one curation finding",
    example: "SELECT problem, count(*) FROM curation_log GROUP BY problem",
};

pub const STUDIES: TableSpec = TableSpec {
    name: "studies",
    schema_fn: schemas::studies,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "source_study_id",
    about: "one study: geometry, scale factor, truth volumes",
    example: "SELECT study_id, n_slices, truth_edv_ml FROM studies ORDER BY study_id",
};

pub const SOURCES: TableSpec = TableSpec {
    name: "sources",
    schema_fn: schemas::sources,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "source_study_id",
    about: "one ingested source study: fingerprints, run",
    example: "SELECT run_id, count(*) FROM sources GROUP BY run_id",
};

pub const LABEL_QC: TableSpec = TableSpec {
    name: "label_qc",
    schema_fn: schemas::label_qc,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study_id",
    about: "one labelled study × labeller: automatic quality control, ED/ES, volumes, EF",
    example: "SELECT labeller, passed, count(*) FROM label_qc GROUP BY labeller, passed",
};

pub const STUDY_SUBSETS: TableSpec = TableSpec {
    name: "study_subsets",
    schema_fn: schemas::study_subsets,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study",
    about: "one training image of one subset of a transfer-learning study",
    example: "SELECT study, subset, count(*) FROM study_subsets GROUP BY study, subset",
};

pub const STUDY_LOG: TableSpec = TableSpec {
    name: "study_log",
    schema_fn: schemas::study_log,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study",
    about: "one validation point of one run of a transfer-learning study",
    example: "SELECT run, max(dice_lv) FROM study_log GROUP BY run",
};

pub const STUDY_RUNS: TableSpec = TableSpec {
    name: "study_runs",
    schema_fn: schemas::study_runs,
    blobs: &[],
    stats: STATS_COLUMNS,
    lanes: Lanes::One,
    study_key: "study",
    about: "one run of a transfer-learning study: validation and test Dice, EF and volume errors",
    example: "SELECT run, final_dice_lv, test_dice_lv FROM study_runs ORDER BY run",
};

/// The tables `cinestream study` writes, in commit order (then `sources`, which publishes).
pub const STUDY: [&TableSpec; 3] = [&STUDY_SUBSETS, &STUDY_LOG, &STUDY_RUNS];

/// The tables ingest writes, in the order a run commits them: `studies` after the rows that
/// describe a study, and `sources` — the record of which source studies are in, and the table
/// that publishes a run — last.
pub const INGEST: [&TableSpec; 5] = [&FRAMES, &LABELS, &CURATION_LOG, &STUDIES, &SOURCES];

/// The tables `cinestream label` writes, in commit order (then `sources`, which publishes).
pub const LABEL: [&TableSpec; 2] = [&LABELS, &LABEL_QC];

/// Every table cinestream writes under a data prefix. Readers register these (empty when
/// absent) and any other Delta table they find there.
pub const REGISTRY: [&TableSpec; 9] =
    [&FRAMES, &LABELS, &CURATION_LOG, &STUDIES, &SOURCES, &LABEL_QC, &STUDY_SUBSETS, &STUDY_LOG, &STUDY_RUNS];

/// The names of [`INGEST`]'s tables, in commit order.
pub const TABLES: [&str; 5] = [FRAMES.name, LABELS.name, CURATION_LOG.name, STUDIES.name, SOURCES.name];

/// A registered table by name.
pub fn spec(table: &str) -> Option<&'static TableSpec> {
    REGISTRY.iter().copied().find(|s| s.name == table)
}

/// Schema of a registered table by name.
pub fn schema(table: &str) -> Option<SchemaRef> {
    spec(table).map(TableSpec::schema)
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

/// Every table with a schema file in `schemas/`: ingest's and labelling's tables, the training
/// log, the evaluation's tables, and the transfer-learning study's.
pub const DOCUMENTED: [&str; 12] = [
    "frames",
    "labels",
    "studies",
    "curation_log",
    "sources",
    "label_qc",
    "training_log",
    "evaluation_images",
    "evaluation_studies",
    "study_log",
    "study_subsets",
    "study_runs",
];

/// The schema of any documented table.
pub fn documented_schema(table: &str) -> Option<SchemaRef> {
    schema(table).or_else(|| match table {
        "training_log" => Some(schemas::training_log()),
        "evaluation_images" => Some(schemas::evaluation_images()),
        "evaluation_studies" => Some(schemas::evaluation_studies()),
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
