//! `cinestream ingest`: DICOM studies and NIfTI datasets → curation → Delta tables.

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

  NIfTI-1 datasets (.nii, .nii.gz), one study per folder and patient, the layout found from
  the file names or named with --layout:
    acdc   patientNNN_4d.nii.gz, patientNNN_frameNN_gt.nii.gz (ED and ES), Info.cfg (ED/ES)
    mnms   <code>_sa.nii.gz + 4-D <code>_sa_gt.nii.gz and the CSV with `External code,ED,ES`
           (M&Ms-1); <code>_SA_CINE.nii.gz + <code>_SA_ED/ES[_gt].nii.gz (M&Ms-2)
    ukbb   sa.nii.gz, seg_sa.nii.gz, sa_ED/ES.nii.gz, seg_sa_ED/ES.nii.gz (what
           `cinestream export --format nifti` writes)
    nifti  any NIfTI files, each a series of the folder's study (dcm2niix output); no masks
  Each volume's slices and frames become frames rows placed by its affine (sform, else qform;
  a file with neither is quarantined), frames pixdim[4] apart. Expert masks become labels rows
  under --labeller (default `expert`), their values turned into ours (1 LV, 2 MY, 3 RV) by the
  layout's class map (pipelines/datasets/*.toml: ACDC 1 RV 2 MY 3 LV; M&Ms and ukbb 1 LV
  2 MY 3 RV) or --class-map FILE. A mask that does not fit its image (shape, place, a value
  outside the map) is reported and ignored. The dataset's ED/ES go into
  studies.dataset_ed_frame/dataset_es_frame (saved query `dataset_esed`). Study ids and file
  names are keyed hashes, as for DICOM outside the Kaggle layout (needs the pseudonym key).

RECONCILIATION
  image files + frames beyond the first of multi-frame files = frames written + quarantined +
  excluded + skipped; the summary prints each.

EXAMPLES
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth --labeller phantom
  cinestream ingest --input ./ACDC/database/training --output ./data   # expert masks as `expert`
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
    /// Labeller name for those masks (default `manual`; the phantom's are `phantom`), and
    /// for a NIfTI dataset's expert masks (default `expert`).
    #[arg(long)]
    labeller: Option<String>,
    /// Layout of NIfTI folders (default: found per folder from its file names).
    #[arg(long, value_enum)]
    layout: Option<cinestream::source::nifti::layout::Layout>,
    /// Class map TOML for NIfTI masks (`name = "…"`, `[labels]` value = "lv"|"my"|"rv"|
    /// "background"), instead of the layout's shipped one.
    #[arg(long, value_name = "FILE")]
    class_map: Option<String>,
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
    if let Some(l) = a.layout {
        cfg.source.layout = l;
    }
    if let Some(m) = &a.class_map {
        cfg.source.class_map = Some(m.clone());
    }
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
