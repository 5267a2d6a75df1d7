//! NIfTI datasets as sources: ACDC, M&Ms-1/2, the UK Biobank layout, or plain NIfTI folders.
//!
//! Planning ([`plan`]) groups a dataset's files into studies, one per folder and patient stem,
//! reads the ED/ES metadata (`Info.cfg`, the M&Ms CSV) and names everything by keyed hashes, as
//! for DICOM outside the Kaggle layout. Loading ([`assemble`]) turns each cine volume into one
//! image per slice and frame, with the geometry its affine gives, and the expert masks into
//! our classes through the dataset's [`classmap`].

pub mod assemble;
pub mod classmap;
pub mod layout;
pub mod meta;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use super::layout::{object_name, pseudonym};
use super::study::StudyInput;
use super::{LoadedStudy, PlannedFile, SourceConfig, SourceError, StudyPlan, blocking, read};
use crate::store::StoreLocation;
use classmap::ClassMap;
use layout::{Layout, Phase, Role};

/// What a NIfTI study is made of besides its cine volume(s) (`StudyPlan::files`).
#[derive(Debug, Clone)]
pub struct NiftiPlan {
    pub layout: Layout,
    pub class_map: Arc<ClassMap>,
    /// Expert masks: frame masks, 4-D masks and the masks of phase copies.
    pub masks: Vec<(PlannedFile, Role)>,
    /// Copies of the cine volume's ED or ES frame (read to find those frames).
    pub phases: Vec<(PlannedFile, Phase)>,
    /// ED and ES (0-based frames) from the dataset's metadata.
    pub ed_es: Option<[u32; 2]>,
}

impl NiftiPlan {
    /// Every file read besides the cine volumes.
    pub fn files(&self) -> impl Iterator<Item = &PlannedFile> {
        self.masks.iter().map(|(f, _)| f).chain(self.phases.iter().map(|(f, _)| f))
    }
}

/// What planning found.
#[derive(Debug, Default)]
pub struct Planned {
    pub studies: Vec<StudyPlan>,
    /// Dataset files that are not cine volumes: masks, phase copies, metadata, and files not read.
    pub dataset_files: usize,
    /// Files not read, by object name, with why.
    pub not_read: Vec<(String, String)>,
    /// Studies per layout.
    pub layouts: BTreeMap<&'static str, usize>,
}

/// One listed dataset file.
pub struct Listed {
    pub key: String,
    pub meta: object_store::ObjectMeta,
}

/// Plans the NIfTI studies of `files`; `csvs` (side files) are searched for the M&Ms ED/ES table.
pub async fn plan(
    input: &StoreLocation,
    files: Vec<Listed>,
    csvs: &[String],
    layout: Layout,
    class_map: Option<&Arc<ClassMap>>,
    secret: &[u8],
) -> Result<Planned, SourceError> {
    let mut folders: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    for f in files {
        let folder = f.key.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        folders.entry(folder).or_default().push(f);
    }
    let mnms = if folders.values().any(|fs| effective(layout, fs) == Layout::Mnms) {
        mnms_table(input, csvs, secret).await?
    } else {
        HashMap::new()
    };
    let mut out = Planned::default();
    for (folder, files) in folders {
        let layout = effective(layout, &files);
        let class_map = class_map.cloned().unwrap_or_else(|| Arc::new(ClassMap::shipped(layout.class_map())));
        let mut by_stem: BTreeMap<String, Vec<(Listed, Role)>> = BTreeMap::new();
        let mut info = None;
        for f in files {
            let file = f.key.rsplit('/').next().unwrap_or(&f.key).to_string();
            let (stem, role) = layout::role(layout, &file);
            match role {
                Role::Info => info = Some(f),
                Role::NotRead(why) => {
                    out.dataset_files += 1;
                    out.not_read.push((object_name(secret, &f.key), why.to_string()));
                }
                _ => by_stem.entry(stem).or_default().push((f, role)),
            }
        }
        let info_ed_es = match info {
            Some(f) => {
                out.dataset_files += 1;
                let name = object_name(secret, &f.key);
                let bytes =
                    input.store.get(&f.meta.location).await.map_err(|source| SourceError::Fetch { object: name.clone(), source })?;
                let bytes = bytes.bytes().await.map_err(|source| SourceError::Fetch { object: name.clone(), source })?;
                match meta::info_cfg(&String::from_utf8_lossy(&bytes)) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        out.not_read.push((name, format!("Info.cfg without usable ED/ES ({why}): the study keeps no dataset ED/ES")));
                        None
                    }
                }
            }
            None => None,
        };
        for (stem, files) in by_stem {
            let planned = |f: Listed| PlannedFile {
                name: object_name(secret, &f.key),
                series_key: object_name(secret, &f.key),
                key: f.key,
                path: f.meta.location,
                size: f.meta.size,
                e_tag: f.meta.e_tag,
            };
            let (mut images, mut masks, mut phases) = (Vec::new(), Vec::new(), Vec::new());
            for (f, role) in files {
                match role {
                    Role::Image => images.push(planned(f)),
                    Role::PhaseImage(p) => phases.push((planned(f), p)),
                    r => masks.push((planned(f), r)),
                }
            }
            if images.is_empty() {
                for f in masks.iter().map(|(f, _)| f).chain(phases.iter().map(|(f, _)| f)) {
                    out.dataset_files += 1;
                    out.not_read.push((f.name.clone(), "no cine volume of its patient in its folder".into()));
                }
                continue;
            }
            out.dataset_files += masks.len() + phases.len();
            let ed_es = info_ed_es.or_else(|| mnms.get(&stem).copied());
            *out.layouts.entry(layout.as_str()).or_default() += 1;
            let study_id = pseudonym(secret, &format!("nifti:{folder}/{stem}"));
            out.studies.push(StudyPlan {
                study_id,
                split: None,
                files: images,
                nifti: Some(Arc::new(NiftiPlan { layout, class_map: class_map.clone(), masks, phases, ed_es })),
            });
        }
    }
    Ok(out)
}

/// The layout of a folder: the one asked for, or the one its names show.
fn effective(layout: Layout, files: &[Listed]) -> Layout {
    if layout != Layout::Auto {
        return layout;
    }
    let names: Vec<&str> = files.iter().map(|f| f.key.rsplit('/').next().unwrap_or(&f.key)).collect();
    layout::detect(&names)
}

/// ED/ES by M&Ms code from every CSV that has the columns.
async fn mnms_table(input: &StoreLocation, csvs: &[String], secret: &[u8]) -> Result<HashMap<String, [u32; 2]>, SourceError> {
    let keys: Vec<(String, object_store::path::Path, String)> = csvs
        .iter()
        .filter(|k| k.to_ascii_lowercase().ends_with(".csv"))
        .map(|k| (k.clone(), input.child(k), object_name(secret, k)))
        .collect();
    let store = input.store.clone();
    let texts: Vec<(String, bytes::Bytes)> = futures::stream::iter(keys)
        .map(|(k, path, name)| {
            let store = store.clone();
            async move {
                let fail = |source| SourceError::Fetch { object: name.clone(), source };
                let b = store.get(&path).await.map_err(fail)?.bytes().await.map_err(fail)?;
                Ok::<_, SourceError>((k, b))
            }
        })
        .buffered(4)
        .try_collect()
        .await?;
    let mut out = HashMap::new();
    for (key, text) in texts {
        if let Some(m) = meta::mnms_csv(&String::from_utf8_lossy(&text)) {
            tracing::info!(csv = %object_name(secret, &key), codes = m.len(), "ED/ES of M&Ms codes");
            out.extend(m);
        }
    }
    Ok(out)
}

/// Fetches a NIfTI study's files (cine volumes, masks, phase copies) and assembles its images on
/// a blocking thread. The study's fingerprint covers every file read and the metadata's ED/ES.
pub async fn load(input: &StoreLocation, plan: StudyPlan, cfg: &SourceConfig) -> Result<LoadedStudy, SourceError> {
    let nifti = plan.nifti.clone().expect("a NIfTI plan");
    let store = input.store.clone();
    let all: Vec<PlannedFile> = plan.files.iter().chain(nifti.files()).cloned().collect();
    let fetched: Vec<(PlannedFile, bytes::Bytes)> = futures::stream::iter(all)
        .map(|f| {
            let store = store.clone();
            async move { Ok::<_, SourceError>((f.clone(), read(&store, &f, None).await?)) }
        })
        .buffered(cfg.fetch_concurrency.max(1))
        .try_collect()
        .await?;
    let bytes_read = fetched.iter().map(|(_, b)| b.len() as u64).sum();
    let files = plan.files.len();
    let id = plan.study_id.clone();
    // Hashing and assembling are CPU work: one blocking task, as for DICOM files.
    let (digests, a) = blocking(
        &format!("study {id}"),
        move |_| {
            use sha2::Digest;
            let mut digests: Vec<(String, [u8; 32])> =
                fetched.iter().map(|(f, b)| (f.key.clone(), sha2::Sha256::digest(b).into())).collect();
            let about = format!("{:?} {:?} {:?}", nifti.layout, nifti.ed_es, nifti.class_map);
            digests.push(("#nifti".into(), sha2::Sha256::digest(about.as_bytes()).into()));
            let mut rest = fetched.into_iter();
            let images: Vec<(PlannedFile, bytes::Bytes)> = rest.by_ref().take(files).collect();
            let masks: Vec<bytes::Bytes> = rest.by_ref().take(nifti.masks.len()).map(|(_, b)| b).collect();
            let phases: Vec<bytes::Bytes> = rest.map(|(_, b)| b).collect();
            (digests, assemble::assemble(&id, &nifti, images, masks, phases))
        },
        bytes::Bytes::new(),
    )
    .await?;
    tracing::debug!(study = %plan.study_id, files, images = a.images.len(), "NIfTI study assembled");
    Ok(LoadedStudy {
        input: StudyInput { study_id: plan.study_id, split: plan.split, images: a.images },
        quarantined: a.quarantined,
        bytes_read,
        digests,
        extra_frames: a.extra_frames,
        ed_es: a.ed_es,
        rescaled: a.rescaled,
    })
}
