//! The tables `cinestream evaluate` writes (plain Parquet files in the output folder, one schema
//! file each in `schemas/`): `evaluation_images` (per image Dice and volume differences, written
//! as the pairs stream in) and `evaluation_studies` (per study volumes, EF and their errors).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use object_store::buffered::BufWriter;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::EvaluateError;
use super::agreement::StudyRow;
use super::dice::Scored;
use crate::store::StoreLocation;

/// The Parquet settings of both tables (zstd, statistics on).
fn properties() -> WriterProperties {
    WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level"))).build()
}

fn write_err(url: String) -> impl FnOnce(parquet::errors::ParquetError) -> EvaluateError {
    move |source| EvaluateError::Write { url, source }
}

/// A Parquet file written to a store as rows arrive (bounded memory).
pub struct TableWriter {
    writer: AsyncArrowWriter<BufWriter>,
    url: String,
}

impl TableWriter {
    pub fn create(out: &StoreLocation, name: &str, schema: SchemaRef) -> Result<Self, EvaluateError> {
        let path = out.child(name);
        let url = out.object_url(&path);
        let sink = BufWriter::new(out.store.clone(), path);
        let writer = AsyncArrowWriter::try_new(sink, schema, Some(properties())).map_err(write_err(url.clone()))?;
        Ok(Self { writer, url })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), EvaluateError> {
        self.writer.write(batch).await.map_err(write_err(self.url.clone()))
    }

    pub async fn close(self) -> Result<String, EvaluateError> {
        self.writer.close().await.map_err(write_err(self.url.clone()))?;
        Ok(self.url)
    }
}

/// An `evaluation_images` batch.
pub fn images_batch(rows: &[(Scored, f64)], labeller: &str, reference: &str) -> RecordBatch {
    let col_i32 = |g: fn(&Scored) -> i32| Arc::new(Int32Array::from_iter_values(rows.iter().map(|(s, _)| g(s)))) as ArrayRef;
    let col_i64 = |g: fn(&Scored) -> i64| Arc::new(Int64Array::from_iter_values(rows.iter().map(|(s, _)| g(s)))) as ArrayRef;
    let col_f64 = |g: fn(&Scored) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|(s, _)| g(s)))) as ArrayRef;
    let same = |v: &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|_| v))) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(s, _)| s.key.study_id.as_str()))),
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
    RecordBatch::try_new(crate::tables::schemas::evaluation_images(), columns).expect("columns match the schema")
}

/// The `evaluation_studies` batch.
pub fn studies_batch(rows: &[StudyRow]) -> RecordBatch {
    let f = |g: fn(&StudyRow) -> Option<f64>| Arc::new(Float64Array::from_iter(rows.iter().map(g))) as ArrayRef;
    let i = |g: fn(&StudyRow) -> Option<i64>| Arc::new(Int64Array::from_iter(rows.iter().map(g))) as ArrayRef;
    let s = |g: fn(&StudyRow) -> Option<&str>| Arc::new(StringArray::from_iter(rows.iter().map(g))) as ArrayRef;
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
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.not_computable)))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.good_ef_bad_volumes))),
    ];
    RecordBatch::try_new(crate::tables::schemas::evaluation_studies(), columns).expect("columns match the schema")
}
