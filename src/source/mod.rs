//! Source stage: list the input prefix, plan studies, fetch and parse their files.
//!
//! Listing is cheap (keys and sizes only) and happens once; files in the Kaggle layout are
//! grouped by path, NIfTI datasets by folder and patient ([`nifti`]), other files by a
//! header-only pass that reads the first bytes of each file for its StudyInstanceUID. Studies are then fetched one by one with bounded concurrency and parsed on
//! blocking threads, so memory holds only the studies in flight. A file that cannot be parsed is
//! quarantined (a finding with its reason), never dropped silently; a storage failure stops the
//! run with the object's name.

pub mod header;
pub mod labels;
pub mod layout;
pub mod multiframe;
pub mod nifti;
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
    #[error(transparent)]
    ClassMap(#[from] nifti::classmap::ClassMapError),
    #[error("{what} under `{url}` are named by keyed hashes (studies and files), which need a secret key: {how}")]
    NoPseudonymKey { url: String, what: String, how: String },
    #[error("cannot read the class map `{file}`: {source}")]
    ClassMapFile { file: String, source: std::io::Error },
}

/// Source settings (`[source]` in a pipeline file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Concurrent object reads within a study.
    pub fetch_concurrency: usize,
    /// Bytes read for a header-only pass (files outside the Kaggle layout).
    pub header_bytes: u64,
    /// The layout of NIfTI folders (`auto`: found per folder from its file names).
    pub layout: nifti::layout::Layout,
    /// A class map TOML for NIfTI masks, instead of the layout's shipped one
    /// (`pipelines/datasets/*.toml`).
    pub class_map: Option<String>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self { fetch_concurrency: 16, header_bytes: 64 * 1024, layout: Default::default(), class_map: None }
    }
}

/// A file planned for a study.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Key relative to the input prefix: what is read, and what label files name.
    pub key: String,
    /// What outputs (`source_key`, `object_key`), logs and errors call the object: never the
    /// folders above the Kaggle layout, and a keyed hash outside it (see [`layout`]).
    pub name: String,
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
    /// A NIfTI study's masks, phase copies and metadata (`None` for DICOM).
    pub nifti: Option<Arc<nifti::NiftiPlan>>,
}

impl StudyPlan {
    /// Every object the study is read from (what its listing fingerprint covers), and the
    /// dataset's ED/ES when a NIfTI dataset gives them.
    pub fn listed(&self) -> (Vec<&PlannedFile>, Option<[u32; 2]>) {
        let extra = self.nifti.iter().flat_map(|n| n.files());
        (self.files.iter().chain(extra).collect(), self.nifti.as_ref().and_then(|n| n.ed_es))
    }
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
    /// NIfTI dataset files that are not cine volumes (masks, phase copies, `Info.cfg`, files
    /// not read).
    pub dataset_files: usize,
    /// Dataset files not read, by name, with why.
    pub not_read: Vec<(String, String)>,
    /// NIfTI studies per layout.
    pub layouts: BTreeMap<&'static str, usize>,
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
    let mut datasets: Vec<nifti::Listed> = Vec::new();
    for m in metas {
        let key = input.relative(&m.location).to_string();
        if nifti::layout::is_dataset_file(&key) {
            datasets.push(nifti::Listed { key, meta: m });
            continue;
        }
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
                    nifti: None,
                });
                plan.files.push(PlannedFile {
                    key,
                    name: place.name,
                    path: m.location,
                    series_key: place.series_key,
                    size: m.size,
                    e_tag: m.e_tag,
                });
            }
            None => generic.push(PlannedFile {
                key,
                name: String::new(),
                series_key: String::new(),
                path: m.location,
                size: m.size,
                e_tag: m.e_tag,
            }),
        }
    }
    let mut studies: Vec<StudyPlan> = kaggle.into_values().collect();
    studies.sort_by_key(|s| natural(&s.study_id));
    if !generic.is_empty() || !datasets.is_empty() {
        let Some(key) = key else {
            let mut what = Vec::new();
            if !generic.is_empty() {
                what.push(format!(
                    "{} files outside the Kaggle layout (`<id>/study/<series>/<file>` with a numeric id), grouped by StudyInstanceUID,",
                    generic.len()
                ));
            }
            if !datasets.is_empty() {
                what.push(format!("{} NIfTI dataset files", datasets.len()));
            }
            return Err(SourceError::NoPseudonymKey {
                url: input.url().to_string(),
                what: what.join(" and "),
                how: crate::source::pseudonym::how_to_get_one(),
            });
        };
        inv.pseudonymised = true;
        if !datasets.is_empty() {
            let class_map = match &cfg.class_map {
                Some(file) => {
                    let text = std::fs::read_to_string(file).map_err(|source| SourceError::ClassMapFile { file: file.clone(), source })?;
                    Some(Arc::new(nifti::classmap::ClassMap::parse(&text, file)?))
                }
                None => None,
            };
            let planned = nifti::plan(input, datasets, &inv.side_files, cfg.layout, class_map.as_ref(), key.secret()).await?;
            studies.extend(planned.studies);
            (inv.dataset_files, inv.not_read, inv.layouts) = (planned.dataset_files, planned.not_read, planned.layouts);
        }
    }
    if let Some(key) = key.filter(|_| !generic.is_empty()) {
        for f in &mut generic {
            f.name = layout::object_name(key.secret(), &f.key);
        }
        studies.extend(group_by_uid(input, generic, cfg, key.secret(), &mut inv.unreadable).await?);
    }
    inv.studies = studies;
    Ok(inv)
}

/// One input object or folder whose name, as outputs and logs call it, was asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The name asked for (`o…`, `d…`, or a Kaggle key from the split or id folder on).
    pub name: String,
    /// The object or folder, as a URL.
    pub url: String,
}

/// The objects and folders of `input` that outputs, logs and errors call by one of `names`:
/// object names ([`layout::object_name`] or a Kaggle name) and folder names
/// ([`layout::folder_name`], for a scheduler's inbox). Names that match nothing are left out.
pub async fn find_names(input: &StoreLocation, key: &PseudonymKey, names: &[String]) -> Result<Vec<Found>, SourceError> {
    // A multi-frame file's frame (`<name>#<n>`) is found as its file.
    let file_of = |n: &str| match n.rsplit_once('#') {
        Some((file, frame)) if !frame.is_empty() && frame.bytes().all(|b| b.is_ascii_digit()) => file.to_string(),
        _ => n.to_string(),
    };
    let asked: BTreeMap<String, Vec<&String>> = names.iter().fold(BTreeMap::new(), |mut m, n| {
        m.entry(file_of(n)).or_insert_with(Vec::new).push(n);
        m
    });
    let wanted: std::collections::BTreeSet<&str> = asked.keys().map(String::as_str).collect();
    let prefix = (!input.prefix.as_ref().is_empty()).then_some(&input.prefix);
    let metas: Vec<object_store::ObjectMeta> =
        input.store.list(prefix).try_collect().await.map_err(|source| SourceError::List { url: input.url().to_string(), source })?;
    let mut found = BTreeMap::new();
    for m in metas {
        let rel = input.relative(&m.location).to_string();
        let name = layout::kaggle_place(&rel).map_or_else(|| layout::object_name(key.secret(), &rel), |p| p.name);
        if wanted.contains(name.as_str()) {
            found.insert(name, input.object_url(&m.location));
        }
        let mut folder = rel.as_str();
        while let Some((parent, _)) = folder.rsplit_once('/') {
            let tag = layout::folder_name(key.secret(), parent);
            if wanted.contains(tag.as_str()) {
                found.entry(tag).or_insert_with(|| format!("{}/", input.object_url(&input.child(parent))));
            }
            folder = parent;
        }
    }
    Ok(found
        .into_iter()
        .flat_map(|(name, url)| asked[&name].iter().map(move |n| Found { name: n.to_string(), url: url.clone() }))
        .collect())
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
                let mut parsed = blocking(&f.name, move |b: bytes::Bytes| parse::parse_header(&b), bytes.clone()).await?;
                if parsed.is_err() && f.size > header_bytes {
                    bytes = read(&store, &f, None).await?;
                    parsed = blocking(&f.name, move |b: bytes::Bytes| parse::parse_header(&b), bytes).await?;
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
                unreadable.push((f.name, e));
                continue;
            }
        };
        let Some(study_uid) = h.study_uid.as_deref() else {
            unreadable.push((
                f.name,
                Unreadable::MissingAttribute(
                    "missing StudyInstanceUID (0020,000D), needed to group a file outside the Kaggle layout".into(),
                ),
            ));
            continue;
        };
        let id = layout::pseudonym(secret, study_uid);
        let parent = f.key.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
        f.series_key = layout::pseudonym(secret, h.series_uid.as_deref().unwrap_or(parent));
        by_study.entry(id.clone()).or_insert_with(|| StudyPlan { study_id: id, split: None, files: Vec::new(), nifti: None }).files.push(f);
    }
    Ok(by_study.into_values().collect())
}

async fn read(store: &Arc<dyn object_store::ObjectStore>, f: &PlannedFile, limit: Option<u64>) -> Result<bytes::Bytes, SourceError> {
    let fail = |source| SourceError::Fetch { object: f.name.clone(), source };
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
    /// Images beyond the first of each multi-frame file read (so that the images of a run
    /// reconcile: files + these = frames + quarantined + excluded + …).
    pub extra_frames: usize,
    /// ED and ES (0-based frames) as a NIfTI dataset gives them.
    pub ed_es: Option<[u32; 2]>,
    /// NIfTI cine volumes whose fractional intensities were scaled to 0–4095.
    pub rescaled: usize,
}

/// One fetched file: its plan, size, SHA-256 and what parsing made of it.
type Fetched = (PlannedFile, u64, [u8; 32], Result<Vec<parse::ParsedImage>, Unreadable>);

/// Fetches and parses one study's files, and attaches label masks where given.
pub async fn load_study(
    input: &StoreLocation,
    plan: StudyPlan,
    labels: Option<&LabelIndex>,
    cfg: &SourceConfig,
) -> Result<LoadedStudy, SourceError> {
    if plan.nifti.is_some() {
        return nifti::load(input, plan, cfg).await;
    }
    let store = input.store.clone();
    let results: Vec<Fetched> = futures::stream::iter(plan.files)
        .map(|f| {
            let store = store.clone();
            async move {
                let bytes = read(&store, &f, None).await?;
                let n = bytes.len() as u64;
                let (digest, parsed) = blocking(
                    &f.name,
                    move |b: bytes::Bytes| {
                        use sha2::Digest;
                        (sha2::Sha256::digest(&b).into(), parse::parse_dicom_owned(b))
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
    // The key each image was read from (label files name objects by key).
    let mut read_from = Vec::with_capacity(results.len());
    let mut extra_frames = 0;
    for (f, n, digest, parsed) in results {
        bytes_read += n;
        digests.push((f.key.clone(), digest));
        match parsed {
            Ok(parsed) => {
                extra_frames += parsed.len().saturating_sub(1);
                for p in parsed {
                    // A multi-frame file's frame is `<name>#<n>`, its stack a series of its own.
                    let (key, name, series_key) = match &p.frame {
                        None => (f.key.clone(), f.name.clone(), f.series_key.clone()),
                        Some(fr) => (
                            format!("{}#{}", f.key, fr.number),
                            format!("{}#{}", f.name, fr.number),
                            format!("{}#{}", f.series_key, fr.stack),
                        ),
                    };
                    read_from.push(key);
                    images.push(SourceImage { key: name, series_key, header: p.header, pixels: Arc::new(p.pixels), mask: None });
                }
            }
            Err(e) => {
                tracing::warn!(study = %plan.study_id, object = %f.name, reason = %e, "file quarantined");
                quarantined.push(Finding {
                    study_id: plan.study_id.clone(),
                    problem: Problem::UnreadableFile,
                    resolution: Resolution::Quarantined,
                    object_key: Some(f.name),
                    detail: e.to_string(),
                    excluded_files: 1,
                });
            }
        }
    }
    if let Some(index) = labels {
        let keys: Vec<&str> = read_from.iter().map(String::as_str).collect();
        let mut masks = index.masks_for(&keys).await?;
        for (img, key) in images.iter_mut().zip(&read_from) {
            let Some(m) = masks.remove(key) else { continue };
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
    Ok(LoadedStudy {
        input: StudyInput { study_id: plan.study_id, split: plan.split, images },
        quarantined,
        bytes_read,
        digests,
        extra_frames,
        ed_es: None,
        rescaled: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_in_outputs_lead_back_to_their_objects() {
        let input = crate::store::open("memory://find-names/in", &Default::default()).unwrap();
        for k in ["Doe_Jane/series 1/a.dcm", "x/train/3/study/sax_5/IM-1.dcm", "Roe/mf.dcm"] {
            input.store.put(&input.child(k), object_store::PutPayload::from_static(b"x")).await.unwrap();
        }
        let key = PseudonymKey::new(b"find-names-key-0123456789", "test").unwrap();
        let s = key.secret();
        let names = vec![
            layout::object_name(s, "Doe_Jane/series 1/a.dcm"),
            format!("{}#7", layout::object_name(s, "Roe/mf.dcm")),
            "train/3/study/sax_5/IM-1.dcm".to_string(),
            layout::folder_name(s, "Doe_Jane"),
            "o0000000000000000.dcm".to_string(),
        ];
        let found = find_names(&input, &key, &names).await.unwrap();
        let url = |n: &String| found.iter().find(|f| &f.name == n).map(|f| f.url.clone());
        assert!(
            url(&names[0]).unwrap().ends_with("Doe_Jane/series%201/a.dcm") || url(&names[0]).unwrap().ends_with("Doe_Jane/series 1/a.dcm")
        );
        assert!(url(&names[1]).unwrap().ends_with("Roe/mf.dcm"), "a frame is found as its file");
        assert!(url(&names[2]).unwrap().ends_with("x/train/3/study/sax_5/IM-1.dcm"));
        assert!(url(&names[3]).unwrap().ends_with("Doe_Jane/"));
        assert_eq!((found.len(), url(&names[4])), (4, None));
    }
}
