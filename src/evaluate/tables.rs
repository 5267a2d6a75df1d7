//! The tables `cinestream evaluate` writes (plain Parquet files in the output folder, one schema
//! file each in `schemas/`): `evaluation_images` (per image Dice and volume differences, written
//! as the pairs stream in) and `evaluation_studies` (per study volumes, EF and their errors).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use object_store::buffered::BufWriter;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::EvaluateError;
use super::agreement::StudyRow;
use super::dice::Scored;
use crate::shard::tables::f;
use crate::store::StoreLocation;

const STUDY_ID: &str = "Pseudonymous study id (as in `studies`)";

/// `evaluation_images`: one row per image both labellers masked.
pub fn images_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("study_id", DataType::Utf8, false, STUDY_ID),
        f(
            "slice_index",
            DataType::Int32,
            false,
            "Slice position in the stack, 0 = most apical",
        ),
        f(
            "frame_index",
            DataType::Int32,
            false,
            "Time point in the cardiac cycle, 0-based",
        ),
        f(
            "slice_position",
            DataType::Float64,
            false,
            "Relative slice position: 0 the most apical slice, 1 the most basal",
        ),
        f("labeller", DataType::Utf8, false, "The labeller evaluated"),
        f(
            "reference",
            DataType::Utf8,
            false,
            "The labeller it is compared with",
        ),
        f(
            "dice_lv",
            DataType::Float64,
            false,
            "Dice of LV (class 1); 1 when both masks have no LV",
        ),
        f(
            "dice_my",
            DataType::Float64,
            false,
            "Dice of MY (class 2); 1 when both masks have no MY",
        ),
        f(
            "lv_pixels",
            DataType::Int64,
            false,
            "LV pixels of the evaluated mask",
        ),
        f(
            "reference_lv_pixels",
            DataType::Int64,
            false,
            "LV pixels of the reference mask",
        ),
        f(
            "my_pixels",
            DataType::Int64,
            false,
            "MY pixels of the evaluated mask",
        ),
        f(
            "reference_my_pixels",
            DataType::Int64,
            false,
            "MY pixels of the reference mask",
        ),
        f(
            "lv_diff_ml",
            DataType::Float64,
            false,
            "(LV pixels − reference LV pixels) × pixel area × slice spacing / 1000 (mL)",
        ),
        f(
            "my_diff_ml",
            DataType::Float64,
            false,
            "(MY pixels − reference MY pixels) × pixel area × slice spacing / 1000 (mL)",
        ),
    ]))
}

/// `evaluation_studies`: one row per study evaluated.
pub fn studies_schema() -> SchemaRef {
    let ml = |n: &str, d: &str| f(n, DataType::Float64, true, d);
    Arc::new(Schema::new(vec![
        f("study_id", DataType::Utf8, false, STUDY_ID),
        f(
            "split",
            DataType::Utf8,
            true,
            "train / validate / test, as in `studies`",
        ),
        f("labeller", DataType::Utf8, false, "The labeller evaluated"),
        f(
            "reference",
            DataType::Utf8,
            false,
            "The labeller it is compared with, or `truth` (the `truth` view's volumes)",
        ),
        f(
            "images",
            DataType::Int64,
            false,
            "Images both labellers masked (0 against the truth)",
        ),
        ml(
            "dice_lv_mean",
            "Mean per-image Dice of LV; null without images",
        ),
        ml(
            "dice_my_mean",
            "Mean per-image Dice of MY; null without images",
        ),
        ml(
            "edv_ml",
            "The labeller's end-diastolic volume (mL, `volumes`); null when it gave none",
        ),
        ml("esv_ml", "The labeller's end-systolic volume (mL)"),
        ml(
            "ef_pct",
            "The labeller's ejection fraction, 100 × (EDV − ESV) / EDV; null when EDV is 0 or missing",
        ),
        f(
            "ed_frame",
            DataType::Int64,
            true,
            "The labeller's ED frame (maximum LV volume, ties → highest frame)",
        ),
        f(
            "es_frame",
            DataType::Int64,
            true,
            "The labeller's ES frame (minimum LV volume, ties → lowest frame)",
        ),
        ml("reference_edv_ml", "The reference's EDV (mL)"),
        ml("reference_esv_ml", "The reference's ESV (mL)"),
        ml("reference_ef_pct", "The reference's EF (%)"),
        f(
            "reference_ed_frame",
            DataType::Int64,
            true,
            "The reference labeller's ED frame; null against the truth",
        ),
        f(
            "reference_es_frame",
            DataType::Int64,
            true,
            "The reference labeller's ES frame; null against the truth",
        ),
        ml("edv_diff_ml", "EDV − reference EDV (mL)"),
        ml("esv_diff_ml", "ESV − reference ESV (mL)"),
        ml("ef_diff_pct", "EF − reference EF (percentage points)"),
        ml("edv_rel_diff", "(EDV − reference EDV) / reference EDV"),
        ml("esv_rel_diff", "(ESV − reference ESV) / reference ESV"),
        ml("ef_rel_diff", "(EF − reference EF) / reference EF"),
        f(
            "ef_error_pct",
            DataType::Float64,
            false,
            "|EF − reference EF| (percentage points); 100 when the labeller's EF cannot be computed",
        ),
        f(
            "not_computable",
            DataType::Boolean,
            false,
            "Whether the labeller's EF cannot be computed (no volumes, or EDV 0)",
        ),
        f(
            "good_ef_bad_volumes",
            DataType::Boolean,
            true,
            "|relative EF error| ≤ 10% while EDV or ESV is off by more than 20%; null when not computable",
        ),
    ]))
}

/// The Parquet settings of both tables (zstd, statistics on).
fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .build()
}

fn write_err(url: String) -> impl FnOnce(parquet::errors::ParquetError) -> EvaluateError {
    move |e| EvaluateError::Write {
        url,
        message: e.to_string(),
    }
}

/// A Parquet file written to a store as rows arrive (bounded memory).
pub struct TableWriter {
    writer: AsyncArrowWriter<BufWriter>,
    url: String,
}

impl TableWriter {
    pub fn create(
        out: &StoreLocation,
        name: &str,
        schema: SchemaRef,
    ) -> Result<Self, EvaluateError> {
        let path = out.child(name);
        let url = out.object_url(&path);
        let sink = BufWriter::new(out.store.clone(), path);
        let writer = AsyncArrowWriter::try_new(sink, schema, Some(properties()))
            .map_err(write_err(url.clone()))?;
        Ok(Self { writer, url })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), EvaluateError> {
        self.writer
            .write(batch)
            .await
            .map_err(write_err(self.url.clone()))
    }

    pub async fn close(self) -> Result<String, EvaluateError> {
        self.writer
            .close()
            .await
            .map_err(write_err(self.url.clone()))?;
        Ok(self.url)
    }
}

/// An `evaluation_images` batch.
pub fn images_batch(rows: &[(Scored, f64)], labeller: &str, reference: &str) -> RecordBatch {
    let col_i32 = |g: fn(&Scored) -> i32| {
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|(s, _)| g(s)))) as ArrayRef
    };
    let col_i64 = |g: fn(&Scored) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(s, _)| g(s)))) as ArrayRef
    };
    let col_f64 = |g: fn(&Scored) -> f64| {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(s, _)| g(s)),
        )) as ArrayRef
    };
    let same =
        |v: &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|_| v))) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(s, _)| s.key.study_id.as_str()),
        )),
        col_i32(|s| s.key.slice),
        col_i32(|s| s.key.frame),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, p)| *p))),
        same(labeller),
        same(reference),
        col_f64(|s| s.dice.dice[0]),
        col_f64(|s| s.dice.dice[1]),
        col_i64(|s| s.dice.pixels[0]),
        col_i64(|s| s.dice.reference_pixels[0]),
        col_i64(|s| s.dice.pixels[1]),
        col_i64(|s| s.dice.reference_pixels[1]),
        col_f64(|s| (s.dice.pixels[0] - s.dice.reference_pixels[0]) as f64 * s.ml_per_pixel),
        col_f64(|s| (s.dice.pixels[1] - s.dice.reference_pixels[1]) as f64 * s.ml_per_pixel),
    ];
    RecordBatch::try_new(images_schema(), columns).expect("columns match the schema")
}

/// The `evaluation_studies` batch.
pub fn studies_batch(rows: &[StudyRow]) -> RecordBatch {
    let f = |g: fn(&StudyRow) -> Option<f64>| {
        Arc::new(Float64Array::from_iter(rows.iter().map(g))) as ArrayRef
    };
    let i = |g: fn(&StudyRow) -> Option<i64>| {
        Arc::new(Int64Array::from_iter(rows.iter().map(g))) as ArrayRef
    };
    let s = |g: fn(&StudyRow) -> Option<&str>| {
        Arc::new(StringArray::from_iter(rows.iter().map(g))) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        s(|r| Some(&r.study_id)),
        s(|r| r.split.as_deref()),
        s(|r| Some(&r.labeller)),
        s(|r| Some(&r.reference)),
        i(|r| Some(r.images)),
        f(|r| r.dice_lv_mean),
        f(|r| r.dice_my_mean),
        f(|r| r.edv_ml),
        f(|r| r.esv_ml),
        f(|r| r.ef_pct),
        i(|r| r.ed_frame),
        i(|r| r.es_frame),
        f(|r| r.reference_edv_ml),
        f(|r| r.reference_esv_ml),
        f(|r| r.reference_ef_pct),
        i(|r| r.reference_ed_frame),
        i(|r| r.reference_es_frame),
        f(|r| r.edv_diff_ml),
        f(|r| r.esv_diff_ml),
        f(|r| r.ef_diff_pct),
        f(|r| r.edv_rel_diff),
        f(|r| r.esv_rel_diff),
        f(|r| r.ef_rel_diff),
        f(|r| Some(r.ef_error_pct)),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.not_computable)),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.good_ef_bad_volumes),
        )),
    ];
    RecordBatch::try_new(studies_schema(), columns).expect("columns match the schema")
}
