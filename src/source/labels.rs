//! Label masks supplied with `--labels`: Parquet files with one row per image, keyed by the
//! image's object key relative to the input prefix (`object_key`, `height`, `width`, `mask` =
//! u8 per pixel, row-major; 0 background, 1 LV, 2 MY, 3 RV). The phantom's `truth/` folder has
//! this shape, and so can a group's manual segmentations.
//!
//! Opening reads only the `object_key` column of every file to build an index; masks are then
//! read per study with a row selection, so memory never holds more than a study's masks.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int32Type};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;

use crate::tables::reader::StoreReader;

use crate::store::{StoreLocation, explain};

/// Errors reading label masks.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("cannot list label files under `{url}`: {}", explain(source))]
    List { url: String, source: object_store::Error },
    #[error("no Parquet label files under `{url}`: give the folder that holds them (e.g. <synth output>/truth)")]
    Empty { url: String },
    #[error("label file `{object}`: {source}")]
    Read { object: String, source: parquet::errors::ParquetError },
    #[error("label file `{object}`: {source}")]
    Cast { object: String, source: arrow::error::ArrowError },
    #[error("label file `{object}`: the mask of `{key}` holds {bytes} bytes, but height×width = {pixels}")]
    MaskSize { object: String, key: String, bytes: usize, pixels: u32 },
    #[error("label file `{object}` lacks column `{column}` (needs object_key, height, width, mask)")]
    Column { object: String, column: &'static str },
}

/// One mask.
#[derive(Debug, Clone)]
pub struct Mask {
    pub height: u32,
    pub width: u32,
    pub data: Vec<u8>,
}

/// Where each key's mask lives.
pub struct LabelIndex {
    store: Arc<dyn ObjectStore>,
    files: Vec<(Path, String)>,
    by_key: HashMap<String, (u32, u32)>,
}

const COLUMNS: [&str; 4] = ["object_key", "height", "width", "mask"];

async fn builder(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    name: &str,
) -> Result<ParquetRecordBatchStreamBuilder<StoreReader>, LabelError> {
    let reader = StoreReader::new(store.clone(), path.clone());
    ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|source| LabelError::Read { object: name.to_string(), source })
}

fn projection(b: &ParquetRecordBatchStreamBuilder<StoreReader>, cols: &[&'static str], name: &str) -> Result<ProjectionMask, LabelError> {
    let schema = b.schema();
    for c in cols {
        if schema.field_with_name(c).is_err() {
            return Err(LabelError::Column { object: name.to_string(), column: c });
        }
    }
    Ok(ProjectionMask::columns(b.parquet_schema(), cols.iter().copied()))
}

impl LabelIndex {
    /// Lists the Parquet files under `loc` and indexes their keys.
    pub async fn open(loc: &StoreLocation) -> Result<Self, LabelError> {
        let prefix = (!loc.prefix.as_ref().is_empty()).then_some(&loc.prefix);
        let mut paths: Vec<Path> = loc
            .store
            .list(prefix)
            .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|source| LabelError::List { url: loc.url().to_string(), source })?;
        if paths.is_empty() {
            return Err(LabelError::Empty { url: loc.url().to_string() });
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        let mut by_key = HashMap::new();
        for (fi, path) in paths.into_iter().enumerate() {
            let name = loc.object_url(&path);
            let b = builder(&loc.store, &path, &name).await?;
            projection(&b, &COLUMNS, &name)?;
            let mask = projection(&b, &COLUMNS[..1], &name)?;
            let mut stream = b.with_projection(mask).build().map_err(|source| LabelError::Read { object: name.clone(), source })?;
            let mut row = 0u32;
            while let Some(batch) = stream.try_next().await.map_err(|source| LabelError::Read { object: name.clone(), source })? {
                let keys = arrow::compute::cast(batch.column(0), &DataType::Utf8)
                    .map_err(|source| LabelError::Cast { object: name.clone(), source })?;
                for k in keys.as_string::<i32>().iter() {
                    if let Some(k) = k {
                        by_key.insert(k.to_string(), (fi as u32, row));
                    }
                    row += 1;
                }
            }
            files.push((path, name));
        }
        Ok(Self { store: loc.store.clone(), files, by_key })
    }

    /// Number of masks indexed.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Reads the masks of these keys (keys without a mask are absent from the result).
    pub async fn masks_for(&self, keys: &[&str]) -> Result<HashMap<String, Mask>, LabelError> {
        let mut per_file: HashMap<u32, Vec<u32>> = HashMap::new();
        for k in keys {
            if let Some((f, r)) = self.by_key.get(*k) {
                per_file.entry(*f).or_default().push(*r);
            }
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (fi, mut rows) in per_file {
            rows.sort_unstable();
            let (path, name) = &self.files[fi as usize];
            let read_err = |source| LabelError::Read { object: name.clone(), source };
            let b = builder(&self.store, path, name).await?;
            let total = b.metadata().file_metadata().num_rows() as usize;
            let ranges = rows.iter().map(|r| *r as usize..*r as usize + 1);
            let selection = RowSelection::from_consecutive_ranges(ranges, total);
            let mask = projection(&b, &COLUMNS, name)?;
            let mut stream = b.with_projection(mask).with_row_selection(selection).build().map_err(read_err)?;
            while let Some(batch) = stream.try_next().await.map_err(read_err)? {
                let col = |n: &str, t: &DataType| {
                    let c = batch.column_by_name(n).expect("projected");
                    arrow::compute::cast(c, t).map_err(|source| LabelError::Cast { object: name.clone(), source })
                };
                let keys = col("object_key", &DataType::Utf8)?;
                let hs = col("height", &DataType::Int32)?;
                let ws = col("width", &DataType::Int32)?;
                let ms = col("mask", &DataType::LargeBinary)?;
                let (keys, hs, ws, ms) =
                    (keys.as_string::<i32>(), hs.as_primitive::<Int32Type>(), ws.as_primitive::<Int32Type>(), ms.as_binary::<i64>());
                for i in 0..batch.num_rows() {
                    if keys.is_null(i) || ms.is_null(i) {
                        continue;
                    }
                    let (h, w) = (hs.value(i).max(0) as u32, ws.value(i).max(0) as u32);
                    let data = ms.value(i).to_vec();
                    if data.len() != h as usize * w as usize {
                        return Err(LabelError::MaskSize {
                            object: name.clone(),
                            key: keys.value(i).into(),
                            bytes: data.len(),
                            pixels: h * w,
                        });
                    }
                    out.insert(keys.value(i).to_string(), Mask { height: h, width: w, data });
                }
            }
        }
        Ok(out)
    }
}
