//! `cinestream study`: run a transfer-learning study declared in a pipeline file, or draw the
//! summary, Fig. 6 and report of one — ours, or another group's log through the same saved views.

use anyhow::{Context, Result, bail};

use super::Cli;
use super::args::{DeviceArg, QueryArgs, ShareArg, session_options};
use super::progress::Bar;
use cinestream::config::PipelineFile;
use cinestream::query::Session;
use cinestream::store;
use cinestream::study;

#[derive(clap::Args)]
pub struct Args {
    /// A pipeline file with [study] (and [model]): run the study. Without it, only the report
    /// is drawn from the `study_log` the session sees.
    #[arg(value_name = "PIPELINE")]
    study_file: Option<String>,
    /// Data prefix (path, file://, s3://): the study's data and tables. Without it (report
    /// only), `study_log` must come from --table/--view (another group's log).
    #[arg(long)]
    data: Option<String>,
    /// Folder for fig6.png, peaks.png, report.html and summary.md (path, file://, s3://);
    /// running a study, default <data>/studies/<name>/report.
    #[arg(long)]
    out: Option<String>,
    /// Only this study of the log (its `study` column); every study when omitted.
    #[arg(long)]
    study: Option<String>,
    /// Where the runs train and label (cpu, or cuda with a `--features cuda` build).
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    #[command(flatten)]
    share: ShareArg,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub const HELP: &str = "\
RUNNING A STUDY (cinestream study PIPELINE.toml --data URL)
  [study] names the training, validation and test studies (SQL over `studies`), the expert
  labeller, the starts ([[study.start]]: R init = \"random\", TL init = { imagenet = \"…pth\" },
  TL2 init = { checkpoint = \"<model>\" }), the subsets and the recipe; [model] the network.
  Before any training: the sets must have labelled images, the subsets are drawn by seed (or
  read from study.membership, the authors' image_subsets.tsv shape) and committed to
  `study_subsets`. Each run (start × subset) trains two stages of round(epochs · N_full / N)
  epochs (frozen at lr[0] except random weights, then unfrozen at lr[1]), validating every
  validate_every · N_full images; its last epoch's model labels the test studies and is
  evaluated against the experts; `study_log` and `study_runs` are committed once per run. A
  killed study continues where it stopped (committed runs are skipped, a run in flight resumes
  from its checkpoint). A TL2 start is also evaluated untouched (subset `base`).
  Outputs: <data>/studies/<name>/runs/<run>/ (model, training log, evaluations) and
  <data>/studies/<name>/report/ (fig6.png, peaks.png, report.html, summary.md, subsets.tsv).

WHAT IT SHOWS (the paper's Fig. 6)
  Per run (a start × a training subset), from the saved `study_summary` over `study_log`:
  validation Dice LV/MY after the first epoch, the raw peak and the images seen there, the
  smoothed peak (loess, span 0.75, degree 2: ggplot's geom_smooth, as the paper drew it), and
  the final value (the exported model's).
  Starts: R (random weights), TL (ImageNet encoder), TL2 (a model trained on other data).
  Subsets: full; v7, v3, v1 (whole volunteers); r7, r3, r1 (as many random images); esed (the
  ED and ES frames of every volunteer); r_esed (as many random images).

WHAT IT WRITES (to --out)
  fig6.png     Dice against images seen (thousands): rows LV and MY, columns full, 7, 3, 1,
               esed; colour the start; solid whole volunteers, dashed random images
  peaks.png    raw (hollow) and smoothed (filled) peak Dice per subset and start
  report.html  the summary table and both figures, self-contained
  summary.md   the same table, linking the figures

ANOTHER GROUP'S LOG
  Any table with study_log's columns works as `study_log` (`cinestream schema study_log`).
  The authors' 7T log (train_log_combined.csv, with image_subsets.tsv for the subset sizes)
  goes through the saved view `authors_study_log` (`cinestream sql --show authors_study_log`);
  a log shaped like theirs (epoch, train_loss, valid_loss, diceLV, diceMY, time, model named
  <start>_<subset>) goes through it too.

EXAMPLES
  cinestream study --data ./data --out ./study-report
  cinestream study --out ./authors-7t \\
      --table authors_log=7T/train_log_combined.csv --table authors_subsets=7T/image_subsets.tsv \\
      --view study_log=\"SELECT * FROM authors_study_log\"
  cinestream sql --table authors_log=7T/train_log_combined.csv --table authors_subsets=7T/image_subsets.tsv \\
      --view study_log=\"SELECT * FROM authors_study_log\" study_summary --format csv";

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    match &a.study_file {
        Some(p) => run_study(cli, a, p).await,
        None => report_only(cli, a).await,
    }
}

async fn run_study(cli: &Cli, a: &Args, pipeline: &str) -> Result<()> {
    let file = PipelineFile::load(pipeline)?;
    let cfg = file.study.clone().with_context(|| format!("pipeline file `{pipeline}` has no [study] section"))?;
    let data = a.data.as_deref().context("running a study needs --data (the prefix with the tables)")?;
    let opts = study::run::StudyOptions { device: a.device.into(), share: a.share.share, store: file.store() };
    let out = a.out.as_deref().map(|o| store::open(o, &opts.store)).transpose()?;
    let bar = Bar::new(cli, "study");
    let report = study::run::run(&cfg, &file.model.clone().unwrap_or_default(), data, &opts, out.as_ref(), bar.clone()).await;
    bar.finish();
    let report = report?;
    super::print_report(cli, &report, || {
        let mut s =
            format!("study {}: {} runs trained, {} already committed", report.study, report.trained.len(), report.already_committed.len());
        if !report.other_workers.is_empty() {
            s.push_str(&format!(", {} left to other workers", report.other_workers.len()));
        }
        s.push('\n');
        for n in &report.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        for w in &report.written {
            s.push_str(&format!("  wrote {w}\n"));
        }
        s
    })
}

async fn report_only(cli: &Cli, a: &Args) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = a.data.as_deref().map(|d| store::open_existing(d, &opts.store)).transpose()?;
    if data.is_none() && !a.query_args.views.iter().chain(&a.query_args.tables).any(|v| v.trim_start().starts_with("study_log=")) {
        bail!(
            "give --data (a prefix with a `study_log` table) or another group's log as study_log (--table study_log=… or --view study_log=…; see --help)"
        );
    }
    let out = a.out.as_deref().context("drawing a report needs --out (the folder for fig6.png, report.html, …)")?;
    let session = Session::open(data.as_ref(), &opts).await?;
    let out = store::open(out, &opts.store)?;
    let (written, runs) = study::report::write(&session, &out, a.study.as_deref()).await?;
    super::print_report(cli, &serde_json::json!({ "runs": runs, "written": written }), || {
        let rows = study::report::table_rows(&runs);
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!("  {:<4} {:<7} N {:>5}  first {}  peak {}  final {}\n", r[1], r[2], r[3], r[5], r[6], r[8]));
        }
        for w in &written {
            s.push_str(&format!("  wrote {w}\n"));
        }
        s
    })
}
