//! `cinestream schedule`: labelling jobs on cron schedules over an inbox, exactly once per study.

use anyhow::{Context, Result, bail};

use cinestream::config::PipelineFile;
use cinestream::schedule;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline TOML with a [schedule] section and its [[schedule.job]]s ([store] applies).
    pipeline: String,
    /// Run every job once now, then exit (for cron, CI, and tests).
    #[arg(long)]
    once: bool,
}

pub const HELP: &str = "\
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
  (<output>/_schedule/<job>/done/<tag>.json, with each study's results), moves it when
  asked, and removes the lease. One structured log line per study (--json for JSON lines).

FOLDER NAMES
  Sites name inbox folders after patients, so no folder or file name is written or logged: a
  folder is called by its tag, d + 16 hex digits of a keyed hash of its name, and its objects
  as the tables call them (`cinestream key --help`). The scheduler needs the pseudonym key
  (CINESTREAM_PSEUDONYM_KEY, CINESTREAM_PSEUDONYM_KEY_FILE or `cinestream key create`) and
  refuses to start without one. `cinestream key find TAG --input INBOX` names a folder again.

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

pub async fn run(a: &Args) -> Result<()> {
    let file = PipelineFile::load(&a.pipeline)?;
    let cfg = file.schedule.clone().with_context(|| format!("{} has no [schedule] section", a.pipeline))?;
    cfg.validate().map_err(|e| anyhow::anyhow!("{}: {e}", a.pipeline))?;
    let rx = schedule::signals::stop_on_signals();
    let summary = schedule::run(&cfg, &file.store(), &schedule::RunOptions { once: a.once }, rx, Default::default()).await?;
    if a.once {
        for r in summary.runs.iter().flatten() {
            println!(
                "job {}: {} folders listed, {} done now ({} studies), {} done before, {} held by other workers, {} failed, {} still arriving, {} leases taken over",
                r.job,
                r.drops_listed,
                r.drops_done.len(),
                r.studies_done,
                r.drops_done_before,
                r.drops_busy,
                r.drops_failed.len(),
                r.drops_waiting,
                r.takeovers
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
