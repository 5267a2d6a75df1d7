//! One of our tables (`studies`, `labels`, …) replaced for a run by `--table NAME=FILE` or
//! `--view NAME=SQL`: the replacement is conformed to the table's schema, so every saved query
//! reading the table reads it. Columns of the same kind are cast (an integer count read as a
//! float, a string of another encoding), numbers become text where text is needed (a numeric
//! study id read from a CSV); a nullable column the replacement lacks reads as null.
//! A missing non-nullable column, or a column of another kind (text where a number is needed),
//! is refused naming every such column. Columns the table does not have are kept.

use datafusion::arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::{Expr, SessionContext, cast, ident, lit};
use datafusion::scalar::ScalarValue;

use super::QueryError;
use crate::tables;

/// The kind of a type: values of one kind convert without surprises.
fn kind(t: &DataType) -> &'static str {
    match t {
        t if t.is_numeric() => "number",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Boolean => "boolean",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "binary",
        _ => "other",
    }
}

/// Registers `df` as table `name`, conformed to our schema of `name`; `origin` says where the
/// replacement came from (for messages).
pub fn register(ctx: &SessionContext, name: &str, origin: &str, df: DataFrame) -> Result<(), QueryError> {
    let want = tables::schema(name).expect("only our tables are conformed");
    let have = df.schema().clone();
    let (mut exprs, mut missing, mut mistyped): (Vec<Expr>, Vec<String>, Vec<String>) = (Vec::new(), Vec::new(), Vec::new());
    for f in want.fields() {
        match have.fields().iter().find(|h| h.name() == f.name()) {
            Some(h) if h.data_type() == f.data_type() => exprs.push(ident(f.name())),
            // The same kind, or anything printable as text (a numeric id read from a CSV).
            Some(h)
                if kind(h.data_type()) == kind(f.data_type())
                    || (kind(f.data_type()) == "text" && matches!(kind(h.data_type()), "number" | "boolean")) =>
            {
                exprs.push(cast(ident(f.name()), f.data_type().clone()).alias(f.name()))
            }
            Some(h) => mistyped.push(format!(
                "`{}` is {} ({}) where {name} has {} ({})",
                f.name(),
                kind(h.data_type()),
                h.data_type(),
                kind(f.data_type()),
                f.data_type()
            )),
            None if f.is_nullable() => {
                let null = ScalarValue::try_from(f.data_type())
                    .map_err(|e| QueryError::Execute { context: origin.into(), source: super::suggest::Root(e) })?;
                exprs.push(lit(null).alias(f.name()));
            }
            None => missing.push(format!("`{}` ({})", f.name(), f.data_type())),
        }
    }
    if !missing.is_empty() || !mistyped.is_empty() {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("it lacks {}", missing.join(", ")));
        }
        if !mistyped.is_empty() {
            why.push(mistyped.join("; "));
        }
        return Err(QueryError::Replacement { table: name.into(), origin: origin.into(), message: why.join("; ") });
    }
    exprs.extend(have.fields().iter().filter(|h| want.field_with_name(h.name()).is_err()).map(|h| ident(h.name())));
    let conformed = df.select(exprs).map_err(|e| QueryError::Execute { context: origin.into(), source: super::suggest::Root(e) })?;
    let register = |e| QueryError::Register { table: name.to_string(), source: e };
    ctx.deregister_table(name).map_err(register)?;
    ctx.register_table(name, conformed.into_view()).map_err(register)?;
    Ok(())
}

/// The names of our tables (those a replacement is conformed for).
pub fn is_ours(name: &str) -> bool {
    tables::schema(name).is_some()
}
