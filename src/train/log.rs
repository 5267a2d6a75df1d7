//! The `training_log` table: one row per validation point — the end of every epoch, or the
//! images-seen schedule of `validate_every_images` (schema in `schemas/training_log.json`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch};

use serde::{Deserialize, Serialize};

/// One epoch of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub stage: i32,
    pub epoch: i32,
    pub global_epoch: i32,
    pub steps: i64,
    pub images_seen: i64,
    pub lr_max: f64,
    pub frozen: bool,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub dice_lv: f64,
    pub dice_my: f64,
    pub seconds: f64,
}

impl EpochRow {
    /// One line for a person watching the run.
    pub fn summary(&self) -> String {
        format!(
            "stage {} epoch {}: train loss {:.4}, valid loss {:.4}, dice LV {:.4}, MY {:.4} ({} images seen)",
            self.stage, self.epoch, self.train_loss, self.valid_loss, self.dice_lv, self.dice_my, self.images_seen
        )
    }
}

/// The rows as a record batch.
pub fn batch(rows: &[EpochRow]) -> RecordBatch {
    let i32s = |g: fn(&EpochRow) -> i32| Arc::new(Int32Array::from_iter_values(rows.iter().map(g))) as ArrayRef;
    let i64s = |g: fn(&EpochRow) -> i64| Arc::new(Int64Array::from_iter_values(rows.iter().map(g))) as ArrayRef;
    let f64s = |g: fn(&EpochRow) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(g))) as ArrayRef;
    RecordBatch::try_new(
        crate::tables::schemas::training_log(),
        vec![
            i32s(|r| r.stage),
            i32s(|r| r.epoch),
            i32s(|r| r.global_epoch),
            i64s(|r| r.steps),
            i64s(|r| r.images_seen),
            f64s(|r| r.lr_max),
            Arc::new(BooleanArray::from(rows.iter().map(|r| r.frozen).collect::<Vec<_>>())),
            f64s(|r| r.train_loss),
            f64s(|r| r.valid_loss),
            f64s(|r| r.dice_lv),
            f64s(|r| r.dice_my),
            f64s(|r| r.seconds),
        ],
    )
    .expect("columns match the schema")
}

/// The rows as a Parquet file.
pub fn parquet(rows: &[EpochRow]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, crate::tables::schemas::training_log(), None).expect("valid schema");
    w.write(&batch(rows)).expect("in memory");
    w.close().expect("in memory");
    buf
}
