//! Arguments several commands share: `--pipeline FILE` for the store settings, `--shard i/N`,
//! and the query options of every command that reads the tables through SQL.

use anyhow::{Context, Result};

use super::Cli;
use cinestream::config::PipelineFile;
use cinestream::query::external::{ExternalFormat, ExternalTable};
use cinestream::query::{Session, SessionOptions};
use cinestream::store::StoreOptions;
use cinestream::tables::delta::AsOf;

/// `--pipeline FILE` for commands that only need its `[store]` section.
#[derive(clap::Args)]
pub struct StoreArg {
    /// A pipeline TOML file whose [store] section (retries, back-off, timeouts) applies; its
    /// other sections are not used by this command.
    #[arg(long = "pipeline", value_name = "FILE")]
    pub pipeline: Option<String>,
}

impl StoreArg {
    pub fn options(&self) -> Result<StoreOptions> {
        Ok(match &self.pipeline {
            Some(p) => PipelineFile::load(p)?.store(),
            None => StoreOptions::default(),
        })
    }
}

/// `--shard i/N`, shared by the commands that split work by study.
#[derive(clap::Args)]
pub struct ShareArg {
    /// Take only worker i's share of N (studies split by a hash of their id), e.g. 0/4. `/N`
    /// takes i from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs). Workers that overlap or
    /// repeat are safe: every commit is idempotent.
    #[arg(long = "shard", value_name = "i/N")]
    pub share: Option<cinestream::workers::WorkShare>,
}

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Register CSV/TSV/Parquet files as a table (repeatable); a saved query's or a table's name
    /// replaces it. CSV/TSV column types are inferred from every row; declare them with
    /// `:col=type,…` (text, int, float, bool), e.g. counts=c.tsv:study_id=text.
    #[arg(long = "table", value_name = "NAME=URL[,URL][:COL=TYPE,…]")]
    pub tables: Vec<String>,
    /// Format of --table files whose extension does not say (.csv, .tsv, .parquet do).
    #[arg(long, value_enum)]
    pub format_in: Option<ExternalFormat>,
    /// Define or replace a view for this run (repeatable), e.g. truth="SELECT * FROM kaggle_truth".
    #[arg(long = "view", value_name = "NAME=SQL")]
    pub views: Vec<String>,
    /// Set a saved-query parameter (repeatable), e.g. threshold=0.10. See PARAMETERS below.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// A folder of your own saved queries (*.sql with the same header); repeatable.
    #[arg(long = "queries", value_name = "DIR")]
    pub query_dirs: Vec<std::path::PathBuf>,
    /// Read the tables as they were: a version (3), a time (2026-12-01T12:00:00Z), or one
    /// version per table (frames=3,labels=5,…, as selection.json records). Default: latest.
    #[arg(long, value_name = "VERSION|TIME|TABLE=V,…")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub store: StoreArg,
}

/// The session a command's query options ask for.
pub fn session_options(q: &QueryArgs) -> Result<SessionOptions> {
    let tables = q.tables.iter().map(|t| ExternalTable::parse(t)).collect::<Result<Vec<_>, _>>()?;
    let views = q
        .views
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(n, s)| (n.trim().to_string(), s.to_string()))
                .with_context(|| format!("bad --view `{v}`: write NAME=SQL"))
        })
        .collect::<Result<Vec<_>>>()?;
    let as_of = q.as_of.as_deref().map(AsOf::parse).transpose().map_err(anyhow::Error::msg)?.unwrap_or_default();
    Ok(SessionOptions {
        tables,
        format_in: q.format_in,
        views,
        params: q.params.clone(),
        query_dirs: q.query_dirs.clone(),
        store: q.store.options()?,
        as_of,
    })
}

/// How much a command read from the data prefix (a log line, none with -q).
pub fn log_io(cli: &Cli, session: &Session, rows: u64) {
    let io = session.io();
    if !cli.quiet {
        tracing::info!("{rows} rows; read {:.2} MB from the data prefix in {} requests", io.bytes_read as f64 / 1e6, io.reads);
    }
}

/// `--device`: where a model runs.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

impl From<DeviceArg> for cinestream::model::Device {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => cinestream::model::Device::Cpu,
            DeviceArg::Cuda => cinestream::model::Device::Cuda,
        }
    }
}
