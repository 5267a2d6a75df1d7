//! Source stage: list the input prefix, plan studies, fetch and parse their files.
//!
//! Listing is cheap (keys and sizes only) and happens once; files in the Kaggle layout are
//! grouped by path, others by a header-only pass that reads the first bytes of each file for its
//! StudyInstanceUID. Studies are then fetched one by one with bounded concurrency and parsed on
//! blocking threads, so memory holds only the studies in flight. A file that cannot be parsed is
//! quarantined (a finding with its reason), never dropped silently; a storage failure stops the
//! run with the object's name.

pub mod header;
pub mod labels;
pub mod layout;
pub mod parse;
pub mod pseudonym;
pub mod study;
pub mod truth;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::findings::{Finding, Problem, Resolution};
use crate::source::pseudonym::PseudonymKey;
use crate::store::{StoreLocation, explain};
use labels::LabelIndex;
use parse::Unreadable;
use study::{SourceImage, StudyInput};

/// Errors that stop the source stage.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot list `{url}`: {}", explain(source))]
    List { url: String, source: object_store::Error },
    #[error("cannot read `{object}`: {}", explain(source))]
    Fetch { object: String, source: object_store::Error },
    #[error("no input objects under `{url}`: check the URL (and the bucket/prefix)")]
    Empty { url: String },
    #[error("a parsing task failed for `{object}`: {source}")]
    Task { object: String, source: tokio::task::JoinError },
    #[error(transparent)]
    Labels(#[from] labels::LabelError),
    #[error(
        "{files} files under `{url}` (e.g. `{example}`) are outside the Kaggle layout, so their studies are \
         grouped by StudyInstanceUID and named by a keyed hash of it, which needs a secret key: {how}"
    )]
    NoPseudonymKey { url: String, files: usize, example: String, how: String },
}

/// Source settings (`[source]` in a pipeline file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Concurrent object reads within a study.
    pub fetch_concurrency: usize,
    /// Bytes read for a header-only pass (files outside the Kaggle layout).
    pub header_bytes: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self { fetch_concurrency: 16, header_bytes: 64 * 1024 }
    }
}

/// A file planned for a study.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Key relative to the input prefix (what outputs call `source_key`).
    pub key: String,
    pub path: Path,
    pub series_key: String,
    pub size: u64,
    /// The store's ETag (a content hash on S3; inode, time and size on local folders).
    pub e_tag: Option<String>,
}

/// The files of one study.
#[derive(Debug, Clone)]
pub struct StudyPlan {
    pub study_id: String,
    pub split: Option<String>,
    pub files: Vec<PlannedFile>,
}

/// What the listing found.
#[derive(Debug, Default)]
pub struct Inventory {
    pub studies: Vec<StudyPlan>,
    /// Objects that are not images (CSV, Parquet, …), by key: reported, not read.
    pub side_files: Vec<String>,
    /// Files outside the Kaggle layout whose header could not be read (so no study).
    pub unreadable: Vec<(String, Unreadable)>,
    /// Whether study ids were made with the pseudonym key (files outside the Kaggle layout).
    pub pseudonymised: bool,
}

impl Inventory {
    /// Image files considered (planned or unreadable at planning).
    pub fn image_files(&self) -> usize {
        self.studies.iter().map(|s| s.files.len()).sum::<usize>() + self.unreadable.len()
    }
}

/// Lists the input and plans studies. Files outside the Kaggle layout need `key` (their study
/// ids are pseudonyms); `Inventory::pseudonymised` says whether it was used.
///
/// `folders` (relative to the input) limits the listing to those folders; keys stay relative to
/// the input, so a study's keys and ids are the same whether its folder is listed alone or not.
pub async fn inventory(
    input: &StoreLocation,
    folders: &[String],
    cfg: &SourceConfig,
    key: Option<&PseudonymKey>,
) -> Result<Inventory, SourceError> {
    let prefixes: Vec<object_store::path::Path> =
        if folders.is_empty() { vec![input.prefix.clone()] } else { folders.iter().map(|f| input.child(f.trim_matches('/'))).collect() };
    let mut metas: Vec<object_store::ObjectMeta> = Vec::new();
    for p in &prefixes {
        let prefix = (!p.as_ref().is_empty()).then_some(p);
        let listed: Vec<object_store::ObjectMeta> =
            input.store.list(prefix).try_collect().await.map_err(|source| SourceError::List { url: input.object_url(p), source })?;
        metas.extend(listed);
    }
    if metas.is_empty() {
        let url = if folders.is_empty() { input.url().to_string() } else { format!("{} (folders {})", input.url(), folders.join(", ")) };
        return Err(SourceError::Empty { url });
    }
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut inv = Inventory::default();
    let mut kaggle: BTreeMap<String, StudyPlan> = BTreeMap::new();
    let mut generic: Vec<PlannedFile> = Vec::new();
    for m in metas {
        let key = input.relative(&m.location).to_string();
        if layout::is_side_file(&key) {
            inv.side_files.push(key);
            continue;
        }
        match layout::kaggle_place(&key) {
            Some(place) => {
                let plan = kaggle.entry(place.study_id.clone()).or_insert_with(|| StudyPlan {
                    study_id: place.study_id.clone(),
                    split: place.split.clone(),
                    files: Vec::new(),
                });
                plan.files.push(PlannedFile { key, path: m.location, series_key: place.series_key, size: m.size, e_tag: m.e_tag });
            }
            None => generic.push(PlannedFile { key, series_key: String::new(), path: m.location, size: m.size, e_tag: m.e_tag }),
        }
    }
    let mut studies: Vec<StudyPlan> = kaggle.into_values().collect();
    studies.sort_by_key(|s| natural(&s.study_id));
    if !generic.is_empty() {
        let Some(key) = key else {
            let example = generic[0].key.clone();
            return Err(SourceError::NoPseudonymKey {
                url: input.url().to_string(),
                files: generic.len(),
                example,
                how: crate::source::pseudonym::how_to_get_one(),
            });
        };
        studies.extend(group_by_uid(input, generic, cfg, key.secret(), &mut inv.unreadable).await?);
        inv.pseudonymised = true;
    }
    inv.studies = studies;
    Ok(inv)
}

/// Numeric ids sort numerically, then others by text.
fn natural(id: &str) -> (u64, String) {
    (id.parse::<u64>().unwrap_or(u64::MAX), id.to_string())
}

async fn group_by_uid(
    input: &StoreLocation,
    files: Vec<PlannedFile>,
    cfg: &SourceConfig,
    secret: &[u8],
    unreadable: &mut Vec<(String, Unreadable)>,
) -> Result<Vec<StudyPlan>, SourceError> {
    let store = input.store.clone();
    let header_bytes = cfg.header_bytes;
    let headers: Vec<(PlannedFile, Result<header::ImageHeader, Unreadable>)> = futures::stream::iter(files)
        .map(|f| {
            let store = store.clone();
            async move {
                let mut bytes = read(&store, &f, Some(header_bytes)).await?;
                let mut parsed = blocking(&f.key, move |b: bytes::Bytes| parse::parse_header(&b), bytes.clone()).await?;
                if parsed.is_err() && f.size > header_bytes {
                    bytes = read(&store, &f, None).await?;
                    parsed = blocking(&f.key, move |b: bytes::Bytes| parse::parse_header(&b), bytes).await?;
                }
                Ok::<_, SourceError>((f, parsed))
            }
        })
        .buffered(cfg.fetch_concurrency.max(1))
        .try_collect()
        .await?;
    let mut by_study: BTreeMap<String, StudyPlan> = BTreeMap::new();
    for (mut f, h) in headers {
        let h = match h {
            Ok(h) => h,
            Err(e) => {
                unreadable.push((f.key, e));
                continue;
            }
        };
        let Some(study_uid) = h.study_uid.as_deref() else {
            unreadable.push((
                f.key,
                Unreadable::MissingAttribute(
                    "missing StudyInstanceUID (0020,000D), needed to group a file outside the Kaggle layout".into(),
                ),
            ));
            continue;
        };
        let id = layout::pseudonym(secret, study_uid);
        let parent = f.key.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
        f.series_key = h.series_uid.as_deref().map(|u| layout::pseudonym(secret, u)).unwrap_or(parent);
        by_study.entry(id.clone()).or_insert_with(|| StudyPlan { study_id: id, split: None, files: Vec::new() }).files.push(f);
    }
    Ok(by_study.into_values().collect())
}

async fn read(store: &Arc<dyn object_store::ObjectStore>, f: &PlannedFile, limit: Option<u64>) -> Result<bytes::Bytes, SourceError> {
    let fail = |source| SourceError::Fetch { object: f.key.clone(), source };
    match limit {
        Some(n) if n < f.size => store.get_range(&f.path, 0..n).await.map_err(fail),
        _ => store.get(&f.path).await.map_err(fail)?.bytes().await.map_err(fail),
    }
}

async fn blocking<T: Send + 'static>(
    key: &str,
    f: impl FnOnce(bytes::Bytes) -> T + Send + 'static,
    bytes: bytes::Bytes,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(move || f(bytes)).await.map_err(|source| SourceError::Task { object: key.to_string(), source })
}

/// A loaded study: the input for curation, and the files quarantined while reading it.
pub struct LoadedStudy {
    pub input: StudyInput,
    pub quarantined: Vec<Finding>,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// SHA-256 of every file read, by key (what the study's fingerprint is made of).
    pub digests: Vec<(String, [u8; 32])>,
}

/// One fetched file: its plan, size, SHA-256 and what parsing made of it.
type Fetched = (PlannedFile, u64, [u8; 32], Result<parse::ParsedImage, Unreadable>);

/// Fetches and parses one study's files, and attaches label masks where given.
pub async fn load_study(
    input: &StoreLocation,
    plan: StudyPlan,
    labels: Option<&LabelIndex>,
    cfg: &SourceConfig,
) -> Result<LoadedStudy, SourceError> {
    let store = input.store.clone();
    let results: Vec<Fetched> = futures::stream::iter(plan.files)
        .map(|f| {
            let store = store.clone();
            async move {
                let bytes = read(&store, &f, None).await?;
                let n = bytes.len() as u64;
                let (digest, parsed) = blocking(
                    &f.key,
                    move |b: bytes::Bytes| {
                        use sha2::Digest;
                        (sha2::Sha256::digest(&b).into(), parse::parse_dicom(&b))
                    },
                    bytes,
                )
                .await?;
                Ok::<_, SourceError>((f, n, digest, parsed))
            }
        })
        .buffered(cfg.fetch_concurrency.max(1))
        .try_collect()
        .await?;
    let mut quarantined = Vec::new();
    let mut images = Vec::with_capacity(results.len());
    let mut bytes_read = 0;
    let mut digests = Vec::with_capacity(results.len());
    for (f, n, digest, parsed) in results {
        bytes_read += n;
        digests.push((f.key.clone(), digest));
        match parsed {
            Ok(p) => {
                images.push(SourceImage { key: f.key, series_key: f.series_key, header: p.header, pixels: Arc::new(p.pixels), mask: None })
            }
            Err(e) => {
                tracing::warn!(study = %plan.study_id, object = %f.key, reason = %e, "file quarantined");
                quarantined.push(Finding {
                    study_id: plan.study_id.clone(),
                    problem: Problem::UnreadableFile,
                    resolution: Resolution::Quarantined,
                    object_key: Some(f.key),
                    detail: e.to_string(),
                    excluded_files: 1,
                });
            }
        }
    }
    if let Some(index) = labels {
        let keys: Vec<&str> = images.iter().map(|i| i.key.as_str()).collect();
        let mut masks = index.masks_for(&keys).await?;
        for img in &mut images {
            let Some(m) = masks.remove(&img.key) else { continue };
            if m.height == img.header.rows && m.width == img.header.cols {
                img.mask = Some(Arc::new(m.data));
            } else {
                quarantined.push(Finding {
                    study_id: plan.study_id.clone(),
                    problem: Problem::LabelMismatch,
                    resolution: Resolution::LabelIgnored,
                    object_key: Some(img.key.clone()),
                    detail: format!(
                        "label mask is {}×{} px but the image is {}×{} px: label ignored",
                        m.height, m.width, img.header.rows, img.header.cols
                    ),
                    excluded_files: 0,
                });
            }
        }
    }
    Ok(LoadedStudy { input: StudyInput { study_id: plan.study_id, split: plan.split, images }, quarantined, bytes_read, digests })
}
