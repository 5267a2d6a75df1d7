//! What the tables already hold, and what that means for each study of an input.
//!
//! `sources` has one row per ingested source study with two fingerprints:
//! - the **listing fingerprint** (key, size and ETag of each object): when it matches, the study
//!   is recognised as present without reading a byte;
//! - the **fingerprint** (key and SHA-256 of each object's bytes): when the listing changed but
//!   the content did not (a copy, a touched file), the study is still present.
//!
//! Both also cover what else shapes the rows: the labeller, the truth volumes and the curation
//! settings. A study whose fingerprint differs is *changed*: refused, or replaced with
//! `--replace`.

use std::collections::{BTreeSet, HashMap, HashSet};

use arrow::array::{Array, AsArray};
use sha2::{Digest, Sha256};

use crate::source::StudyPlan;
use crate::source::truth::Truth;
use crate::store::StoreLocation;
use crate::tables::delta::{self, AsOf};
use crate::tables::reader::read_objects;
use crate::tables::{self, ShardError, publish};

/// Bumped when what the fingerprints cover changes.
const FINGERPRINT_FORMAT: &str = "cinestream-study-fingerprint-v1";

/// A source study the tables hold.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownSource {
    /// Empty when unknown (upgraded from the manifest format).
    pub fingerprint: String,
    pub listing_fingerprint: String,
    pub study_ids: Vec<String>,
}

/// What the tables hold.
#[derive(Debug, Default)]
pub struct Known {
    pub sources: HashMap<String, KnownSource>,
    /// Object keys already logged as unreadable outside any study.
    pub unassigned_logged: HashSet<String>,
}

/// What to do with a study of the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not in the tables: write it.
    New,
    /// In the tables with this content: skip it (the reason says how it was recognised).
    Present(&'static str),
    /// In the tables with other content: `--replace` swaps its rows, otherwise it is refused.
    Changed,
}

/// Reads `sources` and the published unassigned findings of `curation_log` (their key columns
/// only).
pub async fn load(out: &StoreLocation) -> Result<Known, ShardError> {
    let mut known = Known::default();
    let sources = delta::open(out, "sources", &AsOf::Latest).await?;
    if let Some(t) = &sources {
        let paths: Vec<_> = delta::active_files(t)?.iter().map(|f| out.child(&format!("sources/{}", f.path))).collect();
        let batches = read_objects(&out.store, &paths, None)
            .await
            .map_err(|source| ShardError::Read { object: format!("{}/sources", out.url()), source })?;
        for b in &batches {
            let col = |name: &str| b.column_by_name(name).expect("sources column").as_string::<i32>().clone();
            let (ids, fps, lfps, studies) = (col("source_study_id"), col("fingerprint"), col("listing_fingerprint"), col("study_ids"));
            for i in 0..b.num_rows() {
                let study_ids = studies.value(i).split(',').filter(|s| !s.is_empty()).map(String::from).collect();
                known.sources.insert(
                    ids.value(i).to_string(),
                    KnownSource { fingerprint: fps.value(i).to_string(), listing_fingerprint: lfps.value(i).to_string(), study_ids },
                );
            }
        }
    }
    if let Some(t) = delta::open(out, "curation_log", &AsOf::Latest).await? {
        let wanted: BTreeSet<String> = ["unassigned".to_string()].into();
        // Published runs' findings only: a killed run's rerun must see what its first attempt saw.
        let visible = publish::Publication::read(sources.as_ref()).await?.visible_files(&t, "curation_log").await?;
        let paths: Vec<_> =
            visible.iter().filter(|f| f.may_hold("study_id", &wanted)).map(|f| out.child(&format!("curation_log/{}", f.path))).collect();
        let batches = read_objects(&out.store, &paths, Some(&["study_id", "object_key"]))
            .await
            .map_err(|source| ShardError::Read { object: format!("{}/curation_log", out.url()), source })?;
        for b in &batches {
            let (ids, keys) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
            for i in 0..b.num_rows() {
                if ids.value(i) == "unassigned" && keys.is_valid(i) {
                    known.unassigned_logged.insert(keys.value(i).to_string());
                }
            }
        }
    }
    Ok(known)
}

/// What, besides the source objects, shapes a study's rows.
#[derive(Debug, Clone)]
pub struct Salt(String);

impl Salt {
    pub fn new(labeller: &str, curation: &serde_json::Value) -> Self {
        Salt(format!("{FINGERPRINT_FORMAT}\nlabeller={labeller}\ncuration={curation}\ntables={}\n", tables::ROWS_VERSION))
    }

    fn hasher(&self, truth: Option<Truth>) -> Sha256 {
        let mut h = Sha256::new();
        h.update(self.0.as_bytes());
        if let Some(t) = truth {
            h.update(format!("truth={}/{}\n", t.esv_ml, t.edv_ml).as_bytes());
        }
        h
    }

    /// From the listing alone: keys, sizes, ETags.
    pub fn listing_fingerprint(&self, plan: &StudyPlan, truth: Option<Truth>) -> String {
        let (listed, ed_es) = plan.listed();
        let mut files: Vec<(&str, u64, &str)> = listed.iter().map(|f| (f.key.as_str(), f.size, f.e_tag.as_deref().unwrap_or(""))).collect();
        files.sort();
        let mut h = self.hasher(truth);
        if let Some(n) = &plan.nifti {
            h.update(format!("nifti {:?} {ed_es:?} {:?}\n", n.layout, n.class_map).as_bytes());
        }
        for (k, size, tag) in files {
            h.update(format!("{k}\t{size}\t{tag}\n").as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// From the content: keys and the SHA-256 of each object's bytes.
    pub fn fingerprint(&self, digests: &[(String, [u8; 32])], truth: Option<Truth>) -> String {
        let mut files: Vec<&(String, [u8; 32])> = digests.iter().collect();
        files.sort();
        let mut h = self.hasher(truth);
        for (k, d) in files {
            h.update(format!("{k}\t{}\n", hex::encode(d)).as_bytes());
        }
        hex::encode(h.finalize())
    }
}

impl Known {
    /// The decision from the listing; `None` when the content must be read to decide.
    pub fn by_listing(&self, source: &str, listing: &str, replace: bool) -> Option<Decision> {
        match self.sources.get(source) {
            None => Some(Decision::New),
            Some(k) if k.listing_fingerprint == listing => Some(Decision::Present("same objects")),
            Some(k) if k.fingerprint.is_empty() && !replace => {
                Some(Decision::Present("upgraded from the manifest format; fingerprint unknown"))
            }
            Some(_) => None,
        }
    }

    /// The decision from the content fingerprint.
    pub fn by_content(&self, source: &str, fingerprint: &str) -> Decision {
        match self.sources.get(source) {
            None => Decision::New,
            Some(k) if k.fingerprint == fingerprint => Decision::Present("same content"),
            Some(_) => Decision::Changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::PlannedFile;

    fn plan(tag: &str) -> StudyPlan {
        let f = |k: &str| PlannedFile {
            key: k.into(),
            name: k.into(),
            path: k.into(),
            series_key: String::new(),
            size: 10,
            e_tag: Some(tag.into()),
        };
        StudyPlan { study_id: "7".into(), split: None, files: vec![f("b.dcm"), f("a.dcm")], nifti: None }
    }

    #[test]
    fn fingerprints_cover_objects_truth_and_settings() {
        let salt = Salt::new("phantom", &serde_json::json!({ "x": 1 }));
        let t = Some(Truth { esv_ml: 50.0, edv_ml: 120.0 });
        assert_eq!(salt.listing_fingerprint(&plan("e1"), t), salt.listing_fingerprint(&plan("e1"), t));
        assert_ne!(salt.listing_fingerprint(&plan("e1"), t), salt.listing_fingerprint(&plan("e2"), t));
        assert_ne!(salt.listing_fingerprint(&plan("e1"), t), salt.listing_fingerprint(&plan("e1"), None));
        let d = vec![("a.dcm".to_string(), [1u8; 32]), ("b.dcm".to_string(), [2u8; 32])];
        let mut rev = d.clone();
        rev.reverse();
        assert_eq!(salt.fingerprint(&d, t), salt.fingerprint(&rev, t), "order of reading does not matter");
        let other = Salt::new("manual", &serde_json::json!({ "x": 1 }));
        assert_ne!(salt.fingerprint(&d, t), other.fingerprint(&d, t));
    }

    #[test]
    fn decisions() {
        let mut k = Known::default();
        k.sources.insert("7".into(), KnownSource { fingerprint: "F".into(), listing_fingerprint: "L".into(), study_ids: vec!["7".into()] });
        k.sources.insert("8".into(), KnownSource { fingerprint: String::new(), listing_fingerprint: String::new(), study_ids: vec![] });
        assert_eq!(k.by_listing("9", "L", false), Some(Decision::New));
        assert!(matches!(k.by_listing("7", "L", false), Some(Decision::Present(_))));
        assert_eq!(k.by_listing("7", "L2", false), None);
        assert!(matches!(k.by_listing("8", "x", false), Some(Decision::Present(_))));
        assert_eq!(k.by_listing("8", "x", true), None);
        assert!(matches!(k.by_content("7", "F"), Decision::Present(_)));
        assert_eq!(k.by_content("7", "G"), Decision::Changed);
    }
}
