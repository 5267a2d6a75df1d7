//! Shard stage: record batches → bounded Parquet files → a committed manifest.
//!
//! [`ShardSet`] holds one [`writer::TableWriter`] per table; `write_*` buffers and rolls files,
//! [`ShardSet::commit`] uploads what is left and writes the manifest (delta-rs' write/commit
//! split).

pub mod manifest;
pub mod reader;
pub mod tables;
pub mod writer;

use std::collections::BTreeMap;

use arrow::array::RecordBatch;

use crate::store::StoreLocation;
use manifest::{Manifest, ManifestError, TableEntry};
use writer::{ShardConfig, TableWriter, WriteError};

/// Errors of the shard stage.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Writers for every table of a run.
pub struct ShardSet {
    out: StoreLocation,
    run_id: String,
    writers: BTreeMap<&'static str, TableWriter>,
}

impl ShardSet {
    pub fn new(out: &StoreLocation, run_id: &str, cfg: &ShardConfig) -> Self {
        let writers = tables::TABLES
            .iter()
            .map(|t| (*t, TableWriter::new(out, t, tables::schema(t).expect("known table"), run_id, cfg)))
            .collect();
        Self { out: out.clone(), run_id: run_id.to_string(), writers }
    }

    /// Buffers rows of `table`.
    pub async fn write(&mut self, table: &str, batch: RecordBatch) -> Result<(), ShardError> {
        let w = self.writers.get_mut(table).expect("known table");
        Ok(w.write(batch).await?)
    }

    /// Uploads the remaining shards and commits the manifest; returns it and its URL.
    pub async fn commit(self, command: &str, summary: serde_json::Value, config: serde_json::Value) -> Result<(Manifest, String), ShardError> {
        let mut tables = BTreeMap::new();
        for (name, w) in self.writers {
            let files = w.finish().await?;
            tables.insert(name.to_string(), TableEntry { schema_version: tables::SCHEMA_VERSION, files });
        }
        let manifest = Manifest {
            format: Manifest::FORMAT.to_string(),
            run_id: self.run_id,
            created: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            command: command.to_string(),
            cinestream_version: env!("CARGO_PKG_VERSION").to_string(),
            tables,
            summary,
            config,
        };
        let url = manifest.commit(&self.out).await?;
        Ok((manifest, url))
    }
}
