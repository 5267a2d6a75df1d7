//! `cinestream ingest`: source → curate → shard → Delta commits, as a bounded streaming pipeline.
//!
//! Studies flow one by one: a study's files are fetched (bounded concurrency) and parsed on
//! blocking threads, curated on a blocking thread, and its rows handed to the shard writers. At
//! most `studies_in_flight` studies are being loaded or curated at once, and the writer consumes
//! them in order, so memory is bounded by configuration, not by the data set, and the slowest
//! stage sets the pace.
//!
//! **Idempotent and incremental** ([`known`]): a study already in the tables (its source id and
//! fingerprint are in `sources`) is skipped and reported; a new one is appended; a changed one
//! is refused, or with `--replace` its old rows are swapped for the new in the same commit.
//!
//! **Crash-safe**: the run writes its files, then commits each table once with an application
//! transaction id derived from the work (the studies and their listing fingerprints), `sources`
//! last. A killed run leaves only unreferenced files (`cinestream vacuum` removes them); its
//! rerun computes the same id, skips the tables the killed run already committed, and commits
//! the rest. The summary reconciles:
//! `image files = frames written from files + quarantined + excluded + skipped (already present or refused)`.

pub mod config;
pub mod known;
pub mod report;
pub mod rows;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::curate::{self, CurationOutput};
use crate::findings::{Finding, Problem, Resolution};
use crate::progress::{Parts, Progress};
use crate::source::labels::{LabelError, LabelIndex};
use crate::source::pseudonym;
use crate::source::truth::{self, Truth, TruthError};
use crate::source::{self, SourceError, StudyPlan};
use crate::store::{self, StoreError, StoreLocation, explain};
use crate::tables::delta::{self, AsOf};
use crate::tables::legacy::{self, LegacyError};
use crate::tables::{self, SourceRow};
use crate::tables::{RunInfo, ShardError, ShardSet, TableChange, commit_run, committed_tables, rewrite};
pub use config::{IngestConfig, InvalidIngestConfig};
use known::{Decision, Known, Salt};
pub use report::IngestReport;

/// Errors that stop an ingest run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Config(#[from] InvalidIngestConfig),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot access the output `{url}`: {}", explain(source))]
    Output { url: String, source: object_store::Error },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Truth(#[from] TruthError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    #[error(transparent)]
    Key(#[from] pseudonym::KeyError),
    #[error("curating study `{study}` failed: {source}")]
    Task { study: String, source: tokio::task::JoinError },
    #[error("counts do not reconcile (a bug, please report): {0}")]
    Reconcile(String),
}

/// What the summary says about NIfTI input: the layouts, what curation cannot check there,
/// and the files not read (by reason).
fn nifti_notes(inv: &source::Inventory) -> Vec<String> {
    let mut notes = Vec::new();
    if inv.layouts.is_empty() && inv.not_read.is_empty() {
        return notes;
    }
    let layouts: Vec<String> = inv.layouts.iter().map(|(l, n)| format!("{l} {n}")).collect();
    notes.push(format!(
        "NIfTI studies by layout: {}. Their slices lie where each file's affine puts them and frames are {}; curation of spacing, orientation, \
         sizes and missing slices applies as for DICOM, while what NIfTI does not carry is not checked: trigger times per image, \
         repeated acquisitions by series and time, slice thickness, field strength, sex and age",
        if layouts.is_empty() { "none".into() } else { layouts.join(", ") },
        "pixdim[4] apart (no trigger time when the file gives no time unit)"
    ));
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, why) in &inv.not_read {
        by_reason.entry(why.as_str()).or_default().push(name.as_str());
    }
    for (why, names) in by_reason {
        notes.push(format!("{} dataset file(s) not read — {why}: {}", names.len(), report::abbreviate(&names)));
    }
    notes
}

/// Fails early (before any work) when the output cannot be listed, e.g. wrong credentials.
async fn probe_output(out: &StoreLocation) -> Result<(), IngestError> {
    let prefix = (!out.prefix.as_ref().is_empty()).then_some(&out.prefix);
    out.store.list_with_delimiter(prefix).await.map(|_| ()).map_err(|source| IngestError::Output { url: out.url().to_string(), source })
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

/// What became of one source study.
enum Outcome {
    /// Not ingested again: already present (`refused` false) or changed and refused.
    Skipped { why: String, refused: bool, files: usize },
    /// Read and curated: its rows are to be written.
    Curated {
        quarantined: Vec<Finding>,
        out: CurationOutput,
        files: usize,
        bytes: u64,
        extra_frames: usize,
        fingerprint: String,
        replace: bool,
        /// ED/ES from a NIfTI dataset's metadata; whether its masks are expert masks (NIfTI).
        ed_es: Option<[u32; 2]>,
        nifti: bool,
        rescaled: usize,
    },
}

/// The application transaction id of the work: the candidate studies (those the listing does
/// not show as present) with their listing fingerprints, the unassigned files to log, and
/// whether changed studies are replaced. A rerun of the same work on the same tables gets the
/// same id.
fn app_id(candidates: &[(&str, &str)], unassigned: &[Finding], replace: bool) -> String {
    let mut h = Sha256::new();
    h.update(format!("replace={replace}\n").as_bytes());
    for (study, listing) in candidates {
        h.update(format!("{study}\t{listing}\n").as_bytes());
    }
    for f in unassigned {
        h.update(format!("unassigned\t{}\n", f.object_key.as_deref().unwrap_or("")).as_bytes());
    }
    format!("cinestream-ingest-{}", &hex::encode(h.finalize())[..32])
}

/// The changes that drop the old rows of replaced source studies (`replaced`: source id → the
/// study ids it had), for every table not already committed.
async fn replacements(
    out: &StoreLocation,
    replaced: &BTreeMap<String, Vec<String>>,
    skip: &BTreeSet<&str>,
    writer_id: &str,
    cfg: &crate::tables::writer::ShardConfig,
) -> Result<BTreeMap<&'static str, TableChange>, IngestError> {
    let mut changes = BTreeMap::new();
    if replaced.is_empty() {
        return Ok(changes);
    }
    let sources: BTreeSet<String> = replaced.keys().cloned().collect();
    let studies: BTreeSet<String> = replaced.iter().flat_map(|(s, ids)| ids.iter().cloned().chain([s.clone()])).collect();
    for spec in tables::INGEST.into_iter().filter(|t| !skip.contains(t.name)) {
        let Some(t) = delta::open(out, spec.name, &AsOf::Latest).await.map_err(ShardError::from)? else { continue };
        // Split stacks have study ids of their own: tables keyed by study_id lose those too.
        let values = if spec.study_key == "source_study_id" { &sources } else { &studies };
        changes.insert(spec.name, rewrite::without_rows(out, spec, &t, spec.study_key, values, &format!("{writer_id}-rw"), cfg).await?);
    }
    Ok(changes)
}

/// Runs an ingest.
pub async fn run(cfg: &IngestConfig, progress: Arc<dyn Progress>) -> Result<IngestReport, IngestError> {
    cfg.validate()?;
    let started = Instant::now();
    let input = store::open_existing(&cfg.input, &cfg.store)?;
    let output = store::open(&cfg.output, &cfg.store)?;
    probe_output(&output).await?;
    legacy::refuse_unconverted(&output).await?;
    delta::check_writable(&output, &tables::INGEST).await.map_err(ShardError::from)?;
    let truth: Arc<HashMap<String, Truth>> = Arc::new(truth::load(&cfg.truth, &cfg.store).await?);
    let labels = match &cfg.labels {
        Some(url) => Some(Arc::new(LabelIndex::open(&store::open_existing(url, &cfg.store)?).await?)),
        None => None,
    };
    let key = match &cfg.pseudonym_key {
        Some(k) => Some(k.clone()),
        None => pseudonym::resolve()?,
    };
    let mut inv = source::inventory(&input, &cfg.folders, &cfg.source, key.as_ref()).await?;
    let report_key = match (&key, inv.pseudonymised) {
        (Some(key), true) => {
            pseudonym::check_prefix(&output, key).await?;
            Some(key.fingerprint())
        }
        _ => None,
    };
    let known: Arc<Known> = Arc::new(known::load(&output).await?);
    // The expert labeller joins the fingerprint only when it is neither the default nor the
    // labeller (`--labeller` sets both), so that fingerprints made before it existed stay as
    // they were.
    let labellers = if cfg.expert_labeller == "expert" || cfg.expert_labeller == cfg.labeller {
        cfg.labeller.clone()
    } else {
        format!("{} expert={}", cfg.labeller, cfg.expert_labeller)
    };
    let salt = Arc::new(Salt::new(&labellers, &serde_json::to_value(&cfg.curation).expect("curation settings serialise")));
    let mut report = IngestReport {
        objects_listed: inv.image_files() + inv.side_files.len() + inv.dataset_files,
        side_files: inv.side_files.len(),
        dataset_files: inv.dataset_files,
        notes: nifti_notes(&inv),
        image_files: inv.image_files(),
        studies_in: inv.studies.len(),
        pseudonym_key: report_key,
        ..Default::default()
    };
    if let Some(share) = &cfg.share {
        let before = inv.image_files();
        inv.studies.retain(|p| share.owns(&p.study_id));
        inv.unreadable.retain(|(key, _)| share.owns(key));
        report.files_other_workers = before - inv.image_files();
        report.studies_other_workers = report.studies_in - inv.studies.len();
        report.share = Some(share.to_string());
        tracing::info!(share = %share, studies = inv.studies.len(), other_workers = report.studies_other_workers, "this worker's share");
    }
    report.source_studies = inv.studies.iter().map(|p| p.study_id.clone()).collect();
    progress.start(inv.image_files() as u64, "images");
    let parts = Parts::new(inv.studies.len());
    tracing::info!(studies = inv.studies.len(), files = inv.image_files(), side_files = inv.side_files.len(), known = known.sources.len(), input = %input, "listed input");

    let plans: Vec<(StudyPlan, String, Option<Decision>)> = inv
        .studies
        .into_iter()
        .map(|p| {
            let listing = salt.listing_fingerprint(&p, truth.get(&p.study_id).copied());
            let decision = known.by_listing(&p.study_id, &listing, cfg.replace);
            (p, listing, decision)
        })
        .collect();
    let mut unassigned = Vec::new();
    for (key, why) in &inv.unreadable {
        if known.unassigned_logged.contains(key) {
            report.files_skipped += 1;
            continue;
        }
        unassigned.push(Finding {
            study_id: "unassigned".into(),
            problem: Problem::UnreadableFile,
            resolution: Resolution::Quarantined,
            object_key: Some(key.clone()),
            detail: why.to_string(),
            excluded_files: 1,
        });
    }
    let candidates: Vec<(&str, &str)> = plans
        .iter()
        .filter(|(_, _, d)| !matches!(d, Some(Decision::Present(_))))
        .map(|(p, l, _)| (p.study_id.as_str(), l.as_str()))
        .collect();
    let app_id = app_id(&candidates, &unassigned, cfg.replace);
    let run_id = crate::ids::run_id();
    let done = committed_tables(&output, &tables::INGEST, &app_id).await?;
    if !done.is_empty() {
        tracing::warn!(app_id = %app_id, tables = ?done, "an earlier attempt of this ingest committed some tables: committing the rest");
    }
    let mut shards = ShardSet::new(&output, &run_id, &cfg.shards, &tables::INGEST, &done);
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
    if !unassigned.is_empty() {
        record(&unassigned, &mut report);
        shards.write(&tables::CURATION_LOG, rows::findings_batch(&unassigned)).await?;
    }

    let (in_flight, replace) = (cfg.studies_in_flight, cfg.replace);
    let mut studies = futures::stream::iter(plans)
        .map(|(plan, listing, decision)| {
            let (input, labels, source_cfg, cur_cfg) = (input.clone(), labels.clone(), cfg.source.clone(), cfg.curation.clone());
            let (known, salt, truth) = (known.clone(), salt.clone(), truth.clone());
            let study = plan.study_id.clone();
            let handle = tokio::spawn(async move {
                let files = plan.files.len();
                let nifti = plan.nifti.is_some();
                if let Some(Decision::Present(why)) = decision {
                    return Ok::<_, SourceError>(Outcome::Skipped { why: why.into(), refused: false, files });
                }
                let loaded = source::load_study(&input, plan, labels.as_deref(), &source_cfg).await?;
                let fingerprint = salt.fingerprint(&loaded.digests, truth.get(&loaded.input.study_id).copied());
                let decision = match decision {
                    Some(d) => d,
                    None => known.by_content(&loaded.input.study_id, &fingerprint),
                };
                match decision {
                    Decision::Present(why) => return Ok(Outcome::Skipped { why: why.into(), refused: false, files }),
                    Decision::Changed if !replace => return Ok(Outcome::Skipped { why: "changed".into(), refused: true, files }),
                    _ => {}
                }
                let (bytes, extra_frames) = (loaded.bytes_read, loaded.extra_frames);
                let (ed_es, rescaled) = (loaded.ed_es, loaded.rescaled);
                let quarantined = loaded.quarantined;
                let object = format!("study {} (curation)", loaded.input.study_id);
                let out = tokio::task::spawn_blocking(move || curate::curate(loaded.input, &cur_cfg))
                    .await
                    .map_err(|source| SourceError::Task { object, source })?;
                Ok(Outcome::Curated {
                    quarantined,
                    out,
                    files,
                    bytes,
                    extra_frames,
                    fingerprint,
                    replace: decision == Decision::Changed,
                    ed_es,
                    nifti,
                    rescaled,
                })
            });
            async move { (study, listing, handle.await) }
        })
        .buffered(in_flight);

    let mut sources: Vec<SourceRow> = Vec::new();
    let mut replaced: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some((study, listing, joined)) = studies.next().await {
        let outcome = joined.map_err(|source| IngestError::Task { study: study.clone(), source })??;
        let (quarantined, out, files, bytes, extra_frames, fingerprint, replace, ed_es, nifti) = match outcome {
            Outcome::Skipped { why, refused, files } => {
                report.files_skipped += files;
                if refused {
                    tracing::warn!(study = %study, "the study's source objects changed since it was ingested: not ingested (use --replace)");
                    report.sources_refused.push(study.clone());
                } else {
                    tracing::info!(study = %study, reason = %why, "already in the tables: skipped");
                    report.sources_present.insert(study.clone(), why);
                }
                progress.advance(files as u64, &parts.done("studies"));
                continue;
            }
            Outcome::Curated { quarantined, out, files, bytes, extra_frames, fingerprint, replace, ed_es, nifti, rescaled } => {
                if rescaled > 0 {
                    report.notes.push(format!(
                        "study {study}: {rescaled} NIfTI volume(s) with fractional intensities scaled to 0–4095 (16-bit pixels)"
                    ));
                }
                (quarantined, out, files, bytes, extra_frames, fingerprint, replace, ed_es, nifti)
            }
        };
        let mut findings = quarantined;
        findings.extend(out.findings.iter().cloned());
        record(&findings, &mut report);
        report.bytes_read += bytes;
        report.extra_frames += extra_frames;
        for s in &out.studies {
            let labeller = if nifti { &cfg.expert_labeller } else { &cfg.labeller };
            let b = rows::study_batches(s, truth.get(&s.source_study_id).copied(), ed_es, labeller);
            report.frames_filled += s.slices.iter().flat_map(|sl| &sl.frames).filter(|f| f.fill.is_some()).count();
            report.frames_from_files += s.source_files;
            report.studies_written += 1;
            shards.write(&tables::FRAMES, b.frames).await?;
            if let Some(l) = b.labels {
                report.label_rows += l.num_rows();
                shards.write(&tables::LABELS, l).await?;
            }
            shards.write(&tables::STUDIES, b.studies).await?;
        }
        if !findings.is_empty() {
            shards.write(&tables::CURATION_LOG, rows::findings_batch(&findings)).await?;
        }
        if replace {
            let old = known.sources.get(&study).map(|k| k.study_ids.clone()).unwrap_or_default();
            replaced.insert(study.clone(), old);
            report.sources_replaced.push(study.clone());
        } else {
            report.sources_new += 1;
        }
        let study_ids = out.studies.iter().map(|s| s.study_id.clone()).collect();
        sources.push(SourceRow {
            source_study_id: study.clone(),
            fingerprint,
            listing_fingerprint: listing,
            image_files: files,
            study_ids,
        });
        progress.advance(files as u64, &parts.done("studies"));
    }
    if !sources.is_empty() {
        shards.write(&tables::SOURCES, tables::sources_batch(&sources, &run_id, chrono::Utc::now())).await?;
    }
    let written = shards.finish().await?;
    report.reconcile().map_err(IngestError::Reconcile)?;
    progress.committing();
    let mut changes = replacements(&output, &replaced, &done, &run_id, &cfg.shards).await?;
    for (table, files) in written {
        changes.entry(table).or_default().adds.extend(files);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.images_per_second = report.image_files as f64 / report.seconds.max(1e-9);
    let has_work = changes.values().any(|c| !c.adds.is_empty() || !c.removes.is_empty());
    if has_work {
        report.app_id = app_id.clone();
    }
    for t in &done {
        report.commits.insert(t.to_string(), "already committed by an earlier attempt".into());
    }
    let run = RunInfo::new(app_id, "ingest", run_id, &report, cfg);
    for (table, result) in commit_run(&output, &run, &tables::INGEST, changes).await? {
        report.commits.insert(table.to_string(), result.describe());
    }
    Ok(report)
}
