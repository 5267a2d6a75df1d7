//! Shard stage: record batches → bounded Parquet files → a committed manifest.
//!
//! Every table is written by one or more *lanes*: a [`writer::TableWriter`] running as its own
//! task behind a bounded channel (capacity 1, so a slow writer slows the pipeline instead of
//! buffering). Large tables (`frames`, `labels`) get `encoder_lanes` lanes fed round-robin, so
//! Parquet encoding and compression run in parallel with each other and with curation.
//! [`ShardSet::commit`] closes the lanes, collects their files and writes the manifest
//! (delta-rs' write/commit split).

pub mod manifest;
pub mod reader;
pub mod tables;
pub mod writer;

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::StoreLocation;
use manifest::{FileEntry, Manifest, ManifestError, TableEntry};
use writer::{ShardConfig, TableWriter, WriteError};

/// Errors of the shard stage.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("a writer task of table `{table}` failed: {message}")]
    Lane { table: String, message: String },
}

/// One writer task of a table.
struct Lane {
    tx: mpsc::Sender<RecordBatch>,
    handle: JoinHandle<Result<Vec<FileEntry>, WriteError>>,
}

impl Lane {
    fn spawn(out: &StoreLocation, table: &'static str, lane: usize, run_id: &str, cfg: &ShardConfig) -> Self {
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(1);
        let schema = tables::schema(table).expect("known table");
        let mut w = TableWriter::new(out, table, schema, &format!("{run_id}-{lane}"), cfg);
        let handle = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                w.write(batch).await?;
            }
            w.finish().await
        });
        Lane { tx, handle }
    }

    async fn join(self, table: &str) -> Result<Vec<FileEntry>, ShardError> {
        drop(self.tx);
        let joined = self.handle.await.map_err(|e| ShardError::Lane { table: table.to_string(), message: e.to_string() })?;
        Ok(joined?)
    }
}

/// Writers for every table of a run.
pub struct ShardSet {
    out: StoreLocation,
    run_id: String,
    lanes: BTreeMap<&'static str, (Vec<Lane>, usize)>,
}

impl ShardSet {
    pub fn new(out: &StoreLocation, run_id: &str, cfg: &ShardConfig) -> Self {
        let lanes = tables::TABLES
            .iter()
            .map(|t| {
                let n = if matches!(*t, "frames" | "labels") { cfg.encoder_lanes.max(1) } else { 1 };
                (*t, ((0..n).map(|i| Lane::spawn(out, t, i, run_id, cfg)).collect(), 0))
            })
            .collect();
        Self { out: out.clone(), run_id: run_id.to_string(), lanes }
    }

    /// Hands rows of `table` to its next lane (waits while that lane is busy).
    pub async fn write(&mut self, table: &str, batch: RecordBatch) -> Result<(), ShardError> {
        let (lanes, next) = self.lanes.get_mut(table).expect("known table");
        let i = *next % lanes.len();
        *next += 1;
        if lanes[i].tx.send(batch).await.is_err() {
            // The lane stopped: report why.
            let lane = lanes.remove(i);
            lane.join(table).await?;
            return Err(ShardError::Lane { table: table.to_string(), message: "writer stopped early".into() });
        }
        Ok(())
    }

    /// Closes every lane, collects the files and commits the manifest; returns it and its URL.
    pub async fn commit(self, command: &str, summary: serde_json::Value, config: serde_json::Value) -> Result<(Manifest, String), ShardError> {
        let mut tables = BTreeMap::new();
        for (name, (lanes, _)) in self.lanes {
            let mut files = Vec::new();
            for lane in lanes {
                files.extend(lane.join(name).await?);
            }
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
