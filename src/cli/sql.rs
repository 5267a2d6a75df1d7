//! `cinestream sql`: SQL over the tables, saved queries, and other groups' tables.

use anyhow::{Context, Result, bail};

use super::args::{QueryArgs, log_io, session_options};
use super::{Cli, STORAGE_HELP};
use cinestream::query::output::{self, OutputFormat};
use cinestream::query::saved::Catalog;
use cinestream::query::{Session, udf};
use cinestream::store;
use cinestream::tables;

#[derive(clap::Args)]
pub struct Args {
    /// SQL text, or the name of a saved query or table (e.g. `volumes`). Or use --file.
    query: Option<String>,
    /// Data prefix written by `cinestream ingest` (path, file://, s3://). Without it only
    /// --table tables have rows.
    #[arg(long)]
    data: Option<String>,
    /// Read the SQL from a file; several `;`-separated statements run in order and the last
    /// one's result is printed.
    #[arg(long, conflicts_with = "query")]
    file: Option<String>,
    /// Output format [default: table, or what --out's extension says].
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Write the result to a file or object (./v.csv, s3://bucket/v.parquet) instead of stdout.
    #[arg(long)]
    out: Option<String>,
    /// Print the saved query's SQL (parameters filled in) instead of running it.
    #[arg(long)]
    show: bool,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub fn help() -> String {
    let catalog = Catalog::builtin();
    let mut h = String::from("TABLES (the Delta tables of --data, at their latest version or --as-of)\n");
    for t in tables::REGISTRY {
        h += &format!("  {:<13} {}\n                e.g. cinestream sql --data ./data \"{}\"\n", t.name, t.about, t.example);
    }
    h += "  Any other Delta table under --data (a folder with a _delta_log/) is registered by its folder name.\n";
    h += "\nSAVED QUERIES (pipelines/queries/*.sql; use them by name, as tables in any query, or in `select`)\n";
    for q in catalog.iter() {
        h += &format!("  {:<19} {}\n", q.name, q.summary);
        if let Some(e) = q.examples.first() {
            h += &format!("                      e.g. {e}\n");
        }
    }
    h += "\nPARAMETERS (--param NAME=VALUE; NULL means no filter)\n";
    let mut seen = std::collections::BTreeSet::new();
    for q in catalog.iter() {
        for p in q.params.iter().filter(|p| seen.insert(p.name.clone())) {
            h += &format!("  {:<11} {:<8} default {:<11} {}\n", p.name, p.ty.to_string(), p.default, p.description);
        }
    }
    h += "\nFUNCTIONS\n";
    for (sig, what) in udf::HELP {
        h += &format!("  {sig:<24} {what}\n");
    }
    h += "\nEXAMPLES
  cinestream sql --data ./data confidence_sets --format csv --out p.csv
  cinestream sql --data s3://curated/v1 \"SELECT split, count(*) FROM confidence_sets WHERE p10 GROUP BY split\"
  # another group's volumes through the same views:
  cinestream sql --table theirs=volumes.tsv --table kaggle_volumes=train.csv,validate.csv \\
      --table kaggle_solution=solution.csv --view truth=\"SELECT * FROM kaggle_truth\" \\
      --view volumes=\"SELECT CAST(\\\"Id\\\" AS VARCHAR) AS study_id, 'theirs' AS labeller, \\\"EDV\\\" AS edv_ml, \\\"ESV\\\" AS esv_ml FROM theirs\" \\
      confidence_sets
Column names with capitals need double quotes in SQL (\"Id\"). `SHOW TABLES` lists everything.\n";
    h + "\n" + STORAGE_HELP
}

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = a.data.as_deref().map(|d| store::open_existing(d, &opts.store)).transpose()?;
    let session = Session::open(data.as_ref(), &opts).await?;
    if a.show {
        let name = a.query.as_deref().unwrap_or_default();
        let sql =
            session.saved_sql(name).with_context(|| format!("--show needs a saved query's name; `{name}` is not one (see --help)"))??;
        print!("{sql}");
        return Ok(());
    }
    let text = match (&a.query, &a.file) {
        (Some(q), _) if q.trim_end().ends_with(".sql") && !q.contains(char::is_whitespace) => {
            std::fs::read_to_string(q).with_context(|| format!("reading SQL file `{q}` (a query argument ending in .sql is a file)"))?
        }
        (Some(q), _) => session.query_text(q),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading SQL file `{f}`"))?,
        (None, None) => {
            bail!("give a query (SQL text or a saved query's name, e.g. `volumes`) or --file F.sql; `cinestream sql --help` lists them")
        }
    };
    let df = session.sql(&text).await?;
    let written = match &a.out {
        Some(url) => {
            let format = a.format.or_else(|| OutputFormat::from_name(url)).unwrap_or(OutputFormat::Csv);
            output::to_object(df, format, url, &opts.store).await?
        }
        None => output::to_stdout(df, a.format.unwrap_or(OutputFormat::Table)).await?,
    };
    if written.rows == 0
        && let Some(q) = a.query.as_deref().and_then(|q| session.catalog().get(q.trim()))
        && let Some(why) = &q.empty
    {
        tracing::warn!("`{}` returned no rows: {why}", q.name);
    }
    log_io(cli, &session, written.rows);
    Ok(())
}
