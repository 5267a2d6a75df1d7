//! Shard stage: record batches → bounded Parquet files → Delta Lake commits.
//!
//! Every table is written by one or more *lanes*: a [`writer::TableWriter`] running as its own
//! task behind a bounded channel (capacity 1, so a slow writer slows the pipeline instead of
//! buffering). Tables are described by a [`spec::TableSpec`]; image and mask tables get
//! `encoder_lanes` lanes fed round-robin, so
//! Parquet encoding and compression run in parallel with each other and with curation.
//! [`ShardSet::finish`] closes the lanes and returns their files; [`commit_run`] then makes one
//! Delta commit per table ([`delta`]), in the order the run lists its tables, each carrying the run's
//! application transaction id, so a rerun after a crash commits only what is missing
//! (delta-rs' write/commit split). The last commit, to `sources`, publishes the run to
//! cinestream's readers ([`publish`]).

pub mod as_of;
pub mod delta;
pub mod label_rows;
pub mod legacy;
pub mod maintain;
pub mod publish;
pub mod reader;
pub mod registry;
pub mod rewrite;
pub mod schemas;
pub mod spec;
pub mod stats;
pub mod writer;

pub use registry::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::RecordBatch;
use deltalake_core::kernel::Remove;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::StoreLocation;
use delta::{CommitSpec, Committed, DeltaError};
use spec::TableSpec;
use writer::{DataFile, ShardConfig, TableWriter, WriteError};

/// Errors of the shard stage.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error("a writer task of table `{table}` failed: {source}")]
    Lane { table: String, source: tokio::task::JoinError },
    #[error("the writer of table `{table}` stopped early")]
    Stopped { table: String },
    #[error("`{object}` has no column `{column}`")]
    NoColumn { object: String, column: String },
    #[error("reading `{object}`: {source}")]
    Read { object: String, source: parquet::errors::ParquetError },
}

/// One writer task of a table.
struct Lane {
    tx: mpsc::Sender<RecordBatch>,
    handle: JoinHandle<Result<Vec<DataFile>, WriteError>>,
}

impl Lane {
    fn spawn(out: &StoreLocation, table: &'static TableSpec, lane: usize, run_id: &str, cfg: &ShardConfig) -> Self {
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(1);
        let mut w = TableWriter::new(out, table, &format!("{run_id}-{lane}"), cfg);
        let handle = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                w.write(batch).await?;
            }
            w.finish().await
        });
        Lane { tx, handle }
    }

    async fn join(self, table: &str) -> Result<Vec<DataFile>, ShardError> {
        drop(self.tx);
        let joined = self.handle.await.map_err(|source| ShardError::Lane { table: table.to_string(), source })?;
        Ok(joined?)
    }
}

/// Writers for every table of a run.
pub struct ShardSet {
    lanes: BTreeMap<&'static str, (Vec<Lane>, usize)>,
}

impl ShardSet {
    /// Lanes for each of `tables` but those in `skip` (tables a crashed attempt of this run
    /// already committed: their rows are dropped, not written again).
    pub fn new(out: &StoreLocation, run_id: &str, cfg: &ShardConfig, tables: &[&'static TableSpec], skip: &BTreeSet<&str>) -> Self {
        let lanes = tables
            .iter()
            .filter(|t| !skip.contains(t.name))
            .map(|t| (t.name, ((0..t.lanes(cfg.encoder_lanes)).map(|i| Lane::spawn(out, t, i, run_id, cfg)).collect(), 0)))
            .collect();
        Self { lanes }
    }

    /// Hands rows of `table` to its next lane (waits while that lane is busy). Rows of a table
    /// in `skip` are dropped.
    pub async fn write(&mut self, table: &TableSpec, batch: RecordBatch) -> Result<(), ShardError> {
        let table = table.name;
        let Some((lanes, next)) = self.lanes.get_mut(table) else { return Ok(()) };
        let i = *next % lanes.len();
        *next += 1;
        if lanes[i].tx.send(batch).await.is_err() {
            // The lane stopped: report why.
            let lane = lanes.remove(i);
            lane.join(table).await?;
            return Err(ShardError::Stopped { table: table.to_string() });
        }
        Ok(())
    }

    /// Closes every lane and returns the files written per table.
    pub async fn finish(self) -> Result<BTreeMap<&'static str, Vec<DataFile>>, ShardError> {
        let mut out = BTreeMap::new();
        for (name, (lanes, _)) in self.lanes {
            let mut files = Vec::new();
            for lane in lanes {
                files.extend(lane.join(name).await?);
            }
            out.insert(name, files);
        }
        Ok(out)
    }
}

/// The tables of `specs` that already hold transaction `app_id` (an earlier attempt of the same
/// work committed them).
pub async fn committed_tables(
    out: &StoreLocation,
    specs: &[&'static TableSpec],
    app_id: &str,
) -> Result<BTreeSet<&'static str>, ShardError> {
    let mut done = BTreeSet::new();
    for spec in specs {
        if let Some(t) = delta::open(out, spec.name, &delta::AsOf::Latest).await?
            && delta::has_transaction(&t, app_id).await?
        {
            done.insert(spec.name);
        }
    }
    Ok(done)
}

/// What every commit of a run says about the run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Application transaction id: names the work, the same on a rerun of the same work.
    pub app_id: String,
    pub command: String,
    pub run_id: String,
    /// The run's report (counts that reconcile).
    pub summary: Value,
    /// The resolved configuration (no credentials).
    pub config: Value,
}

impl RunInfo {
    /// A run's info from its report and configuration (both serialisable by construction).
    pub fn new(app_id: String, command: &str, run_id: String, summary: &impl serde::Serialize, config: &impl serde::Serialize) -> Self {
        RunInfo {
            app_id,
            command: command.into(),
            run_id,
            summary: serde_json::to_value(summary).expect("the report serialises"),
            config: serde_json::to_value(config).expect("the configuration serialises"),
        }
    }
}

/// The change a run makes to one table.
#[derive(Debug, Default)]
pub struct TableChange {
    pub adds: Vec<DataFile>,
    /// Files whose rows leave the table (rewritten without the replaced studies).
    pub removes: Vec<Remove>,
    /// Rows that leave the table (those of `removes` the rewritten files do not keep).
    pub rows_removed: u64,
    /// Rows of `adds` that are kept rows of rewritten files, not new rows.
    pub rows_rewritten: u64,
    /// SQL predicate naming the replaced rows (an overwrite), `None` for a plain append.
    pub replace_where: Option<String>,
}

/// Commits each table's change, in the order of `specs`, then the publishing table; tables are
/// created when missing (also those with no change, so every engine finds every table). The
/// publishing table is committed whenever another table was (with no rows if it has none), with
/// the [`publish::Marks`] readers need: that commit makes the run visible. Returns what each
/// commit did.
pub async fn commit_run(
    out: &StoreLocation,
    run: &RunInfo,
    specs: &[&'static TableSpec],
    mut changes: BTreeMap<&'static str, TableChange>,
) -> Result<BTreeMap<&'static str, Committed>, ShardError> {
    let mut done = BTreeMap::new();
    let mut opened = BTreeMap::new();
    let mut earlier = false;
    let order = specs.iter().copied().filter(|s| s.name != registry::PUBLISHING_TABLE).chain([&registry::SOURCES]);
    for spec in order {
        let table = spec.name;
        let create_info = HashMap::from([(
            "cinestream".to_string(),
            serde_json::json!({ "command": run.command, "run_id": run.run_id, "created_by": env!("CARGO_PKG_VERSION") }),
        )]);
        let mut t = delta::open_or_create(out, table, &spec.schema(), spec.stats, create_info).await?;
        let change = changes.remove(table).unwrap_or_default();
        let publishing = table == registry::PUBLISHING_TABLE;
        let unchanged = change.adds.is_empty() && change.removes.is_empty();
        // An earlier attempt of this run that committed this table and died before `sources`
        // still needs its publishing commit.
        if unchanged && !publishing && delta::has_transaction(&t, &run.app_id).await? {
            earlier = true;
        }
        if unchanged && !(publishing && (earlier || !done.is_empty())) {
            opened.insert(table, t);
            continue;
        }
        let rows_added: u64 = change.adds.iter().map(|f| f.entry.rows).sum::<u64>() - change.rows_rewritten;
        let files: Vec<&writer::FileEntry> = change.adds.iter().map(|f| &f.entry).collect();
        let mut info = serde_json::json!({
            "command": run.command,
            "run_id": run.run_id,
            "app_id": run.app_id,
            "cinestream_version": env!("CARGO_PKG_VERSION"),
            "table": table,
            "schema_version": registry::SCHEMA_VERSION,
            "rows_added": rows_added,
            "rows_removed": change.rows_removed,
            "files": files,
            "summary": run.summary,
            "config": run.config,
        });
        if publishing {
            let (key, marks) = publish::marks_for(&opened, Some(&t), &run.app_id).await?.to_info();
            info[key] = marks;
        }
        let operation = match &change.replace_where {
            None => DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
            Some(p) => DeltaOperation::Write { mode: SaveMode::Overwrite, partition_by: None, predicate: Some(p.clone()) },
        };
        let info = HashMap::from([("cinestream".to_string(), info)]);
        let spec = CommitSpec { app_id: run.app_id.clone(), adds: change.adds, removes: change.removes, operation, info };
        let result = delta::commit(&mut t, spec).await?;
        tracing::info!(table, ?result, rows_added, rows_removed = change.rows_removed, "committed");
        done.insert(table, result);
        opened.insert(table, t);
    }
    Ok(done)
}
