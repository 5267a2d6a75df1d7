//! The command line: one file per command, each with its arguments, help text and handler (the
//! shape of cargo's `commands/`). A handler parses flags into the library's configuration, runs
//! the stage and prints its report; what a stage does lives in the library, where tests reach it.

mod args;
mod evaluate;
mod export;
mod ingest;
mod key;
mod label;
mod log;
mod progress;
mod run;
mod schedule;
mod schema;
mod select;
mod sql;
mod study;
mod synth;
mod train;
mod upgrade;
mod vacuum;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub const STORAGE_HELP: &str = "\
STORAGE URLS
  A plain path or file:///abs/path is a local folder (created when missing).
  s3://bucket/prefix is S3 or an S3-compatible server (MinIO, Ceph). Settings come from the
  usual variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
  AWS_ENDPOINT_URL (e.g. http://127.0.0.1:9000 for MinIO: path-style, plain http allowed).
  Credentials are never printed or logged.";

#[derive(Parser)]
#[command(
    name = "cinestream",
    version,
    about = "Cardiac cine MRI: stream DICOM from object storage, curate it, and write Parquet tables",
    long_about = "cinestream streams short-axis cine DICOM studies from object storage (a local folder, S3 or \
MinIO), curates them (orientation, repeated slices and stacks, slice spacing, missing frames, scaling, \
rotation) and writes the frames, labels, studies, curation_log and sources tables as Delta Lake tables \
(Parquet files committed atomically to a transaction log) that SQL, DuckDB, polars, pandas and Spark read.",
    after_help = "QUICK START
  cinestream synth --out ./phantom --studies 12 --defects all
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth \\
      --truth ./phantom/train.csv --truth ./phantom/validate.csv --truth ./phantom/solution.csv

STORAGE URLS
  Plain paths and file:// URLs are local folders; s3://bucket/prefix uses AWS_* variables
  (AWS_ENDPOINT_URL for MinIO/Ceph). See `cinestream ingest --help`.

EXIT STATUS
  0 done; 1 failed (the message says what to fix); 75 the storage service failed after
  retries (timeouts, server errors): run the same command again later, it does only what is
  missing."
)]
pub struct Cli {
    /// Log as JSON lines on stderr (for machines) instead of text and a progress bar.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bar and no summary, errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write phantom cine studies (Kaggle layout) with known truth and chosen curation defects.
    #[command(after_help = synth::HELP)]
    Synth(synth::Args),
    /// Read DICOM studies, curate them, and commit them to Delta Lake tables.
    #[command(after_help = ingest::help())]
    Ingest(ingest::Args),
    /// Query the tables with SQL (DataFusion): volumes, ED/ES, confidence sets, subsets.
    // The tables and queries below are laid out by hand; clap's wrapping would break the
    // copy-paste examples.
    #[command(after_help = sql::help(), term_width = 0)]
    Sql(sql::Args),
    /// Freeze a query's frames as a named selection for training or labelling.
    #[command(after_help = select::help())]
    Select(select::Args),
    /// Train a segmentation model on named selections (the authors' recipe; CPU, or CUDA).
    #[command(after_help = train::HELP)]
    Train(train::Args),
    /// Label frames with a model: masks to `labels`, a quality check per study to `label_qc`.
    #[command(after_help = label::HELP)]
    Label(label::Args),
    /// Compare a labeller with another or with the truth: Dice, volumes, EF, plots, report.
    #[command(after_help = evaluate::HELP)]
    Evaluate(evaluate::Args),
    /// Export a model for ONNX (--model), or studies and masks for viewers (--data): NIfTI, PNG.
    #[command(after_help = export::HELP)]
    Export(export::Args),
    /// The transfer-learning study's summary, Fig. 6 and report (ours, or another group's log).
    #[command(after_help = study::HELP)]
    Study(study::Args),
    /// Run a whole pipeline once, in one process: e.g. synth → ingest → select → train → label → evaluate.
    #[command(after_help = run::HELP)]
    Run(run::Args),
    /// Run labelling jobs on cron schedules: new studies in an inbox → ingest → label → QC, EF.
    #[command(after_help = schedule::HELP)]
    Schedule(schedule::Args),
    /// Show the commits of the tables: version, time, operation, rows, run summary.
    #[command(after_help = log::HELP)]
    Log(log::Args),
    /// Remove files no table version needs (killed runs' uploads, old versions' files).
    #[command(after_help = vacuum::HELP)]
    Vacuum(vacuum::Args),
    /// Make or show the secret key behind pseudonymous study ids and object names, or find the
    /// object a name stands for.
    #[command(after_help = key::HELP)]
    Key {
        #[command(subcommand)]
        action: key::KeyAction,
    },
    /// Bring a data prefix written by an earlier cinestream up to this version's tables.
    #[command(after_help = upgrade::HELP)]
    Upgrade {
        /// The data prefix (path, file://, s3://).
        #[arg(long)]
        data: String,
        #[command(flatten)]
        store: args::StoreArg,
    },
    /// Print the schema of a table (or all) as the JSON kept in schemas/.
    Schema {
        /// frames, labels, studies, curation_log, sources, label_qc, training_log, evaluation_images,
        /// evaluation_studies or study_log; all when omitted.
        table: Option<String>,
    },
}

/// Tracing to stderr: text, or JSON lines with --json; -v, -vv and RUST_LOG say how much.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet { "error" } else { ["info", "debug", "trace"][cli.verbose.min(2) as usize] };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("cinestream={level},warn")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// A run's report: one JSON line with --json, the rendered summary otherwise (none with -q).
pub fn print_report(cli: &Cli, report: &impl serde::Serialize, render: impl FnOnce() -> String) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string(report)?);
    } else if !cli.quiet {
        print!("{}", render());
    }
    Ok(())
}

/// Runs one parsed command line.
pub async fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Synth(a) => synth::run(cli, a).await,
        Command::Ingest(a) => ingest::run(cli, a).await,
        Command::Sql(a) => sql::run(cli, a).await,
        Command::Select(a) => select::run(cli, a).await,
        Command::Train(a) => train::run(cli, a).await,
        Command::Label(a) => label::run(cli, a).await,
        Command::Evaluate(a) => evaluate::run(cli, a).await,
        Command::Export(a) => export::run(cli, a).await,
        Command::Log(a) => log::run(cli, a).await,
        Command::Vacuum(a) => vacuum::run(cli, a).await,
        Command::Upgrade { data, store } => upgrade::run(cli, data, store).await,
        Command::Schema { table } => schema::run(table.as_deref()),
        Command::Key { action } => key::run(cli, action).await,
        Command::Schedule(a) => schedule::run(a).await,
        Command::Run(a) => run::run(cli, a).await,
        Command::Study(a) => study::run(cli, a).await,
    }
}
