//! Copy-on-write removal of rows: the files of a table that hold rows whose `column` is one of
//! `values` are read, written again without those rows, and replaced (a `remove` of the old
//! file and an `add` of the new one) in the same commit that adds the new rows — so a reader sees
//! the table before the replacement or after it, never a mix.
//!
//! Files whose statistics show the values cannot be inside are not opened.

use std::collections::BTreeSet;

use arrow::array::{AsArray, BooleanArray};
use deltalake_core::DeltaTable;

use super::delta;
use super::reader::read_objects;
use super::spec::TableSpec;
use super::writer::{ShardConfig, TableWriter};
use super::{ShardError, TableChange};
use crate::store::StoreLocation;

/// The change that removes every row of `spec`'s table (`t`) whose `column` is in `values`.
pub async fn without_rows(
    out: &StoreLocation,
    spec: &'static TableSpec,
    t: &DeltaTable,
    column: &str,
    values: &BTreeSet<String>,
    writer_id: &str,
    cfg: &ShardConfig,
) -> Result<TableChange, ShardError> {
    let mut change = TableChange { replace_where: Some(predicate(column, values)), ..Default::default() };
    if values.is_empty() {
        return Ok(change);
    }
    let table = spec.name;
    let mut writer = TableWriter::new(out, spec, writer_id, cfg);
    for f in delta::active_files(t)?.iter().filter(|f| f.may_hold(column, values)) {
        let path = out.child(&format!("{table}/{}", f.path));
        let object = out.object_url(&path);
        let batches = read_objects(&out.store, std::slice::from_ref(&path), None)
            .await
            .map_err(|source| ShardError::Read { object: object.clone(), source })?;
        let mut removed = 0u64;
        let mut kept = Vec::with_capacity(batches.len());
        for b in batches {
            let col =
                b.column_by_name(column).ok_or_else(|| ShardError::NoColumn { object: object.clone(), column: column.to_string() })?;
            let keep: BooleanArray = col.as_string::<i32>().iter().map(|v| Some(!v.is_some_and(|v| values.contains(v)))).collect();
            removed += (keep.len() - keep.true_count()) as u64;
            kept.push(
                arrow::compute::filter_record_batch(&b, &keep)
                    .map_err(|e| ShardError::Read { object: object.clone(), source: e.into() })?,
            );
        }
        if removed == 0 {
            continue;
        }
        tracing::info!(table, file = %f.path, rows_removed = removed, "rewriting a file without the replaced rows");
        for b in kept {
            change.rows_rewritten += b.num_rows() as u64;
            writer.write(b).await?;
        }
        change.removes.push(delta::remove_action(f));
        change.rows_removed += removed;
    }
    change.adds = writer.finish().await?;
    Ok(change)
}

/// `column IN ('a', 'b')`, the predicate a replace commit records.
fn predicate(column: &str, values: &BTreeSet<String>) -> String {
    let list: Vec<String> = values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
    format!("{column} IN ({})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_predicates_quote_values() {
        assert_eq!(predicate("study_id", &["a'b".to_string(), "c".to_string()].into()), "study_id IN ('a''b', 'c')");
    }
}
