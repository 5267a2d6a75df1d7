//! External tables (`--table NAME=URL[,URL…]`): CSV, TSV or Parquet files from any store —
//! another group's volume table, the Kaggle truth CSVs, a per-image pixel-count table — queried
//! next to the data prefix's own tables.
//!
//! The format comes from the file extension (`.csv`, `.tsv`/`.tab`, `.parquet`/`.pq`) or from
//! `--format-in`. CSV/TSV files have a header row; column types are inferred from every row of
//! every file (a text id after 130,000 numeric ones is text), and `NAME=URL:col=type,…`
//! declares them instead (text, int, float, bool). Several files of one table must share a
//! format and columns.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use super::QueryError;
use crate::store::{self, StoreOptions};

/// A file format of external tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExternalFormat {
    Csv,
    Tsv,
    Parquet,
}

impl ExternalFormat {
    /// The format a file name's extension implies.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "csv" => Some(Self::Csv),
            "tsv" | "tab" => Some(Self::Tsv),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }

    fn format(self) -> Arc<dyn FileFormat> {
        match self {
            Self::Csv | Self::Tsv => Arc::new(
                CsvFormat::default()
                    .with_has_header(true)
                    .with_delimiter(if self == Self::Tsv { b'\t' } else { b',' })
                    .with_schema_infer_max_rec(usize::MAX),
            ),
            Self::Parquet => Arc::new(super::parquet_format()),
        }
    }
}

/// One `--table` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalTable {
    pub name: String,
    pub urls: Vec<String>,
    /// Declared column types (`:col=type,…`), which replace the inferred ones.
    pub types: Vec<(String, DataType)>,
}

/// A declared column type: text, int, float or bool (and their SQL names).
fn parse_type(t: &str) -> Option<DataType> {
    match t.trim().to_lowercase().as_str() {
        "text" | "string" | "varchar" | "utf8" => Some(DataType::Utf8),
        "int" | "integer" | "bigint" | "int64" => Some(DataType::Int64),
        "float" | "double" | "real" | "float64" => Some(DataType::Float64),
        "bool" | "boolean" => Some(DataType::Boolean),
        _ => None,
    }
}

impl ExternalTable {
    /// Parses `NAME=URL[,URL…][:col=type,…]`.
    pub fn parse(arg: &str) -> Result<Self, QueryError> {
        let bad = |why: &str| QueryError::External { table: arg.into(), message: why.into() };
        let (name, rest) = arg.split_once('=').ok_or_else(|| bad("write NAME=URL (e.g. truth=./train.csv)"))?;
        // `:col=type,…` after the last URL (a URL's own `:` is followed by `//`, never by `=`).
        let (urls, types) = match rest.rsplit_once(':') {
            Some((urls, decl)) if decl.contains('=') && !decl.starts_with("//") => (urls, Some(decl)),
            _ => (rest, None),
        };
        let mut declared = Vec::new();
        for item in types.into_iter().flat_map(|d| d.split(',')).map(str::trim).filter(|i| !i.is_empty()) {
            let (col, ty) = item.split_once('=').ok_or_else(|| bad(&format!("bad column type `{item}`: write col=type")))?;
            let dt = parse_type(ty).ok_or_else(|| bad(&format!("unknown type `{ty}` for column `{col}`: use text, int, float or bool")))?;
            declared.push((col.trim().to_string(), dt));
        }
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(bad("the table name must be lower-case letters, digits and _"));
        }
        let urls: Vec<String> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
        if urls.is_empty() {
            return Err(bad("no file after `=`"));
        }
        Ok(ExternalTable { name: name.into(), urls, types: declared })
    }

    /// Registers the table in `ctx` (replacing any table of that name).
    pub async fn register(&self, ctx: &SessionContext, format: Option<ExternalFormat>, opts: &StoreOptions) -> Result<(), QueryError> {
        let err = |message: String| QueryError::External { table: self.name.clone(), message };
        let formats: Vec<Option<ExternalFormat>> = self.urls.iter().map(|u| format.or_else(|| ExternalFormat::from_name(u))).collect();
        let Some(fmt) = formats[0] else {
            return Err(err(format!("cannot tell the format of `{}` from its name: give --format-in csv|tsv|parquet", self.urls[0])));
        };
        if formats.iter().any(|f| *f != Some(fmt)) {
            return Err(err("the files of one table must all be CSV, all TSV or all Parquet".into()));
        }
        let mut paths = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            paths.push(listing_url(ctx, url, opts).map_err(|e| QueryError::ExternalUrl {
                table: self.name.clone(),
                url: url.clone(),
                source: Box::new(e),
            })?);
        }
        let ext = self.urls[0].rsplit_once('.').map(|(_, e)| format!(".{e}")).unwrap_or_default();
        let options = ListingOptions::new(fmt.format()).with_file_extension(ext);
        let mut config =
            ListingTableConfig::new_with_multi_paths(paths).with_listing_options(options).infer_schema(&ctx.state()).await.map_err(
                |e| QueryError::ExternalRead {
                    table: self.name.clone(),
                    urls: self.urls.join(", "),
                    source: Box::new(super::suggest::Root(e)),
                },
            )?;
        if !self.types.is_empty() {
            let inferred = config.file_schema.clone().ok_or_else(|| err("no schema inferred".into()))?;
            let mut fields: Vec<Field> = inferred.fields().iter().map(|f| f.as_ref().clone()).collect();
            for (col, dt) in &self.types {
                let Some(f) = fields.iter_mut().find(|f| f.name() == col) else {
                    let names: Vec<&str> = inferred.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(err(format!("declared column `{col}` is not in {} (columns: {})", self.urls.join(", "), names.join(", "))));
                };
                *f = Field::new(col, dt.clone(), true);
            }
            config = config.with_schema(Arc::new(Schema::new(fields)));
        }
        let register = |source| QueryError::Register { table: self.name.clone(), source };
        let table = ListingTable::try_new(config).map_err(register)?;
        ctx.deregister_table(self.name.as_str()).map_err(register)?;
        ctx.register_table(self.name.as_str(), Arc::new(table)).map_err(register)?;
        Ok(())
    }
}

/// The listing URL of one file, with its store registered in `ctx`.
/// Why a `--table` URL cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("not an absolute file path")]
    NotAbsolute,
    #[error("cannot open the file ({0}); check the path")]
    Open(#[from] std::io::Error),
    #[error(transparent)]
    Url(#[from] url::ParseError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Listing(#[from] datafusion::error::DataFusionError),
}

fn listing_url(ctx: &SessionContext, url: &str, opts: &StoreOptions) -> Result<ListingTableUrl, UrlError> {
    let local = match url::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => Some(u.to_file_path().map_err(|_| UrlError::NotAbsolute)?),
        Ok(u) if u.scheme().len() > 1 => None,
        // No scheme (or a Windows drive letter): a local path.
        _ => Some(std::path::PathBuf::from(url)),
    };
    if let Some(path) = local {
        let abs = path.canonicalize()?;
        return Ok(ListingTableUrl::parse(abs.to_string_lossy())?);
    }
    let parsed = url::Url::parse(url)?;
    let root = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or_default());
    let loc = store::open(&root, opts)?;
    let root_url = url::Url::parse(&root)?;
    ctx.register_object_store(&root_url, loc.store);
    Ok(ListingTableUrl::parse(url)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let t = ExternalTable::parse("kaggle_volumes=a/train.csv, s3://b/validate.csv").unwrap();
        assert_eq!(t.urls, ["a/train.csv", "s3://b/validate.csv"]);
        assert!(ExternalTable::parse("Truth=x.csv").is_err());
        assert!(ExternalTable::parse("truth").is_err());
        assert!(ExternalTable::parse("truth=").is_err());
        assert_eq!(ExternalFormat::from_name("x/Conf.TSV"), Some(ExternalFormat::Tsv));
        assert_eq!(ExternalFormat::from_name("x.parquet"), Some(ExternalFormat::Parquet));
        assert_eq!(ExternalFormat::from_name("x.txt"), None);
        let t = ExternalTable::parse("counts=s3://b/c.tsv:study_id=text, lv_pixels=int").unwrap();
        assert_eq!(t.urls, ["s3://b/c.tsv"]);
        assert_eq!(t.types, [("study_id".to_string(), DataType::Utf8), ("lv_pixels".to_string(), DataType::Int64)]);
        assert!(ExternalTable::parse("truth=s3://b/x.csv").unwrap().types.is_empty());
        assert!(ExternalTable::parse("c=x.csv:id=uuid").unwrap_err().to_string().contains("text, int, float or bool"));
    }

    #[tokio::test]
    async fn a_text_id_after_130000_numbers_is_text() {
        use object_store::ObjectStoreExt;
        let loc = store::open("memory://external-late", &StoreOptions::default()).unwrap();
        let mut csv = String::from("study_id,lv_pixels\n");
        for i in 0..130_000 {
            csv.push_str(&format!("{i},{}\n", i % 97));
        }
        csv.push_str("1052_rot90,5\n");
        loc.store.put(&"c.csv".into(), csv.clone().into()).await.unwrap();
        let ctx = SessionContext::new();
        ExternalTable::parse("c=memory://external-late/c.csv").unwrap().register(&ctx, None, &StoreOptions::default()).await.unwrap();
        let b = ctx.sql("SELECT count(*) AS n FROM c WHERE study_id = '1052_rot90'").await.unwrap().collect().await.unwrap();
        use arrow::array::AsArray;
        assert_eq!(b[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0), 1);
        // Declared types win over inference; an unknown column is named.
        let ctx = SessionContext::new();
        ExternalTable::parse("c=memory://external-late/c.csv:lv_pixels=float")
            .unwrap()
            .register(&ctx, None, &StoreOptions::default())
            .await
            .unwrap();
        let b = ctx.sql("SELECT lv_pixels FROM c LIMIT 1").await.unwrap().collect().await.unwrap();
        assert_eq!(b[0].schema().field(0).data_type(), &DataType::Float64);
        let e = ExternalTable::parse("c=memory://external-late/c.csv:lv=int")
            .unwrap()
            .register(&ctx, None, &StoreOptions::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("declared column `lv`") && e.to_string().contains("lv_pixels"), "{e}");
    }

    #[tokio::test]
    async fn csv_from_a_memory_store() {
        use object_store::ObjectStoreExt;
        let loc = store::open("memory://external-test", &StoreOptions::default()).unwrap();
        loc.store.put(&"t/v.csv".into(), "Id,Systole\n1,50.5\n2,60\n".into()).await.unwrap();
        let ctx = SessionContext::new();
        let t = ExternalTable::parse("v=memory://external-test/t/v.csv").unwrap();
        t.register(&ctx, None, &StoreOptions::default()).await.unwrap();
        let b = ctx.sql("SELECT sum(\"Systole\") AS s FROM v").await.unwrap().collect().await.unwrap();
        use arrow::array::AsArray;
        assert_eq!(b[0].column(0).as_primitive::<arrow::datatypes::Float64Type>().value(0), 110.5);
        let missing = ExternalTable::parse("w=/no/such/file.csv").unwrap().register(&ctx, None, &StoreOptions::default()).await;
        assert!(missing.unwrap_err().to_string().contains("check the path"));
    }
}
