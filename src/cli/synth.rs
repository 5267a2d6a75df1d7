//! `cinestream synth`: phantom cine studies in the Kaggle layout, with known truth and chosen curation
//! defects.

use anyhow::Result;

use super::Cli;
use super::args::StoreArg;
use super::progress::Bar;
use cinestream::store;
use cinestream::synth::{self, SynthConfig, defects};

pub const HELP: &str = "DEFECTS
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
  cinestream synth --out s3://bucket/phantom --studies 40 --seed 7 --defects rotated_90,scaled";

#[derive(clap::Args)]
pub struct Args {
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

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let defects = defects::parse_list(&a.defects).map_err(anyhow::Error::msg)?;
    let out = store::open(&a.out, &a.store.options()?)?;
    let cfg = SynthConfig { studies: a.studies, seed: a.seed, defects, write_concurrency: 16 };
    let bar = Bar::new(cli, "synth");
    let report = synth::run(&out, &cfg, bar.as_ref()).await;
    bar.finish();
    let report = report?;
    if !cli.quiet {
        println!("wrote {} studies, {} files, {:.1} MB to {}", report.studies.len(), report.files, report.bytes as f64 / 1e6, out);
        for t in report.studies.iter().filter(|t| !t.defects.is_empty()) {
            println!("  study {:>4} ({}): {}", t.study_id, t.split, t.defects.join(", "));
        }
    }
    Ok(())
}
