//! `cinestream select`: a query's frames frozen as a named selection, with its lineage.

use anyhow::{Context, Result, bail};

use super::args::{QueryArgs, log_io, session_options};
use super::{Cli, STORAGE_HELP};
use cinestream::query::Session;
use cinestream::query::selection::{self, QuerySource};
use cinestream::store;

#[derive(clap::Args)]
pub struct Args {
    /// Data prefix the selection is made from and stored under (selections/NAME/).
    #[arg(long)]
    data: String,
    /// A saved query's name (e.g. confidence_frames) or a .sql file.
    #[arg(long)]
    query: String,
    /// The selection's name: letters, digits, `_`, `-`, `.`.
    #[arg(long)]
    name: String,
    /// Overwrite an existing selection of that name.
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub fn help() -> String {
    format!(
        "WHAT IS STORED (under <data>/selections/NAME/)
  frames.parquet   the frame keys (study_id, slice_index, frame_index, + the query's other columns)
  selection.json   the SQL as run and every saved view it used, parameters, the version of every
                   table read, row/study counts and the SHA-256 of frames.parquet (written last)
Re-selecting with --as-of TABLE=V,… (the versions recorded) reproduces it whatever came since.
The result must name each frame once (per labeller), and every frame must be in `frames`.

EXAMPLES
  cinestream select --data ./data --query confidence_frames --name p5_train --param splits=train,test
  cinestream select --data ./data --query confidence_frames --name p5_validate --param splits=validate
  cinestream select --data ./data --query subset_volunteers --param volunteers=7 --param seed=2 --name v7_s2
  cinestream select --data ./data --query my_selection.sql --name mine

Saved queries and parameters: `cinestream sql --help`.

{STORAGE_HELP}"
    )
}

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = store::open_existing(&a.data, &opts.store)?;
    let session = Session::open(Some(&data), &opts).await?;
    let source = if a.query.ends_with(".sql") {
        let sql = std::fs::read_to_string(&a.query).with_context(|| format!("reading SQL file `{}`", a.query))?;
        QuerySource { label: format!("file:{}", a.query), sql }
    } else if session.catalog().get(&a.query).is_some() {
        QuerySource { label: a.query.clone(), sql: session.query_text(&a.query) }
    } else {
        let known: Vec<&str> = session.catalog().names().collect();
        bail!("no saved query `{}` (and not a .sql file); saved queries: {}", a.query, known.join(", "));
    };
    let record = selection::create(&session, &data, &a.name, &source, a.replace).await?;
    log_io(cli, &session, record.rows);
    if cli.json {
        println!("{}", serde_json::to_string(&record)?);
    } else if !cli.quiet {
        println!(
            "selection `{}`: {} frames of {} studies from `{}` → {}/selections/{}/",
            record.name, record.rows, record.studies, record.query, data, record.name
        );
    }
    Ok(())
}
