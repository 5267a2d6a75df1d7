//! The inbox: new studies land under a prefix, one folder each (a *drop*), and a drop is ready
//! once nothing new arrived in it for a quiet time. Done drops get a marker object; optionally
//! their objects are moved elsewhere.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ScheduleError;
use crate::source::layout;
use crate::store::StoreLocation;

/// One object of a drop.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub e_tag: Option<String>,
}

/// The objects under one folder of the inbox.
#[derive(Debug, Clone)]
pub struct Drop {
    /// The folder, relative to the inbox (`depth` path parts): what is read, never written or
    /// logged (sites name folders after patients).
    pub name: String,
    /// What markers, leases, logs, reports and errors call the folder: a keyed hash of its name
    /// ([`crate::source::layout::folder_name`]).
    pub tag: String,
    pub objects: Vec<Object>,
    /// When the newest object arrived (the store's clock).
    pub newest: DateTime<Utc>,
    /// When the oldest object arrived.
    pub oldest: DateTime<Utc>,
}

impl Drop {
    /// A fingerprint of the listing (keys, sizes, ETags): changes when an object is added,
    /// removed or replaced.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for o in &self.objects {
            h.update(format!("{}\t{}\t{}\n", o.key, o.size, o.e_tag.as_deref().unwrap_or("")).as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// Whether nothing arrived for `quiet` before `now`.
    pub fn is_ready(&self, quiet: chrono::Duration, now: DateTime<Utc>) -> bool {
        now - self.newest >= quiet
    }
}

/// What a listing of the inbox found.
#[derive(Debug, Default)]
pub struct Listing {
    pub drops: Vec<Drop>,
    /// Objects above the drop depth (not in any drop), by their keyed names: reported, never read.
    pub loose: Vec<String>,
}

/// Lists the inbox and groups its objects into drops by their first `depth` path parts; names
/// folders and loose objects with the pseudonym key's `secret`.
pub async fn list(inbox: &StoreLocation, depth: usize, secret: &[u8]) -> Result<Listing, ScheduleError> {
    let prefix = (!inbox.prefix.as_ref().is_empty()).then_some(&inbox.prefix);
    let metas: Vec<object_store::ObjectMeta> = match inbox.store.list(prefix).try_collect().await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(source) => return Err(ScheduleError::Store { what: format!("listing the inbox `{inbox}`"), source }),
    };
    let mut drops: BTreeMap<String, Drop> = BTreeMap::new();
    let mut listing = Listing::default();
    for m in metas {
        let key = inbox.relative(&m.location).to_string();
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() <= depth {
            listing.loose.push(layout::object_name(secret, &key));
            continue;
        }
        let name = parts[..depth].join("/");
        let d = drops.entry(name.clone()).or_insert_with(|| Drop {
            tag: layout::folder_name(secret, &name),
            name,
            objects: Vec::new(),
            newest: m.last_modified,
            oldest: m.last_modified,
        });
        d.newest = d.newest.max(m.last_modified);
        d.oldest = d.oldest.min(m.last_modified);
        d.objects.push(Object { key, size: m.size, e_tag: m.e_tag });
    }
    listing.drops = drops.into_values().collect();
    Ok(listing)
}

/// One study's outcome, as the done marker records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StudyResult {
    pub study_id: String,
    pub frames_labelled: usize,
    pub qc_passed: Option<bool>,
    pub edv_ml: Option<f64>,
    pub esv_ml: Option<f64>,
    pub ef_pct: Option<f64>,
    /// |EF − truth EF| in percentage points, where the truth is known.
    pub ef_error_pct: Option<f64>,
}

/// The done marker of a drop: written once its results are committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    pub job: String,
    /// The folder's [`Drop::tag`].
    pub drop: String,
    /// [`Drop::fingerprint`] of what was processed.
    pub listing: String,
    pub objects: usize,
    pub studies: Vec<StudyResult>,
    /// Image files quarantined or excluded by curation (see `curation_log`).
    pub files_quarantined: usize,
    pub files_excluded: usize,
    pub ingest_app_id: String,
    pub label_app_id: String,
    pub owner: String,
    pub finished: String,
    pub seconds: f64,
}

/// Done markers of one job: `<state>/done/<tag>.json` (markers that earlier versions wrote as
/// `<folder>.json` are still read, see [`Markers::get_done`]).
pub struct Markers {
    pub root: StoreLocation,
}

impl Markers {
    fn path(&self, drop: &str) -> object_store::path::Path {
        self.root.child(&format!("{drop}.json"))
    }

    pub async fn get(&self, drop: &str) -> Result<Option<Marker>, ScheduleError> {
        let path = self.path(drop);
        match self.root.store.get(&path).await {
            Ok(r) => {
                let what = || format!("reading the done marker `{}`", self.root.object_url(&path));
                let bytes = r.bytes().await.map_err(|source| ScheduleError::Store { what: what(), source })?;
                serde_json::from_slice(&bytes).map(Some).map_err(|source| ScheduleError::Corrupt { what: what(), source })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(ScheduleError::Store { what: format!("reading the done marker `{}`", self.root.object_url(&path)), source }),
        }
    }

    /// The marker of a drop, under its tag or (written by an older version) its folder name.
    pub async fn get_done(&self, d: &Drop) -> Result<Option<Marker>, ScheduleError> {
        match self.get(&d.tag).await? {
            Some(m) => Ok(Some(m)),
            None => self.get(&d.name).await,
        }
    }

    /// Writes the marker once (a second writer finds the first one's and keeps it).
    pub async fn put(&self, m: &Marker) -> Result<(), ScheduleError> {
        let path = self.path(&m.drop);
        let body = PutPayload::from(serde_json::to_vec_pretty(m).expect("a marker serialises"));
        match self.root.store.put_opts(&path, body, PutOptions { mode: PutMode::Create, ..Default::default() }).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(source) => Err(ScheduleError::Store { what: format!("writing the done marker `{}`", self.root.object_url(&path)), source }),
        }
    }
}

/// Moves a done drop's objects to `to` (same relative keys): copy each, then delete it, so a
/// crash leaves every object in one place or both, and a rerun completes the move. An object
/// gone from the inbox but present at `to` was moved already (by an earlier attempt).
pub async fn move_drop(inbox: &StoreLocation, drop: &Drop, to: &StoreLocation) -> Result<(), ScheduleError> {
    let same_store = std::sync::Arc::ptr_eq(&inbox.store, &to.store);
    for o in &drop.objects {
        let (from, dest) = (inbox.child(&o.key), to.child(&o.key));
        let what = || format!("moving `{}` to `{}`", inbox.object_url(&from), to.object_url(&dest));
        let err = |source| ScheduleError::Store { what: what(), source };
        let copied = if same_store {
            inbox.store.copy(&from, &dest).await
        } else {
            async {
                let bytes = inbox.store.get(&from).await?.bytes().await?;
                to.store.put(&dest, PutPayload::from(bytes)).await.map(|_| ())
            }
            .await
        };
        match copied {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) if to.store.head(&dest).await.is_ok() => continue,
            Err(source) => return Err(err(source)),
        }
        match inbox.store.delete(&from).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(ScheduleError::Store { what: what(), source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drops_group_by_folder_and_markers_are_written_once() {
        let inbox = crate::store::open("memory://inbox-test/in", &Default::default()).unwrap();
        for key in ["a/x/1.dcm", "a/x/2.dcm", "b/1.dcm", "loose.dcm"] {
            inbox.store.put(&inbox.child(key), PutPayload::from_static(b"data")).await.unwrap();
        }
        let l = list(&inbox, 1, b"k").await.unwrap();
        assert_eq!(l.drops.iter().map(|d| (d.name.as_str(), d.objects.len())).collect::<Vec<_>>(), vec![("a", 2), ("b", 1)]);
        assert_eq!(l.drops[0].tag, layout::folder_name(b"k", "a"));
        assert!(l.drops[0].tag.starts_with('d') && l.drops[0].tag.len() == 17);
        assert_eq!(l.loose, vec![layout::object_name(b"k", "loose.dcm")]);
        let a = &l.drops[0];
        assert!(a.is_ready(chrono::Duration::zero(), Utc::now()));
        assert!(!a.is_ready(chrono::Duration::seconds(60), Utc::now()));
        let fp = a.fingerprint();
        inbox.store.put(&inbox.child("a/x/3.dcm"), PutPayload::from_static(b"more")).await.unwrap();
        assert_ne!(list(&inbox, 1, b"k").await.unwrap().drops[0].fingerprint(), fp, "a new object changes the listing");
        assert_eq!(list(&inbox, 2, b"k").await.unwrap().drops[0].name, "a/x");

        let markers = Markers { root: crate::store::open("memory://inbox-test/state/done", &Default::default()).unwrap() };
        assert!(markers.get("a").await.unwrap().is_none());
        let m = Marker {
            job: "j".into(),
            drop: "a".into(),
            listing: fp.clone(),
            objects: 2,
            studies: vec![],
            files_quarantined: 0,
            files_excluded: 0,
            ingest_app_id: "i".into(),
            label_app_id: "l".into(),
            owner: "o1".into(),
            finished: "t".into(),
            seconds: 1.0,
        };
        markers.put(&m).await.unwrap();
        markers.put(&Marker { owner: "o2".into(), ..m.clone() }).await.unwrap();
        assert_eq!(markers.get("a").await.unwrap().unwrap().owner, "o1", "the first marker stays");
        assert!(markers.get_done(a).await.unwrap().is_some(), "a marker under the folder's name (earlier versions) counts");
        markers.put(&Marker { drop: l.drops[1].tag.clone(), ..m.clone() }).await.unwrap();
        assert!(markers.get_done(&l.drops[1]).await.unwrap().is_some());

        let done = crate::store::open("memory://inbox-test/done", &Default::default()).unwrap();
        let listed = list(&inbox, 1, b"k").await.unwrap();
        move_drop(&inbox, &listed.drops[0], &done).await.unwrap();
        let after = list(&inbox, 1, b"k").await.unwrap();
        assert_eq!(after.drops.len(), 1, "drop a left the inbox");
        assert_eq!(list(&done, 1, b"k").await.unwrap().drops[0].objects.len(), 3);
        // A second worker that listed drop a before the move finds it moved, not lost.
        move_drop(&inbox, &listed.drops[0], &done).await.unwrap();
        // An object gone from both places is an error that names it.
        done.store.delete(&done.child("a/x/1.dcm")).await.unwrap();
        let e = move_drop(&inbox, &listed.drops[0], &done).await.unwrap_err().to_string();
        assert!(e.contains("a/x/1.dcm") && e.contains("moving"), "{e}");
    }
}
