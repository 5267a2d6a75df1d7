//! The `training_log` table: one row per epoch (schema in `schemas/training_log.json`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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

/// A non-null column with its description.
fn f(name: &str, dt: DataType, description: &str) -> Field {
    crate::shard::tables::f(name, dt, false, description)
}

/// The table's schema, with a description per column.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("stage", DataType::Int32, "Stage of the recipe (one fit_one_cycle), 0-based"),
        f("epoch", DataType::Int32, "Epoch within the stage, 0-based"),
        f("global_epoch", DataType::Int32, "Epoch counted over the whole run, 0-based"),
        f("steps", DataType::Int64, "Optimizer steps (batches) so far"),
        f("images_seen", DataType::Int64, "Training images seen so far (the learning curve's x axis)"),
        f("lr_max", DataType::Float64, "The stage's maximum learning rate (one-cycle)"),
        f("frozen", DataType::Boolean, "Whether the encoder was frozen (its BatchNorm still trains)"),
        f("train_loss", DataType::Float64, "Mean training loss over the epoch's batches"),
        f("valid_loss", DataType::Float64, "Mean loss on the validation selection"),
        f("dice_lv", DataType::Float64, "Validation Dice of LV, per image averaged (both empty = 1)"),
        f("dice_my", DataType::Float64, "Validation Dice of MY, per image averaged (both empty = 1)"),
        f("seconds", DataType::Float64, "Wall time of the run so far (s)"),
    ]))
}

/// The rows as a record batch.
pub fn batch(rows: &[EpochRow]) -> RecordBatch {
    let i32s = |g: fn(&EpochRow) -> i32| Arc::new(Int32Array::from_iter_values(rows.iter().map(g))) as ArrayRef;
    let i64s = |g: fn(&EpochRow) -> i64| Arc::new(Int64Array::from_iter_values(rows.iter().map(g))) as ArrayRef;
    let f64s = |g: fn(&EpochRow) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(g))) as ArrayRef;
    RecordBatch::try_new(
        schema(),
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
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema(), None).expect("valid schema");
    w.write(&batch(rows)).expect("in memory");
    w.close().expect("in memory");
    buf
}
