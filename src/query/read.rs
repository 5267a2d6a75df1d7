//! Reading small query results, for the stages that ask the tables a question (evaluate, export,
//! the scheduler): run SQL and collect it, take a column at the type the caller needs, quote a
//! literal. Errors keep DataFusion's and Arrow's as their source, so a storage failure in the
//! middle of a read is still recognised as one (`store::transient`).

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use super::{QueryError, Session};

/// Errors reading a query's result; `context` says what was being read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Planning the query (a missing table or column, a bad saved query).
    #[error("{context}: {source}")]
    Query { context: String, source: Box<QueryError> },
    /// Running it: reading the files, computing the rows.
    #[error("{context}: {source}")]
    Execute { context: String, source: DataFusionError },
    #[error("{context}: no `{column}` column")]
    NoColumn { context: String, column: String },
    #[error("{context}: column `{column}`: {source}")]
    Cast { context: String, column: String, source: ArrowError },
}

impl ReadError {
    /// A planning error, with what was being read.
    pub fn query(context: &str) -> impl FnOnce(QueryError) -> ReadError + '_ {
        move |e| ReadError::Query { context: context.to_string(), source: Box::new(e) }
    }

    /// An execution error, with what was being read.
    pub fn execute(context: &str) -> impl FnOnce(DataFusionError) -> ReadError + '_ {
        move |source| ReadError::Execute { context: context.to_string(), source }
    }
}

/// Quotes a string as an SQL literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Runs a query and collects its (small) result.
pub async fn collect(session: &Session, sql: &str, context: &str) -> Result<Vec<RecordBatch>, ReadError> {
    let df = session.sql(sql).await.map_err(ReadError::query(context))?;
    df.collect().await.map_err(ReadError::execute(context))
}

/// A column cast to `to` (whatever type the scan or a user's table chose).
pub fn column(b: &RecordBatch, name: &str, to: &DataType, context: &str) -> Result<ArrayRef, ReadError> {
    let c = b.column_by_name(name).ok_or_else(|| ReadError::NoColumn { context: context.to_string(), column: name.to_string() })?;
    arrow::compute::cast(c, to).map_err(|source| ReadError::Cast { context: context.to_string(), column: name.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_quotes() {
        assert_eq!(quote("a'b"), "'a''b'");
    }

    /// A storage failure while a query streams its files (training's data, evaluation's rows)
    /// stays reachable through the chain, so the command exits 75 ("run again later").
    #[test]
    fn a_storage_failure_while_reading_stays_transient() {
        let storage = object_store::Error::Generic { store: "S3", source: "error sending request: connection reset".into() };
        let direct = ReadError::execute("the training images")(DataFusionError::ObjectStore(Box::new(storage)));
        assert!(crate::store::transient(&direct));
        let storage = object_store::Error::Generic { store: "S3", source: "operation timed out".into() };
        let through_parquet = DataFusionError::ParquetError(Box::new(parquet::errors::ParquetError::External(Box::new(storage))));
        assert!(crate::store::transient(&ReadError::execute("the training images")(through_parquet)));
        let planning = ReadError::execute("x")(DataFusionError::Plan("no such column".into()));
        assert!(!crate::store::transient(&planning));
    }
}
