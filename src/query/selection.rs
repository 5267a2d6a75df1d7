//! Named selections: the result of a query, frozen under `<data>/selections/NAME/` so that a
//! training run or a labelling job can name it and a model can always tell which data it saw.
//!
//! A selection is two objects:
//! - `frames.parquet` — the frame keys (`study_id`, `slice_index`, `frame_index`, plus whatever
//!   else the query returned, e.g. `labeller`, `split`), sorted by key;
//! - `selection.json` — the commit record, written last: the query, the SQL as run and the SQL
//!   of every saved view it used (parameters filled in), the parameter values, the version of
//!   every table it read, row and study counts, and the SHA-256 of `frames.parquet`.
//!   `--as-of` with those versions ([`SelectionRecord::as_of`]) reads exactly the same data.
//!
//! Before anything is written the result is checked: the key columns exist, no frame (per
//! labeller) is listed twice, and every key names a frame in the `frames` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use datafusion::datasource::MemTable;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::suggest::Root;
use super::{QueryError, Session, TableVersion};
use crate::store::{StoreLocation, explain};
use crate::tables::delta::AsOf;
use crate::tables::writer::FileEntry;

/// Folder of selections under a data prefix.
pub const SELECTIONS_DIR: &str = "selections";
const RECORD: &str = "selection.json";
const FRAMES: &str = "frames.parquet";
/// Columns every selection has.
pub const KEY_COLUMNS: [&str; 3] = ["study_id", "slice_index", "frame_index"];

/// The commit record of a selection (`selection.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelectionRecord {
    pub format: String,
    pub name: String,
    pub created: String,
    pub cinestream_version: String,
    /// The saved query's name, or `file:<path>` / `inline`.
    pub query: String,
    /// The statement as run, parameters filled in.
    pub sql: String,
    /// The saved views it used, by name, parameters filled in.
    pub views: BTreeMap<String, String>,
    /// Every parameter's value in force.
    pub params: BTreeMap<String, String>,
    /// The version of each table of the data prefix the query read.
    pub tables: Vec<TableVersion>,
    pub rows: u64,
    pub studies: u64,
    pub columns: Vec<String>,
    pub file: FileEntry,
}

impl SelectionRecord {
    pub const FORMAT: &'static str = "cinestream-selection-v2";

    /// The versions to read to see exactly what this selection saw.
    pub fn as_of(&self) -> AsOf {
        AsOf::Tables(self.tables.iter().map(|t| (t.table.clone(), t.version)).collect())
    }
}

/// Errors making or reading a selection.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("bad selection name `{name}`: use letters, digits, `_`, `-` and `.` (e.g. p5_train)")]
    BadName { name: String },
    #[error("selection `{url}` already exists: choose another name, or pass --replace (models trained on it then no longer match it)")]
    Exists { url: String },
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(
        "the query's result has no `{column}` column: a selection lists frames by study_id, slice_index and frame_index (see the saved query confidence_frames)"
    )]
    MissingColumn { column: String },
    #[error(
        "the query's result lists {count} frames more than once (first: {example}); a selection lists each frame once per labeller — check the joins"
    )]
    Duplicates { count: u64, example: String },
    #[error("{count} selected frames are not in the frames table (first: {example}); select from `frames` or `labels` of this data prefix")]
    UnknownFrames { count: u64, example: String },
    #[error("the query selected nothing: check the parameters (`cinestream sql` shows the result)")]
    Empty,
    #[error("writing selection `{url}`: {}", explain(source))]
    Write { url: String, source: object_store::Error },
    #[error("reading selection `{url}`: {}", explain(source))]
    Read { url: String, source: object_store::Error },
    #[error("selection `{url}`: {message}")]
    Invalid { url: String, message: String },
    #[error("selection `{url}`: its Parquet file cannot be read ({source}); make it again (`cinestream select … --replace`)")]
    Unreadable { url: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("encoding the selection for `{url}`: {source}")]
    Encode { url: String, source: parquet::errors::ParquetError },
    /// Reshaping the query's rows into a selection (concatenating, casting the columns).
    #[error("the query's result as a selection: {0}")]
    Rows(#[from] arrow::error::ArrowError),
}

/// Where a selection's query came from.
pub struct QuerySource {
    /// The saved query's name, `file:<path>` or `inline`.
    pub label: String,
    /// The SQL to run (a saved query's name is `SELECT * FROM name`).
    pub sql: String,
}

fn check_name(name: &str) -> Result<(), SelectionError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok { Ok(()) } else { Err(SelectionError::BadName { name: name.into() }) }
}

/// Runs `query` in `session` and commits the result as selection `name` under `data`.
pub async fn create(
    session: &Session,
    data: &StoreLocation,
    name: &str,
    query: &QuerySource,
    replace: bool,
) -> Result<SelectionRecord, SelectionError> {
    check_name(name)?;
    let folder = data.sub(&format!("{SELECTIONS_DIR}/{name}"));
    let record_path = folder.child(RECORD);
    let record_url = folder.object_url(&record_path);
    if !replace && data.store.head(&record_path).await.is_ok() {
        return Err(SelectionError::Exists { url: folder.url().to_string() });
    }
    let df = session.sql(&query.sql).await?;
    let batches = df.collect().await.map_err(|e| QueryError::Execute { context: query.label.clone(), source: Root(e) })?;
    let batch = normalise(&batches)?;
    if batch.num_rows() == 0 {
        return Err(SelectionError::Empty);
    }
    check_frames(session, &batch).await?;
    let batch = sort_by_key(&batch);
    let studies = {
        let ids = batch.column(0).as_string::<i32>();
        let mut v: Vec<&str> = ids.iter().flatten().collect();
        v.dedup();
        v.len() as u64
    };
    let bytes = encode(&batch).map_err(|source| SelectionError::Encode { url: folder.url().to_string(), source })?;
    let file = FileEntry {
        path: FRAMES.into(),
        rows: batch.num_rows() as u64,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    let sha256 = file.sha256.clone();
    let mode = if replace { PutMode::Overwrite } else { PutMode::Create };
    let frames_path = folder.child(FRAMES);
    let put = |path: object_store::path::Path, body: Bytes| {
        let url = folder.object_url(&path);
        let store = data.store.clone();
        let opts = PutOptions { mode: mode.clone(), ..Default::default() };
        async move { store.put_opts(&path, PutPayload::from(body), opts).await.map_err(|source| SelectionError::Write { url, source }) }
    };
    let record = SelectionRecord {
        format: SelectionRecord::FORMAT.into(),
        name: name.into(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        cinestream_version: env!("CARGO_PKG_VERSION").into(),
        query: query.label.clone(),
        sql: session.params().substitute(&query.sql, &query.label).map_err(QueryError::from)?,
        views: session.views_used(),
        params: session.params().resolved(),
        tables: session.versions().to_vec(),
        rows: file.rows,
        studies,
        columns: batch.schema().fields().iter().map(|f| f.name().clone()).collect(),
        file,
    };
    if replace {
        // The old record goes first, so no reader pairs it with the new frames.
        let _ = data.store.delete(&record_path).await;
    }
    match put(frames_path.clone(), bytes).await {
        // Another writer of the same selection got there first (two study workers), or an
        // earlier attempt died between the two writes: the same rows may stay, others may not.
        Err(SelectionError::Write { url, source: object_store::Error::AlreadyExists { .. } }) => {
            let there = data.store.get(&frames_path).await.map_err(|source| SelectionError::Read { url: url.clone(), source })?;
            let there = there.bytes().await.map_err(|source| SelectionError::Read { url: url.clone(), source })?;
            if hex::encode(Sha256::digest(&there)) != sha256 {
                return Err(SelectionError::Invalid {
                    url: folder.url().to_string(),
                    message: format!(
                        "{url} holds other rows and no record (a run that died while making it, or another writer with other data); delete the folder and run again"
                    ),
                });
            }
        }
        other => {
            other?;
        }
    }
    let json = serde_json::to_vec_pretty(&record).expect("record serialises");
    put(record_path, Bytes::from(json)).await.map_err(|e| match e {
        SelectionError::Write { source: object_store::Error::AlreadyExists { .. }, .. } => SelectionError::Exists { url: record_url },
        other => other,
    })?;
    Ok(record)
}

/// Reads a committed selection and checks its frames file against the record's checksum.
pub async fn load(data: &StoreLocation, name: &str) -> Result<(SelectionRecord, Vec<RecordBatch>), SelectionError> {
    check_name(name)?;
    let folder = data.sub(&format!("{SELECTIONS_DIR}/{name}"));
    let read = |path: object_store::path::Path| {
        let url = folder.object_url(&path);
        let store = data.store.clone();
        async move {
            let bytes = async { store.get(&path).await?.bytes().await }.await;
            bytes.map_err(|source| SelectionError::Read { url, source })
        }
    };
    let json = read(folder.child(RECORD)).await?;
    let record: SelectionRecord = serde_json::from_slice(&json).map_err(|e| {
        let old = serde_json::from_slice::<serde_json::Value>(&json).ok().is_some_and(|v| v["format"] == "cinestream-selection-v1");
        let message = if old {
            format!("{RECORD} was made before the tables were Delta tables: make it again (`cinestream select … --replace`)")
        } else {
            format!("{RECORD}: {e}")
        };
        SelectionError::Invalid { url: folder.url().to_string(), message }
    })?;
    let bytes = read(folder.child(&record.file.path)).await?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if sha != record.file.sha256 {
        return Err(SelectionError::Invalid {
            url: folder.url().to_string(),
            message: format!(
                "{} has SHA-256 {sha}, the record says {}: the selection was changed after it was made",
                record.file.path, record.file.sha256
            ),
        });
    }
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| SelectionError::Unreadable { url: folder.url().to_string(), source: e.into() })?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SelectionError::Unreadable { url: folder.url().to_string(), source: e.into() })?;
    Ok((record, batches))
}

/// One batch with the key columns first, typed Utf8 / Int32 / Int32, other columns after.
fn normalise(batches: &[RecordBatch]) -> Result<RecordBatch, SelectionError> {
    let Some(first) = batches.first() else { return Err(SelectionError::Empty) };
    let schema = first.schema();
    let all = arrow::compute::concat_batches(&schema, batches).map_err(SelectionError::Rows)?;
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (key, ty) in KEY_COLUMNS.iter().zip([DataType::Utf8, DataType::Int32, DataType::Int32]) {
        let col = all.column_by_name(key).ok_or_else(|| SelectionError::MissingColumn { column: key.to_string() })?;
        let cast = arrow::compute::cast(col, &ty).map_err(|e| SelectionError::MissingColumn { column: format!("{key} ({e})") })?;
        if cast.null_count() > 0 {
            return Err(SelectionError::MissingColumn { column: format!("{key} (it has nulls)") });
        }
        fields.push(Field::new(*key, ty, false));
        columns.push(cast);
    }
    for (f, c) in schema.fields().iter().zip(all.columns()) {
        if !KEY_COLUMNS.contains(&f.name().as_str()) {
            let ty = if matches!(f.data_type(), DataType::Utf8View | DataType::LargeUtf8) { DataType::Utf8 } else { f.data_type().clone() };
            columns.push(arrow::compute::cast(c, &ty).map_err(SelectionError::Rows)?);
            fields.push(Field::new(f.name(), ty, f.is_nullable()));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(SelectionError::Rows)
}

/// Duplicate keys and keys not in `frames` are errors.
async fn check_frames(session: &Session, batch: &RecordBatch) -> Result<(), SelectionError> {
    let ctx = session.context();
    const CANDIDATE: &str = "_selection_candidate";
    let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])
        .map_err(|e| QueryError::Register { table: CANDIDATE.into(), source: e })?;
    ctx.register_table(CANDIDATE, Arc::new(table)).map_err(|e| QueryError::Register { table: CANDIDATE.into(), source: e })?;
    let per = if batch.schema().column_with_name("labeller").is_some() { ", labeller" } else { "" };
    let dup_sql = format!(
        "SELECT count(*) AS n, min(study_id || '/' || slice_index || '/' || frame_index) AS example FROM \
         (SELECT study_id, slice_index, frame_index FROM {CANDIDATE} GROUP BY study_id, slice_index, frame_index{per} HAVING count(*) > 1)"
    );
    let missing_sql = format!(
        "SELECT count(*) AS n, min(c.study_id || '/' || c.slice_index || '/' || c.frame_index) AS example FROM {CANDIDATE} c \
         LEFT ANTI JOIN (SELECT study_id, slice_index, frame_index FROM frames) f \
         ON c.study_id = f.study_id AND c.slice_index = f.slice_index AND c.frame_index = f.frame_index"
    );
    let result = async {
        let dup = count_and_example(session, &dup_sql).await?;
        let missing = count_and_example(session, &missing_sql).await?;
        Ok::<_, SelectionError>((dup, missing))
    }
    .await;
    ctx.deregister_table(CANDIDATE).map_err(|e| QueryError::Register { table: CANDIDATE.into(), source: e })?;
    let (dup, missing) = result?;
    if dup.0 > 0 {
        return Err(SelectionError::Duplicates { count: dup.0, example: dup.1 });
    }
    if missing.0 > 0 {
        return Err(SelectionError::UnknownFrames { count: missing.0, example: missing.1 });
    }
    Ok(())
}

async fn count_and_example(session: &Session, sql: &str) -> Result<(u64, String), SelectionError> {
    let batches = session
        .sql(sql)
        .await?
        .collect()
        .await
        .map_err(|e| QueryError::Execute { context: "checking the selection".into(), source: Root(e) })?;
    let b = &batches[0];
    let n = arrow::compute::cast(b.column(0), &DataType::Int64).map_err(SelectionError::Rows)?;
    let ex = arrow::compute::cast(b.column(1), &DataType::Utf8).map_err(SelectionError::Rows)?;
    let ex = ex.as_string::<i32>();
    Ok((
        n.as_primitive::<arrow::datatypes::Int64Type>().value(0) as u64,
        if ex.is_null(0) { String::new() } else { ex.value(0).to_string() },
    ))
}

fn sort_by_key(batch: &RecordBatch) -> RecordBatch {
    let mut keys: Vec<SortColumn> = (0..3).map(|i| SortColumn { values: batch.column(i).clone(), options: None }).collect();
    if let Some((i, _)) = batch.schema().column_with_name("labeller") {
        keys.push(SortColumn { values: batch.column(i).clone(), options: None });
    }
    let idx = lexsort_to_indices(&keys, None).expect("sortable key columns");
    take_record_batch(batch, &idx).expect("indices in range")
}

fn encode(batch: &RecordBatch) -> Result<Bytes, parquet::errors::ParquetError> {
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level"))).build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["p5_train", "subset-14.v1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
