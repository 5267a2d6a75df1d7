//! Retries of the requests the S3 client does not retry itself.
//!
//! object_store retries server errors (5xx) for every request, and connection resets and
//! timeouts for reads; but a put or delete whose connection broke after it was sent is not
//! retried, as the client cannot know whether it was applied. This wrapper retries those, and
//! settles the question by looking:
//!
//! - a **create-only put** retried after a lost reply finds the object there: it was ours when
//!   its bytes equal ours (success), another writer's otherwise (`AlreadyExists`, as before);
//! - a **conditional overwrite** (`If-Match`) retried finds the precondition failed: it was ours
//!   when the object's bytes equal ours;
//! - a **delete** retried finds nothing to delete: done.
//!
//! So a flaky network costs time, not runs: the Delta log commits (create-only puts), shard
//! uploads, leases and markers all go through here on S3.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Retries puts, deletes and copies after transport failures (see the module docs).
#[derive(Debug)]
pub struct ResilientStore {
    inner: Arc<dyn ObjectStore>,
    attempts: usize,
    backoff: Duration,
}

impl ResilientStore {
    /// `attempts` tries in all per request, waiting `backoff` × 2ⁿ between them.
    pub fn new(inner: Arc<dyn ObjectStore>, attempts: usize, backoff: Duration) -> Self {
        Self { inner, attempts: attempts.max(1), backoff }
    }

    async fn pause(&self, attempt: usize) {
        tokio::time::sleep(backoff(self.backoff, attempt)).await;
    }

    /// Whether the object at `location` holds exactly `payload`.
    async fn holds(&self, location: &Path, payload: &PutPayload) -> Result<Option<PutResult>> {
        let got = match self.inner.get(location).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = got.meta.clone();
        let bytes = got.bytes().await?;
        let ours: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
        Ok((bytes.as_ref() == ours.as_slice()).then_some(PutResult { e_tag: meta.e_tag, version: meta.version }))
    }
}

/// The wait before retry `attempt + 1`: `base` × 2ⁿ, at most 64 × `base`.
fn backoff(base: Duration, attempt: usize) -> Duration {
    base * 2u32.saturating_pow(attempt.min(6) as u32)
}

/// A failure after which the request may or may not have been applied.
fn uncertain(e: &object_store::Error) -> bool {
    super::retryable(e)
}

impl fmt::Display for ResilientStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for ResilientStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let mut retried = false;
        let mut attempt = 0;
        loop {
            match self.inner.put_opts(location, payload.clone(), opts.clone()).await {
                Ok(r) => return Ok(r),
                // An earlier attempt of ours may have landed: look.
                Err(e @ (object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })) if retried => {
                    return match self.holds(location, &payload).await {
                        Ok(Some(r)) => {
                            tracing::debug!(object = %location, "a retried put found its earlier attempt applied");
                            Ok(r)
                        }
                        _ => Err(e),
                    };
                }
                Err(e) if uncertain(&e) && attempt + 1 < self.attempts && !matches!(opts.mode, PutMode::Overwrite) => {
                    tracing::warn!(object = %location, error = %e, attempt = attempt + 1, "a put failed in transit: retrying");
                    self.pause(attempt).await;
                    attempt += 1;
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let (inner, attempts, base) = (self.inner.clone(), self.attempts, self.backoff);
        locations
            .then(move |p| {
                let inner = inner.clone();
                async move {
                    let p = p?;
                    let mut attempt = 0;
                    loop {
                        let one = inner.delete_stream(futures::stream::once(futures::future::ready(Ok(p.clone()))).boxed()).next().await;
                        match one {
                            None | Some(Ok(_)) | Some(Err(object_store::Error::NotFound { .. })) => return Ok(p),
                            Some(Err(e)) if uncertain(&e) && attempt + 1 < attempts => {
                                tracing::warn!(object = %p, error = %e, "a delete failed in transit: retrying");
                                tokio::time::sleep(self::backoff(base, attempt)).await;
                                attempt += 1;
                            }
                            Some(Err(e)) => return Err(e),
                        }
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.inner.copy_opts(from, to, options.clone()).await {
                Err(e) if uncertain(&e) && attempt + 1 < self.attempts => {
                    self.pause(attempt).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Applies every put, but fails the first `fail` replies (a lost reply).
    #[derive(Debug)]
    struct LostReplies {
        inner: InMemory,
        fail: AtomicUsize,
    }
    impl fmt::Display for LostReplies {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("lost-replies")
        }
    }
    #[async_trait::async_trait]
    impl ObjectStore for LostReplies {
        async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
            let r = self.inner.put_opts(l, p, o).await;
            if r.is_ok() && self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(object_store::Error::Generic { store: "test", source: "connection reset by peer".into() });
            }
            r
        }
        async fn put_multipart_opts(&self, l: &Path, o: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(l, o).await
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(l, o).await
        }
        fn delete_stream(&self, s: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(s)
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(f, t, o).await
        }
    }

    #[tokio::test]
    async fn a_create_whose_reply_was_lost_is_recognised_as_ours() {
        let flaky = Arc::new(LostReplies { inner: InMemory::new(), fail: AtomicUsize::new(1) });
        let store = ResilientStore::new(flaky.clone(), 4, Duration::from_millis(1));
        let p = Path::from("log/00001.json");
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&p, PutPayload::from_static(b"ours"), create.clone()).await.unwrap();
        // Another writer's bytes at the same name: still a conflict.
        flaky.fail.store(1, Ordering::SeqCst);
        let q = Path::from("log/00002.json");
        flaky.inner.put(&q, PutPayload::from_static(b"theirs")).await.unwrap();
        let err = store.put_opts(&q, PutPayload::from_static(b"ours"), create.clone()).await.unwrap_err();
        assert!(matches!(err, object_store::Error::AlreadyExists { .. }), "{err}");
        // Without a retry budget the uncertainty reaches the caller.
        flaky.fail.store(1, Ordering::SeqCst);
        let once = ResilientStore::new(flaky.clone(), 1, Duration::from_millis(1));
        assert!(once.put_opts(&Path::from("log/3"), PutPayload::from_static(b"x"), create).await.is_err());
    }
}
