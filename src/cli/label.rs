//! `cinestream label`: a model's masks for chosen frames, with a quality check per study.

use anyhow::{Context, Result, bail};

use super::args::{DeviceArg, ShareArg};
use super::progress::Bar;
use super::{Cli, print_report};
use cinestream::config::PipelineFile;
use cinestream::label::LabelConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file with a [label] section (and [store]); flags override it.
    #[arg(long)]
    pipeline: Option<String>,
    /// Data prefix with the tables (path, file://, s3://).
    #[arg(long)]
    data: Option<String>,
    /// One of our models (the `model` folder a `cinestream train` run wrote), or an .onnx file.
    #[arg(long)]
    model: Option<String>,
    /// The contract of an ONNX model (default: the .toml beside it with the same stem).
    #[arg(long)]
    contract: Option<String>,
    /// Name for the masks in `labels.labeller` (letters, digits, `_`, `-`, `.`).
    #[arg(long)]
    labeller: Option<String>,
    /// Label the frames of this selection …
    #[arg(long, conflicts_with = "filter")]
    selection: Option<String>,
    /// … or those of `SELECT … FROM frames WHERE <SQL>` (default: every frame).
    #[arg(long = "where", value_name = "SQL")]
    filter: Option<String>,
    /// Images per model call.
    #[arg(long)]
    batch: Option<usize>,
    /// cpu, or cuda (needs a build with `--features cuda` and an NVIDIA GPU).
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    /// Replace every earlier row of this labeller, atomically (without it, studies the labeller
    /// already has are skipped).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    share: ShareArg,
}

pub const HELP: &str = "\
WHAT IT DOES
  Reads the chosen frames from the shards (only those), pre-processes them as the model's card
  says (intensity rule, pad-resize), runs the model in batches, maps each mask back onto the
  curated frame grid by the exact inverse, and commits `labels` rows (mask, lv/my/rv_pixels,
  grid geometry) and one `label_qc` row per study: every class present, enough consecutive
  slices with LV and MY, LV enclosed by MY, plausible EDV/ESV/EF. The saved queries (`volumes`,
  `label_quality`, `confidence_sets`, …) read the new labeller like any other.

ONNX MODELS
  --model net.onnx runs any ONNX model through ONNX Runtime (pip install onnxruntime==1.31.1, or
  ORT_DYLIB_PATH=…/libonnxruntime.so.1.31.1). Its contract, net.toml beside it or --contract URL,
  says how frames become its input and its output our masks: input/output names, layout
  (nchw | nhwc), channels (1 | 3), transpose, size (pad_resize | crop_resize to S, pad_multiple
  of k), intensity (percentile clip or min-max over the study or the image, optional ImageNet
  normalisation), output_kind (probabilities | logits | labels), classes (its class → ours: 0
  background, 1 LV, 2 MY, 3 RV), post (min_component_pixels, keep_largest_lv). Masks go back
  onto the curated grid by the exact inverse of the placement. Examples: pipelines/models/.

EXACTLY ONCE
  A rerun skips every study the labeller already has. A run killed mid-way commits nothing
  visible; rerunning it completes the same job (one transaction id per job). --overwrite
  replaces all of the labeller's rows in one commit per table: readers see the old rows or the
  new, never both or neither.

EXAMPLES
  cinestream label --data ./data --model ./data/models/demo/model --labeller demo \\
      --where \"split = 'validate'\"
  cinestream label --data s3://curated/v1 --model s3://models/base/model --labeller base_v1 \\
      --selection p10_test --batch 16 --device cuda
  cinestream sql --data ./data \"SELECT * FROM label_qc WHERE NOT passed\"";

fn label_config(a: &Args) -> Result<LabelConfig> {
    let mut cfg = match &a.pipeline {
        Some(p) => PipelineFile::load(p)?.label.with_context(|| format!("pipeline file `{p}` has no [label] section"))?,
        None => {
            let (Some(d), Some(m), Some(l)) = (&a.data, &a.model, &a.labeller) else {
                bail!("give --data, --model and --labeller (or --pipeline FILE with a [label] section)");
            };
            LabelConfig::new(d.clone(), m.clone(), l.clone())
        }
    };
    if let Some(d) = &a.data {
        cfg.data = d.clone();
    }
    if let Some(m) = &a.model {
        cfg.model = m.clone();
    }
    if a.contract.is_some() {
        cfg.contract = a.contract.clone();
    }
    if let Some(l) = &a.labeller {
        cfg.labeller = l.clone();
    }
    if a.selection.is_some() {
        (cfg.selection, cfg.filter) = (a.selection.clone(), None);
    }
    if a.filter.is_some() {
        (cfg.filter, cfg.selection) = (a.filter.clone(), None);
    }
    if let Some(b) = a.batch {
        cfg.batch = b;
    }
    if let Some(d) = a.device {
        cfg.device = d.into();
    }
    cfg.overwrite |= a.overwrite;
    if a.share.share.is_some() {
        cfg.share = a.share.share;
    }
    Ok(cfg)
}

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let cfg = label_config(a)?;
    let bar = Bar::new(cli, "label");
    let report = cinestream::label::run(&cfg, bar.clone()).await;
    bar.finish();
    let report = report?;
    print_report(cli, &report, || report.render())
}
