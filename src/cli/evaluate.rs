//! `cinestream evaluate`: a labeller against another or the truth — Dice, volumes, EF, plots, report.

use anyhow::{Result, bail};

use super::Cli;
use super::args::{QueryArgs, session_options};
use super::progress::Bar;
use cinestream::evaluate;
use cinestream::query::Session;
use cinestream::store;

#[derive(clap::Args)]
pub struct Args {
    /// Data prefix with the tables (path, file://, s3://).
    #[arg(long)]
    data: String,
    /// The labeller to evaluate (a model's name, `manual`, …; see `labels.labeller`).
    #[arg(long)]
    labeller: String,
    /// What to compare it with: another labeller (its masks: per-image Dice; its volumes), or
    /// `truth` (the `truth` view's volumes).
    #[arg(long)]
    reference: String,
    /// Only the studies of `SELECT study_id FROM studies WHERE <SQL>` …
    #[arg(long = "where", value_name = "SQL", conflicts_with = "selection")]
    filter: Option<String>,
    /// … or the frames of this selection (its studies; Dice over its frames).
    #[arg(long)]
    selection: Option<String>,
    /// Folder for the tables, plots and report (path, file://, s3://).
    #[arg(long)]
    out: String,
    /// Studies shown with overlays in report.html (those that agree worst).
    #[arg(long, default_value_t = 6)]
    worst: usize,
    /// A PNG figure to add to the report and copy to --out (repeatable), e.g. a training run's
    /// <data>/models/<name>/learning_curve.png; the name in --out is the parent folder's and
    /// the file's (base_learning_curve.png).
    #[arg(long = "attach", value_name = "PNG")]
    attach: Vec<String>,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub const HELP: &str = "\
WHAT IT COMPUTES (docs/science.md §1)
  Per image (against another labeller): Dice of LV and MY from the masks; an image empty in
  both for a class scores 1. Masks are streamed a few studies at a time.
  Per study: EDV, ESV, EF of the labeller (the `volumes` view) against the reference labeller's
  or the truth's, with signed, absolute and relative differences; a study whose EF cannot be
  computed counts as an |EF error| of 100. Against the truth, the studies and their matching
  are those of `label_quality` / `ef_errors` (a `_rot90` variant is preferred).
  Summary: mean and median Dice per class; |EF error| mean, sd, median, IQR from the saved
  `ef_error_stats` query (the paper's Table II), run over this evaluation's studies;
  Bland–Altman bias and limits of EF, EDV, ESV; the share of studies with a good EF but bad
  volumes (|relative EF error| <= 10% while EDV or ESV is > 20% off); the mean volume
  difference per relative slice position (apex -> base).

WHAT IT WRITES (to --out)
  evaluation_images.parquet   per image Dice and volume differences (schemas/evaluation_images.json;
                              no rows against the truth, which has no masks)
  evaluation_studies.parquet  per study volumes, EF and errors (schemas/evaluation_studies.json)
  bland_altman_ef.png, bland_altman_volumes.png, dice_histograms.png, slice_positions.png
  report.html                 everything above plus the worst studies' overlays, self-contained
  summary.md, summary.json    the summary table

ANOTHER GROUP'S TABLES
  Volumes from elsewhere replace a link of the saved-query chain, as in `cinestream sql`:
    --table pixel_counts=their_counts.tsv     per-image LV/MY pixel counts (see `sql --show pixel_counts`)
    --table volumes=their_volumes.csv         study_id, labeller, edv_ml, esv_ml (, ed_frame, es_frame)
    --view truth=\"SELECT * FROM kaggle_truth\"   another truth

EXAMPLES
  cinestream evaluate --data ./data --labeller demo --reference phantom --out ./eval
  cinestream evaluate --data ./data --labeller demo --reference truth --where \"split = 'test'\" --out ./eval-test
  cinestream evaluate --data s3://curated/v1 --labeller theirs --reference truth \\
      --table volumes=s3://shared/their_volumes.csv --out s3://reports/theirs";

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = store::open_existing(&a.data, &opts.store)?;
    let session = Session::open(Some(&data), &opts).await?;
    let out = store::open(&a.out, &opts.store)?;
    let reference = if a.reference == "truth" { evaluate::Reference::Truth } else { evaluate::Reference::Labeller(a.reference.clone()) };
    if reference == evaluate::Reference::Labeller(a.labeller.clone()) {
        bail!("--labeller and --reference are both `{}`: compare a labeller with another one or with `truth`", a.labeller);
    }
    let attachments = evaluate::attach::read_attachments(&a.attach, &opts.store).await?;
    let cfg = evaluate::EvaluateConfig {
        labeller: a.labeller.clone(),
        reference,
        filter: a.filter.clone(),
        selection: a.selection.clone(),
        worst: a.worst,
        attachments,
    };
    let bar = Bar::new(cli, "evaluate");
    let ev = evaluate::run(&session, Some(&data), &cfg, &out, bar.as_ref()).await;
    bar.finish();
    let ev = ev?;
    for p in &ev.problems {
        tracing::warn!("{p}");
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string(
                &serde_json::json!({"labeller": ev.labeller, "reference": ev.reference, "dice": ev.dice, "ef_errors": ev.ef_errors, "bland_altman_ef": ev.bland_altman_ef, "good_ef_bad_volumes": ev.good_ef_bad_volumes, "studies": ev.studies.len(), "problems": ev.problems, "written": ev.written})
            )?
        );
    } else {
        // The summary table is the result: printed even with --quiet.
        print!("{}", ev.render());
    }
    Ok(())
}
