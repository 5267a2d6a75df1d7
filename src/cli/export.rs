//! `cinestream export`: a model for ONNX, or studies and masks for viewers (NIfTI, PNG).

use anyhow::{Result, bail};

use super::args::{QueryArgs, StoreArg, session_options};
use super::progress::Bar;
use super::{Cli, print_report};
use cinestream::query::Session;
use cinestream::store;
use cinestream::viewer;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["model", "data"])))]
pub struct Args {
    /// One of our models (the `model` folder a `cinestream train` run wrote): write it as a
    /// PyTorch state dict for ONNX export.
    #[arg(long, conflicts_with_all = ["data", "labeller", "studies", "filter", "all_frames"])]
    model: Option<String>,
    /// Data prefix with the tables (path, file://, s3://): write studies and masks for viewers.
    #[arg(long, requires = "labeller")]
    data: Option<String>,
    /// Whose masks: a model's name, `manual`, `phantom` (see `labels.labeller`).
    #[arg(long)]
    labeller: Option<String>,
    /// These studies (comma-separated ids) …
    #[arg(long, value_delimiter = ',', conflicts_with = "filter")]
    studies: Vec<String>,
    /// … or those of `SELECT study_id FROM studies WHERE <SQL>` the labeller labelled
    /// (default: every study it labelled).
    #[arg(long = "where", value_name = "SQL")]
    filter: Option<String>,
    /// nifti or png with --data [default: nifti]; torch (the only one) with --model.
    #[arg(long, value_enum)]
    format: Option<ExportFormat>,
    /// PNG: also a montage of every frame (`<study>/frames.png`).
    #[arg(long)]
    all_frames: bool,
    /// Folder to write into (path, file://, s3://).
    #[arg(long)]
    out: String,
    #[command(flatten)]
    query_args: QueryArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A model's weights as a PyTorch state dict (model.safetensors) with its card and contract.
    Torch,
    /// NIfTI-1 `.nii.gz` per study: sa, seg_sa, sa_ED, seg_sa_ED, sa_ES, seg_sa_ES.
    Nifti,
    /// PNG montage per study: every slice at ED and ES with the masks outlined.
    Png,
}

pub const HELP: &str = "\
STUDIES FOR VIEWERS (--data, --labeller)
  --format nifti writes per study, named as ukbb_cardiac names them:
    <out>/<study>/sa.nii.gz        images, 4-D (x = column, y = row, z = slice from the apex,
                                   t = frame), uint16 as stored in `frames`
    <out>/<study>/seg_sa.nii.gz    the labeller's masks, same geometry, uint8 (1 LV, 2 MY, 3 RV)
    <out>/<study>/sa_ED.nii.gz, seg_sa_ED.nii.gz, sa_ES.nii.gz, seg_sa_ES.nii.gz
                                   3-D, at the labeller's ED and ES frames (the `volumes` rule)
  The affine is the curated grid of `studies` (DICOM LPS turned into NIfTI RAS), as sform and
  qform; pixel spacing, slice spacing and the frame interval (ms) are the zooms. 3D Slicer and
  ITK-SNAP place the volumes over the source DICOM.
  --format png writes <out>/<study>/ed_es.png: every slice (apex left) at ED (top) and ES,
  the masks outlined (LV red, MY green, RV blue); --all-frames adds frames.png, a row per frame.
  <out>/export.json lists what was written. One study at a time: memory stays flat.

  cinestream export --data ./data --labeller phantom --studies 1,2 --out ./viewer
  cinestream export --data s3://curated/v1 --labeller demo --where \"split = 'test'\" \\
      --format png --out s3://review/demo-png

A MODEL FOR ONNX (--model)
WHAT IT WRITES
  model.safetensors  every parameter and BatchNorm running statistic, named as the PyTorch twin
                     of our network names them (scripts/torch_unet.py: `encoder.layer1.0.conv1.weight`,
                     `decoder.blocks.0.shuf.conv.bias`, BatchNorm `weight`/`bias`); the card is in
                     the file's metadata (`cinestream_card`)
  model.json         the model card, unchanged (architecture, classes, input rule, lineage)
  model.toml         the contract of model.onnx: the card's input rule (pad-resize to its size,
                     its intensity scaling), logits, its classes; the Burn engine follows the
                     same rule, so both engines pre- and post-process alike

TO ONNX (needs torch and onnx in the Python that runs it; the folder must be local)
  cinestream export --model ./data/models/phantom-demo/model --out ./export
  python3 scripts/export_onnx.py ./export          # writes ./export/model.onnx
  cinestream label --data ./data --model ./export/model.onnx --labeller demo-onnx";

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let (Some(data), Some(labeller)) = (&a.data, &a.labeller) else {
        let model = a.model.as_deref().expect("clap requires --model or --data");
        if a.format.is_some_and(|f| f != ExportFormat::Torch) {
            bail!(
                "--model exports a model as a PyTorch state dict (--format torch); --format nifti/png export studies: give --data and --labeller instead"
            );
        }
        return run_export_model(model, &a.out, &a.query_args.store).await;
    };
    let format = match a.format.unwrap_or(ExportFormat::Nifti) {
        ExportFormat::Nifti => viewer::Format::Nifti,
        ExportFormat::Png => viewer::Format::Png,
        ExportFormat::Torch => bail!("--format torch exports a model: give --model instead of --data"),
    };
    if a.all_frames && format != viewer::Format::Png {
        bail!("--all-frames draws a PNG montage of every frame: add --format png (NIfTI files always hold every frame)");
    }
    let opts = session_options(&a.query_args)?;
    let data = store::open_existing(data, &opts.store)?;
    let session = Session::open(Some(&data), &opts).await?;
    let out = store::open(&a.out, &opts.store)?;
    let cfg = viewer::ExportConfig {
        labeller: labeller.clone(),
        studies: (!a.studies.is_empty()).then(|| a.studies.clone()),
        filter: a.filter.clone(),
        format,
        all_frames: a.all_frames,
    };
    let bar = Bar::new(cli, "export");
    let report = viewer::run(&session, &cfg, &out, bar.as_ref()).await;
    bar.finish();
    let report = report?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    print_report(cli, &report, || report.render())?;
    if !report.not_found.is_empty() {
        bail!(
            "{} of the studies asked for are not in `studies`: {} (the others were exported)",
            report.not_found.len(),
            report.not_found.join(", ")
        );
    }
    Ok(())
}

async fn run_export_model(model: &str, out: &str, store: &StoreArg) -> Result<()> {
    let e = cinestream::model::export::export(model, out, &store.options()?).await?;
    let a = &e.card.architecture;
    println!(
        "exported {model}: {:?} width {} blocks {:?}, {} classes, input {}²",
        a.encoder, a.width, a.blocks, a.classes, e.card.input.size
    );
    println!("  {} tensors", e.tensors);
    for url in &e.written {
        println!("  {url}");
    }
    Ok(())
}
