//! `cinestream schedule`: jobs on cron schedules that label the new studies of an inbox,
//! exactly once per study, with any number of schedulers on one bucket.
//!
//! - [`inbox`]: folders (drops) under the inbox prefix; a drop is ready after a quiet time; done
//!   drops get a marker (and are optionally moved).
//! - [`lease`]: per-drop leases (create-only puts, `If-Match` overwrites or generations), renewed
//!   while working and taken over when they expire.
//! - [`job`]: one run of a job: ingest → label → QC, volumes, EF (→ EF error) → marker.
//! - [`metrics`]: `/metrics` (Prometheus) and `/healthz`.
//!
//! Each job runs in its own task; a job whose run fails (a store that cannot be reached, a
//! model that does not load) is reported in the log and in `/metrics` and tried again at its
//! next time, while the other jobs go on.

pub mod config;
pub mod inbox;
pub mod job;
pub mod lease;
pub mod metrics;
pub mod signals;

use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::watch;

pub use config::{JobConfig, ScheduleConfig};
use job::{JobContext, RunReport};
use metrics::Metrics;

use crate::ingest::IngestError;
use crate::label::InferError;
use crate::query::QueryError;
use crate::store::{StoreError, StoreOptions, explain};

/// Errors of a job run (the scheduler reports them and goes on).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Open(#[from] StoreError),
    #[error("{what}: {}", explain(source))]
    Store { what: String, source: object_store::Error },
    #[error("{what}: {source}")]
    Corrupt { what: String, source: serde_json::Error },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    #[error(transparent)]
    LeaseLost(lease::Lost),
    #[error("the job's model cannot be used: {0}")]
    Model(#[from] InferError),
    #[error("folder `{drop}`: ingest: {source}")]
    Ingest { drop: String, source: Box<IngestError> },
    #[error("folder `{drop}`: labelling: {source}")]
    Label { drop: String, source: Box<InferError> },
    #[error("folder `{drop}`: query: {source}")]
    Query { drop: String, source: Box<QueryError> },
    #[error(transparent)]
    Read(#[from] crate::query::read::ReadError),
    #[error(
        "the scheduler names inbox folders and objects by keyed hashes in its markers, leases and logs (sites \
         name folders after patients), and needs a pseudonym key: {how}"
    )]
    NoKey { how: String },
    #[error(transparent)]
    Key(#[from] crate::source::pseudonym::KeyError),
    #[error("cannot serve metrics on `{addr}`: {source}")]
    Metrics { addr: String, source: std::io::Error },
}

impl ScheduleError {
    fn query(drop: &str) -> impl Fn(QueryError) -> ScheduleError + '_ {
        move |e| ScheduleError::Query { drop: drop.into(), source: Box::new(e) }
    }
}

/// How the scheduler runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run every job once, now, and return (instead of following the cron schedules). Folders
    /// other workers hold are waited for (done by them, or taken over when their lease expires).
    pub once: bool,
}

/// What the scheduler did, per job (with `once`, each job's single run).
#[derive(Debug, Default)]
pub struct Summary {
    pub runs: Vec<Result<RunReport, (String, String)>>,
}

impl Summary {
    pub fn failed(&self) -> usize {
        self.runs.iter().filter(|r| r.as_ref().map_or(true, |r| !r.drops_failed.is_empty())).count()
    }
}

/// Runs the jobs until `stop` is raised (or once each, with `opts.once`). Serves metrics when
/// configured.
pub async fn run(
    cfg: &ScheduleConfig,
    store_opts: &StoreOptions,
    opts: &RunOptions,
    stop: watch::Receiver<u8>,
    metrics: Metrics,
) -> Result<Summary, ScheduleError> {
    cfg.validate().map_err(ScheduleError::Config)?;
    // Refused before anything starts: every job names its folders with the key.
    crate::source::pseudonym::resolve()?.ok_or_else(|| ScheduleError::NoKey { how: crate::source::pseudonym::how_to_get_one() })?;
    let server = match &cfg.metrics_addr {
        Some(addr) => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| ScheduleError::Metrics { addr: addr.clone(), source })?;
            tracing::info!(addr = %listener.local_addr().map_or(addr.clone(), |a| a.to_string()), "serving /metrics and /healthz");
            Some(tokio::spawn(metrics::serve(listener, metrics.clone())))
        }
        None => None,
    };
    let owner = job::owner_name();
    tracing::info!(owner = %owner, jobs = cfg.jobs.len(), once = opts.once, "scheduler started");
    let tasks: Vec<_> = cfg
        .jobs
        .iter()
        .map(|j| {
            let (j, cfg, store_opts, opts, stop, metrics, owner) =
                (j.clone(), cfg.clone(), store_opts.clone(), opts.clone(), stop.clone(), metrics.clone(), owner.clone());
            tokio::spawn(async move { job_loop(&j, &cfg, &store_opts, &opts, stop, &metrics, &owner).await })
        })
        .collect();
    let mut summary = Summary::default();
    for t in tasks {
        match t.await {
            Ok(runs) => summary.runs.extend(runs),
            Err(e) => summary.runs.push(Err(("(a job task)".into(), e.to_string()))),
        }
    }
    if let Some(s) = server {
        s.abort();
    }
    Ok(summary)
}

/// One job's loop: wait for its next time, run, record, repeat; stops when asked.
async fn job_loop(
    j: &JobConfig,
    cfg: &ScheduleConfig,
    store_opts: &StoreOptions,
    opts: &RunOptions,
    mut stop: watch::Receiver<u8>,
    metrics: &Metrics,
    owner: &str,
) -> Vec<Result<RunReport, (String, String)>> {
    let cron = croner::Cron::from_str(&j.cron).expect("validated");
    let mut ctx: Option<Arc<JobContext>> = None;
    let mut runs = Vec::new();
    loop {
        if !opts.once {
            let now = chrono::Utc::now();
            let Ok(next) = cron.find_next_occurrence(&now, false) else {
                tracing::error!(job = %j.name, cron = %j.cron, "the schedule has no next time: the job stops");
                break;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tracing::debug!(job = %j.name, next = %next, "waiting");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        if *stop.borrow() > 0 {
            break;
        }
        let started = std::time::Instant::now();
        let result = async {
            if ctx.is_none() {
                ctx = Some(Arc::new(JobContext::open(j, cfg, store_opts, owner).await?));
            }
            let ctx = ctx.as_ref().expect("opened");
            let mut report = job::run_once(ctx, cfg, metrics, &stop).await?;
            // Once: wait for folders other workers hold, until they are done or their leases
            // expire and are taken over (a dead worker's lease looks expired after one time to
            // live), so the run ends with the inbox drained.
            while opts.once && report.drops_busy > 0 && *stop.borrow() == 0 {
                tokio::time::sleep(cfg.renew_every()).await;
                let again = job::run_once(ctx, cfg, metrics, &stop).await?;
                report.absorb(again);
            }
            Ok::<_, ScheduleError>(report)
        }
        .await;
        let ok = result.as_ref().is_ok_and(|r| r.drops_failed.is_empty());
        metrics.update(&j.name, |m| {
            m.runs += 1;
            m.last_run = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            m.last_run_ok = ok;
        });
        match &result {
            Ok(r) => tracing::info!(
                job = %j.name, seconds = started.elapsed().as_secs_f64(), listed = r.drops_listed, done = r.drops_done.len(), studies = r.studies_done,
                busy = r.drops_busy, failed = r.drops_failed.len(), waiting = r.drops_waiting, takeovers = r.takeovers, "job run finished"
            ),
            Err(e) => tracing::error!(job = %j.name, error = %e, "job run failed: tried again at its next time"),
        }
        runs.push(result.map_err(|e| (j.name.clone(), e.to_string())));
        if opts.once || *stop.borrow() > 0 {
            break;
        }
    }
    runs
}
