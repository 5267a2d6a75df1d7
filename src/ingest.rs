//! `cinestream ingest`: source → curate → shard, as a bounded streaming pipeline.
//!
//! Studies flow one by one: a study's files are fetched (bounded concurrency) and parsed on
//! blocking threads, curated on a blocking thread, and its rows handed to the shard writers. At
//! most `studies_in_flight` studies are being loaded or curated at once, and the writer consumes
//! them in order, so memory is bounded by configuration, not by the data set, and the slowest
//! stage sets the pace. The run ends by committing a manifest whose summary reconciles:
//! `image files = frames written from files + files quarantined + files excluded`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, IngestConfig};
use crate::curate::findings::{Finding, Problem, Resolution};
use crate::curate::{self, CurationOutput};
use crate::shard::tables::{self, Truth};
use crate::shard::{ShardError, ShardSet};
use crate::source::labels::{LabelError, LabelIndex};
use crate::source::truth::{self, TruthError};
use crate::source::{self, SourceError};
use crate::store::{self, StoreError, StoreLocation, explain};

/// Errors that stop an ingest run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot access the output `{url}`: {message}")]
    Output { url: String, message: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Truth(#[from] TruthError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("curating study `{study}` failed: {message}")]
    Task { study: String, message: String },
    #[error("counts do not reconcile (a bug, please report): {0}")]
    Reconcile(String),
}

/// Progress callbacks (the CLI draws a progress bar with them).
pub trait Progress: Send + Sync {
    /// The listing is done: this many studies and image files will be read.
    fn planned(&self, _studies: usize, _files: usize) {}
    /// One study was written.
    fn study_done(&self, _study: &str, _files: usize, _bytes: u64) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The reconciled summary of a run (also stored in the manifest).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IngestReport {
    pub objects_listed: usize,
    /// Objects that are not images (CSV, Parquet, …), not read.
    pub side_files: usize,
    /// Image files considered.
    pub image_files: usize,
    /// Source files that became frames.
    pub frames_from_files: usize,
    /// Frames copied to fill a missing time point or slice.
    pub frames_filled: usize,
    pub files_quarantined: usize,
    /// Source files removed by curation rules (repeats, non-parallel planes, outliers, …).
    pub files_excluded: usize,
    pub studies_in: usize,
    pub studies_written: usize,
    pub label_rows: usize,
    /// Findings per problem class.
    pub findings: BTreeMap<String, usize>,
    /// Files quarantined or excluded, per reason (problem class or parse failure).
    pub excluded_by_reason: BTreeMap<String, usize>,
    pub bytes_read: u64,
    pub seconds: f64,
    pub images_per_second: f64,
    pub manifest: String,
}

impl IngestReport {
    /// `image files = frames from files + quarantined + excluded`, or what differs.
    pub fn reconcile(&self) -> Result<(), String> {
        let rhs = self.frames_from_files + self.files_quarantined + self.files_excluded;
        if self.image_files == rhs {
            Ok(())
        } else {
            Err(format!(
                "{} image files ≠ {} frames from files + {} quarantined + {} excluded",
                self.image_files, self.frames_from_files, self.files_quarantined, self.files_excluded
            ))
        }
    }

    /// The human summary printed at the end of a run.
    pub fn render(&self) -> String {
        let mut s = format!(
            "ingest summary\n  objects listed        {}\n  side files (not read) {}\n  image files           {}\n    = frames written    {}\n    + quarantined       {}\n    + excluded          {}\n  filled frames         {} (copies for missing time points / slices)\n  studies               {} in, {} written\n  label rows            {}\n  throughput            {:.0} images/s, {:.1} MB/s over {:.1} s\n",
            self.objects_listed,
            self.side_files,
            self.image_files,
            self.frames_from_files,
            self.files_quarantined,
            self.files_excluded,
            self.frames_filled,
            self.studies_in,
            self.studies_written,
            self.label_rows,
            self.images_per_second,
            self.bytes_read as f64 / 1e6 / self.seconds.max(1e-9),
            self.seconds
        );
        if !self.excluded_by_reason.is_empty() {
            s.push_str("  quarantined/excluded by reason\n");
            for (k, v) in &self.excluded_by_reason {
                s.push_str(&format!("    {k:<28} {v}\n"));
            }
        }
        if !self.findings.is_empty() {
            s.push_str("  findings (curation_log)\n");
            for (k, v) in &self.findings {
                s.push_str(&format!("    {k:<28} {v}\n"));
            }
        }
        s.push_str(&format!("  manifest              {}\n", self.manifest));
        s
    }
}

/// Key for pseudonymous ids of studies outside the Kaggle layout.
fn pseudonym_secret() -> Vec<u8> {
    match std::env::var("CINESTREAM_PSEUDONYM_KEY") {
        Ok(k) if !k.is_empty() => k.into_bytes(),
        _ => b"cinestream-default-pseudonym-key".to_vec(),
    }
}

fn run_id() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    hex::encode(&Sha256::digest(seed.as_bytes())[..6])
}

/// Fails early (before any work) when the output cannot be listed, e.g. wrong credentials.
async fn probe_output(out: &StoreLocation) -> Result<(), IngestError> {
    let prefix = (!out.prefix.as_ref().is_empty()).then_some(&out.prefix);
    out.store
        .list_with_delimiter(prefix)
        .await
        .map(|_| ())
        .map_err(|e| IngestError::Output { url: out.url().to_string(), message: explain(&e) })
}

/// Reason label for the per-reason counts.
fn reason(f: &Finding) -> String {
    if f.problem == Problem::UnreadableFile {
        let d = &f.detail;
        let short = d.split([':', '(']).next().unwrap_or(d).trim();
        format!("unreadable: {short}")
    } else {
        f.problem.as_str().to_string()
    }
}

/// Runs an ingest.
pub async fn run(cfg: &IngestConfig, progress: Arc<dyn Progress>) -> Result<IngestReport, IngestError> {
    cfg.validate()?;
    let started = Instant::now();
    let input = store::open_existing(&cfg.input, &cfg.store)?;
    let output = store::open(&cfg.output, &cfg.store)?;
    probe_output(&output).await?;
    let truth: HashMap<String, Truth> = truth::load(&cfg.truth, &cfg.store).await?;
    let labels = match &cfg.labels {
        Some(url) => Some(Arc::new(LabelIndex::open(&store::open_existing(url, &cfg.store)?).await?)),
        None => None,
    };
    let inv = source::inventory(&input, &cfg.source, &pseudonym_secret()).await?;
    let mut report = IngestReport {
        objects_listed: inv.image_files() + inv.side_files.len(),
        side_files: inv.side_files.len(),
        image_files: inv.image_files(),
        studies_in: inv.studies.len(),
        ..Default::default()
    };
    progress.planned(inv.studies.len(), inv.image_files());
    tracing::info!(studies = inv.studies.len(), files = inv.image_files(), side_files = inv.side_files.len(), input = %input, "listed input");

    let mut shards = ShardSet::new(&output, &run_id(), &cfg.shards);
    let record = |findings: &[Finding], report: &mut IngestReport| {
        for f in findings {
            *report.findings.entry(f.problem.as_str().to_string()).or_default() += 1;
            if f.excluded_files > 0 {
                *report.excluded_by_reason.entry(reason(f)).or_default() += f.excluded_files as usize;
            }
            if f.problem == Problem::UnreadableFile {
                report.files_quarantined += f.excluded_files as usize;
            } else {
                report.files_excluded += f.excluded_files as usize;
            }
        }
    };
    let unassigned: Vec<Finding> = inv
        .unreadable
        .iter()
        .map(|(key, why)| Finding {
            study_id: "unassigned".into(),
            problem: Problem::UnreadableFile,
            resolution: Resolution::Quarantined,
            object_key: Some(key.clone()),
            detail: why.to_string(),
            excluded_files: 1,
        })
        .collect();
    if !unassigned.is_empty() {
        record(&unassigned, &mut report);
        shards.write("curation_log", tables::findings_batch(&unassigned)).await?;
    }

    let in_flight = cfg.studies_in_flight;
    let mut studies = futures::stream::iter(inv.studies)
        .map(|plan| {
            let (input, labels, source_cfg, cur_cfg) = (input.clone(), labels.clone(), cfg.source.clone(), cfg.curation.clone());
            let study = plan.study_id.clone();
            let handle = tokio::spawn(async move {
                let loaded = source::load_study(&input, plan, labels.as_deref(), &source_cfg).await?;
                let files = loaded.input.images.len() + loaded.quarantined.iter().filter(|f| f.problem == Problem::UnreadableFile).count();
                let bytes = loaded.bytes_read;
                let quarantined = loaded.quarantined;
                let out = tokio::task::spawn_blocking(move || curate::curate(loaded.input, &cur_cfg)).await;
                Ok::<_, SourceError>((quarantined, out, files, bytes))
            });
            async move { (study, handle.await) }
        })
        .buffered(in_flight);

    while let Some((study, joined)) = studies.next().await {
        let (quarantined, curated, files, bytes) = joined.map_err(|e| IngestError::Task { study: study.clone(), message: e.to_string() })??;
        let out: CurationOutput = curated.map_err(|e| IngestError::Task { study: study.clone(), message: e.to_string() })?;
        let mut findings = quarantined;
        findings.extend(out.findings.iter().cloned());
        record(&findings, &mut report);
        report.bytes_read += bytes;
        for s in &out.studies {
            let b = tables::study_batches(s, truth.get(&s.source_study_id).copied(), &cfg.labeller);
            report.frames_filled += s.slices.iter().flat_map(|sl| &sl.frames).filter(|f| f.fill.is_some()).count();
            report.frames_from_files += s.source_files;
            report.studies_written += 1;
            shards.write("frames", b.frames).await?;
            if let Some(l) = b.labels {
                report.label_rows += l.num_rows();
                shards.write("labels", l).await?;
            }
            shards.write("studies", b.studies).await?;
        }
        if !findings.is_empty() {
            shards.write("curation_log", tables::findings_batch(&findings)).await?;
        }
        progress.study_done(&study, files, bytes);
    }
    report.reconcile().map_err(IngestError::Reconcile)?;
    report.seconds = started.elapsed().as_secs_f64();
    report.images_per_second = report.image_files as f64 / report.seconds.max(1e-9);
    let summary = serde_json::to_value(&report).expect("report serialises");
    let config = serde_json::to_value(cfg).expect("config serialises");
    let (_, url) = shards.commit("ingest", summary, config).await?;
    report.manifest = url;
    Ok(report)
}
