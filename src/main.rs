//! The `cinestream` command line: thin — it parses flags, builds a configuration, runs a stage
//! from the library and prints its report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use cinestream::config::{IngestConfig, PipelineFile};
use cinestream::evaluate;
use cinestream::infer::{Device, LabelConfig};
use cinestream::ingest::{self, Progress};
use cinestream::query::external::{ExternalFormat, ExternalTable};
use cinestream::query::output::{self, OutputFormat};
use cinestream::query::saved::Catalog;
use cinestream::query::selection::{self, QuerySource};
use cinestream::query::{Session, SessionOptions, udf};
use cinestream::shard::delta::AsOf;
use cinestream::shard::writer::ShardConfig;
use cinestream::shard::{legacy, maintain, tables};
use cinestream::store::{self, StoreOptions};
use cinestream::synth::{self, SynthConfig, defects};
use cinestream::viewer;

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
    /// Read DICOM studies, curate them, and commit them to Delta Lake tables.
    #[command(after_help = format!("TABLES (Delta Lake tables under the output prefix: <table>/ with its _delta_log/)
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

RECONCILIATION
  image files = frames written + quarantined + excluded + skipped; the summary prints each.

EXAMPLES
  cinestream ingest --input ./phantom --output ./data --labels ./phantom/truth --labeller phantom
  export AWS_ENDPOINT_URL=http://127.0.0.1:9000   # MinIO
  cinestream ingest --input s3://raw/kaggle --output s3://curated/v1 \\
      --truth s3://raw/kaggle/train.csv

{STORAGE_HELP}"))]
    Ingest(IngestArgs),
    /// Query the tables with SQL (DataFusion): volumes, ED/ES, confidence sets, subsets.
    // The tables and queries below are laid out by hand; clap's wrapping would break the
    // copy-paste examples.
    #[command(after_help = sql_help(), term_width = 0)]
    Sql(SqlArgs),
    /// Freeze a query's frames as a named selection for training or labelling.
    #[command(after_help = select_help())]
    Select(SelectArgs),
    /// Train a segmentation model on named selections (the authors' recipe; CPU, or CUDA).
    #[command(after_help = TRAIN_HELP)]
    Train(TrainArgs),
    /// Label frames with a model: masks to `labels`, a quality check per study to `label_qc`.
    #[command(after_help = LABEL_HELP)]
    Label(LabelArgs),
    /// Compare a labeller with another or with the truth: Dice, volumes, EF, plots, report.
    #[command(after_help = EVALUATE_HELP)]
    Evaluate(EvaluateArgs),
    /// Export a model for ONNX (--model), or studies and masks for viewers (--data): NIfTI, PNG.
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Run a whole pipeline once, in one process: e.g. synth → ingest → select → train → label → evaluate.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Run labelling jobs on cron schedules: new studies in an inbox → ingest → label → QC, EF.
    #[command(after_help = SCHEDULE_HELP)]
    Schedule(ScheduleArgs),
    /// Show the commits of the tables: version, time, operation, rows, run summary.
    #[command(after_help = "EXAMPLES
  cinestream log --data ./data
  cinestream log --data s3://curated/v1 frames
  cinestream sql --data ./data --as-of 3 \"SELECT count(*) FROM frames\"   # read an old version")]
    Log(LogArgs),
    /// Remove files no table version needs (killed runs' uploads, old versions' files).
    #[command(after_help = "Dry run unless --apply: lists what it would delete. Files younger than --older-than
are kept (an ingest still running owns them; readers may time-travel to those versions).

EXAMPLES
  cinestream vacuum --data ./data                      # what would go (older than 7 days)
  cinestream vacuum --data ./data --older-than 1h --apply")]
    Vacuum(VacuumArgs),
    /// Make or show the secret key behind pseudonymous study ids (DICOM outside the Kaggle layout).
    #[command(after_help = KEY_HELP)]
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Bring a data prefix written by an earlier cinestream up to this version's tables.
    #[command(after_help = "Two steps, each safe to rerun:
  1. A prefix of the old manifest format (`_manifest/`) is converted into Delta tables. The files
     stay where they are; each is checked against its manifest's SHA-256 and committed to its
     table. Source studies are recorded in `sources` with an unknown fingerprint, so
     re-ingesting the same input skips them (--replace re-ingests them).
  2. Columns this version writes that a table lacks (for example the curated grid's geometry
     in `studies`) are added in one metadata commit per table; rows written before read them as
     null. Writers refuse an outdated table until this has run; readers do not.")]
    Upgrade {
        /// The data prefix (path, file://, s3://).
        #[arg(long)]
        data: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Print the schema of a table (or all) as the JSON kept in schemas/.
    Schema {
        /// frames, labels, studies, curation_log, sources, label_qc, training_log, evaluation_images
        /// or evaluation_studies; all when omitted.
        table: Option<String>,
    },
}

/// `--pipeline FILE` for commands that only need its `[store]` section.
#[derive(Args)]
struct StoreArg {
    /// A pipeline TOML file whose [store] section (retries, back-off, timeouts) applies; its
    /// other sections are not used by this command.
    #[arg(long = "pipeline", value_name = "FILE")]
    pipeline: Option<String>,
}

impl StoreArg {
    fn options(&self) -> Result<StoreOptions> {
        Ok(match &self.pipeline {
            Some(p) => PipelineFile::load(p)?.store(),
            None => StoreOptions::default(),
        })
    }
}

#[derive(Args)]
struct LogArgs {
    /// The data prefix (path, file://, s3://).
    #[arg(long)]
    data: String,
    #[command(flatten)]
    store: StoreArg,
    /// Only these tables (frames, labels, curation_log, studies, sources, label_qc, or any other
    /// Delta table under --data).
    tables: Vec<String>,
}

#[derive(Args)]
struct VacuumArgs {
    /// The data prefix (path, file://, s3://).
    #[arg(long)]
    data: String,
    /// Keep files younger than this, and files of versions newer than this (7d, 12h, 30m, 0).
    #[arg(long, default_value = "7d")]
    older_than: String,
    /// Delete (without it, only list what would be deleted).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    store: StoreArg,
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
    #[command(flatten)]
    store: StoreArg,
}

#[derive(Args)]
struct IngestArgs {
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

/// `--shard i/N`, shared by the commands that split work by study.
#[derive(Args)]
struct ShareArg {
    /// Take only worker i's share of N (studies split by a hash of their id), e.g. 0/4. `/N`
    /// takes i from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs). Workers that overlap or
    /// repeat are safe: every commit is idempotent.
    #[arg(long = "shard", value_name = "i/N")]
    share: Option<cinestream::workers::WorkShare>,
}

#[derive(Args)]
struct QueryArgs {
    /// Register CSV/TSV/Parquet files as a table (repeatable); a saved query's or a table's name
    /// replaces it. CSV/TSV column types are inferred from every row; declare them with
    /// `:col=type,…` (text, int, float, bool), e.g. counts=c.tsv:study_id=text.
    #[arg(long = "table", value_name = "NAME=URL[,URL][:COL=TYPE,…]")]
    tables: Vec<String>,
    /// Format of --table files whose extension does not say (.csv, .tsv, .parquet do).
    #[arg(long, value_enum)]
    format_in: Option<ExternalFormat>,
    /// Define or replace a view for this run (repeatable), e.g. truth="SELECT * FROM kaggle_truth".
    #[arg(long = "view", value_name = "NAME=SQL")]
    views: Vec<String>,
    /// Set a saved-query parameter (repeatable), e.g. threshold=0.10. See PARAMETERS below.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A folder of your own saved queries (*.sql with the same header); repeatable.
    #[arg(long = "queries", value_name = "DIR")]
    query_dirs: Vec<std::path::PathBuf>,
    /// Read the tables as they were: a version (3), a time (2026-12-01T12:00:00Z), or one
    /// version per table (frames=3,labels=5,…, as selection.json records). Default: latest.
    #[arg(long, value_name = "VERSION|TIME|TABLE=V,…")]
    as_of: Option<String>,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(Args)]
struct SqlArgs {
    /// SQL text, or the name of a saved query or table (e.g. `volumes`). Or use --file.
    query: Option<String>,
    /// Data prefix written by `cinestream ingest` (path, file://, s3://). Without it only
    /// --table tables have rows.
    #[arg(long)]
    data: Option<String>,
    /// Read the SQL from a file; several `;`-separated statements run in order and the last
    /// one's result is printed.
    #[arg(long, conflicts_with = "query")]
    file: Option<String>,
    /// Output format [default: table, or what --out's extension says].
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Write the result to a file or object (./v.csv, s3://bucket/v.parquet) instead of stdout.
    #[arg(long)]
    out: Option<String>,
    /// Print the saved query's SQL (parameters filled in) instead of running it.
    #[arg(long)]
    show: bool,
    #[command(flatten)]
    query_args: QueryArgs,
}

#[derive(Args)]
struct EvaluateArgs {
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

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["model", "data"])))]
struct ExportArgs {
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
enum ExportFormat {
    /// A model's weights as a PyTorch state dict (model.safetensors) with its card and contract.
    Torch,
    /// NIfTI-1 `.nii.gz` per study: sa, seg_sa, sa_ED, seg_sa_ED, sa_ES, seg_sa_ES.
    Nifti,
    /// PNG montage per study: every slice at ED and ES with the masks outlined.
    Png,
}

#[derive(Args)]
struct TrainArgs {
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

#[derive(Args)]
struct LabelArgs {
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
    device: Option<LabelDevice>,
    /// Replace every earlier row of this labeller, atomically (without it, studies the labeller
    /// already has are skipped).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    share: ShareArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LabelDevice {
    Cpu,
    Cuda,
}

const LABEL_HELP: &str = "\
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

#[derive(Args)]
struct SelectArgs {
    /// Data prefix the selection is made from and stored under (selections/NAME/).
    #[arg(long)]
    data: String,
    /// A saved query's name (e.g. confidence_frames) or a .sql file.
    #[arg(long)]
    query: String,
    /// The selection's name: letters, digits, `_`, `-`, `.`.
    #[arg(long)]
    name: String,
    /// Overwrite an existing selection of that name.
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    query_args: QueryArgs,
}

const TRAIN_HELP: &str = "\
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

fn sql_help() -> String {
    let catalog = Catalog::builtin();
    let mut h = String::from("TABLES (the Delta tables of --data, at their latest version or --as-of)\n");
    for t in tables::REGISTRY {
        h += &format!("  {:<13} {}\n                e.g. cinestream sql --data ./data \"{}\"\n", t.name, t.about, t.example);
    }
    h += "  Any other Delta table under --data (a folder with a _delta_log/) is registered by its folder name.\n";
    h += "\nSAVED QUERIES (pipelines/queries/*.sql; use them by name, as tables in any query, or in `select`)\n";
    for q in catalog.iter() {
        h += &format!("  {:<19} {}\n", q.name, q.summary);
        if let Some(e) = q.examples.first() {
            h += &format!("                      e.g. {e}\n");
        }
    }
    h += "\nPARAMETERS (--param NAME=VALUE; NULL means no filter)\n";
    let mut seen = std::collections::BTreeSet::new();
    for q in catalog.iter() {
        for p in q.params.iter().filter(|p| seen.insert(p.name.clone())) {
            h += &format!("  {:<11} {:<8} default {:<11} {}\n", p.name, p.ty.to_string(), p.default, p.description);
        }
    }
    h += "\nFUNCTIONS\n";
    for (sig, what) in udf::HELP {
        h += &format!("  {sig:<24} {what}\n");
    }
    h += "\nEXAMPLES
  cinestream sql --data ./data confidence_sets --format csv --out p.csv
  cinestream sql --data s3://curated/v1 \"SELECT split, count(*) FROM confidence_sets WHERE p10 GROUP BY split\"
  # another group's volumes through the same views:
  cinestream sql --table theirs=volumes.tsv --table kaggle_volumes=train.csv,validate.csv \\
      --table kaggle_solution=solution.csv --view truth=\"SELECT * FROM kaggle_truth\" \\
      --view volumes=\"SELECT CAST(\\\"Id\\\" AS VARCHAR) AS study_id, 'theirs' AS labeller, \\\"EDV\\\" AS edv_ml, \\\"ESV\\\" AS esv_ml FROM theirs\" \\
      confidence_sets
Column names with capitals need double quotes in SQL (\"Id\"). `SHOW TABLES` lists everything.\n";
    h + "\n" + STORAGE_HELP
}

fn select_help() -> String {
    format!("WHAT IS STORED (under <data>/selections/NAME/)
  frames.parquet   the frame keys (study_id, slice_index, frame_index, + the query's other columns)
  selection.json   the SQL as run and every saved view it used, parameters, the version of every
                   table read, row/study counts and the SHA-256 of frames.parquet (written last)
Re-selecting with --as-of TABLE=V,… (the versions recorded) reproduces it whatever came since.
The result must name each frame once (per labeller), and every frame must be in `frames`.

EXAMPLES
  cinestream select --data ./data --query confidence_frames --name p5_train --param splits=train,test
  cinestream select --data ./data --query confidence_frames --name p5_validate --param splits=validate
  cinestream select --data ./data --query subset_volunteers --param volunteers=7 --param seed=2 --name v7_s2
  cinestream select --data ./data --query my_selection.sql --name mine

Saved queries and parameters: `cinestream sql --help`.

{STORAGE_HELP}")
}

fn session_options(q: &QueryArgs) -> Result<SessionOptions> {
    let tables = q.tables.iter().map(|t| ExternalTable::parse(t)).collect::<Result<Vec<_>, _>>()?;
    let views = q
        .views
        .iter()
        .map(|v| v.split_once('=').map(|(n, s)| (n.trim().to_string(), s.to_string())).with_context(|| format!("bad --view `{v}`: write NAME=SQL")))
        .collect::<Result<Vec<_>>>()?;
    let as_of = q.as_of.as_deref().map(AsOf::parse).transpose().map_err(anyhow::Error::msg)?.unwrap_or_default();
    Ok(SessionOptions { tables, format_in: q.format_in, views, params: q.params.clone(), query_dirs: q.query_dirs.clone(), store: q.store.options()?, as_of })
}

fn log_io(cli: &Cli, session: &Session, rows: u64) {
    let io = session.io();
    if !cli.quiet {
        tracing::info!("{rows} rows; read {:.2} MB from the data prefix in {} requests", io.bytes_read as f64 / 1e6, io.reads);
    }
}

async fn run_sql(cli: &Cli, a: &SqlArgs) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = a.data.as_deref().map(|d| store::open_existing(d, &opts.store)).transpose()?;
    let session = Session::open(data.as_ref(), &opts).await?;
    if a.show {
        let name = a.query.as_deref().unwrap_or_default();
        let sql = session.saved_sql(name).with_context(|| format!("--show needs a saved query's name; `{name}` is not one (see --help)"))??;
        print!("{sql}");
        return Ok(());
    }
    let text = match (&a.query, &a.file) {
        (Some(q), _) if q.trim_end().ends_with(".sql") && !q.contains(char::is_whitespace) => std::fs::read_to_string(q).with_context(|| format!("reading SQL file `{q}` (a query argument ending in .sql is a file)"))?,
        (Some(q), _) => session.query_text(q),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading SQL file `{f}`"))?,
        (None, None) => bail!("give a query (SQL text or a saved query's name, e.g. `volumes`) or --file F.sql; `cinestream sql --help` lists them"),
    };
    let df = session.sql(&text).await?;
    let written = match &a.out {
        Some(url) => {
            let format = a.format.or_else(|| OutputFormat::from_name(url)).unwrap_or(OutputFormat::Csv);
            output::to_object(df, format, url, &opts.store).await?
        }
        None => output::to_stdout(df, a.format.unwrap_or(OutputFormat::Table)).await?,
    };
    if written.rows == 0
        && let Some(q) = a.query.as_deref().and_then(|q| session.catalog().get(q.trim()))
        && let Some(why) = &q.empty
    {
        tracing::warn!("`{}` returned no rows: {why}", q.name);
    }
    log_io(cli, &session, written.rows);
    Ok(())
}

async fn run_select(cli: &Cli, a: &SelectArgs) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = store::open_existing(&a.data, &opts.store)?;
    let session = Session::open(Some(&data), &opts).await?;
    let source = if a.query.ends_with(".sql") {
        let sql = std::fs::read_to_string(&a.query).with_context(|| format!("reading SQL file `{}`", a.query))?;
        QuerySource { label: format!("file:{}", a.query), sql }
    } else if session.catalog().get(&a.query).is_some() {
        QuerySource { label: a.query.clone(), sql: session.query_text(&a.query) }
    } else {
        let known: Vec<&str> = session.catalog().names().collect();
        bail!("no saved query `{}` (and not a .sql file); saved queries: {}", a.query, known.join(", "));
    };
    let record = selection::create(&session, &data, &a.name, &source, a.replace).await?;
    log_io(cli, &session, record.rows);
    if cli.json {
        println!("{}", serde_json::to_string(&record)?);
    } else if !cli.quiet {
        println!(
            "selection `{}`: {} frames of {} studies from `{}` → {}/selections/{}/",
            record.name, record.rows, record.studies, record.query, data, record.name
        );
    }
    Ok(())
}

struct TrainBar {
    bar: ProgressBar,
}

impl cinestream::train::TrainProgress for TrainBar {
    fn stage(&self, stage: usize, epochs: usize, steps_per_epoch: usize) {
        self.bar.set_length((epochs * steps_per_epoch) as u64);
        self.bar.set_position(0);
        self.bar.set_message(format!("stage {stage}"));
    }
    fn step(&self, _global_step: usize, loss: f64) {
        self.bar.inc(1);
        self.bar.set_message(format!("loss {loss:.4}"));
    }
    fn epoch(&self, row: &cinestream::train::log::EpochRow) {
        self.bar.println(format!(
            "stage {} epoch {}: train loss {:.4}, valid loss {:.4}, dice LV {:.4}, MY {:.4} ({} images seen)",
            row.stage, row.epoch, row.train_loss, row.valid_loss, row.dice_lv, row.dice_my, row.images_seen
        ));
    }
}

async fn run_train(cli: &Cli, a: &TrainArgs) -> Result<()> {
    let file = PipelineFile::load(&a.pipeline)?;
    let train = file.train.clone().with_context(|| format!("pipeline file `{}` has no [train] section", a.pipeline))?;
    let store = file.store();
    let model = file.model.unwrap_or_default();
    let plan = cinestream::train::plan(train, model, &a.data, &store).await?;
    let handle = tokio::runtime::Handle::current();
    let bar = TrainBar { bar: bar(cli, 0, "train") };
    let (resume, device) = (a.resume, a.device.clone());
    let report = tokio::task::spawn_blocking(move || -> Result<cinestream::train::TrainReport> {
        let r = match device.as_str() {
            "cpu" => {
                use burn::backend::{Autodiff, Flex};
                cinestream::train::run::<Autodiff<Flex>>(&plan, Default::default(), resume, &handle, &bar)?
            }
            #[cfg(feature = "cuda")]
            "cuda" => {
                use burn::backend::{Autodiff, Cuda};
                cinestream::train::run::<Autodiff<Cuda<f32>>>(&plan, Default::default(), resume, &handle, &bar)?
            }
            other => bail!("unknown --device `{other}`: cpu{}", if cfg!(feature = "cuda") { " or cuda" } else { " (this build has no CUDA: cargo build --release --features cuda)" }),
        };
        bar.bar.finish_and_clear();
        Ok(r)
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

fn label_config(a: &LabelArgs) -> Result<LabelConfig> {
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
        cfg.device = match d {
            LabelDevice::Cpu => Device::Cpu,
            LabelDevice::Cuda => Device::Cuda,
        };
    }
    cfg.overwrite |= a.overwrite;
    if a.share.share.is_some() {
        cfg.share = a.share.share;
    }
    Ok(cfg)
}

async fn run_label(cli: &Cli, a: &LabelArgs) -> Result<()> {
    let cfg = label_config(a)?;
    let (pb, progress) = study_bar(cli, "label");
    let report = cinestream::infer::run(&cfg, progress).await;
    pb.finish_and_clear();
    let report = report?;
    print_report(cli, &report, || report.render())
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

/// A `(done, total)` progress callback that moves `pb`.
fn bar_progress(pb: &ProgressBar) -> impl Fn(usize, usize) + '_ {
    |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    }
}

/// A progress bar over studies and images, and its sink for a run.
fn study_bar(cli: &Cli, what: &str) -> (ProgressBar, Arc<BarProgress>) {
    let pb = bar(cli, 0, what);
    let progress = Arc::new(BarProgress { bar: pb.clone(), studies: 0.into(), total: 0.into() });
    (pb, progress)
}

/// A run's report: one JSON line with --json, the rendered summary otherwise (none with -q).
fn print_report(cli: &Cli, report: &impl serde::Serialize, render: impl FnOnce() -> String) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string(report)?);
    } else if !cli.quiet {
        print!("{}", render());
    }
    Ok(())
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
    fn committing(&self) {
        self.bar.set_message("committing the Delta tables");
    }
}

async fn run_synth(cli: &Cli, a: &SynthArgs) -> Result<()> {
    let defects = defects::parse_list(&a.defects).map_err(anyhow::Error::msg)?;
    let out = store::open(&a.out, &a.store.options()?)?;
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

async fn run_ingest(cli: &Cli, a: &IngestArgs) -> Result<()> {
    let cfg = ingest_config(a)?;
    let (pb, progress) = study_bar(cli, "ingest");
    let report = ingest::run(&cfg, progress).await;
    pb.finish_and_clear();
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

async fn run_log(cli: &Cli, a: &LogArgs) -> Result<()> {
    let data = store::open_existing(&a.data, &a.store.options()?)?;
    legacy::refuse_unconverted(&data).await?;
    let rows = maintain::history(&data, &a.tables).await?;
    if rows.is_empty() {
        bail!("no Delta tables under `{data}`: `cinestream ingest --output {data}` writes them");
    }
    if cli.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!("{:<13} {:>7}  {:<24} {:<18} {:>9} {:>9}  summary", "table", "version", "time (UTC)", "operation", "+rows", "-rows");
    let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    for r in rows {
        let time = r.time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()).unwrap_or_default();
        println!("{:<13} {:>7}  {:<24} {:<18} {:>9} {:>9}  {}", r.table, r.version, time, r.operation, num(r.rows_added), num(r.rows_removed), r.summary);
    }
    Ok(())
}

async fn run_vacuum(cli: &Cli, a: &VacuumArgs) -> Result<()> {
    let data = store::open_existing(&a.data, &a.store.options()?)?;
    legacy::refuse_unconverted(&data).await?;
    let older = maintain::parse_duration(&a.older_than).map_err(|e| anyhow::anyhow!("--older-than {e}"))?;
    let report = maintain::vacuum(&data, older, !a.apply).await?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let total: usize = report.files.values().map(Vec::len).sum();
    for (table, files) in &report.files {
        for f in files {
            println!("{} {f}", if a.apply { "deleted" } else { "would delete" });
        }
        if !files.is_empty() && !cli.quiet {
            eprintln!("{table}: {} files", files.len());
        }
    }
    if !cli.quiet {
        eprintln!("{total} files {}", if a.apply { "deleted" } else { "would be deleted (dry run: add --apply to delete)" });
    }
    Ok(())
}

async fn run_upgrade(cli: &Cli, data: &str, store: &StoreArg) -> Result<()> {
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

const EXPORT_HELP: &str = "\
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

async fn run_evaluate(cli: &Cli, a: &EvaluateArgs) -> Result<()> {
    let opts = session_options(&a.query_args)?;
    let data = store::open_existing(&a.data, &opts.store)?;
    let session = Session::open(Some(&data), &opts).await?;
    let out = store::open(&a.out, &opts.store)?;
    let reference = if a.reference == "truth" { evaluate::Reference::Truth } else { evaluate::Reference::Labeller(a.reference.clone()) };
    if reference == evaluate::Reference::Labeller(a.labeller.clone()) {
        bail!("--labeller and --reference are both `{}`: compare a labeller with another one or with `truth`", a.labeller);
    }
    let mut attachments = Vec::new();
    for url in &a.attach {
        let png = store::read_object(url, &opts.store).await.with_context(|| format!("reading the figure to attach `{url}`"))?;
        let mut parts = url.trim_end_matches('/').rsplit('/');
        let (file, parent) = (parts.next().unwrap_or("figure.png"), parts.next().filter(|p| !p.is_empty() && *p != "."));
        attachments.push((parent.map_or(file.to_string(), |p| format!("{p}_{file}")), png.to_vec()));
    }
    let cfg = evaluate::EvaluateConfig { labeller: a.labeller.clone(), reference, filter: a.filter.clone(), selection: a.selection.clone(), worst: a.worst, attachments };
    let pb = bar(cli, 0, "evaluate");
    let ev = evaluate::run(&session, Some(&data), &cfg, &out, bar_progress(&pb)).await;
    pb.finish_and_clear();
    let ev = ev?;
    for p in &ev.problems {
        tracing::warn!("{p}");
    }
    if cli.json {
        println!("{}", serde_json::to_string(&serde_json::json!({"labeller": ev.labeller, "reference": ev.reference, "dice": ev.dice, "ef_errors": ev.ef_errors, "bland_altman_ef": ev.bland_altman_ef, "good_ef_bad_volumes": ev.good_ef_bad_volumes, "studies": ev.studies.len(), "problems": ev.problems, "written": ev.written}))?);
    } else {
        // The summary table is the result: printed even with --quiet.
        print!("{}", ev.render());
    }
    Ok(())
}

const EVALUATE_HELP: &str = "\
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

async fn run_export(cli: &Cli, a: &ExportArgs) -> Result<()> {
    let (Some(data), Some(labeller)) = (&a.data, &a.labeller) else {
        let model = a.model.as_deref().expect("clap requires --model or --data");
        if a.format.is_some_and(|f| f != ExportFormat::Torch) {
            bail!("--model exports a model as a PyTorch state dict (--format torch); --format nifti/png export studies: give --data and --labeller instead");
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
    let pb = bar(cli, 0, "export");
    let report = viewer::run(&session, &cfg, &out, bar_progress(&pb)).await;
    pb.finish_and_clear();
    let report = report?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    print_report(cli, &report, || report.render())?;
    if !report.not_found.is_empty() {
        bail!("{} of the studies asked for are not in `studies`: {} (the others were exported)", report.not_found.len(), report.not_found.join(", "));
    }
    Ok(())
}

async fn run_export_model(model: &str, out: &str, store: &StoreArg) -> Result<()> {
    let e = cinestream::infer::export::export(model, out, &store.options()?).await?;
    let a = &e.card.architecture;
    println!("exported {model}: {:?} width {} blocks {:?}, {} classes, input {}²", a.encoder, a.width, a.blocks, a.classes, e.card.input.size);
    println!("  {} tensors", e.tensors);
    for url in &e.written {
        println!("  {url}");
    }
    Ok(())
}

fn run_schema(table: Option<&str>) -> Result<()> {
    let names: Vec<&str> = match table {
        Some(t) if tables::documented_schema(t).is_some() => vec![t],
        Some(t) => bail!("unknown table `{t}`; tables: {}", tables::DOCUMENTED.join(", ")),
        None => tables::DOCUMENTED.to_vec(),
    };
    for t in names {
        println!("{}", serde_json::to_string_pretty(&tables::schema_json(t).expect("known"))?);
    }
    Ok(())
}

const SCHEDULE_HELP: &str = "\
PIPELINE FILE
  [schedule]
  metrics_addr = \"0.0.0.0:9464\"     # /metrics (Prometheus text) and /healthz
  lease_ttl_s = 120                  # a lease not renewed this long is taken over
  [[schedule.job]]
  name = \"label-new\"
  cron = \"*/5 * * * *\"               # 5 fields, or 6 with seconds first, or @hourly …
  inbox = \"s3://raw/inbox\"           # one folder per study: inbox/<study>/…
  output = \"s3://curated/v1\"         # the tables
  quiet_s = 300                      # a folder is ready when nothing arrived for this long
  model = \"s3://models/unet.onnx\"    # with unet.toml beside it, or our model folder
  labeller = \"unet-v1\"
  truth = [\"s3://raw/truth.csv\"]     # optional: truth volumes, and with evaluate = true
  evaluate = true                    #   each study's |EF error| in its marker and log line
  move_to = \"s3://raw/done\"          # optional: move done folders out of the inbox
  See pipelines/schedule-example.toml for every setting.

WHAT A RUN DOES
  Lists the inbox; for each ready folder without a done marker, takes its lease, ingests it,
  labels its studies (masks, QC, volumes, EF), writes the done marker
  (<output>/_schedule/<job>/done/<folder>.json, with each study's results), moves it when
  asked, and removes the lease. One structured log line per study (--json for JSON lines).

EXACTLY ONCE
  Any number of schedulers may watch one inbox. Leases (create-only puts, If-Match overwrites;
  create-only generations on local folders) keep two from working on one folder; a lease whose
  worker died is taken over after lease_ttl_s. The commits carry transaction ids derived from
  the studies, the labeller and the model, so a study is committed once even when two workers
  did the work.

STOPPING
  SIGTERM or Ctrl-C: no new folder is started, the one in hand is finished, exit 0. A second
  signal abandons it (nothing is half-committed) and releases its lease, exit 0.

EXIT STATUS
  --once: 0 when every job ran and no folder failed; 1 otherwise (the log says which). It
  waits for folders other workers hold: they finish them, or their lease expires and it takes
  them over, so a --once run ends with every ready folder done or failed.
  Without --once the scheduler keeps running when a job fails (wrong credentials, missing
  bucket, a model that does not load): it logs the failure, reports it in /metrics
  (cinestream_last_run_success 0) and tries again at the job's next time.

EXAMPLES
  cinestream schedule pipelines/schedule-example.toml
  cinestream schedule pipelines/schedule-example.toml --once --json";

#[derive(Args)]
struct ScheduleArgs {
    /// Pipeline TOML with a [schedule] section and its [[schedule.job]]s ([store] applies).
    pipeline: String,
    /// Run every job once now, then exit (for cron, CI, and tests).
    #[arg(long)]
    once: bool,
}

async fn run_schedule(a: &ScheduleArgs) -> Result<()> {
    use cinestream::schedule;
    let file = PipelineFile::load(&a.pipeline)?;
    let cfg = file.schedule.clone().with_context(|| format!("{} has no [schedule] section", a.pipeline))?;
    cfg.validate().map_err(|e| anyhow::anyhow!("{}: {e}", a.pipeline))?;
    let (tx, rx) = tokio::sync::watch::channel(0u8);
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let n = *tx.borrow() + 1;
            tracing::warn!(signal = n, "{}", if n == 1 { "stopping: finishing the folder in hand (signal again to abandon it)" } else { "stopping now" });
            let _ = tx.send(n.min(2));
        }
    });
    let summary = schedule::run(&cfg, &file.store(), &schedule::RunOptions { once: a.once }, rx, Default::default()).await?;
    if a.once {
        for r in summary.runs.iter().flatten() {
            println!(
                "job {}: {} folders listed, {} done now ({} studies), {} done before, {} held by other workers, {} failed, {} still arriving, {} leases taken over",
                r.job, r.drops_listed, r.drops_done.len(), r.studies_done, r.drops_done_before, r.drops_busy, r.drops_failed.len(), r.drops_waiting, r.takeovers
            );
        }
    }
    if a.once && summary.failed() > 0 {
        for r in &summary.runs {
            match r {
                Err((job, e)) => eprintln!("job `{job}` failed: {e}"),
                Ok(r) => {
                    for (d, e) in &r.drops_failed {
                        eprintln!("job `{}`: folder `{d}` failed: {e}", r.job);
                    }
                }
            }
        }
        bail!("{} of {} job runs failed", summary.failed(), summary.runs.len());
    }
    Ok(())
}

const KEY_HELP: &str = "\
Studies outside the Kaggle layout are grouped by StudyInstanceUID and named `s` + 16 hex digits
of HMAC-SHA256(key, UID), so no UID reaches an output, and nobody without the key can recompute
an id from a UID. The key is looked up in this order:
  CINESTREAM_PSEUDONYM_KEY        the key itself (at least 16 characters)
  CINESTREAM_PSEUDONYM_KEY_FILE   a file holding it (a Docker or Kubernetes secret)
  <config folder>/pseudonym.key   what `cinestream key create` writes (mode 0600)
The config folder is $CINESTREAM_CONFIG_DIR, else $XDG_CONFIG_HOME/cinestream, else
~/.config/cinestream: never beside the data. Without a key, such input is refused.

Each output prefix records the key's fingerprint (a hash, not the key) in
_cinestream/pseudonym_key.json and in its ingest commits; ingesting into it with another key is
refused, as the same study would get another id. Back the key up: it cannot be recovered.

EXAMPLES
  cinestream key create          # once per user or machine; prints the path and fingerprint
  cinestream key show            # which key a run would use, by fingerprint";

#[derive(Subcommand)]
enum KeyAction {
    /// Write a new random key to the config folder (refuses to replace one).
    Create,
    /// Say which key a run would use (its origin and fingerprint, never the key).
    Show,
}

fn run_key(action: &KeyAction) -> Result<()> {
    use cinestream::ingest::pseudonym;
    match action {
        KeyAction::Create => {
            let path = pseudonym::default_key_file().context("finding the config folder")?;
            let key = pseudonym::create(&path)?;
            println!("wrote a new pseudonym key to {} (fingerprint {})", path.display(), key.fingerprint());
            println!("back it up: every later ingest into an output made with it needs the same key");
        }
        KeyAction::Show => match pseudonym::resolve()? {
            Some(key) => println!("{} from {}", key.fingerprint(), key.origin()),
            None => bail!("no pseudonym key: {}", pseudonym::how_to_get_one()),
        },
    }
    Ok(())
}

/// Exit status of a run stopped by a storage failure that may pass (EX_TEMPFAIL): a scheduler
/// retries it; every other failure needs a person and exits 1.
const EXIT_TRANSIENT: u8 = 75;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error chain, without a backtrace (users need the what and the how-to-fix;
            // RUST_BACKTRACE is for developers, via a debugger or logs).
            eprintln!("error: {}", error_chain(&e));
            if store::transient(e.as_ref()) {
                eprintln!("the storage service failed after retries; this may pass: run the same command again later (committed work is kept, a rerun does only what is missing)");
                return std::process::ExitCode::from(EXIT_TRANSIENT);
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Each cause of the chain once, joined by `: ` (our errors show a storage error's text with
/// a hint and keep it as their source, so its text would otherwise appear twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
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
    runtime.block_on(dispatch(&cli))
}

/// Runs one parsed command line.
async fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Synth(a) => run_synth(cli, a).await,
        Command::Ingest(a) => run_ingest(cli, a).await,
        Command::Sql(a) => run_sql(cli, a).await,
        Command::Select(a) => run_select(cli, a).await,
        Command::Train(a) => run_train(cli, a).await,
        Command::Label(a) => run_label(cli, a).await,
        Command::Evaluate(a) => run_evaluate(cli, a).await,
        Command::Export(a) => run_export(cli, a).await,
        Command::Log(a) => run_log(cli, a).await,
        Command::Vacuum(a) => run_vacuum(cli, a).await,
        Command::Upgrade { data, store } => run_upgrade(cli, data, store).await,
        Command::Schema { table } => run_schema(table.as_deref()),
        Command::Key { action } => run_key(action),
        Command::Schedule(a) => run_schedule(a).await,
        Command::Run(a) => run_pipeline(cli, a).await,
    }
}

const RUN_HELP: &str = "\
PIPELINE FILE
  [run]
  work = \"./quickstart\"              # the folder every step works in: {work}
  [[run.step]]
  name = \"write phantom studies\"
  args = [\"synth\", \"--out\", \"{work}/phantom\", \"--studies\", \"36\"]
  [[run.step]]
  name = \"ingest\"
  args = [\"ingest\", \"--input\", \"{work}/phantom\", \"--output\", \"{work}/data\"]
  …
Each step is a cinestream command line (what you would type after `cinestream`), so any step
can be run again by hand; {pipelines} is the folder of the pipeline file, and [run] vars =
{ name = \"value\" } defines other {name}s (--set name=value overrides them). Every step is
checked before the first one starts. Steps run in order; the run stops at the first that fails
(exit 1), saying which, and --from N starts again at step N (the steps before are kept: every
command is safe to rerun, and does only what is missing).

EXAMPLES
  cinestream run pipelines/quickstart.toml                 # about 5 minutes on 2 cores
  cinestream run pipelines/quickstart.toml --work /tmp/qs --from 5
  cinestream run pipelines/kaggle.toml --set kaggle=s3://raw/kaggle --dry-run";

#[derive(Args)]
struct RunArgs {
    /// Pipeline TOML with a [run] section and its [[run.step]]s.
    pipeline: String,
    /// The work folder ({work}); default: [run] work.
    #[arg(long)]
    work: Option<String>,
    /// Start at this step (1-based); earlier steps are not run.
    #[arg(long, default_value_t = 1)]
    from: usize,
    /// Set a variable of [run] vars (repeatable), e.g. --set kaggle=s3://raw/kaggle.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Check every step and print the command lines, without running them.
    #[arg(long)]
    dry_run: bool,
}

async fn run_pipeline(cli: &Cli, a: &RunArgs) -> Result<()> {
    let file = PipelineFile::load(&a.pipeline)?;
    let run = file.run.with_context(|| format!("{} has no [run] section", a.pipeline))?;
    let work = a.work.clone().unwrap_or_else(|| run.work.clone());
    let pipelines = std::path::Path::new(&a.pipeline).parent().map(|p| p.display().to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| ".".into());
    let set: Vec<(String, String)> = a
        .set
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.trim().to_string(), v.to_string())).with_context(|| format!("--set {kv}: give NAME=VALUE")))
        .collect::<Result<_>>()?;
    let steps = run.resolved(&work, &pipelines, &set)?;
    if a.from == 0 || a.from > steps.len() {
        bail!("--from {}: the pipeline has steps 1 … {}", a.from, steps.len());
    }
    // Check every step's command line before running any.
    let mut parsed = Vec::new();
    for (i, (name, args)) in steps.iter().enumerate() {
        let mut full = vec!["cinestream".to_string()];
        if cli.json {
            full.push("--json".into());
        }
        if cli.quiet {
            full.push("--quiet".into());
        }
        full.extend(args.iter().cloned());
        let sub = Cli::try_parse_from(&full).map_err(|e| anyhow::anyhow!("step {} `{name}` of {}: {}", i + 1, a.pipeline, e.render()))?;
        parsed.push((name, args, sub));
    }
    if a.dry_run {
        for (i, (name, args, _)) in parsed.iter().enumerate() {
            println!("{:>2}. {name}\n    cinestream {}", i + 1, args.join(" "));
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut times = Vec::new();
    for (i, (name, args, sub)) in parsed.iter().enumerate().skip(a.from - 1) {
        if !cli.quiet {
            eprintln!("\n━━ step {}/{}: {name}  ({:.0} s so far)\n   cinestream {}", i + 1, parsed.len(), started.elapsed().as_secs_f64(), args.join(" "));
        }
        let t = std::time::Instant::now();
        Box::pin(dispatch(sub)).await.with_context(|| format!("step {} `{name}` failed (fix it, then: cinestream run {} --from {})", i + 1, a.pipeline, i + 1))?;
        times.push((i + 1, name.to_string(), t.elapsed().as_secs_f64()));
    }
    if !cli.quiet {
        eprintln!("\n━━ done in {:.0} s", started.elapsed().as_secs_f64());
        for (i, name, s) in &times {
            eprintln!("   {i:>2}. {name:<44} {s:>6.1} s");
        }
    }
    Ok(())
}
