//! Where a study comes from: the Kaggle folder layout, or DICOM UIDs.
//!
//! Kaggle: `…/<split>/<id>/study/<series>/<file>.dcm` (the split folder is optional; ids
//! 1–500 are train, 501–700 validate, 701–1140 test). Anything else is grouped by
//! StudyInstanceUID, and its study id is a keyed hash of the UID, so the UID itself never
//! reaches an output.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Kaggle split of a numeric id.
pub fn kaggle_split(id: u32) -> Option<&'static str> {
    match id {
        1..=500 => Some("train"),
        501..=700 => Some("validate"),
        701..=1140 => Some("test"),
        _ => None,
    }
}

/// A key's place in the Kaggle layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KagglePlace {
    pub study_id: String,
    pub split: Option<String>,
    /// The series folder (`sax_5`), with the study path before it.
    pub series_key: String,
}

/// Parses `…/<split>/<id>/study/<series>/<file>`.
pub fn kaggle_place(key: &str) -> Option<KagglePlace> {
    let parts: Vec<&str> = key.split('/').collect();
    let n = parts.len();
    if n < 4 || parts[n - 3] != "study" {
        return None;
    }
    let id = parts[n - 4];
    if id.is_empty() {
        return None;
    }
    let split = n
        .checked_sub(5)
        .map(|i| parts[i])
        .filter(|s| matches!(*s, "train" | "validate" | "test"))
        .map(str::to_string)
        .or_else(|| id.parse::<u32>().ok().and_then(kaggle_split).map(str::to_string));
    Some(KagglePlace { study_id: id.to_string(), split, series_key: parts[..n - 1].join("/") })
}

/// Objects that are never images (tables and notes next to the DICOM files).
pub fn is_side_file(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    [".csv", ".tsv", ".parquet", ".json", ".txt", ".md", ".toml", ".log"].iter().any(|e| lower.ends_with(e))
        || lower.rsplit('/').next().is_some_and(|f| f.starts_with('.'))
}

/// Pseudonymous id from an identifying UID: `s` + 16 hex digits of HMAC-SHA256(key, uid).
pub fn pseudonym(secret: &[u8], uid: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(uid.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("s{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaggle_paths() {
        let p = kaggle_place("train/12/study/sax_5/IM-0005-0001.dcm").unwrap();
        assert_eq!((p.study_id.as_str(), p.split.as_deref()), ("12", Some("train")));
        assert_eq!(p.series_key, "train/12/study/sax_5");
        let p = kaggle_place("raw/test/test/870/study/sax_12/IM-0822-0001.dcm").unwrap();
        assert_eq!((p.study_id.as_str(), p.split.as_deref()), ("870", Some("test")));
        let p = kaggle_place("x/600/study/sax_1/a.dcm").unwrap();
        assert_eq!(p.split.as_deref(), Some("validate"));
        assert!(kaggle_place("flat/file.dcm").is_none());
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = pseudonym(b"k1", "1.2.3");
        assert_eq!(a, pseudonym(b"k1", "1.2.3"));
        assert_ne!(a, pseudonym(b"k2", "1.2.3"));
        assert!(!a.contains("1.2.3") && a.len() == 17);
    }
}
