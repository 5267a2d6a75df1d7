//! Delta Lake column statistics of a data file (`add.stats`): row count, and min / max / null
//! count of the table's key columns, from the record batches as they are written.
//!
//! Engines use them to skip files (`WHERE study_id = '17'` opens only the files whose range
//! holds `17`). Blob columns (`pixels`, `mask`) never get statistics: their min/max would be
//! megabytes of useless bytes in the log. Strings longer than [`MAX_STRING`] characters get no
//! min/max (the Delta protocol allows leaving them out; truncating a max correctly needs care
//! that key columns never need).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, Schema};
use serde_json::{Map, Value};

/// Longest string kept as a min/max statistic.
pub const MAX_STRING: usize = 64;

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Bound {
    Str(String),
    Int(i64),
}

impl Bound {
    fn json(&self) -> Value {
        match self {
            Bound::Str(s) => Value::String(s.clone()),
            Bound::Int(i) => Value::from(*i),
        }
    }
}

#[derive(Debug, Clone)]
struct Column {
    index: usize,
    name: String,
    min: Option<Bound>,
    max: Option<Bound>,
    /// A value too long to keep was seen: no min/max for this file.
    unbounded: bool,
    nulls: u64,
}

/// Running statistics of one file.
#[derive(Debug, Clone)]
pub struct FileStats {
    rows: u64,
    columns: Vec<Column>,
}

impl FileStats {
    /// Statistics of `columns` (those of `schema` that exist; string and integer columns only).
    pub fn new(schema: &Schema, columns: &[&str]) -> Self {
        let columns = columns
            .iter()
            .filter_map(|name| {
                let (index, field) = schema.column_with_name(name)?;
                matches!(field.data_type(), DataType::Utf8 | DataType::Int32 | DataType::Int64).then(|| Column {
                    index,
                    name: name.to_string(),
                    min: None,
                    max: None,
                    unbounded: false,
                    nulls: 0,
                })
            })
            .collect();
        FileStats { rows: 0, columns }
    }

    /// Adds a batch's rows.
    pub fn update(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        for c in &mut self.columns {
            let array = batch.column(c.index);
            c.nulls += array.null_count() as u64;
            let (lo, hi) = match array.data_type() {
                DataType::Utf8 => {
                    let a = array.as_string::<i32>();
                    if a.iter().flatten().any(|s| s.chars().count() > MAX_STRING) {
                        c.unbounded = true;
                    }
                    (
                        arrow::compute::min_string(a).map(|s| Bound::Str(s.into())),
                        arrow::compute::max_string(a).map(|s| Bound::Str(s.into())),
                    )
                }
                DataType::Int32 => {
                    let a = array.as_primitive::<Int32Type>();
                    (arrow::compute::min(a).map(|v| Bound::Int(v.into())), arrow::compute::max(a).map(|v| Bound::Int(v.into())))
                }
                DataType::Int64 => {
                    let a = array.as_primitive::<Int64Type>();
                    (arrow::compute::min(a).map(Bound::Int), arrow::compute::max(a).map(Bound::Int))
                }
                _ => (None, None),
            };
            if let Some(lo) = lo
                && c.min.as_ref().is_none_or(|m| lo < *m)
            {
                c.min = Some(lo);
            }
            if let Some(hi) = hi
                && c.max.as_ref().is_none_or(|m| hi > *m)
            {
                c.max = Some(hi);
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The `add.stats` JSON string.
    pub fn to_json(&self) -> String {
        let mut min = Map::new();
        let mut max = Map::new();
        let mut nulls = Map::new();
        for c in &self.columns {
            nulls.insert(c.name.clone(), Value::from(c.nulls));
            if c.unbounded {
                continue;
            }
            if let (Some(lo), Some(hi)) = (&c.min, &c.max) {
                min.insert(c.name.clone(), lo.json());
                max.insert(c.name.clone(), hi.json());
            }
        }
        serde_json::json!({ "numRecords": self.rows, "minValues": min, "maxValues": max, "nullCount": nulls }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, Int32Array, StringArray};
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn key_columns_over_several_batches_and_no_blobs() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("study_id", DataType::Utf8, false),
            Field::new("slice_index", DataType::Int32, true),
            Field::new("pixels", DataType::Binary, false),
        ]));
        let batch = |ids: Vec<&str>, slices: Vec<Option<i32>>| {
            let n = ids.len();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(Int32Array::from(slices)),
                    Arc::new(BinaryArray::from(vec![&b"xx"[..]; n])),
                ],
            )
            .unwrap()
        };
        let mut s = FileStats::new(&schema, &["study_id", "slice_index", "pixels", "absent"]);
        s.update(&batch(vec!["5", "17"], vec![Some(3), None]));
        s.update(&batch(vec!["2"], vec![Some(9)]));
        let v: Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["numRecords"], 3);
        assert_eq!(v["minValues"]["study_id"], "17", "strings compare as strings");
        assert_eq!(v["maxValues"]["study_id"], "5");
        assert_eq!(v["minValues"]["slice_index"], 3);
        assert_eq!(v["maxValues"]["slice_index"], 9);
        assert_eq!(v["nullCount"]["slice_index"], 1);
        assert!(v["minValues"].get("pixels").is_none() && v["nullCount"].get("pixels").is_none());
    }

    #[test]
    fn long_strings_get_no_bounds() {
        let schema = Arc::new(Schema::new(vec![Field::new("study_id", DataType::Utf8, false)]));
        let long = "x".repeat(MAX_STRING + 1);
        let mut s = FileStats::new(&schema, &["study_id"]);
        s.update(&RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["a", long.as_str()]))]).unwrap());
        let v: Value = serde_json::from_str(&s.to_json()).unwrap();
        assert!(v["minValues"].get("study_id").is_none());
        assert_eq!(v["nullCount"]["study_id"], 0);
    }
}
