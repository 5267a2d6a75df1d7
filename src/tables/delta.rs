//! Delta Lake tables under a data prefix: `<prefix>/<table>/` with its `_delta_log/`, opened
//! through the object stores of [`crate::store`] (no second credential path).
//!
//! delta-rs' default log store commits a version by a create-only put of
//! `_delta_log/<version>.json`, which `file://`, S3 (and MinIO, Ceph RGW) honour, so concurrent
//! writers cannot both take a version: the loser re-reads, checks for conflicts and retries.
//!
//! Every commit of ours carries an *application transaction* (`txn` action) whose id names the
//! work it records. Before committing, [`commit`] asks the snapshot whether that id is already
//! there; a commit whose reply was lost and that is retried finds its own id in the winning
//! commit (delta-rs reports a concurrent transaction) and is not applied twice.
//!
//! Readers ([`crate::query`]) take the active file list of a version and read exactly those
//! files; tables needing reader features we do not implement (deletion vectors, column mapping)
//! are refused by name rather than misread.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::Schema;
use chrono::Utc;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{Action, Add, CommitInfo, Remove, StructType, Transaction};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError, TableProperty};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use serde_json::Value;
use url::Url;

pub use super::as_of::AsOf;
use super::writer::DataFile;
use crate::store::StoreLocation;

/// Errors of the Delta layer; each names the table's URL.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("Delta table `{url}`: {source}")]
    Table { url: String, source: Box<DeltaTableError> },
    #[error("Delta table `{url}` has no version {as_of}: `cinestream log --data …` lists the versions")]
    NoVersion { url: String, as_of: String },
    #[error(
        "Delta table `{url}` needs reader features cinestream does not implement ({features}); read it with delta-rs or Spark, or rewrite it without them"
    )]
    Unsupported { url: String, features: String },
    #[error(
        "Delta table `{url}` has columns {found}, but cinestream writes {expected}: it was made by another program or version; write to a new prefix"
    )]
    SchemaMismatch { url: String, found: String, expected: String },
    #[error(
        "Delta table `{url}` was written by an earlier cinestream and lacks the columns {missing}: run `cinestream upgrade --data <the data prefix>` to add them (rows written before read them as null)"
    )]
    Outdated { url: String, missing: String },
    #[error("Delta table `{url}`: commit {version} is unreadable ({what}: {source}); was it written by another program?")]
    Log { url: String, version: i64, what: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("bad table URL `{url}`: {source}")]
    Url { url: String, source: url::ParseError },
    #[error("bad table URL `{url}`: {source}")]
    Path { url: String, source: object_store::path::Error },
    #[error("listing the tables under `{url}`: {source}")]
    List { url: String, source: object_store::Error },
}

impl DeltaError {
    fn table(url: &Url, source: DeltaTableError) -> Self {
        DeltaError::Table { url: url.to_string(), source: Box::new(source) }
    }
}

/// A table's place: its URL and a log store over our store.
#[derive(Clone)]
pub struct Location {
    pub url: Url,
    pub log_store: LogStoreRef,
}

/// The Delta location of `table` under `out`.
///
/// delta-rs' kernel maps a URL's path to an object path of the *root* store, so the root must be
/// the store whose paths are URL paths: the bucket for S3 and memory stores, `/` for local
/// folders (our local stores are rooted at the folder itself).
pub fn location(out: &StoreLocation, table: &str) -> Result<Location, DeltaError> {
    let text = format!("{}/{table}/", out.url().trim_end_matches('/'));
    let url = Url::parse(&text).map_err(|source| DeltaError::Url { url: text.clone(), source })?;
    let root: Arc<dyn ObjectStore> =
        if url.scheme() == "file" { Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)) } else { out.store.clone() };
    let table_path = Path::from_url_path(url.path()).map_err(|source| DeltaError::Path { url: text.clone(), source })?;
    let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(root.clone(), table_path));
    let log_store = default_logstore(prefixed, root, &url, &StorageConfig::default());
    Ok(Location { url, log_store })
}

/// Whether `table` under `out` has a Delta log.
pub async fn exists(out: &StoreLocation, table: &str) -> Result<bool, DeltaError> {
    let loc = location(out, table)?;
    loc.log_store.is_delta_table_location().await.map_err(|e| DeltaError::table(&loc.url, e))
}

/// The Delta tables directly under `out`: the folders holding a `_delta_log/`, sorted. Folders
/// whose names are not SQL identifiers (lower case, digits, `_`) are left out with a warning.
pub async fn tables_under(out: &StoreLocation) -> Result<Vec<String>, DeltaError> {
    let listing = match out.store.list_with_delimiter(Some(&out.prefix)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(source) => return Err(DeltaError::List { url: out.url().to_string(), source }),
    };
    let mut names = Vec::new();
    for folder in &listing.common_prefixes {
        let Some(name) = folder.filename() else { continue };
        if !exists(out, name).await? {
            continue;
        }
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            tracing::warn!(table = name, "a Delta table whose folder name is not a SQL name (a–z, 0–9, _): not registered");
            continue;
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok(names)
}

/// The Arrow schema of the loaded version.
pub fn arrow_schema(t: &DeltaTable) -> Result<arrow::datatypes::SchemaRef, DeltaError> {
    use deltalake_core::kernel::engine::arrow_conversion::TryIntoArrow as _;
    let url = t.table_url().clone();
    let snapshot = t.snapshot().map_err(|e| DeltaError::table(&url, e))?;
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|e| DeltaError::Log {
        url: url.to_string(),
        version: version(t).unwrap_or(-1),
        what: "schema",
        source: e.into(),
    })?;
    Ok(Arc::new(schema))
}

/// Opens `table` at a version; `None` when the table has no log yet.
pub async fn open(out: &StoreLocation, table: &str, as_of: &AsOf) -> Result<Option<DeltaTable>, DeltaError> {
    let loc = location(out, table)?;
    if !loc.log_store.is_delta_table_location().await.map_err(|e| DeltaError::table(&loc.url, e))? {
        return Ok(None);
    }
    let mut t = DeltaTable::new(loc.log_store.clone());
    let loaded = match as_of {
        AsOf::Latest => t.load().await,
        AsOf::Version(v) => t.load_version(*v as u64).await,
        AsOf::Timestamp(ts) => t.load_with_datetime(*ts).await,
        AsOf::Tables(m) => match m.get(table).copied().flatten() {
            Some(v) => t.load_version(v as u64).await,
            None => return Ok(None),
        },
    };
    match loaded {
        Ok(()) => {}
        Err(DeltaTableError::InvalidVersion(_)) | Err(DeltaTableError::NotATable(_)) if *as_of != AsOf::Latest => {
            return Err(DeltaError::NoVersion { url: loc.url.to_string(), as_of: as_of.to_string() });
        }
        Err(e) if *as_of != AsOf::Latest && e.to_string().to_lowercase().contains("version") => {
            return Err(DeltaError::NoVersion { url: loc.url.to_string(), as_of: format!("{as_of} ({e})") });
        }
        Err(e) => return Err(DeltaError::table(&loc.url, e)),
    }
    check_readable(&t, &loc.url)?;
    Ok(Some(t))
}

/// Refuses tables whose files cannot be read as plain Parquet.
fn check_readable(t: &DeltaTable, url: &Url) -> Result<(), DeltaError> {
    let snapshot = t.snapshot().map_err(|e| DeltaError::table(url, e))?;
    let protocol = snapshot.protocol();
    let features: Vec<String> =
        protocol.reader_features().unwrap_or_default().iter().map(|f| f.to_string()).filter(|f| f != "timestampNtz").collect();
    if protocol.min_reader_version() > 1 && (protocol.min_reader_version() == 2 || !features.is_empty()) {
        let what = if features.is_empty() { format!("reader version {}", protocol.min_reader_version()) } else { features.join(", ") };
        return Err(DeltaError::Unsupported { url: url.to_string(), features: what });
    }
    Ok(())
}

/// Opens `table`, creating it with `schema` when it has no log yet (several writers may race
/// to create it: the loser loads the winner's table). An existing table must have our columns.
pub async fn open_or_create(
    out: &StoreLocation,
    table: &str,
    schema: &Schema,
    stats_columns: &[&str],
    info: HashMap<String, Value>,
) -> Result<DeltaTable, DeltaError> {
    if let Some(t) = open(out, table, &AsOf::Latest).await? {
        check_schema(&t, table, schema)?;
        return Ok(t);
    }
    let loc = location(out, table)?;
    match create(&loc, table, schema, stats_columns, info).await {
        Ok(t) => Ok(t),
        Err(e) => match open(out, table, &AsOf::Latest).await? {
            // Another writer created it first.
            Some(t) => {
                check_schema(&t, table, schema)?;
                Ok(t)
            }
            None => Err(DeltaError::table(&loc.url, e)),
        },
    }
}

/// Commits version 0 of a new table, or fails if any version exists.
///
/// Checks, before a run does any work, that each existing table of `specs` has the schema this
/// version writes (an outdated one is refused with how to upgrade it).
pub async fn check_writable(out: &StoreLocation, specs: &[&super::spec::TableSpec]) -> Result<(), DeltaError> {
    for spec in specs {
        if let Some(t) = open(out, spec.name, &AsOf::Latest).await? {
            check_schema(&t, spec.name, &spec.schema())?;
        }
    }
    Ok(())
}

/// No retries: delta-rs would otherwise retry a create that lost the race
/// as version 1, a second metadata action that makes every concurrent
/// writer's append fail with "Metadata changed since last commit".
async fn create(
    loc: &Location,
    table: &str,
    schema: &Schema,
    stats_columns: &[&str],
    info: HashMap<String, Value>,
) -> Result<DeltaTable, DeltaTableError> {
    let kernel: StructType = schema.try_into_kernel().map_err(DeltaTableError::from)?;
    let stats: Vec<&str> = stats_columns.iter().copied().filter(|c| schema.column_with_name(c).is_some()).collect();
    DeltaTable::new(loc.log_store.clone())
        .create()
        .with_table_name(table)
        .with_columns(kernel.fields().cloned())
        .with_configuration_property(TableProperty::DataSkippingStatsColumns, Some(stats.join(",")))
        .with_save_mode(SaveMode::Ignore)
        .with_commit_properties(CommitProperties::default().with_metadata(info).with_max_retries(0))
        .await
}

fn check_schema(t: &DeltaTable, table: &str, schema: &Schema) -> Result<(), DeltaError> {
    let url = t.table_url().to_string();
    let snapshot = t.snapshot().map_err(|e| DeltaError::Table { url: url.clone(), source: Box::new(e) })?;
    let found: Vec<String> = snapshot.schema().fields().map(|f| f.name().to_string()).collect();
    let expected: Vec<String> = schema.fields().iter().map(|f| f.name().to_string()).collect();
    if found == expected {
        return Ok(());
    }
    let missing = missing_columns(&found, schema);
    if !missing.is_empty() {
        return Err(DeltaError::Outdated { url, missing: missing.join(", ") });
    }
    tracing::error!(table, "Delta table schema differs from cinestream's");
    Err(DeltaError::SchemaMismatch { url, found: found.join(", "), expected: expected.join(", ") })
}

/// The columns an older version of our schema lacks: `schema`'s nullable trailing columns after
/// exactly `found`. Empty when `found` is not such a prefix.
fn missing_columns(found: &[String], schema: &Schema) -> Vec<String> {
    let fields = schema.fields();
    if found.len() >= fields.len() || fields.iter().zip(found).any(|(f, name)| f.name() != name) {
        return Vec::new();
    }
    let rest = &fields[found.len()..];
    if rest.iter().all(|f| f.is_nullable()) { rest.iter().map(|f| f.name().to_string()).collect() } else { Vec::new() }
}

/// Adds the columns `schema` has and the table (written by an earlier cinestream) lacks, in one
/// metadata commit; rows written before read them as null. Returns the added columns' names.
pub async fn add_missing_columns(
    t: DeltaTable,
    schema: &Schema,
    info: HashMap<String, Value>,
) -> Result<(DeltaTable, Vec<String>), DeltaError> {
    let url = t.table_url().clone();
    let found: Vec<String> =
        t.snapshot().map_err(|e| DeltaError::table(&url, e))?.schema().fields().map(|f| f.name().to_string()).collect();
    let missing = missing_columns(&found, schema);
    if missing.is_empty() {
        return Ok((t, missing));
    }
    let kernel: StructType = schema.try_into_kernel().map_err(|e| DeltaError::table(&url, DeltaTableError::from(e)))?;
    let fields: Vec<_> = kernel.fields().filter(|f| missing.iter().any(|m| m == f.name())).cloned().collect();
    let t = t
        .add_columns()
        .with_fields(fields)
        .with_commit_properties(CommitProperties::default().with_metadata(info))
        .await
        .map_err(|e| DeltaError::table(&url, e))?;
    Ok((t, missing))
}

/// What one commit records.
pub struct CommitSpec {
    /// The application transaction id naming this work (see the module docs).
    pub app_id: String,
    pub adds: Vec<DataFile>,
    pub removes: Vec<Remove>,
    /// `Write` with mode Append, or Overwrite with the predicate the removes match.
    pub operation: DeltaOperation,
    /// Extra commit info: command, run id, summary, config, file checksums.
    pub info: HashMap<String, Value>,
}

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Committed as this version.
    Version(i64),
    /// The transaction id was already in the table: nothing was committed.
    AlreadyThere,
}

impl Committed {
    /// For a run's report.
    pub fn describe(self) -> String {
        match self {
            Committed::Version(v) => format!("version {v}"),
            Committed::AlreadyThere => "already committed (this work's transaction id is in the table)".into(),
        }
    }
}

/// Whether the table's latest snapshot holds application transaction `app_id`.
pub async fn has_transaction(t: &DeltaTable, app_id: &str) -> Result<bool, DeltaError> {
    let url = t.table_url().clone();
    let snapshot = t.snapshot().map_err(|e| DeltaError::table(&url, e))?;
    let v = snapshot.transaction_version(t.log_store().as_ref(), app_id).await.map_err(|e| DeltaError::table(&url, e))?;
    Ok(v.is_some())
}

/// An `add` action for a written file.
pub fn add_action(f: &DataFile) -> Add {
    Add {
        path: f.entry.path.clone(),
        partition_values: HashMap::new(),
        size: f.entry.bytes as i64,
        modification_time: Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(f.stats.clone()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

/// Commits `spec` to `t` unless its transaction id is already there (then nothing happens).
/// Reloads `t` to the committed version.
pub async fn commit(t: &mut DeltaTable, spec: CommitSpec) -> Result<Committed, DeltaError> {
    let url = t.table_url().clone();
    t.update_state().await.map_err(|e| DeltaError::table(&url, e))?;
    if has_transaction(t, &spec.app_id).await? {
        tracing::info!(table = %url, app_id = %spec.app_id, "already committed: skipped");
        return Ok(Committed::AlreadyThere);
    }
    let mut actions: Vec<Action> = spec.adds.iter().map(|f| Action::Add(add_action(f))).collect();
    actions.extend(spec.removes.into_iter().map(Action::Remove));
    let now = Utc::now().timestamp_millis();
    let props = CommitProperties::default().with_metadata(spec.info).with_application_transaction(Transaction::new_with_last_update(
        &spec.app_id,
        1,
        Some(now),
    ));
    let result = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(t.snapshot().map_err(|e| DeltaError::table(&url, e))?), t.log_store(), spec.operation)
        .await;
    match result {
        Ok(done) => {
            let version = done.version();
            t.update_state().await.map_err(|e| DeltaError::table(&url, e))?;
            Ok(Committed::Version(version as i64))
        }
        Err(e) => {
            // A lost reply: the winning commit carries our own transaction id.
            t.update_state().await.map_err(|e| DeltaError::table(&url, e))?;
            if is_concurrent_transaction(&e) && has_transaction(t, &spec.app_id).await? {
                tracing::warn!(table = %url, app_id = %spec.app_id, "the commit landed although its reply was lost: not applied twice");
                return Ok(Committed::AlreadyThere);
            }
            Err(DeltaError::table(&url, e))
        }
    }
}

fn is_concurrent_transaction(e: &DeltaTableError) -> bool {
    matches!(e, DeltaTableError::Transaction { source: TransactionError::CommitConflict(_) })
}

/// One active data file of a snapshot.
#[derive(Debug, Clone)]
pub struct ActiveFile {
    /// Path relative to the table root.
    pub path: String,
    pub size: i64,
    pub rows: Option<usize>,
    pub stats: Option<String>,
    pub partition_values: HashMap<String, Option<String>>,
}

impl ActiveFile {
    /// Whether the file's statistics allow a row whose string `column` is one of `values`.
    pub fn may_hold(&self, column: &str, values: &std::collections::BTreeSet<String>) -> bool {
        let Some(stats) = self.stats.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()) else { return true };
        let (Some(lo), Some(hi)) = (stats["minValues"][column].as_str(), stats["maxValues"][column].as_str()) else { return true };
        values.iter().any(|v| lo <= v.as_str() && v.as_str() <= hi)
    }
}

/// The files a loaded version reads.
pub fn active_files(t: &DeltaTable) -> Result<Vec<ActiveFile>, DeltaError> {
    let url = t.table_url().clone();
    let snapshot = t.snapshot().map_err(|e| DeltaError::table(&url, e))?;
    let mut files: Vec<ActiveFile> = snapshot
        .log_data()
        .iter()
        .map(|f| ActiveFile {
            path: f.path().to_string(),
            size: f.size(),
            rows: f.num_records(),
            stats: f.stats(),
            partition_values: f.partition_values_map(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The `remove` action for an active file (its rows leave the table in this commit).
pub fn remove_action(f: &ActiveFile) -> Remove {
    Remove {
        path: f.path.clone(),
        data_change: true,
        deletion_timestamp: Some(Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        partition_values: Some(f.partition_values.clone()),
        size: Some(f.size),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
    }
}

/// The loaded version of a table.
pub fn version(t: &DeltaTable) -> Option<i64> {
    t.version().map(|v| v as i64)
}

/// The commit infos of a table, newest first (at most `limit`).
pub async fn history(t: &DeltaTable, limit: Option<usize>) -> Result<Vec<CommitInfo>, DeltaError> {
    let url = t.table_url().clone();
    let infos: Vec<_> = t.history(limit).collect().await;
    infos.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| DeltaError::table(&url, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_rule_files_out() {
        let file = |stats: Option<String>| ActiveFile { path: "p".into(), size: 1, rows: None, stats, partition_values: HashMap::new() };
        let v: std::collections::BTreeSet<String> = ["17".to_string()].into();
        let s =
            |lo: &str, hi: &str| Some(format!(r#"{{"numRecords":1,"minValues":{{"study_id":"{lo}"}},"maxValues":{{"study_id":"{hi}"}}}}"#));
        assert!(file(s("1", "2")).may_hold("study_id", &v));
        assert!(!file(s("2", "5")).may_hold("study_id", &v));
        assert!(file(None).may_hold("study_id", &v), "no statistics: must be read");
    }

    /// A store whose next listing comes back empty: a writer that looked for
    /// the table just before another writer created it.
    #[derive(Debug)]
    struct StaleListing {
        inner: Arc<dyn ObjectStore>,
        stale: std::sync::atomic::AtomicBool,
    }

    impl std::fmt::Display for StaleListing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "StaleListing({})", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for StaleListing {
        async fn put_opts(
            &self,
            p: &Path,
            payload: object_store::PutPayload,
            o: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(p, payload, o).await
        }
        async fn put_multipart_opts(
            &self,
            p: &Path,
            o: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(p, o).await
        }
        async fn get_opts(&self, p: &Path, o: object_store::GetOptions) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(p, o).await
        }
        fn delete_stream(
            &self,
            l: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(l)
        }
        fn list(&self, prefix: Option<&Path>) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            if self.stale.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return futures::stream::empty().boxed();
            }
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, o: object_store::CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }

    /// Two writers that both found no table: the one that loses the race to
    /// version 0 must fail (its caller then opens the winner's table), never
    /// commit a version 1 with a second metadata action — that made a
    /// concurrent ingest's append fail with "Metadata changed since last commit".
    #[tokio::test]
    async fn a_create_that_lost_the_race_commits_nothing() {
        use arrow::datatypes::{DataType, Field};
        let store = Arc::new(StaleListing { inner: Arc::new(object_store::memory::InMemory::new()), stale: false.into() });
        let out = StoreLocation::new(store.clone(), Path::from("data"), "memory://create-race/data");
        let schema = Schema::new(vec![Field::new("study_id", DataType::Utf8, false)]);
        let loc = location(&out, "studies").unwrap();
        let first = create(&loc, "studies", &schema, &["study_id"], HashMap::new()).await.unwrap();
        assert_eq!(first.version(), Some(0));
        store.stale.store(true, std::sync::atomic::Ordering::SeqCst);
        let lost = create(&loc, "studies", &schema, &["study_id"], HashMap::new()).await;
        assert!(lost.is_err(), "the create that lost the race must fail");
        assert_eq!(loc.log_store.get_latest_version(0).await.unwrap(), 0, "no second metadata commit");
        let t = open_or_create(&out, "studies", &schema, &["study_id"], HashMap::new()).await.unwrap();
        assert_eq!(t.version(), Some(0));
    }
}
