//! Where a study comes from: the Kaggle folder layout, or DICOM UIDs.
//!
//! Kaggle: `…/<split>/<id>/study/<series>/<file>.dcm` with a numeric id (the split folder is
//! optional; ids 1–500 are train, 501–700 validate, 701–1140 test). Anything else is grouped by
//! StudyInstanceUID, and its study id is a keyed hash of the UID, so the UID itself never
//! reaches an output.
//!
//! Object keys are names too: sites name folders and files after patients. What outputs, logs
//! and errors call an object is its [`KagglePlace::name`] (the key from the split or id folder
//! on, without the folders above it) or, outside the Kaggle layout, [`object_name`] (a keyed
//! hash of the key). `cinestream key find` turns such a name back into the object.

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
    /// What outputs call the object: the key from the split folder (or the id) on, so that
    /// the folders above the layout (which may name a site, a person or a date) never appear.
    pub name: String,
}

/// Parses `…/<split>/<id>/study/<series>/<file>`; the id must be a number (a folder named
/// otherwise, e.g. after a patient, is not taken as a study id).
pub fn kaggle_place(key: &str) -> Option<KagglePlace> {
    let parts: Vec<&str> = key.split('/').collect();
    let n = parts.len();
    if n < 4 || parts[n - 3] != "study" {
        return None;
    }
    let id = parts[n - 4];
    let number = id.parse::<u32>().ok().filter(|_| id.bytes().all(|b| b.is_ascii_digit()))?;
    let split_folder = n.checked_sub(5).map(|i| parts[i]).filter(|s| matches!(*s, "train" | "validate" | "test"));
    let split = split_folder.map(str::to_string).or_else(|| kaggle_split(number).map(str::to_string));
    let from = if split_folder.is_some() { n - 5 } else { n - 4 };
    Some(KagglePlace { study_id: id.to_string(), split, series_key: parts[..n - 1].join("/"), name: parts[from..].join("/") })
}

/// What outputs, logs and errors call an object outside the Kaggle layout: `o` + 16 hex digits
/// of HMAC-SHA256(key, "object:" + its key), with the file's extension when it has a short one.
pub fn object_name(secret: &[u8], key: &str) -> String {
    let hash = pseudonym(secret, &format!("object:{key}"));
    let file = key.rsplit('/').next().unwrap_or(key);
    let ext = file.rsplit_once('.').map(|(_, e)| e).filter(|e| {
        (1..=5).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()) && e.bytes().any(|b| b.is_ascii_alphabetic())
    });
    match ext {
        Some(e) => format!("o{}.{}", &hash[1..], e.to_ascii_lowercase()),
        None => format!("o{}", &hash[1..]),
    }
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

/// What outputs, logs and errors call an inbox folder: `d` + 16 hex digits of
/// HMAC-SHA256(key, "folder:" + its path).
pub fn folder_name(secret: &[u8], folder: &str) -> String {
    format!("d{}", &pseudonym(secret, &format!("folder:{}", folder.trim_matches('/')))[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaggle_paths() {
        let p = kaggle_place("train/12/study/sax_5/IM-0005-0001.dcm").unwrap();
        assert_eq!((p.study_id.as_str(), p.split.as_deref()), ("12", Some("train")));
        assert_eq!(p.series_key, "train/12/study/sax_5");
        assert_eq!(p.name, "train/12/study/sax_5/IM-0005-0001.dcm");
        let p = kaggle_place("raw/test/test/870/study/sax_12/IM-0822-0001.dcm").unwrap();
        assert_eq!((p.study_id.as_str(), p.split.as_deref()), ("870", Some("test")));
        assert_eq!(p.name, "test/870/study/sax_12/IM-0822-0001.dcm", "the folders above the layout are left out");
        let p = kaggle_place("Doe_Jane/44/study/sax_1/a.dcm").unwrap();
        assert_eq!(p.name, "44/study/sax_1/a.dcm");
        assert!(kaggle_place("inbox/Doe_Jane/study/sax_1/a.dcm").is_none(), "a folder named otherwise is no study id");
        assert!(kaggle_place("+12/study/sax_1/a.dcm").is_none());
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

    #[test]
    fn object_names_hide_the_path() {
        let n = object_name(b"k1", "Doe_Jane_19700101/series 2/IM0001.DCM");
        assert!(n.starts_with('o') && n.ends_with(".dcm") && n.len() == 21, "{n}");
        assert!(!n.contains("Doe") && !n.contains("IM0001"));
        assert_eq!(n, object_name(b"k1", "Doe_Jane_19700101/series 2/IM0001.DCM"));
        assert_ne!(n, object_name(b"k2", "Doe_Jane_19700101/series 2/IM0001.DCM"));
        assert_eq!(object_name(b"k1", "Doe_Jane/1.2.840.113619.2.55.3").len(), 17, "no extension from a UID-like name");
    }
}
