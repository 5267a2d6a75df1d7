//! `cinestream ingest`: DICOM studies → curation → Delta tables.

use anyhow::{Context, Result, bail};

use super::args::ShareArg;
use super::progress::Bar;
use super::{Cli, STORAGE_HELP, print_report};
use cinestream::config::PipelineFile;
use cinestream::ingest::{self, IngestConfig};

pub fn help() -> String {
    format!(
        "TABLES (Delta Lake tables under the output prefix: <table>/ with its _delta_log/)
  frames/        one row per curated image (pixels: u16 little-endian)
  labels/        one row per mask (--labels), with LV/MY/RV pixel counts
  curation_log/  one row per finding: problem, resolution, object, detail
  studies/       one row per study: geometry, scale factor, truth volumes
  sources/       one row per ingested source study: fingerprints, run (the idempotency record)
Each table gets one commit per run, carrying the run's summary, config and file SHA-256s
(`cinestream log`). Readers see committed versions only, so a crashed run exposes nothing.

RE-INGEST AND CRASHES
  A study already in the tables (same source id, same fingerprint of its objects) is skipped
  and reported; new studies are appended; a changed study is refused (exit status 1) unless
  --replace, which swaps exactly its rows in the same commit. A killed run leaves files no
  commit references: rerun it to complete the work, `cinestream vacuum` to remove them.

WHAT IT READS
  DICOM MR: classic single-frame files, and enhanced or legacy-converted multi-frame files (one
  per slice or one per study; each frame becomes one image, read from its per-frame and shared
  functional groups, decoded frame by frame and named <file>#<frame number>). Transfer
  syntaxes: implicit/explicit VR little endian, explicit big endian, deflated, JPEG baseline,
  extended and lossless, JPEG-LS (lossless, near-lossless), JPEG 2000 (lossless, lossy, HTJ2K)
  and RLE. A file that cannot be used is quarantined with its reason (curation_log), e.g. an
  unknown transfer syntax, or a multi-frame file whose frames lack a position or share one.

RECONCILIATION
  image files + frames beyond the first of multi-frame files = frames written + quarantined +
  excluded + skipped; the summary prints each.

EXAMPLES
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth --labeller phantom
  export AWS_ENDPOINT_URL=http://127.0.0.1:9000   # MinIO
  cinestream ingest --input s3://raw/kaggle --output s3://curated/v1 \\
      --truth s3://raw/kaggle/train.csv

{STORAGE_HELP}"
    )
}

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline TOML file with an [ingest] section (and [store] for retries and timeouts);
    /// flags override it.
    #[arg(long)]
    pipeline: Option<String>,
    /// DICOM input prefix (path, file://, s3://).
    #[arg(long)]
    input: Option<String>,
    /// Output prefix for the tables.
    #[arg(long)]
    output: Option<String>,
    /// Truth CSV (Id,Systole,Diastole or Kaggle's solution format); repeatable.
    #[arg(long)]
    truth: Vec<String>,
    /// Label masks (Parquet keyed by object key), e.g. <synth out>/truth.
    #[arg(long)]
    labels: Option<String>,
    /// Labeller name for those masks (default `manual`; the phantom's are `phantom`).
    #[arg(long)]
    labeller: Option<String>,
    /// Studies loaded and curated at once (bounds memory).
    #[arg(long)]
    studies_in_flight: Option<usize>,
    /// Largest shard file in MiB.
    #[arg(long)]
    shard_mib: Option<usize>,
    /// Replace the rows of studies whose source objects changed since they were ingested
    /// (without it such studies are refused).
    #[arg(long)]
    replace: bool,
    /// Read only this folder below the input (repeatable); keys and study ids stay those of
    /// the whole input, e.g. --folder train/12.
    #[arg(long = "folder", value_name = "PATH")]
    folders: Vec<String>,
    #[command(flatten)]
    share: ShareArg,
}

fn ingest_config(a: &Args) -> Result<IngestConfig> {
    let mut cfg = match &a.pipeline {
        Some(p) => PipelineFile::load(p)?.ingest.with_context(|| format!("pipeline file `{p}` has no [ingest] section"))?,
        None => {
            let (Some(i), Some(o)) = (&a.input, &a.output) else {
                bail!("give --input and --output (or --pipeline FILE with an [ingest] section)");
            };
            IngestConfig::new(i.clone(), o.clone())
        }
    };
    if let Some(i) = &a.input {
        cfg.input = i.clone();
    }
    if let Some(o) = &a.output {
        cfg.output = o.clone();
    }
    if !a.truth.is_empty() {
        cfg.truth = a.truth.clone();
    }
    cfg.set_labels(a.labels.clone(), a.labeller.clone());
    if let Some(n) = a.studies_in_flight {
        cfg.studies_in_flight = n;
    }
    if a.replace {
        cfg.replace = true;
    }
    if a.share.share.is_some() {
        cfg.share = a.share.share;
    }
    if !a.folders.is_empty() {
        cfg.folders = a.folders.clone();
    }
    if let Some(n) = a.shard_mib {
        cfg.shards.max_file_mib = n;
        cfg.shards.row_group_mib = cfg.shards.row_group_mib.min(n);
    }
    Ok(cfg)
}

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let cfg = ingest_config(a)?;
    let bar = Bar::new(cli, "ingest");
    let report = ingest::run(&cfg, bar.clone()).await;
    bar.finish();
    let report = report?;
    print_report(cli, &report, || report.render())?;
    if !report.sources_refused.is_empty() {
        bail!(
            "{} studies changed since they were ingested and were not ingested again ({}): rerun with --replace to swap their rows; the other studies are committed",
            report.sources_refused.len(),
            report.sources_refused.join(", ")
        );
    }
    Ok(())
}
