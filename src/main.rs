//! The `cinestream` command line: thin — it parses flags, builds a configuration, runs a stage
//! from the library and prints its report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use cinestream::config::{IngestConfig, PipelineFile};
use cinestream::ingest::{self, Progress};
use cinestream::shard::tables;
use cinestream::store::{self, StoreOptions};
use cinestream::synth::{self, SynthConfig, defects};

const STORAGE_HELP: &str = "\
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
rotation) and writes the frames, labels, studies and curation_log tables as Parquet shards committed by a \
manifest.",
    after_help = "QUICK START
  cinestream synth --out ./phantom --studies 12 --defects all
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth \\
      --truth ./phantom/train.csv --truth ./phantom/validate.csv --truth ./phantom/solution.csv

STORAGE URLS
  Plain paths and file:// URLs are local folders; s3://bucket/prefix uses AWS_* variables
  (AWS_ENDPOINT_URL for MinIO/Ceph). See `cinestream ingest --help`."
)]
struct Cli {
    /// Log as JSON lines on stderr (for machines) instead of text and a progress bar.
    #[arg(long, global = true)]
    json: bool,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bar and no summary, errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write phantom cine studies (Kaggle layout) with known truth and chosen curation defects.
    #[command(after_help = "DEFECTS
  missing_time_point  one frame file of one slice is missing
  missing_slice       one mid-ventricular slice location is missing
  repeated_slice      one location acquired twice (later series 0.3 mm away)
  repeated_stack      the whole stack acquired twice (split into <id>_a, <id>_b)
  scaled              one slice with 1.25× pixel spacing (same field of view)
  image_size          one slice 32 columns wider
  rotated_90          one slice rotated +90° and one −90° in-plane
  rotated_arbitrary   one slice rotated +30° and one −17° in-plane
  non_parallel        an extra slice tilted 30° out of the short-axis plane
  large_image         the whole study at 512×512 px (scaled down to 256)
  broken_files        truncated, non-DICOM, empty and pixel-less files
Defect j of the list goes to study j (mod --studies); other studies are clean.

OUTPUT
  <split>/<id>/study/sax_<series>/IM-<series>-<frame>.dcm   DICOM (explicit VR LE, 16-bit)
  train.csv, validate.csv                                    Id,Systole,Diastole (mL)
  solution.csv                                               test truth, Kaggle's format
  truth/<id>.parquet                                         masks keyed by object key (for --labels)
  synth.json                                                 defects, ED/ES frames, volumes

EXAMPLE
  cinestream synth --out s3://bucket/phantom --studies 40 --seed 7 --defects rotated_90,scaled")]
    Synth(SynthArgs),
    /// Read DICOM studies, curate them, and write Parquet tables with a manifest.
    #[command(after_help = format!("TABLES (under the output prefix)
  frames/        one row per curated image (pixels: u16 little-endian)
  labels/        one row per mask (--labels), with LV/MY/RV pixel counts
  studies/       one row per study: geometry, scale factor, truth volumes
  curation_log/  one row per finding: problem, resolution, object, detail
  _manifest/     the commit record: files, rows, sizes, SHA-256, summary, config
Readers trust only files listed in a manifest, so a crashed run exposes nothing.

RECONCILIATION
  image files = frames written + files quarantined + files excluded; the summary prints each.

EXAMPLES
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth --labeller phantom
  export AWS_ENDPOINT_URL=http://127.0.0.1:9000   # MinIO
  cinestream ingest --input s3://raw/kaggle --output s3://curated/v1 \\
      --truth s3://raw/kaggle/train.csv

{STORAGE_HELP}"))]
    Ingest(IngestArgs),
    /// Print the schema of a table (or all) as the JSON kept in schemas/.
    Schema {
        /// frames, labels, studies or curation_log; all when omitted.
        table: Option<String>,
    },
}

#[derive(Args)]
struct SynthArgs {
    /// Where to write (path, file://, s3://, memory://).
    #[arg(long)]
    out: String,
    /// Number of studies (3 of 5 train, 1 validate, 1 test; at most 1140).
    #[arg(long, default_value_t = 12)]
    studies: usize,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Defects to plant: a comma-separated list, `all` or `none`.
    #[arg(long, default_value = "none")]
    defects: String,
}

#[derive(Args)]
struct IngestArgs {
    /// Pipeline TOML file with an [ingest] section; flags override it.
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
}

fn init_logging(cli: &Cli) {
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

fn bar(cli: &Cli, len: u64, what: &str) -> ProgressBar {
    if cli.json || cli.quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:32}}] {{pos}}/{{len}} {{msg}} {{per_sec}} eta {{eta}}"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

struct BarProgress {
    bar: ProgressBar,
    studies: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

impl Progress for BarProgress {
    fn planned(&self, studies: usize, files: usize) {
        self.total.store(studies, std::sync::atomic::Ordering::Relaxed);
        self.bar.set_length(files as u64);
        self.bar.set_message(format!("images, 0/{studies} studies"));
    }
    fn study_done(&self, _study: &str, files: usize, _bytes: u64) {
        let done = self.studies.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let total = self.total.load(std::sync::atomic::Ordering::Relaxed);
        self.bar.inc(files as u64);
        self.bar.set_message(format!("images, {done}/{total} studies"));
    }
}

async fn run_synth(cli: &Cli, a: &SynthArgs) -> Result<()> {
    let defects = defects::parse_list(&a.defects).map_err(anyhow::Error::msg)?;
    let out = store::open(&a.out, &StoreOptions::default())?;
    let cfg = SynthConfig { studies: a.studies, seed: a.seed, defects, write_concurrency: 16 };
    let pb = bar(cli, a.studies as u64, "studies");
    let report = synth::run(&out, &cfg, |_| pb.inc(1)).await?;
    pb.finish_and_clear();
    if !cli.quiet {
        println!("wrote {} studies, {} files, {:.1} MB to {}", report.studies.len(), report.files, report.bytes as f64 / 1e6, out);
        for t in report.studies.iter().filter(|t| !t.defects.is_empty()) {
            println!("  study {:>4} ({}): {}", t.study_id, t.split, t.defects.join(", "));
        }
    }
    Ok(())
}

fn ingest_config(a: &IngestArgs) -> Result<IngestConfig> {
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
    if a.labels.is_some() {
        cfg.labels = a.labels.clone();
    }
    if let Some(l) = &a.labeller {
        cfg.labeller = l.clone();
    } else if a.labels.as_deref().is_some_and(|l| l.trim_end_matches('/').ends_with("truth")) {
        cfg.labeller = "phantom".into();
    }
    if let Some(n) = a.studies_in_flight {
        cfg.studies_in_flight = n;
    }
    if let Some(n) = a.shard_mib {
        cfg.shards.max_file_mib = n;
        cfg.shards.row_group_mib = cfg.shards.row_group_mib.min(n);
    }
    Ok(cfg)
}

async fn run_ingest(cli: &Cli, a: &IngestArgs) -> Result<()> {
    let cfg = ingest_config(a)?;
    let pb = bar(cli, 0, "ingest");
    let progress = Arc::new(BarProgress { bar: pb.clone(), studies: 0.into(), total: 0.into() });
    let report = ingest::run(&cfg, progress).await;
    pb.finish_and_clear();
    let report = report?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if !cli.quiet {
        print!("{}", report.render());
    }
    Ok(())
}

fn run_schema(table: Option<&str>) -> Result<()> {
    let names: Vec<&str> = match table {
        Some(t) if tables::schema(t).is_some() => vec![t],
        Some(t) => bail!("unknown table `{t}`; tables: {}", tables::TABLES.join(", ")),
        None => tables::TABLES.to_vec(),
    };
    for t in names {
        println!("{}", serde_json::to_string_pretty(&tables::schema_json(t).expect("known"))?);
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error chain, one cause per `: `, without a backtrace (users need the what
            // and the how-to-fix; RUST_BACKTRACE is for developers, via a debugger or logs).
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    init_logging(&cli);
    // CPU work (parsing, curation, encoding) runs on blocking threads: keep that pool about the
    // size of the machine. More threads only add contention, and each can pin its own malloc
    // arena, which made peak memory grow with the data set (BENCHMARKS.md).
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .max_blocking_threads(cores + 1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match &cli.command {
            Command::Synth(a) => run_synth(&cli, a).await,
            Command::Ingest(a) => run_ingest(&cli, a).await,
            Command::Schema { table } => run_schema(table.as_deref()),
        }
    })
}
