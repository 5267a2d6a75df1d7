//! `cinestream log`: the commits of the tables.

use anyhow::{Result, bail};

use super::Cli;
use super::args::StoreArg;
use cinestream::store;
use cinestream::tables::{legacy, maintain};

pub const HELP: &str = "EXAMPLES
  cinestream log --data ./data
  cinestream log --data s3://curated/v1 frames
  cinestream sql --data ./data --as-of 3 \"SELECT count(*) FROM frames\"   # read an old version";

#[derive(clap::Args)]
pub struct Args {
    /// The data prefix (path, file://, s3://).
    #[arg(long)]
    data: String,
    #[command(flatten)]
    store: StoreArg,
    /// Only these tables (frames, labels, curation_log, studies, sources, label_qc, or any other
    /// Delta table under --data).
    tables: Vec<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let data = store::open_existing(&a.data, &a.store.options()?)?;
    legacy::refuse_unconverted(&data).await?;
    let rows = maintain::history(&data, &a.tables).await?;
    if rows.is_empty() {
        bail!("no Delta tables under `{data}`: `cinestream ingest --output {data}` writes them");
    }
    if cli.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!("{:<13} {:>7}  {:<24} {:<18} {:>9} {:>9}  summary", "table", "version", "time (UTC)", "operation", "+rows", "-rows");
    let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    for r in rows {
        let time = r.time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()).unwrap_or_default();
        println!(
            "{:<13} {:>7}  {:<24} {:<18} {:>9} {:>9}  {}",
            r.table,
            r.version,
            time,
            r.operation,
            num(r.rows_added),
            num(r.rows_removed),
            r.summary
        );
    }
    Ok(())
}
