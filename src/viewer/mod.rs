//! `cinestream export --data …`: studies and a labeller's masks for viewers — NIfTI-1 volumes
//! for 3D Slicer and ITK-SNAP (named as ukbb_cardiac names them), or PNG montages for checking
//! many studies by eye. Study by study from the tables to any store; memory is bounded by the
//! studies in flight (two).
//!
//! `study` rebuilds a study from the tables, [`crate::nifti`] writes NIfTI-1, `montage` draws the PNGs.

pub mod montage;
pub mod study;

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;

use crate::nifti::{self, Image, Voxel};
use crate::progress::Progress;
use crate::query::Session;
use crate::query::read::{self as read, ReadError};
use crate::store::StoreLocation;
use study::Study;

/// What went wrong while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("study {study} is not in `studies`; list the studies with `cinestream sql --data … \"SELECT study_id FROM studies\"`")]
    NoStudy { study: String },
    #[error(
        "study {study} has no curated geometry in `studies` (ingested by an older cinestream): run `cinestream upgrade`, then ingest it again with --replace"
    )]
    NoGeometry { study: String },
    #[error("study {study}: {message}")]
    Data { study: String, message: String },
    #[error("writing `{url}`: {}", crate::store::explain(.source))]
    Write { url: String, source: object_store::Error },
    #[error("labeller `{labeller}` has no masks; the labellers are: {known}")]
    UnknownLabeller { labeller: String, known: String },
}

/// The viewer formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `<study>/sa.nii.gz`, `seg_sa.nii.gz`, `sa_ED.nii.gz`, `seg_sa_ED.nii.gz`, `sa_ES.nii.gz`,
    /// `seg_sa_ES.nii.gz`.
    Nifti,
    /// `<study>/ed_es.png` (and `<study>/frames.png` with every frame).
    Png,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    pub labeller: String,
    /// These studies (each must exist) …
    pub studies: Option<Vec<String>>,
    /// … or those of `SELECT study_id FROM studies WHERE <this>` that the labeller labelled
    /// (every study it labelled without either).
    pub filter: Option<String>,
    pub format: Format,
    /// PNG: also a montage of every frame.
    pub all_frames: bool,
}

/// One exported study.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedStudy {
    pub study_id: String,
    pub files: Vec<String>,
    /// (x, y, z, t) voxels.
    pub dims: [usize; 4],
    /// (x, y, z) mm and t ms.
    pub zooms: [f64; 4],
    pub ed_frame: Option<usize>,
    pub es_frame: Option<usize>,
    /// Images the labeller has masks for.
    pub masked_images: usize,
    pub images: usize,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub labeller: String,
    pub studies: Vec<ExportedStudy>,
    pub bytes: u64,
    /// Asked-for studies that are not in `studies`.
    pub not_found: Vec<String>,
    /// Studies written without masks (the labeller has none of them), with why.
    pub without_masks: Vec<String>,
    /// Warnings a user should read (irregular stacks, missing images).
    pub warnings: Vec<String>,
}

/// The files of one study, encoded (CPU work: run off the async threads).
fn encode(s: &Study, cfg: &ExportConfig) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let description = format!("cinestream study {} labeller {}", s.id, cfg.labeller);
    match cfg.format {
        Format::Nifti => {
            let dims = [s.width, s.height, s.slices, s.frames];
            let img = Image { dims: &dims, voxel: Voxel::U16, data: &s.images, placement: s.placement, description: &description };
            files.push(("sa.nii.gz".to_string(), nifti::encode_gz(&img)));
            if s.masked > 0 {
                let seg = Image { dims: &dims, voxel: Voxel::U8, data: &s.masks, placement: s.placement, description: &description };
                files.push(("seg_sa.nii.gz".to_string(), nifti::encode_gz(&seg)));
            }
            for (phase, frame) in [("ED", s.ed_frame), ("ES", s.es_frame)] {
                let Some(t) = frame else { continue };
                let range = t * s.frame_len()..(t + 1) * s.frame_len();
                let img = Image {
                    dims: &[s.width, s.height, s.slices],
                    voxel: Voxel::U16,
                    data: &s.images[range.start * 2..range.end * 2],
                    placement: s.placement,
                    description: &description,
                };
                files.push((format!("sa_{phase}.nii.gz"), nifti::encode_gz(&img)));
                let seg = Image {
                    dims: &[s.width, s.height, s.slices],
                    voxel: Voxel::U8,
                    data: &s.masks[range],
                    placement: s.placement,
                    description: &description,
                };
                files.push((format!("seg_sa_{phase}.nii.gz"), nifti::encode_gz(&seg)));
            }
        }
        Format::Png => {
            let phases: Vec<usize> = [s.ed_frame, s.es_frame].into_iter().flatten().collect();
            // Without the labeller's ED/ES: the first frame, unlabelled.
            let shown = if phases.is_empty() { vec![0] } else { phases };
            files.extend(montage::montage(s, &shown).map(|png| ("ed_es.png".to_string(), png)));
            if cfg.all_frames {
                let all: Vec<usize> = (0..s.frames).collect();
                files.extend(montage::montage(s, &all).map(|png| ("frames.png".to_string(), png)));
            }
        }
    }
    files
}

async fn put(out: &StoreLocation, name: &str, body: Vec<u8>) -> Result<u64, ViewerError> {
    let path = out.child(name);
    let n = body.len() as u64;
    out.store
        .put(&path, PutPayload::from(Bytes::from(body)))
        .await
        .map_err(|source| ViewerError::Write { url: out.object_url(&path), source })?;
    Ok(n)
}

/// The labellers of `labels` and how many studies each has (for messages).
pub async fn labellers(session: &Session) -> Result<BTreeMap<String, i64>, ViewerError> {
    let ctx = "listing the labellers";
    let mut out = BTreeMap::new();
    for b in read::collect(session, "SELECT labeller, count(DISTINCT study_id) AS n FROM labels GROUP BY labeller", ctx).await? {
        let l = read::column(&b, "labeller", &arrow::datatypes::DataType::Utf8, ctx)?;
        let n = read::column(&b, "n", &arrow::datatypes::DataType::Int64, ctx)?;
        use arrow::array::AsArray;
        for (l, n) in l.as_string::<i32>().iter().zip(n.as_primitive::<arrow::datatypes::Int64Type>().iter()) {
            out.insert(l.unwrap_or_default().to_string(), n.unwrap_or(0));
        }
    }
    Ok(out)
}

/// The labellers as a list for messages.
pub fn known_list(known: &BTreeMap<String, i64>) -> String {
    if known.is_empty() {
        return "none".into();
    }
    known.iter().map(|(l, n)| format!("{l} ({n} studies)")).collect::<Vec<_>>().join(", ")
}

/// Exports the chosen studies to `out`, advancing `progress` by one per study.
pub async fn run(session: &Session, cfg: &ExportConfig, out: &StoreLocation, progress: &dyn Progress) -> Result<ExportReport, ViewerError> {
    session.for_images().await.map_err(ReadError::query("setting up the session"))?;
    let (ids, not_found) = study::study_ids(session, &cfg.labeller, cfg.studies.as_deref(), cfg.filter.as_deref()).await?;
    let known = labellers(session).await?;
    if !known.contains_key(&cfg.labeller) {
        return Err(ViewerError::UnknownLabeller { labeller: cfg.labeller.clone(), known: known_list(&known) });
    }
    let mut report = ExportReport { labeller: cfg.labeller.clone(), not_found, ..Default::default() };
    progress.start(ids.len() as u64, "studies");
    let mut studies = futures::stream::iter(ids.iter().map(|id| study::read(session, id, &cfg.labeller))).buffered(2);
    while let Some(s) = studies.try_next().await? {
        if s.masked == 0 {
            report.without_masks.push(s.id.clone());
        }
        if s.missing_images > 0 {
            report.warnings.push(format!(
                "study {}: {} of its {} images are missing from `frames` (left black)",
                s.id,
                s.missing_images,
                s.slices * s.frames
            ));
        }
        if cfg.format == Format::Nifti && s.irregularity_mm > 0.01 {
            report.warnings.push(format!("study {}: its slices lie up to {:.3} mm from a regular stack, which NIfTI cannot describe; positions are exact only to that", s.id, s.irregularity_mm));
        }
        let cfg2 = cfg.clone();
        let (s, files) = tokio::task::spawn_blocking(move || {
            let files = encode(&s, &cfg2);
            (s, files)
        })
        .await
        .expect("encoding does not panic");
        let dir = out.sub(&s.id);
        let names = futures::stream::iter(files.into_iter().map(|(name, body)| {
            let dir = &dir;
            async move { put(dir, &name, body).await.map(|n| (name, n)) }
        }))
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await?;
        report.bytes += names.iter().map(|(_, n)| n).sum::<u64>();
        let mut files: Vec<String> = names.into_iter().map(|(name, _)| format!("{}/{name}", s.id)).collect();
        files.sort();
        let p = s.placement;
        report.studies.push(ExportedStudy {
            study_id: s.id.clone(),
            files,
            dims: [s.width, s.height, s.slices, s.frames],
            zooms: [p.spacing[0], p.spacing[1], p.spacing[2], p.frame_interval_ms],
            ed_frame: s.ed_frame,
            es_frame: s.es_frame,
            masked_images: s.masked,
            images: s.slices * s.frames,
        });
        progress.advance(1, "");
    }
    for id in &report.without_masks {
        report.warnings.push(format!("study {id}: labeller `{}` has no masks of it; only its images were written", cfg.labeller));
    }
    let index = serde_json::to_vec_pretty(&report).expect("serialises");
    report.bytes += put(out, "export.json", index).await?;
    Ok(report)
}

impl ExportReport {
    /// The report as a person reads it.
    pub fn render(&self) -> String {
        let files: usize = self.studies.iter().map(|s| s.files.len()).sum();
        let mut out = format!(
            "exported {} studies of labeller `{}`: {files} files, {:.1} MB\n",
            self.studies.len(),
            self.labeller,
            self.bytes as f64 / 1e6
        );
        for w in &self.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        if !self.not_found.is_empty() {
            out.push_str(&format!("  not in `studies` (nothing written): {}\n", self.not_found.join(", ")));
        }
        out
    }
}
