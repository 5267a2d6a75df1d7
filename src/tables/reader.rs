//! Reading Parquet from an object store: an [`AsyncFileReader`] over any `ObjectStore`, so
//! readers fetch only the footer and the column chunks they project (ranged GETs), and
//! [`read_objects`] for the small reads of our own (idempotency keys, files to rewrite).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// One Parquet object.
#[derive(Clone, Debug)]
pub struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
}

impl StoreReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path) -> Self {
        Self { store, path }
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        self.store.get_range(&self.path, range).map_err(external).boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(&'a mut self, options: Option<&'a ArrowReaderOptions>) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new().with_arrow_reader_options(options).load_via_suffix_and_finish(self).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut StoreReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, Result<Bytes>> {
        let options = GetOptions { range: Some(GetRange::Suffix(suffix as u64)), ..Default::default() };
        async move { self.store.get_opts(&self.path, options).await.map_err(external)?.bytes().await.map_err(external) }.boxed()
    }
}

/// Reads whole Parquet objects (all row groups), optionally only some columns, in order.
pub async fn read_objects(
    store: &Arc<dyn ObjectStore>,
    paths: &[Path],
    columns: Option<&[&str]>,
) -> Result<Vec<arrow::array::RecordBatch>> {
    use futures::TryStreamExt;
    use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
    let mut out = Vec::new();
    for path in paths {
        let builder = ParquetRecordBatchStreamBuilder::new(StoreReader::new(store.clone(), path.clone())).await?;
        let builder = match columns {
            Some(cols) => {
                let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
                builder.with_projection(mask)
            }
            None => builder,
        };
        out.extend(builder.build()?.try_collect::<Vec<_>>().await?);
    }
    Ok(out)
}
