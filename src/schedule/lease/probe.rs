//! Which way a store can hold leases ([`probe`]), and puts into local folders that another
//! worker's cleanup may remove under them ([`put_in_folder`]).

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{LeaseError, Mode, store_err};
use crate::store::StoreLocation;

/// A put that survives another worker emptying the folder meanwhile: a local store removes a
/// folder once its last object is deleted, so a put into it can find the folder gone between
/// creating it and creating its file ("No such file or directory"); that put is tried again.
pub(super) async fn put_in_folder(
    root: &StoreLocation,
    path: &Path,
    body: PutPayload,
    mode: PutMode,
) -> Result<object_store::PutResult, object_store::Error> {
    let mut attempt = 0;
    loop {
        match root.store.put_opts(path, body.clone(), PutOptions { mode: mode.clone(), ..Default::default() }).await {
            Err(e) if attempt < 4 && folder_vanished(&e) => {
                attempt += 1;
                tracing::debug!(object = %path, attempt, "the folder was removed under the put: trying again");
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Whether a store error comes from a file or folder that vanished while being created.
fn folder_vanished(e: &object_store::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| e.source())
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound))
}

/// How this store can hold leases: creates a probe object, overwrites it with the ETag as the
/// store returned it (then bare, for Ceph RGW), checks that a stale ETag is refused, and removes
/// it. Stores without working `If-Match` (local folders) get [`Mode::Generations`].
pub async fn probe(root: &StoreLocation) -> Result<Mode, LeaseError> {
    let path = root.child(&format!("_probe/{}.json", crate::ids::random_hex(8)));
    let put = |body: &'static [u8], mode: PutMode| {
        let path = path.clone();
        async move { put_in_folder(root, &path, PutPayload::from_static(body), mode).await }
    };
    let first = put(b"1", PutMode::Create).await.map_err(store_err(&path))?;
    let mode = match first.e_tag.clone() {
        None => Mode::Generations,
        Some(tag) => {
            let update = |t: String| PutMode::Update(UpdateVersion { e_tag: Some(t), version: None });
            let quoted = put(b"2", update(tag.clone())).await;
            let (works, bare) = match quoted {
                Ok(r) => (Some(r), false),
                Err(object_store::Error::Precondition { .. }) if tag.starts_with('"') => {
                    match put(b"2", update(tag.trim_matches('"').to_string())).await {
                        Ok(r) => (Some(r), true),
                        Err(object_store::Error::Precondition { .. } | object_store::Error::NotImplemented { .. }) => (None, false),
                        Err(e) => return Err(store_err(&path)(e)),
                    }
                }
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ) => (None, false),
                Err(e) => return Err(store_err(&path)(e)),
            };
            match works {
                None => Mode::Generations,
                Some(_) => {
                    // The first ETag is stale now: a server that honours If-Match refuses it.
                    let stale = if bare { tag.trim_matches('"').to_string() } else { tag };
                    match put(b"3", update(stale)).await {
                        Err(object_store::Error::Precondition { .. }) => Mode::Conditional { bare_etags: bare },
                        Ok(_) => {
                            tracing::warn!(store = %root, "the store accepted an overwrite with a stale ETag (If-Match ignored): leases use create-only generations");
                            Mode::Generations
                        }
                        Err(e) => return Err(store_err(&path)(e)),
                    }
                }
            }
        }
    };
    match root.store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_err(&path)(e)),
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    #[test]
    fn a_put_whose_folder_vanished_is_told_apart() {
        let err = |kind| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(std::io::Error::from(kind)) };
        assert!(folder_vanished(&err(std::io::ErrorKind::NotFound)));
        assert!(!folder_vanished(&err(std::io::ErrorKind::PermissionDenied)));
        assert!(!folder_vanished(&object_store::Error::NotImplemented { operation: "x".into(), implementer: "y".into() }));
    }

    #[tokio::test]
    async fn the_probe_picks_what_the_store_supports() {
        let mem = crate::store::open("memory://probe/x", &Default::default()).unwrap();
        assert_eq!(probe(&mem).await.unwrap(), Mode::Conditional { bare_etags: false });
        let dir = tempfile::tempdir().unwrap();
        let local = crate::store::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        assert_eq!(probe(&local).await.unwrap(), Mode::Generations);
        let left: Vec<_> = local.store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "the probe object is removed: {left:?}");
    }
}
