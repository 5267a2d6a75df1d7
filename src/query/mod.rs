//! DataFusion over a data prefix: every table registered by name from committed manifests only.
//!
//! The prefix's store is registered under a private URL (`cinestream://data/`), and each table
//! is a listing table over exactly the files its manifests list, with the schema from
//! [`crate::shard::tables`] (no inference, no listing of half-written files). Parquet projection
//! and predicate push-down mean a query over metadata columns never reads pixel or mask bytes.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::shard::manifest::{Manifest, ManifestError};
use crate::shard::tables::{self, TABLES};
use crate::store::StoreLocation;

/// Errors building a query session.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("registering table `{table}`: {source}")]
    Register { table: String, source: datafusion::error::DataFusionError },
}

const DATA_URL: &str = "cinestream://data";

/// A session with `frames`, `labels`, `studies` and `curation_log` registered.
pub async fn session(data: &StoreLocation) -> Result<SessionContext, QueryError> {
    let ctx = SessionContext::new();
    let url = url::Url::parse(DATA_URL).expect("constant URL");
    ctx.register_object_store(&url, data.store.clone());
    let manifests = Manifest::list(data).await?;
    for table in TABLES {
        let schema = tables::schema(table).expect("known table");
        let files = Manifest::files_of(&manifests, table);
        let register = |e| QueryError::Register { table: table.to_string(), source: e };
        if files.is_empty() {
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(register)?;
            ctx.register_table(table, Arc::new(empty)).map_err(register)?;
            continue;
        }
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(format!("{DATA_URL}/{}", data.child(&f.path))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(register)?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
        let provider = ListingTable::try_new(config).map_err(register)?;
        ctx.register_table(table, Arc::new(provider)).map_err(register)?;
    }
    Ok(ctx)
}
