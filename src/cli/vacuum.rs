//! `cinestream vacuum`: remove the files no table version needs.

use anyhow::Result;

use super::Cli;
use super::args::StoreArg;
use cinestream::store;
use cinestream::tables::{legacy, maintain};

pub const HELP: &str = "Dry run unless --apply: lists what it would delete. Files younger than --older-than
are kept (an ingest still running owns them; readers may time-travel to those versions).

EXAMPLES
  cinestream vacuum --data ./data                      # what would go (older than 7 days)
  cinestream vacuum --data ./data --older-than 1h --apply";

#[derive(clap::Args)]
pub struct Args {
    /// The data prefix (path, file://, s3://).
    #[arg(long)]
    data: String,
    /// Keep files younger than this, and files of versions newer than this (7d, 12h, 30m, 0).
    #[arg(long, default_value = "7d")]
    older_than: String,
    /// Delete (without it, only list what would be deleted).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    store: StoreArg,
}

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let data = store::open_existing(&a.data, &a.store.options()?)?;
    legacy::refuse_unconverted(&data).await?;
    let older = maintain::parse_duration(&a.older_than).map_err(|e| anyhow::anyhow!("--older-than {e}"))?;
    let report = maintain::vacuum(&data, older, !a.apply).await?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let total: usize = report.files.values().map(Vec::len).sum();
    for (table, files) in &report.files {
        for f in files {
            println!("{} {f}", if a.apply { "deleted" } else { "would delete" });
        }
        if !files.is_empty() && !cli.quiet {
            eprintln!("{table}: {} files", files.len());
        }
    }
    if !cli.quiet {
        eprintln!("{total} files {}", if a.apply { "deleted" } else { "would be deleted (dry run: add --apply to delete)" });
    }
    Ok(())
}
