//! DataFusion over a data prefix: the tables ingest wrote, external tables, and the saved
//! queries of `pipelines/queries/` as views.
//!
//! - **Tables.** The prefix's store is registered under a private URL (`cinestream://data/`),
//!   and each table is a listing table over exactly the active files of one version of its Delta
//!   table (the latest, or `--as-of`), with the schema from [`crate::tables::tables`] (no
//!   inference, no uncommitted files), of published runs only ([`publish`]: a run killed before
//!   its last commit stays invisible in every table). The versions read are kept for lineage. Parquet
//!   projection push-down means a query over metadata columns never reads pixel or mask bytes;
//!   the store is wrapped in a [`CountingStore`] so that can be shown ([`Session::io`]).
//! - **External tables** (`--table NAME=URL`, [`external`]) are CSV/TSV/Parquet files from any
//!   store; one named like a saved query replaces it (feed another group's volumes to the views).
//!   One named like our tables, or a `--view` so named, replaces the table, conformed to its
//!   schema ([`replace`]).
//! - **Saved queries** ([`saved`]) are planned as views the first time a statement names them,
//!   with `${param}` placeholders filled from `--param` ([`params`]).
//! - **Functions**: `kaggle_id`, `kaggle_split`, `shuffle_key` ([`udf`]); the aggregates
//!   `loess_peak`, `loess_peak_at` ([`loess`]).

pub mod external;
pub mod loess;
pub mod output;
pub mod params;
pub mod read;
pub mod replace;
pub mod saved;
pub mod selection;
pub mod suggest;
pub mod udf;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::view::ViewTable;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::store::counting::{CountSnapshot, CountingStore, Counts};
use crate::store::{StoreLocation, StoreOptions};
use crate::tables;
use crate::tables::delta::{self, AsOf, DeltaError};
use crate::tables::legacy::{self, LegacyError};
use crate::tables::publish;
use external::{ExternalFormat, ExternalTable};
use params::{ParamError, Params};
use saved::Catalog;

/// Errors building a session or running a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    #[error("registering table `{table}`: {source}")]
    Register { table: String, source: DataFusionError },
    #[error("external table `{table}`: {message}")]
    External { table: String, message: String },
    #[error("external table `{table}`: `{url}`: {source}")]
    ExternalUrl { table: String, url: String, source: Box<external::UrlError> },
    #[error("external table `{table}`: reading {urls}: {source}")]
    ExternalRead { table: String, urls: String, source: Box<suggest::Root> },
    #[error("saved query `{name}` ({origin}): {message}")]
    SavedQuery { name: String, origin: String, message: String },
    #[error("saved query `{name}` ({origin}): {source}")]
    SavedQueryParam { name: String, origin: String, source: Box<ParamError> },
    #[error("saved queries `{origin}`: cannot read it: {source}")]
    SavedQueryRead { origin: String, source: std::io::Error },
    #[error("saved query `{name}` uses itself (through {chain}); a view cannot depend on itself")]
    Cycle { name: String, chain: String },
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A query that cannot run as written, said in the user's words (a missing column, with
    /// the closest one).
    #[error("{context}: {message}")]
    Sql { context: String, message: String },
    /// Planning or running a query failed; DataFusion's error, kept as the source, says why (a
    /// storage failure among them).
    #[error("{context}: {source}")]
    Execute { context: String, source: suggest::Root },
    #[error("writing results to `{url}`: {message}")]
    Output { url: String, message: String },
    /// Computing or writing the results failed (`hint` helps with a CSV value of the wrong type).
    #[error("writing results to `{url}`: {source}{hint}")]
    Results { url: String, hint: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("{origin} replaces the table `{table}`, but {message}; give those columns (with AS) or name your table differently")]
    Replacement { table: String, origin: String, message: String },
}

/// The version of one table a session reads (what selections and models record as lineage).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableVersion {
    pub table: String,
    /// `None`: the table has no Delta log yet (read as empty).
    pub version: Option<i64>,
    /// Active data files of that version.
    pub files: usize,
}

/// What a session is built from besides the data prefix.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `--table` arguments.
    pub tables: Vec<ExternalTable>,
    /// `--format-in`: the format of external tables whose names do not say.
    pub format_in: Option<ExternalFormat>,
    /// `--view NAME=SQL` definitions (they replace saved queries of that name).
    pub views: Vec<(String, String)>,
    /// `--param NAME=VALUE` arguments.
    pub params: Vec<String>,
    /// Folders of the user's own saved queries.
    pub query_dirs: Vec<PathBuf>,
    pub store: StoreOptions,
    /// Which version of the data prefix's tables to read (`--as-of`).
    pub as_of: AsOf,
}

/// A DataFusion session over a data prefix with the saved queries at hand.
pub struct Session {
    ctx: SessionContext,
    catalog: Catalog,
    params: Params,
    counts: Option<Arc<Counts>>,
    versions: Vec<TableVersion>,
    /// Saved views planned so far: name → SQL with parameters filled in.
    views: Mutex<BTreeMap<String, String>>,
}

const DATA_URL: &str = "cinestream://data";

impl Session {
    /// Opens a session over `data` (or over external tables only, when `None`).
    pub async fn open(data: Option<&StoreLocation>, opts: &SessionOptions) -> Result<Self, QueryError> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        udf::register(&ctx);
        let mut catalog = Catalog::builtin();
        for dir in &opts.query_dirs {
            catalog.add_dir(dir)?;
        }
        for (name, sql) in &opts.views {
            catalog.define(name, sql)?;
        }
        let mut params = Params::default();
        for q in catalog.iter() {
            for p in &q.params {
                params.declare(p).map_err(|e| QueryError::SavedQueryParam {
                    name: q.name.clone(),
                    origin: q.origin.clone(),
                    source: Box::new(e),
                })?;
            }
        }
        params.set_args(&opts.params)?;
        let (counts, versions) = match data {
            Some(d) => {
                let (c, m) = register_data(&ctx, d, &opts.as_of).await?;
                (Some(c), m)
            }
            None => {
                register_empty(&ctx)?;
                (None, Vec::new())
            }
        };
        for t in &opts.tables {
            t.register(&ctx, opts.format_in, &opts.store).await?;
            if replace::is_ours(&t.name) {
                let df = ctx.table(t.name.as_str()).await.map_err(|e| QueryError::Register { table: t.name.clone(), source: e })?;
                replace::register(&ctx, &t.name, &format!("--table {}", t.name), df)?;
            }
        }
        let session = Session { ctx, catalog, params, counts, versions, views: Mutex::default() };
        // A view named like one of our tables replaces it (its SQL may read the table itself).
        for (name, sql) in opts.views.iter().filter(|(n, _)| replace::is_ours(n)) {
            let df = session.sql(sql).await?;
            replace::register(&session.ctx, name, &format!("--view {name}"), df)?;
            session.views.lock().expect("views lock").insert(name.clone(), sql.clone());
        }
        Ok(session)
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The table versions the session reads.
    pub fn versions(&self) -> &[TableVersion] {
        &self.versions
    }
    /// Requests and bytes read from the data prefix so far.
    pub fn io(&self) -> CountSnapshot {
        self.counts.as_ref().map(|c| c.snapshot()).unwrap_or_default()
    }

    /// The saved views planned so far (name → SQL with parameters filled in).
    pub fn views_used(&self) -> BTreeMap<String, String> {
        self.views.lock().expect("views lock").clone()
    }

    /// Every name a query can use: tables, external tables, saved queries.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = tables::REGISTRY.iter().map(|t| t.name.to_string()).collect();
        if let Some(schema) = self.ctx.catalog("datafusion").and_then(|c| c.schema("public")) {
            names.extend(schema.table_names());
        }
        names.extend(self.catalog.names().map(String::from));
        names.sort();
        names.dedup();
        names
    }

    /// Settings for queries whose rows carry whole images or masks: 64-row batches (at
    /// DataFusion's default of 8,192 rows one batch is hundreds of MB), and filters applied while
    /// Parquet is decoded, so rows of other studies in the same row group are never materialised
    /// (without it, reading one study's masks decoded its whole row group into one batch: the
    /// evaluation's peak memory grew with the data set, BENCHMARKS.md).
    pub async fn for_images(&self) -> Result<(), QueryError> {
        for setting in ["SET datafusion.execution.batch_size = 64", "SET datafusion.execution.parquet.pushdown_filters = true"] {
            self.ctx.sql(setting).await.map_err(|e| self.sql_error(setting, e))?;
        }
        Ok(())
    }

    /// One stream per query: rows arrive one batch at a time in the tables' file order (files
    /// sorted by path). Without it DataFusion's parallel scans and joins interleave their
    /// partitions as threads happen to finish, and hold batches between them. (The file order
    /// is not the same for two writes of the same rows: a training cache sorts its rows by key.)
    pub async fn one_stream(&self) -> Result<(), QueryError> {
        let setting = "SET datafusion.execution.target_partitions = 1";
        self.ctx.sql(setting).await.map_err(|e| self.sql_error(setting, e))?;
        Ok(())
    }

    /// The SQL of a QUERY argument: a saved query's name means its own SQL (so its `ORDER BY`
    /// holds: a view's order is lost when selected from), a table's name `SELECT * FROM name`.
    pub fn query_text(&self, query: &str) -> String {
        let q = query.trim();
        if self.ctx.table_exist(q).unwrap_or(false) {
            return format!("SELECT * FROM {q}");
        }
        match self.catalog.get(q) {
            Some(saved) => saved.sql.clone(),
            None => q.to_string(),
        }
    }

    /// Runs SQL (one or more statements; `${param}` placeholders allowed) and returns the last
    /// statement's result. Saved queries the statements name are planned first.
    pub async fn sql(&self, text: &str) -> Result<DataFrame, QueryError> {
        let text = self.params.substitute(text, "the query")?;
        let statements = self.parse(&text, "the query")?;
        let count = statements.len();
        let mut last = None;
        for (i, statement) in statements.into_iter().enumerate() {
            self.ensure_views(&statement).await?;
            let df = self.execute(statement, "the query").await?;
            if i + 1 == count {
                last = Some(df);
            } else {
                df.collect().await.map_err(|e| self.sql_error("the query", e))?;
            }
        }
        last.ok_or_else(|| QueryError::Sql { context: "the query".into(), message: "no SQL statement given".into() })
    }

    /// The SQL of a saved query with its parameters filled in (what a selection records).
    pub fn saved_sql(&self, name: &str) -> Option<Result<String, QueryError>> {
        let q = self.catalog.get(name)?;
        Some(self.params.substitute(&q.sql, &q.origin).map_err(QueryError::from))
    }

    fn parse(&self, sql: &str, context: &str) -> Result<Vec<Statement>, QueryError> {
        let dialect = GenericDialect {};
        DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()
            .and_then(|mut p| p.parse_statements())
            .map(Vec::from)
            .map_err(|e| QueryError::Sql { context: context.into(), message: e.to_string() })
    }

    async fn execute(&self, statement: Statement, context: &str) -> Result<DataFrame, QueryError> {
        let state = self.ctx.state();
        let plan = state.statement_to_plan(statement).await.map_err(|e| self.sql_error(context, e))?;
        self.ctx.execute_logical_plan(plan).await.map_err(|e| self.sql_error(context, e))
    }

    /// The query's error: in the user's words when [`suggest::explain`] has some (those are
    /// never storage failures), else DataFusion's root cause, kept as the source.
    fn sql_error(&self, context: &str, e: DataFusionError) -> QueryError {
        match suggest::explain(&e, &self.table_names()) {
            Some(message) => QueryError::Sql { context: context.into(), message },
            None => QueryError::Execute { context: context.into(), source: suggest::Root(e) },
        }
    }

    /// Plans and registers, dependencies first, every saved query `statement` names that is
    /// not a table yet.
    async fn ensure_views(&self, statement: &Statement) -> Result<(), QueryError> {
        let mut order = Vec::new();
        self.views_needed(statement, &mut Vec::new(), &mut order)?;
        for (name, sql, statement) in order {
            let q = self.catalog.get(&name).expect("collected from the catalog");
            let context = format!("saved query `{name}` ({})", q.origin);
            let df = self.execute(statement, &context).await?;
            let view = ViewTable::new(df.logical_plan().clone(), Some(sql.clone()));
            self.ctx.register_table(name.as_str(), Arc::new(view)).map_err(|e| self.sql_error(&context, e))?;
            self.views.lock().expect("views lock").insert(name, sql);
        }
        Ok(())
    }

    fn views_needed(
        &self,
        statement: &Statement,
        stack: &mut Vec<String>,
        order: &mut Vec<(String, String, Statement)>,
    ) -> Result<(), QueryError> {
        let refs = self.ctx.state().resolve_table_references(statement).map_err(|e| self.sql_error("the query", e))?;
        for r in refs {
            if r.schema().is_some() {
                continue;
            }
            let name = r.table().to_string();
            if order.iter().any(|(n, _, _)| *n == name) || self.ctx.table_exist(name.as_str()).unwrap_or(false) {
                continue;
            }
            let Some(q) = self.catalog.get(&name) else { continue };
            if stack.contains(&name) {
                return Err(QueryError::Cycle { name, chain: stack.join(" → ") });
            }
            let sql = self.params.substitute(&q.sql, &q.origin)?;
            let mut statements = self.parse(&sql, &format!("saved query `{name}` ({})", q.origin))?;
            if statements.len() != 1 {
                return Err(QueryError::SavedQuery {
                    name,
                    origin: q.origin.clone(),
                    message: "a saved query must be exactly one statement".into(),
                });
            }
            let statement = statements.pop().expect("one");
            stack.push(name.clone());
            self.views_needed(&statement, stack, order)?;
            stack.pop();
            order.push((name, sql, statement));
        }
        Ok(())
    }
}

/// Registers one version of each table of a data prefix; returns the byte counter and versions.
async fn register_data(ctx: &SessionContext, data: &StoreLocation, as_of: &AsOf) -> Result<(Arc<Counts>, Vec<TableVersion>), QueryError> {
    legacy::refuse_unconverted(data).await?;
    let counting = CountingStore::new(data.store.clone());
    let counts = counting.counts();
    let url = url::Url::parse(DATA_URL).expect("constant URL");
    ctx.register_object_store(&url, Arc::new(counting));
    // cinestream's tables (empty when absent) and any other Delta table under the prefix.
    let mut names: Vec<String> = tables::REGISTRY.iter().map(|t| t.name.to_string()).collect();
    names.extend(delta::tables_under(data).await?);
    names.sort();
    names.dedup();
    let mut opened = BTreeMap::new();
    for table in &names {
        let t = match delta::open(data, table, as_of).await {
            Ok(t) => t,
            // A table made after the version asked for did not exist then: it is empty.
            Err(DeltaError::NoVersion { .. }) if *as_of != AsOf::Latest => None,
            Err(e) => return Err(e.into()),
        };
        opened.insert(table.as_str(), t);
    }
    // Which runs are published: by `sources` at the version read, or at its latest when
    // `--as-of TABLE=V,…` does not name it.
    let latest_sources = match as_of {
        AsOf::Tables(m) if !m.contains_key(tables::PUBLISHING_TABLE) => delta::open(data, tables::PUBLISHING_TABLE, &AsOf::Latest).await?,
        _ => None,
    };
    let mut publication = publish::Publication::read(latest_sources.as_ref().or(opened[tables::PUBLISHING_TABLE].as_ref())).await?;
    let mut versions = Vec::new();
    for table in &names {
        let table = table.as_str();
        let register = |e| QueryError::Register { table: table.to_string(), source: e };
        let opened = &opened[table];
        // Our tables have our schema (with descriptions); others the one their log declares, or
        // the latest one when the version read is before the table existed.
        let schema = match (tables::schema(table), opened) {
            (Some(s), _) => s,
            (None, Some(t)) => delta::arrow_schema(t)?,
            (None, None) => match delta::open(data, table, &AsOf::Latest).await? {
                Some(t) => delta::arrow_schema(&t)?,
                None => continue,
            },
        };
        let files = match opened {
            // Only published runs' files (see tables::publish).
            Some(t) => publication.visible_files(t, table).await?,
            None => Vec::new(),
        };
        versions.push(TableVersion { table: table.to_string(), version: opened.as_ref().and_then(delta::version), files: files.len() });
        if files.is_empty() {
            register_empty_table(ctx, table, schema)?;
            continue;
        }
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(format!("{DATA_URL}/{}", data.child(&format!("{table}/{}", f.path)))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(register)?;
        let options = ListingOptions::new(Arc::new(parquet_format())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
        let provider = ListingTable::try_new(config).map_err(register)?;
        ctx.register_table(table, Arc::new(provider)).map_err(register)?;
    }
    Ok((counts, versions))
}

/// Parquet reading that fetches exactly each file's footer, rather than DataFusion's default of
/// the last 512 KiB: that prefetch is mostly the last column — pixels in `frames`, masks in
/// `labels` — which a metadata query never asked for.
pub(crate) fn parquet_format() -> ParquetFormat {
    ParquetFormat::default().with_metadata_size_hint(None)
}

/// Registers the tables empty (a session over external tables only).
fn register_empty(ctx: &SessionContext) -> Result<(), QueryError> {
    tables::REGISTRY.iter().try_for_each(|t| register_empty_table(ctx, t.name, t.schema()))
}

fn register_empty_table(ctx: &SessionContext, table: &str, schema: SchemaRef) -> Result<(), QueryError> {
    let register = |e| QueryError::Register { table: table.to_string(), source: e };
    let empty = MemTable::try_new(schema, vec![vec![]]).map_err(register)?;
    ctx.register_table(table, Arc::new(empty)).map_err(register)?;
    Ok(())
}
