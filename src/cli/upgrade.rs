//! `cinestream upgrade`: a data prefix written by an earlier cinestream brought up to this version.

use anyhow::Result;

use super::Cli;
use super::args::StoreArg;
use cinestream::store;
use cinestream::tables::writer::ShardConfig;
use cinestream::tables::{legacy, maintain};

pub const HELP: &str = "Two steps, each safe to rerun:
  1. A prefix of the old manifest format (`_manifest/`) is converted into Delta tables. The files
     stay where they are; each is checked against its manifest's SHA-256 and committed to its
     table. Source studies are recorded in `sources` with an unknown fingerprint, so
     re-ingesting the same input skips them (--replace re-ingests them).
  2. Columns this version writes that a table lacks (for example the curated grid's geometry
     in `studies`) are added in one metadata commit per table; rows written before read them as
     null. Writers refuse an outdated table until this has run; readers do not.";

pub async fn run(cli: &Cli, data: &str, store: &StoreArg) -> Result<()> {
    let data = store::open_existing(data, &store.options()?)?;
    let report = legacy::upgrade(&data, &ShardConfig::default()).await?;
    let columns = maintain::upgrade_schemas(&data).await?;
    if cli.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "manifests": report, "columns_added": columns }))?);
        return Ok(());
    }
    if report.manifests == 0 {
        println!("no manifests under {data}: no files to convert");
    } else {
        println!("upgraded {} manifests under {data}:", report.manifests);
        for (t, n) in &report.files {
            println!("  {t:<13} {n} files, {} rows{}", report.rows[t], if report.already.contains(t) { " (already upgraded)" } else { "" });
        }
        println!("  sources       {} source studies (fingerprint unknown)", report.source_studies);
    }
    if columns.is_empty() {
        println!("every table has this version's columns");
    }
    for (t, c) in &columns {
        println!("  {t:<13} columns added (null in rows written before): {}", c.join(", "));
    }
    Ok(())
}
