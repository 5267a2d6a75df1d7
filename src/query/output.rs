//! Query results out: a text table, CSV, JSON lines or Parquet, to stdout or to an object.
//!
//! Results stream batch by batch (CSV, JSON and Parquet), so `--out` can take a large result;
//! an object is written with a multipart upload. The text table needs every row to size its
//! columns, so it collects first. CSV has a header row, JSON is one object per line, Parquet is
//! zstd-compressed: pandas, polars and DuckDB read all three as they are.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::io::AsyncWriteExt;

use super::QueryError;
use crate::store::{self, StoreOptions};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table (for people).
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
    /// Parquet (needs --out).
    Parquet,
}

impl OutputFormat {
    /// The format an output file name implies.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_lowercase();
        match lower.rsplit_once('.')?.1 {
            "csv" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            "parquet" | "pq" => Some(Self::Parquet),
            "txt" => Some(Self::Table),
            _ => None,
        }
    }
}

/// Rows and bytes written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
}

/// Encodes batches of one format into byte chunks.
enum Encoder {
    Csv { header: bool },
    Json,
}

impl Encoder {
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut buf = Vec::new();
        match self {
            Encoder::Csv { header } => {
                let mut w = arrow::csv::WriterBuilder::new().with_header(*header).build(&mut buf);
                w.write(batch)?;
                *header = false;
            }
            Encoder::Json => {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
                w.write(batch)?;
                w.finish()?;
            }
        }
        Ok(buf)
    }
}

fn table_text(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, arrow::error::ArrowError> {
    if batches.is_empty() {
        let empty = RecordBatch::new_empty(schema.clone());
        return Ok(arrow::util::pretty::pretty_format_batches(&[empty])?.to_string());
    }
    Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

/// Where encoded bytes go.
enum Sink {
    Stdout,
    Object(Box<BufWriter>),
}

impl Sink {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().write_all(bytes),
            Sink::Object(w) => w.write_all(bytes).await,
        }
    }
    async fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::Object(w) => w.shutdown().await,
        }
    }
}

/// Writes a result to stdout.
pub async fn to_stdout(df: DataFrame, format: OutputFormat) -> Result<Written, QueryError> {
    if format == OutputFormat::Parquet {
        return Err(QueryError::Output { url: "stdout".into(), message: "Parquet is binary: give --out FILE.parquet".into() });
    }
    write(df, format, Sink::Stdout, "stdout").await
}

/// Writes a result to an object (`./out.csv`, `s3://bucket/x.parquet`, …).
pub async fn to_object(df: DataFrame, format: OutputFormat, url: &str, opts: &StoreOptions) -> Result<Written, QueryError> {
    let err = |message: String| QueryError::Output { url: url.into(), message };
    let (folder, name) =
        split_object_url(url).ok_or_else(|| err("name a file, e.g. ./volumes.csv or s3://bucket/volumes.parquet".into()))?;
    let loc = store::open(folder, opts).map_err(|e| QueryError::Results { url: url.into(), hint: "", source: Box::new(e) })?;
    let path = loc.child(name);
    write(df, format, Sink::Object(Box::new(BufWriter::new(loc.store.clone(), path))), url).await
}

async fn write(df: DataFrame, format: OutputFormat, mut sink: Sink, url: &str) -> Result<Written, QueryError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| {
        let hint = super::suggest::value_hint(&e.to_string());
        QueryError::Results { url: url.into(), hint, source: e }
    };
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut written = Written::default();
    let mut encoder = match format {
        OutputFormat::Table => {
            let batches = df.collect().await.map_err(|e| err(e.into()))?;
            let text = table_text(&schema, &batches).map_err(|e| err(e.into()))? + "\n";
            sink.write(text.as_bytes()).await.map_err(|e| err(e.into()))?;
            sink.finish().await.map_err(|e| err(e.into()))?;
            written.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            written.bytes = text.len() as u64;
            return Ok(written);
        }
        OutputFormat::Parquet => {
            let Sink::Object(object) = sink else {
                return Err(QueryError::Output { url: url.into(), message: "Parquet needs an object to write to".into() });
            };
            let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level"))).build();
            let mut w = AsyncArrowWriter::try_new(*object, schema, Some(props)).map_err(|e| err(e.into()))?;
            let mut stream = df.execute_stream().await.map_err(|e| err(e.into()))?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| err(e.into()))?;
                written.rows += batch.num_rows() as u64;
                w.write(&batch).await.map_err(|e| err(e.into()))?;
            }
            written.bytes = w.bytes_written() as u64;
            w.close().await.map_err(|e| err(e.into()))?;
            return Ok(written);
        }
        OutputFormat::Csv => Encoder::Csv { header: true },
        OutputFormat::Json => Encoder::Json,
    };
    let mut stream = df.execute_stream().await.map_err(|e| err(e.into()))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| err(e.into()))?;
        let bytes = encoder.encode(&batch).map_err(|e| err(e.into()))?;
        sink.write(&bytes).await.map_err(|e| err(e.into()))?;
        written.rows += batch.num_rows() as u64;
        written.bytes += bytes.len() as u64;
    }
    if let Encoder::Csv { header: true } = encoder {
        // An empty result still gets its header row.
        let bytes = encoder.encode(&RecordBatch::new_empty(schema)).map_err(|e| err(e.into()))?;
        sink.write(&bytes).await.map_err(|e| err(e.into()))?;
    }
    sink.finish().await.map_err(|e| err(e.into()))?;
    Ok(written)
}

/// `(folder URL, file name)` of an object URL or path.
fn split_object_url(url: &str) -> Option<(&str, &str)> {
    let trimmed = url.trim();
    let (folder, name) = match trimmed.rsplit_once('/') {
        Some((f, n)) => (f, n),
        None => (".", trimmed),
    };
    let folder = if folder.is_empty() { "/" } else { folder };
    // `s3://bucket` alone has no file name.
    (!name.is_empty() && !folder.ends_with(':') && !folder.ends_with(":/")).then_some((folder, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_urls_split() {
        assert_eq!(split_object_url("out.csv"), Some((".", "out.csv")));
        assert_eq!(split_object_url("./a/out.csv"), Some(("./a", "out.csv")));
        assert_eq!(split_object_url("/out.csv"), Some(("/", "out.csv")));
        assert_eq!(split_object_url("s3://b/x/v.parquet"), Some(("s3://b/x", "v.parquet")));
        assert_eq!(split_object_url("s3://b/"), None);
        assert_eq!(split_object_url("s3://b"), None);
        assert_eq!(OutputFormat::from_name("a/B.PARQUET"), Some(OutputFormat::Parquet));
        assert_eq!(OutputFormat::from_name("a/b.jsonl"), Some(OutputFormat::Json));
    }
}
