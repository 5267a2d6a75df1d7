//! A store wrapper that counts what crosses the wire: requests and the bytes of object bodies
//! read. It proves what a reader did *not* fetch — for example that a query over metadata
//! columns never read the pixel or mask column chunks of a Parquet file.
//!
//! Bytes are counted when a read is answered, as the length of the range the store returns
//! (HEAD requests count as a request and zero bytes). Writes, lists and deletes are counted as
//! requests only.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, Result,
};

/// Running totals of one [`CountingStore`] (shared: clone the `Arc` to read them while it runs).
#[derive(Debug, Default)]
pub struct Counts {
    reads: AtomicU64,
    bytes_read: AtomicU64,
    other_requests: AtomicU64,
}

/// A snapshot of [`Counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountSnapshot {
    /// GET / HEAD requests (one per range of a multi-range read).
    pub reads: u64,
    /// Bytes of object bodies returned.
    pub bytes_read: u64,
    /// Puts, lists, deletes, copies.
    pub other_requests: u64,
}

impl Counts {
    pub fn snapshot(&self) -> CountSnapshot {
        CountSnapshot {
            reads: self.reads.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            other_requests: self.other_requests.load(Ordering::Relaxed),
        }
    }
    fn read(&self, requests: u64, bytes: u64) {
        self.reads.fetch_add(requests, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }
    fn other(&self) {
        self.other_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Wraps a store and counts its traffic into [`Counts`].
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<Counts>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, counts: Arc::default() }
    }
    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.counts.other();
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.counts.other();
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        let bytes = if head { 0 } else { result.range.end - result.range.start };
        tracing::trace!(object = %location, range = ?result.range, head, "read");
        self.counts.read(1, bytes);
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let out = self.inner.get_ranges(location, ranges).await?;
        tracing::trace!(object = %location, ?ranges, "read ranges");
        self.counts.read(ranges.len() as u64, out.iter().map(|b| b.len() as u64).sum());
        Ok(out)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.counts.other();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counts.other();
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counts.other();
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.counts.other();
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.counts.other();
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.counts.other();
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn counts_bodies_not_heads() {
        let store = CountingStore::new(Arc::new(InMemory::new()));
        let counts = store.counts();
        let p = Path::from("a/b");
        store.put(&p, PutPayload::from(vec![7u8; 1000])).await.unwrap();
        store.head(&p).await.unwrap();
        assert_eq!(counts.snapshot(), CountSnapshot { reads: 1, bytes_read: 0, other_requests: 1 });
        store.get_range(&p, 10..110).await.unwrap();
        store.get_ranges(&p, &[0..5, 900..1000]).await.unwrap();
        store.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(counts.snapshot(), CountSnapshot { reads: 5, bytes_read: 100 + 105 + 1000, other_requests: 1 });
    }
}
