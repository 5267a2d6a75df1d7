//! `cinestream train`: a segmentation model from named selections, by the authors' recipe.

use anyhow::{Context, Result, bail};

use super::Cli;
use super::progress::Bar;
use cinestream::config::PipelineFile;
use cinestream::model::Device;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file with [train] (and [model]) sections.
    pipeline: String,
    /// Data prefix with the tables and selections (path, file://, s3://).
    #[arg(long)]
    data: String,
    /// Continue the run from its last checkpoint (mid-epoch, same data order).
    #[arg(long)]
    resume: bool,
    /// cpu, or cuda (needs a build with `--features cuda` and an NVIDIA GPU).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub const HELP: &str = "\
PIPELINE FILE
  [train]   name, train/valid selections (made from a saved query when missing), labeller, seed,
            batch_size, image_size, loss (cross_entropy | focal | generalized_dice |
            cross_entropy_dice: cross-entropy + per-image Dice), augment (none | s1 | s2),
            intensity (study | image: the 99.95th percentile that maps to 1 is the whole study's,
            the default, or each image's own), weight_decay, init (\"random\" | { imagenet = URL }
            | { checkpoint = URL }), [[train.stages]] (epochs, lr_max, frozen), checkpoint_every,
            output, [train.cache] (dir, max_mib)
  [model]   encoder (resnet34 | resnet50 | vgg16_bn), width (64 = torchvision), blocks, classes
  [store]   max_retries, retry_timeout_s, initial_backoff_ms, max_backoff_s, request_timeout_s,
            connect_timeout_s: remote store settings (every command takes them from its
            pipeline file; sql, select, log, vacuum, synth and upgrade with --pipeline FILE)
  pipelines/train-base.toml is the authors' base recipe, pipelines/transfer.toml the 7T transfer,
  pipelines/phantom-demo.toml a few CPU minutes on phantom data.

OUTPUTS (under <data>/models/<name>/ unless train.output says otherwise)
  model/model.bin, model/model.json   weights; the model card: architecture, classes, input rule
                                      (intensity, size), lineage (selections, table versions)
  training_log.parquet                per epoch: loss, validation Dice LV/MY, images seen
  learning_curve.png                  Dice and loss against images seen
  checkpoints/                        resume with --resume (same data order, same weights)

EXAMPLE
  cinestream synth --out ./phantom --studies 40
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth
  cinestream train pipelines/phantom-demo.toml --data ./data
  # … ends with: dice_lv=0.9748 dice_my=0.8957 (about 5 minutes on 2 cores)";

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let file = PipelineFile::load(&a.pipeline)?;
    let train = file.train.clone().with_context(|| format!("pipeline file `{}` has no [train] section", a.pipeline))?;
    let store = file.store();
    let model = file.model.unwrap_or_default();
    let plan = cinestream::train::plan(train, model, &a.data, &store).await?;
    let handle = tokio::runtime::Handle::current();
    let device = match a.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" if cfg!(feature = "cuda") => Device::Cuda,
        other => bail!("unknown --device `{other}`: {}", Device::available()),
    };
    let bar = Bar::new(cli, "train");
    let resume = a.resume;
    let report = tokio::task::spawn_blocking(move || {
        let r = cinestream::train::run_on(&plan, device, resume, &handle, bar.as_ref());
        bar.finish();
        r
    })
    .await
    .context("the training thread stopped")??;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    if !cli.quiet {
        eprintln!("model, training_log.parquet and learning_curve.png → {}", report.output);
    }
    println!("dice_lv={:.4} dice_my={:.4}", report.dice_lv, report.dice_my);
    Ok(())
}
