//! Rolling Parquet writer for one table.
//!
//! `write(batch)` encodes into an in-memory Parquet file (on a blocking thread) and, once the
//! file reaches `max_file_bytes`, uploads it create-only under `<output>/<table>/` and starts the
//! next; `finish()` uploads the last one. Nothing becomes visible to readers until the files are
//! committed to the table's Delta log ([`super::delta`]), so memory per table is bounded by one
//! file's size. Each file comes back with its row count, size, SHA-256 and Delta statistics.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use object_store::{PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{StoreLocation, explain};

use super::spec::TableSpec;
use super::stats::FileStats;

/// One written file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the folder it belongs to (a table's root, a selection's folder).
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A data file of a table, ready to be committed.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    pub entry: FileEntry,
    /// Delta `add.stats`: row count and min/max/null counts of the key columns.
    pub stats: String,
}

/// Errors writing shards.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("encoding Parquet for table `{table}`: {source}")]
    Encode { table: String, source: parquet::errors::ParquetError },
    #[error("uploading `{object}`: {}", explain(source))]
    Upload { object: String, source: object_store::Error },
    #[error("an encoding task for table `{table}` failed: {source}")]
    Task { table: String, source: tokio::task::JoinError },
}

/// Compression of shard files.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Zstd,
    Snappy,
    None,
}

/// Shard settings (`[shards]` in a pipeline file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// A shard file is closed once it reaches this many bytes (MiB). Each lane buffers one.
    pub max_file_mib: usize,
    /// Parallel writers (files being encoded at once) for the frames and labels tables.
    pub encoder_lanes: usize,
    /// A row group is closed once its encoded size reaches this many bytes (MiB).
    pub row_group_mib: usize,
    pub compression: Codec,
    /// zstd level (1 fastest … 22 smallest).
    pub zstd_level: i32,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self { max_file_mib: 64, encoder_lanes: 2, row_group_mib: 16, compression: Codec::Zstd, zstd_level: 1 }
    }
}

impl ShardConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_file_mib == 0 || self.row_group_mib == 0 || self.row_group_mib > self.max_file_mib {
            return Err(format!("shards: need 0 < row_group_mib ({}) ≤ max_file_mib ({})", self.row_group_mib, self.max_file_mib));
        }
        if !(1..=16).contains(&self.encoder_lanes) {
            return Err(format!("shards.encoder_lanes = {} must be in 1..=16", self.encoder_lanes));
        }
        ZstdLevel::try_new(self.zstd_level).map_err(|e| format!("shards.zstd_level: {e}"))?;
        Ok(())
    }

    /// Writer settings for a table with blob columns `blobs`.
    fn properties(&self, blobs: &[&str]) -> WriterProperties {
        let compression = match self.compression {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(self.zstd_level).unwrap_or_default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        };
        let mut b = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(1 << 16))
            .set_max_row_group_bytes(Some(self.row_group_mib << 20));
        // Image and mask blobs: no dictionary (every value is unique) and no min/max statistics.
        for &blob in blobs {
            b = b
                .set_column_dictionary_enabled(ColumnPath::from(blob), false)
                .set_column_statistics_enabled(ColumnPath::from(blob), EnabledStatistics::None);
        }
        b.build()
    }
}

/// Writes one table as a sequence of shard files.
pub struct TableWriter {
    spec: &'static TableSpec,
    table: String,
    out: StoreLocation,
    run_id: String,
    schema: SchemaRef,
    cfg: ShardConfig,
    current: Option<(ArrowWriter<Vec<u8>>, FileStats)>,
    files: Vec<DataFile>,
}

impl TableWriter {
    /// A writer of `spec`'s table; its files are named after `run_id`.
    pub fn new(out: &StoreLocation, spec: &'static TableSpec, run_id: &str, cfg: &ShardConfig) -> Self {
        Self {
            spec,
            table: spec.name.to_string(),
            out: out.clone(),
            run_id: run_id.to_string(),
            schema: spec.schema(),
            cfg: cfg.clone(),
            current: None,
            files: Vec::new(),
        }
    }

    /// Buffers a batch; uploads a shard when it is full.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), WriteError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (w, mut stats) = match self.current.take() {
            Some(current) => current,
            None => (
                ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(self.cfg.properties(self.spec.blobs)))
                    .map_err(|source| WriteError::Encode { table: self.table.clone(), source })?,
                FileStats::new(&self.schema, self.spec.stats),
            ),
        };
        stats.update(&batch);
        let (w, res) = tokio::task::spawn_blocking(move || {
            let mut w = w;
            let res = w.write(&batch);
            (w, res)
        })
        .await
        .map_err(|source| WriteError::Task { table: self.table.clone(), source })?;
        res.map_err(|source| WriteError::Encode { table: self.table.clone(), source })?;
        let full = w.bytes_written() + w.in_progress_size() >= self.cfg.max_file_mib << 20;
        self.current = Some((w, stats));
        if full {
            self.upload_current().await?;
        }
        Ok(())
    }

    async fn upload_current(&mut self) -> Result<(), WriteError> {
        let Some((w, stats)) = self.current.take() else { return Ok(()) };
        let table = self.table.clone();
        let bytes = tokio::task::spawn_blocking(move || w.into_inner())
            .await
            .map_err(|source| WriteError::Task { table: table.clone(), source })?
            .map_err(|source| WriteError::Encode { table: table.clone(), source })?;
        let name = format!("part-{}-{:05}.parquet", self.run_id, self.files.len());
        let path = self.out.child(&format!("{}/{name}", self.table));
        let sha = hex::encode(Sha256::digest(&bytes));
        let len = bytes.len() as u64;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.out
            .store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
            .map_err(|source| WriteError::Upload { object: self.out.object_url(&path), source })?;
        tracing::debug!(table = %self.table, file = %name, rows = stats.rows(), bytes = len, "shard uploaded");
        self.files.push(DataFile { entry: FileEntry { path: name, rows: stats.rows(), bytes: len, sha256: sha }, stats: stats.to_json() });
        Ok(())
    }

    /// Uploads the last shard and returns every file written.
    pub async fn finish(mut self) -> Result<Vec<DataFile>, WriteError> {
        self.upload_current().await?;
        Ok(self.files)
    }
}
