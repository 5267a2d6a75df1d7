//! One run of one job: list the inbox, and for each ready folder not yet done, under its lease:
//! ingest → label (QC, volumes, EF) → optionally the EF error against the truth → done marker
//! → move → lease removed.
//!
//! Exactly once per study comes from the commits: ingest's and labelling's application
//! transaction ids are derived from the folder's studies and the job's labeller and model, ingest
//! skips studies the tables hold, and labelling skips studies the labeller has. A crash anywhere
//! leaves either nothing committed, or commits that the next attempt finds and completes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use tokio::sync::watch;

use super::ScheduleError;
use super::config::{JobConfig, ScheduleConfig};
use super::inbox::{self, Drop, Marker, Markers, StudyResult};
use super::lease::{self, Leases, Taken};
use super::metrics::Metrics;
use crate::ingest;
use crate::ingest::IngestConfig;
use crate::label::{self, LabelConfig};
use crate::progress::Quiet;
use crate::query::read::{self, quote};
use crate::query::{Session, SessionOptions};
use crate::source::pseudonym::{self, PseudonymKey};
use crate::store::{self, StoreLocation, StoreOptions};

/// What one run of a job did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunReport {
    pub job: String,
    pub drops_listed: usize,
    pub drops_done_before: usize,
    pub drops_waiting: usize,
    pub drops_done: Vec<String>,
    pub drops_busy: usize,
    pub drops_failed: Vec<(String, String)>,
    pub drops_changed: Vec<String>,
    pub studies_done: usize,
    pub takeovers: u64,
    pub stopped_early: bool,
}

impl RunReport {
    /// Adds a later pass over the same inbox: its work, and its view of what is left.
    pub fn absorb(&mut self, later: RunReport) {
        self.drops_done.extend(later.drops_done);
        self.drops_failed.extend(later.drops_failed);
        self.drops_changed = later.drops_changed;
        self.studies_done += later.studies_done;
        self.takeovers += later.takeovers;
        self.drops_busy = later.drops_busy;
        self.drops_waiting = later.drops_waiting;
        self.stopped_early |= later.stopped_early;
    }
}

/// The stores and leases of a job, opened once and reused across runs.
pub struct JobContext {
    pub cfg: JobConfig,
    pub inbox: StoreLocation,
    pub state: StoreLocation,
    pub markers: Markers,
    pub leases: Leases,
    pub move_to: Option<StoreLocation>,
    pub store_opts: StoreOptions,
    /// Names inbox folders and objects in everything written or logged, and the studies of
    /// files outside the Kaggle layout.
    pub key: PseudonymKey,
}

/// This process's name in leases and markers: host, process id and a random part.
pub fn owner_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}:{}", std::process::id(), crate::ids::random_hex(3))
}

impl JobContext {
    /// Opens the job's stores and learns how its state store holds leases.
    pub async fn open(
        cfg: &JobConfig,
        schedule: &ScheduleConfig,
        store_opts: &StoreOptions,
        owner: &str,
    ) -> Result<JobContext, ScheduleError> {
        let key = pseudonym::resolve()?.ok_or_else(|| ScheduleError::NoKey { how: pseudonym::how_to_get_one() })?;
        let inbox = store::open(&cfg.inbox, store_opts)?;
        let state = store::open(&cfg.state_url(), store_opts)?;
        let mode = lease::probe(&state.sub("leases")).await?;
        tracing::info!(job = %cfg.name, state = %state, mode = %mode, "leases");
        let leases = Leases::new(state.sub("leases"), mode, Duration::from_secs_f64(schedule.lease_ttl_s), owner.to_string());
        let move_to = cfg.move_to.as_deref().map(|u| store::open(u, store_opts)).transpose()?;
        Ok(JobContext {
            cfg: cfg.clone(),
            markers: Markers { root: state.sub("done") },
            inbox,
            state,
            leases,
            move_to,
            store_opts: store_opts.clone(),
            key,
        })
    }

    fn label_config(&self, studies: &[String]) -> LabelConfig {
        let mut l = LabelConfig::new(&self.cfg.output, &self.cfg.model, &self.cfg.labeller);
        l.contract = self.cfg.contract.clone();
        l.device = self.cfg.device;
        if let Some(b) = self.cfg.batch {
            l.batch = b;
        }
        l.qc = self.cfg.qc.clone();
        l.store = self.store_opts.clone();
        l.filter = Some(format!("study_id IN ({})", quoted(studies)));
        l
    }
}

/// `'a', 'b', …` for an `IN (…)` list.
fn quoted(ids: &[String]) -> String {
    ids.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
}

/// Runs the job once. `stop` becomes non-zero when the process is asked to stop: no new folder
/// is started after the first request; at the second, the folder in hand is abandoned and its
/// lease released.
pub async fn run_once(
    ctx: &JobContext,
    schedule: &ScheduleConfig,
    metrics: &Metrics,
    stop: &watch::Receiver<u8>,
) -> Result<RunReport, ScheduleError> {
    let job = &ctx.cfg.name;
    let mut report = RunReport { job: job.clone(), ..Default::default() };
    let listing = inbox::list(&ctx.inbox, ctx.cfg.drop_depth, ctx.key.secret()).await?;
    if !listing.loose.is_empty() {
        tracing::warn!(job = %job, objects = listing.loose.len(), example = %listing.loose[0], depth = ctx.cfg.drop_depth, "objects above the folder depth of the inbox are not in any folder: not read");
    }
    report.drops_listed = listing.drops.len();
    let now = chrono::Utc::now();
    let quiet = chrono::Duration::milliseconds((ctx.cfg.quiet_s * 1000.0) as i64);
    let mut ready: Vec<Drop> = Vec::new();
    for d in listing.drops {
        if !d.is_ready(quiet, now) {
            report.drops_waiting += 1;
            continue;
        }
        match ctx.markers.get_done(&d).await? {
            Some(m) => {
                report.drops_done_before += 1;
                if m.listing != d.fingerprint() {
                    tracing::warn!(job = %job, drop = %d.tag, "objects were added to or changed in a folder after it was done: left alone (ingest it again with `cinestream ingest --replace`, or drop it under a new name)");
                    report.drops_changed.push(d.tag.clone());
                } else if let Some(to) = &ctx.move_to {
                    finish_move(ctx, schedule, stop, &d, m, to, metrics, &mut report).await?;
                    continue;
                }
                ctx.leases.remove_if_expired(&d.tag).await?;
            }
            None => ready.push(d),
        }
    }
    let oldest = ready.iter().map(|d| d.newest).min();
    metrics.update(job, |m| {
        m.queue = ready.len() as u64;
        m.queue_lag_s = oldest.map_or(0.0, |o| (now - o).num_milliseconds() as f64 / 1000.0);
        m.waiting = report.drops_waiting as u64;
    });
    // The model must load before any folder is taken (a broken model fails the run, not
    // folders); it is loaded only when there is work.
    if !ready.is_empty() {
        label::preflight(&ctx.label_config(&[])).await?;
    }
    // Workers on one inbox start at different folders.
    ready.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(u64::from_str_radix(&crate::ids::random_hex(8), 16).unwrap_or(0)));
    let limit = ctx.cfg.max_drops_per_run.unwrap_or(usize::MAX);
    for d in ready {
        if *stop.borrow() > 0 {
            report.stopped_early = true;
            break;
        }
        if report.drops_done.len() >= limit {
            break;
        }
        let lease = match ctx.leases.take(&d.tag).await? {
            Taken::Busy { owner } => {
                tracing::debug!(job = %job, drop = %d.tag, owner = %owner, "held by another worker: skipped");
                report.drops_busy += 1;
                metrics.update(job, |m| m.drops_busy += 1);
                continue;
            }
            Taken::Fresh(l) => l,
            Taken::TakenOver { lease, from } => {
                tracing::warn!(job = %job, drop = %d.tag, from = %from, "took over an expired lease: resuming that worker's folder");
                report.takeovers += 1;
                metrics.update(job, |m| m.lease_takeovers += 1);
                lease
            }
        };
        // Done by another worker between our listing and our lease?
        if ctx.markers.get_done(&d).await?.is_some() {
            ctx.leases.remove(&d.tag).await?;
            report.drops_done_before += 1;
            continue;
        }
        metrics.update(job, |m| m.in_flight += 1);
        let outcome = with_lease(ctx, schedule, lease, stop, process(ctx, &d)).await;
        metrics.update(job, |m| m.in_flight -= 1);
        match outcome {
            Ok(Some(marker)) => {
                let n = marker.studies.len();
                report.studies_done += n;
                report.drops_done.push(d.tag.clone());
                metrics.update(job, |m| {
                    m.studies_done += n as u64;
                    m.drops_done += 1;
                });
            }
            Ok(None) => {
                report.stopped_early = true;
                break;
            }
            Err(e) => failed(job, &d, &e, metrics, &mut report),
        }
    }
    Ok(report)
}

/// Logs and counts a folder that failed (its lease is already released).
fn failed(job: &str, d: &Drop, e: &ScheduleError, metrics: &Metrics, report: &mut RunReport) {
    // An error may quote an object's URL, which holds the folder's name.
    let error = e.to_string().replace(&d.name, &d.tag);
    tracing::error!(job = %job, drop = %d.tag, error = %error, "folder failed: its lease is released, and the next run tries it again");
    metrics.update(job, |m| m.drops_failed += 1);
    if matches!(e, ScheduleError::LeaseLost(_)) {
        metrics.update(job, |m| m.leases_lost += 1);
    }
    report.drops_failed.push((d.tag.clone(), error));
}

/// A folder that is done but still in the inbox: either the worker that did it is moving it
/// now (its lease is live, so the folder is left to it), or a crash interrupted its move, which
/// is completed here under the folder's lease.
#[allow(clippy::too_many_arguments)]
async fn finish_move(
    ctx: &JobContext,
    schedule: &ScheduleConfig,
    stop: &watch::Receiver<u8>,
    d: &Drop,
    marker: Marker,
    to: &StoreLocation,
    metrics: &Metrics,
    report: &mut RunReport,
) -> Result<(), ScheduleError> {
    if *stop.borrow() > 0 {
        report.stopped_early = true;
        return Ok(());
    }
    let lease = match ctx.leases.take(&d.tag).await? {
        Taken::Busy { owner } => {
            tracing::debug!(job = %ctx.cfg.name, drop = %d.tag, owner = %owner, "done, and being moved by the worker that did it: skipped");
            return Ok(());
        }
        Taken::Fresh(l) => l,
        Taken::TakenOver { lease, from } => {
            tracing::warn!(job = %ctx.cfg.name, drop = %d.tag, from = %from, "took over an expired lease: finishing that worker's move");
            report.takeovers += 1;
            metrics.update(&ctx.cfg.name, |m| m.lease_takeovers += 1);
            lease
        }
    };
    tracing::info!(job = %ctx.cfg.name, drop = %d.tag, "done, but its move was interrupted: moving it now");
    let work = async {
        inbox::move_drop(&ctx.inbox, d, to).await?;
        Ok(marker)
    };
    match with_lease(ctx, schedule, lease, stop, work).await {
        Ok(Some(_)) => {}
        Ok(None) => report.stopped_early = true,
        Err(e) => failed(&ctx.cfg.name, d, &e, metrics, report),
    }
    Ok(())
}

/// Runs `work` while renewing `lease`; removes the lease when the work is done, releases it
/// when the work fails or is abandoned (second stop request: `Ok(None)`).
async fn with_lease<F>(
    ctx: &JobContext,
    schedule: &ScheduleConfig,
    mut lease: lease::Lease,
    stop: &watch::Receiver<u8>,
    work: F,
) -> Result<Option<Marker>, ScheduleError>
where
    F: std::future::Future<Output = Result<Marker, ScheduleError>>,
{
    let name = lease.name.clone();
    let mut stop = stop.clone();
    let renew_every = schedule.renew_every();
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r.map(Some),
            _ = tokio::time::sleep(renew_every) => {
                match ctx.leases.renew(&mut lease).await {
                    Ok(Ok(())) => {}
                    Ok(Err(lost)) => return Err(ScheduleError::LeaseLost(lost)),
                    Err(e) => tracing::warn!(drop = %name, error = %e, "renewing the lease failed: trying again"),
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() >= 2 {
                    tracing::warn!(drop = %name, "stopping now: the folder's work is abandoned (nothing half-committed) and its lease released");
                    break Ok(None);
                }
            }
        }
    };
    match &result {
        Ok(Some(_)) => ctx.leases.remove(&name).await?,
        _ => ctx.leases.release(lease).await?,
    }
    result
}

/// One folder: ingest, label, results, marker, move.
async fn process(ctx: &JobContext, d: &Drop) -> Result<Marker, ScheduleError> {
    let started = Instant::now();
    let job = &ctx.cfg.name;
    let mut icfg = IngestConfig::new(ctx.cfg.inbox.clone(), ctx.cfg.output.clone());
    icfg.folders = vec![d.name.clone()];
    icfg.pseudonym_key = Some(ctx.key.clone());
    icfg.truth = ctx.cfg.truth.clone();
    icfg.curation = ctx.cfg.curation.clone();
    icfg.store = ctx.store_opts.clone();
    let ing = ingest::run(&icfg, Arc::new(Quiet)).await.map_err(|e| ScheduleError::Ingest { drop: d.tag.clone(), source: Box::new(e) })?;
    let out = store::open(&ctx.cfg.output, &ctx.store_opts)?;
    let session = Session::open(Some(&out), &SessionOptions { store: ctx.store_opts.clone(), ..Default::default() })
        .await
        .map_err(ScheduleError::query(&d.tag))?;
    let studies = if ing.source_studies.is_empty() {
        Vec::new()
    } else {
        let rows = collect(
            &session,
            &d.tag,
            &format!("SELECT DISTINCT study_id FROM studies WHERE source_study_id IN ({}) ORDER BY study_id", quoted(&ing.source_studies)),
        )
        .await?;
        strings(&rows, "study_id")?
    };
    let mut label_app_id = String::new();
    let mut frames: BTreeMap<String, usize> = BTreeMap::new();
    if !studies.is_empty() {
        let lr = label::run(&ctx.label_config(&studies), Arc::new(Quiet))
            .await
            .map_err(|e| ScheduleError::Label { drop: d.tag.clone(), source: Box::new(e) })?;
        label_app_id = lr.app_id.clone();
        frames.extend(lr.studies.iter().map(|s| (s.study_id.clone(), s.frames)));
    }
    let results = results(ctx, &d.tag, &studies, &frames).await?;
    for r in &results {
        tracing::info!(
            job = %job, drop = %d.tag, study = %r.study_id, labeller = %ctx.cfg.labeller, frames = r.frames_labelled, qc_passed = ?r.qc_passed,
            edv_ml = ?r.edv_ml, esv_ml = ?r.esv_ml, ef_pct = ?r.ef_pct, ef_error_pct = ?r.ef_error_pct, "study done"
        );
    }
    let marker = Marker {
        job: job.clone(),
        drop: d.tag.clone(),
        listing: d.fingerprint(),
        objects: d.objects.len(),
        studies: results,
        files_quarantined: ing.files_quarantined,
        files_excluded: ing.files_excluded,
        ingest_app_id: ing.app_id.clone(),
        label_app_id,
        owner: ctx.leases.owner().to_string(),
        finished: chrono::Utc::now().to_rfc3339(),
        seconds: started.elapsed().as_secs_f64(),
    };
    ctx.markers.put(&marker).await?;
    if let Some(to) = &ctx.move_to {
        inbox::move_drop(&ctx.inbox, d, to).await?;
    }
    tracing::info!(job = %job, drop = %d.tag, studies = marker.studies.len(), quarantined = marker.files_quarantined, excluded = marker.files_excluded, seconds = marker.seconds, "folder done");
    Ok(marker)
}

async fn collect(session: &Session, drop: &str, sql: &str) -> Result<Vec<RecordBatch>, ScheduleError> {
    read::collect(session, sql, &format!("folder `{drop}`")).await.map_err(ScheduleError::from)
}

/// A column of every batch, cast to `to` ([`read::column`]).
fn columns(rows: &[RecordBatch], col: &str, to: &DataType) -> Result<Vec<ArrayRef>, ScheduleError> {
    rows.iter().map(|b| read::column(b, col, to, "scheduled job results").map_err(ScheduleError::from)).collect()
}

fn strings(rows: &[RecordBatch], col: &str) -> Result<Vec<String>, ScheduleError> {
    Ok(columns(rows, col, &DataType::Utf8)?
        .iter()
        .flat_map(|c| c.as_string::<i32>().iter().flatten().map(String::from).collect::<Vec<_>>())
        .collect())
}

fn floats(rows: &[RecordBatch], col: &str) -> Result<Vec<Option<f64>>, ScheduleError> {
    Ok(columns(rows, col, &DataType::Float64)?.iter().flat_map(|c| c.as_primitive::<Float64Type>().iter().collect::<Vec<_>>()).collect())
}

/// Each study's QC, volumes and EF (from `label_qc`), and its EF error where the truth is known.
async fn results(
    ctx: &JobContext,
    drop: &str,
    studies: &[String],
    frames: &BTreeMap<String, usize>,
) -> Result<Vec<StudyResult>, ScheduleError> {
    if studies.is_empty() {
        return Ok(Vec::new());
    }
    let out = store::open(&ctx.cfg.output, &ctx.store_opts)?;
    let session = Session::open(Some(&out), &SessionOptions { store: ctx.store_opts.clone(), ..Default::default() })
        .await
        .map_err(ScheduleError::query(drop))?;
    let labeller = ctx.cfg.labeller.replace('\'', "''");
    let ids = quoted(studies);
    let qc = collect(
        &session,
        drop,
        &format!("SELECT study_id, CAST(passed AS VARCHAR) AS passed, edv_ml, esv_ml, ef_pct FROM label_qc WHERE labeller = '{labeller}' AND study_id IN ({ids}) ORDER BY study_id, run_id"),
    )
    .await?;
    let (qid, passed, edv, esv, ef) =
        (strings(&qc, "study_id")?, strings(&qc, "passed")?, floats(&qc, "edv_ml")?, floats(&qc, "esv_ml")?, floats(&qc, "ef_pct")?);
    let mut by_study: BTreeMap<String, StudyResult> = studies
        .iter()
        .map(|s| {
            (
                s.clone(),
                StudyResult {
                    study_id: s.clone(),
                    frames_labelled: frames.get(s).copied().unwrap_or(0),
                    qc_passed: None,
                    edv_ml: None,
                    esv_ml: None,
                    ef_pct: None,
                    ef_error_pct: None,
                },
            )
        })
        .collect();
    for i in 0..qid.len() {
        if let Some(r) = by_study.get_mut(&qid[i]) {
            r.qc_passed = Some(passed[i] == "true");
            (r.edv_ml, r.esv_ml, r.ef_pct) = (edv[i], esv[i], ef[i]);
        }
    }
    if ctx.cfg.evaluate {
        let errs = collect(
            &session,
            drop,
            &format!("SELECT study_id, ef_error_pct FROM ef_errors WHERE labeller = '{labeller}' AND study_id IN ({ids})"),
        )
        .await?;
        for (s, e) in strings(&errs, "study_id")?.into_iter().zip(floats(&errs, "ef_error_pct")?) {
            if let Some(r) = by_study.get_mut(&s) {
                r.ef_error_pct = e;
            }
        }
    }
    Ok(by_study.into_values().collect())
}
