//! `cinestream synth`: phantom cine studies in the Kaggle layout, with known truth and chosen curation
//! defects.

use anyhow::Result;

use super::Cli;
use super::args::StoreArg;
use super::progress::Bar;
use cinestream::store;
use cinestream::synth::{self, Domain, SynthConfig, defects};

pub const HELP: &str = "DOMAINS (--domain)
  clinical  1.5/3 T SSFP cine as in the Kaggle data (the default): matrices 192–256 px, pixels
            1.25–1.56 mm, slices 8–10 mm apart and 5–9 mm thick, 20–30 frames, 8–14 slices,
            ED at frame 0, bright uniform blood, a mild bias field. Ids 1–1140 (Kaggle ranges).
  7t        7T gradient-echo cine (the paper's application). Facts from the paper: 7 T, one
            geometry for all (0.66 mm pixels, 472×512, 6 mm slices, 14–18 slices), 18–25
            frames, ED at the first or last frames (retrospective gating). Modelling choices:
            blood only about twice as bright as myocardium and darker at the endocardium and
            at end-systole; a transmit field of 1–3 lobes with max/min 2–4 per volunteer;
            receive fall-off with depth; a signal void on the inferolateral wall in about a
            third of the volunteers; noise; about 15% of images beyond base or apex (empty
            masks). Ids 7001–7999, so both domains can share one data prefix.
  Both split 3 of 5 studies train, 1 validate, 1 test; `studies.field_strength_t` tells them apart.

DEFECTS
  missing_time_point  one frame file of one slice is missing
  missing_slice       one mid-ventricular slice location is missing
  repeated_slice      one location acquired twice (later series 0.3 mm away)
  repeated_stack      the whole stack acquired twice (split into <id>_a, <id>_b)
  scaled              one slice with 1.25× pixel spacing (same field of view)
  image_size          one slice 32 columns wider
  rotated_90          one slice rotated +90° and one −90° in-plane
  rotated_arbitrary   one slice rotated +30° and one −17° in-plane
  non_parallel        an extra slice tilted 30° out of the short-axis plane
  large_image         the whole study at 512×512 px (scaled down to 256; 7t images always are)
  broken_files        truncated, non-DICOM, empty and pixel-less files
Defect j of the list goes to study j (mod --studies); other studies are clean.

OUTPUT
  <split>/<id>/study/sax_<series>/IM-<series>-<frame>.dcm   DICOM (explicit VR LE, 16-bit)
  train.csv, validate.csv                                    Id,Systole,Diastole (mL)
  solution.csv                                               test truth, Kaggle's format
  truth/<id>.parquet                                         masks keyed by object key (for --labels)
  synth.json                                                 defects, ED/ES frames, volumes

EXAMPLE
  cinestream synth --out s3://bucket/phantom --studies 40 --seed 7 --defects rotated_90,scaled
  cinestream synth --out ./phantom-7t --domain 7t --studies 23";

#[derive(clap::Args)]
pub struct Args {
    /// Where to write (path, file://, s3://, memory://).
    #[arg(long)]
    out: String,
    /// Which scanner the phantom imitates (see DOMAINS below).
    #[arg(long, value_enum, default_value_t = Domain::Clinical)]
    domain: Domain,
    /// Number of studies (3 of 5 train, 1 validate, 1 test; at most 1140, 7t 999).
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
    let cfg = SynthConfig { domain: a.domain, studies: a.studies, seed: a.seed, defects, write_concurrency: 16 };
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
