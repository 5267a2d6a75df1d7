//! `cinestream run`: a whole pipeline as ordered cinestream command lines, in one process.

use anyhow::{Context, Result, bail};
use clap::Parser;

use super::{Cli, dispatch};
use cinestream::config::PipelineFile;

#[derive(clap::Args)]
pub struct Args {
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

pub const HELP: &str = "\
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

pub async fn run(cli: &Cli, a: &Args) -> Result<()> {
    let file = PipelineFile::load(&a.pipeline)?;
    let run = file.run.with_context(|| format!("{} has no [run] section", a.pipeline))?;
    let work = a.work.clone().unwrap_or_else(|| run.work.clone());
    let pipelines =
        std::path::Path::new(&a.pipeline).parent().map(|p| p.display().to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| ".".into());
    let set: Vec<(String, String)> = a
        .set
        .iter()
        .map(|kv| {
            kv.split_once('=').map(|(k, v)| (k.trim().to_string(), v.to_string())).with_context(|| format!("--set {kv}: give NAME=VALUE"))
        })
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
            eprintln!(
                "\n━━ step {}/{}: {name}  ({:.0} s so far)\n   cinestream {}",
                i + 1,
                parsed.len(),
                started.elapsed().as_secs_f64(),
                args.join(" ")
            );
        }
        let t = std::time::Instant::now();
        Box::pin(dispatch(sub))
            .await
            .with_context(|| format!("step {} `{name}` failed (fix it, then: cinestream run {} --from {})", i + 1, a.pipeline, i + 1))?;
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
