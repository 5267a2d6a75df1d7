//! SQL functions cinestream adds to DataFusion:
//!
//! - `kaggle_id(study_id)` → BIGINT: the leading number of a Kaggle-style id (`123`, `123_a`,
//!   `123_rot90` → 123), NULL for other ids (hashed pseudonyms).
//! - `kaggle_split(study_id)` → VARCHAR: `train` (ids 1–500), `validate` (501–700), `test`
//!   (701–1140), else NULL.
//! - `shuffle_key(seed, key)` → BIGINT: a seeded pseudo-random rank of a text key. Ordering by it
//!   is one fixed shuffle per seed, so "the first n" of it is a prefix-stable random subset (the
//!   first 3 of a seed are among its first 7). The function is FNV-1a over the seed and the key's
//!   UTF-8 bytes, finished by the SplitMix64 mixer: stable across platforms and releases.
//! - the aggregates `loess_peak(x, y)` and `loess_peak_at(x, y)` ([`super::loess`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

/// Registers the functions in a session.
pub fn register(ctx: &SessionContext) {
    for f in functions() {
        ctx.register_udf(f);
    }
    for a in super::loess::aggregates() {
        ctx.register_udaf(a);
    }
}

/// `(name, signature, what it does)` for `--help`.
pub const HELP: &[(&str, &str)] = &[
    ("kaggle_id(study_id)", "leading number of a Kaggle-style id (123_rot90 → 123), else NULL"),
    ("kaggle_split(study_id)", "train (1–500) / validate (501–700) / test (701–1140) by Kaggle id, else NULL"),
    ("shuffle_key(seed, key)", "seeded random rank of a text key: ORDER BY it for a prefix-stable shuffle"),
    ("loess_peak(x, y)", "aggregate: highest value of the loess fit (span 0.75, degree 2) of y on x"),
    ("loess_peak_at(x, y)", "aggregate: the x of loess_peak"),
];

fn functions() -> Vec<ScalarUDF> {
    vec![
        create_udf(
            "kaggle_id",
            vec![DataType::Utf8],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(|a: &[ColumnarValue]| map_text(a, kaggle_id_array)),
        ),
        create_udf(
            "kaggle_split",
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|a: &[ColumnarValue]| map_text(a, kaggle_split_array)),
        ),
        create_udf(
            "shuffle_key",
            vec![DataType::Int64, DataType::Utf8],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(shuffle_key_values),
        ),
    ]
}

/// The leading number of a Kaggle-style id: digits, optionally followed by `_` and a suffix.
pub fn kaggle_id(id: &str) -> Option<i64> {
    let digits = id.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits < id.len() && id.as_bytes()[digits] != b'_') {
        return None;
    }
    id[..digits].parse().ok()
}

/// The Kaggle split of an id.
pub fn kaggle_split(id: &str) -> Option<&'static str> {
    match kaggle_id(id)? {
        1..=500 => Some("train"),
        501..=700 => Some("validate"),
        701..=1140 => Some("test"),
        _ => None,
    }
}

/// The seeded rank of a key (see the module docs).
pub fn shuffle_key(seed: i64, key: &str) -> i64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for b in seed.to_le_bytes().iter().chain(key.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64 finaliser: spreads FNV's weak low bits over the whole word.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 31)) as i64
}

fn text_array(v: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let a = v.to_array(rows)?;
    Ok(arrow::compute::cast(&a, &DataType::Utf8)?)
}

fn rows_of(args: &[ColumnarValue]) -> usize {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1)
}

fn map_text(args: &[ColumnarValue], f: fn(&StringArray) -> ArrayRef) -> Result<ColumnarValue> {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let a = text_array(&args[0], rows_of(args))?;
    let out = f(a.as_string::<i32>());
    Ok(if scalar { ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
}

fn kaggle_id_array(a: &StringArray) -> ArrayRef {
    Arc::new(a.iter().map(|v| v.and_then(kaggle_id)).collect::<Int64Array>())
}

fn kaggle_split_array(a: &StringArray) -> ArrayRef {
    Arc::new(a.iter().map(|v| v.and_then(kaggle_split)).collect::<StringArray>())
}

fn shuffle_key_values(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let rows = rows_of(args);
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let seeds = arrow::compute::cast(&args[0].to_array(rows)?, &DataType::Int64)?;
    let seeds = seeds.as_primitive::<Int64Type>();
    let keys = text_array(&args[1], rows)?;
    let keys = keys.as_string::<i32>();
    let out: Int64Array =
        (0..rows).map(|i| (!seeds.is_null(i) && !keys.is_null(i)).then(|| shuffle_key(seeds.value(i), keys.value(i)))).collect();
    let out: ArrayRef = Arc::new(out);
    Ok(if scalar { ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaggle_ids_and_splits() {
        assert_eq!(kaggle_id("123"), Some(123));
        assert_eq!(kaggle_id("123_rot90"), Some(123));
        assert_eq!(kaggle_id("1082_a"), Some(1082));
        assert_eq!(kaggle_id("s1a2b3"), None);
        assert_eq!(kaggle_id("12ab"), None);
        assert_eq!(kaggle_id(""), None);
        assert_eq!(
            [1, 500, 501, 700, 701, 1140, 1141].map(|i| kaggle_split(&i.to_string())),
            [Some("train"), Some("train"), Some("validate"), Some("validate"), Some("test"), Some("test"), None]
        );
    }

    #[test]
    fn shuffle_is_seeded_and_spread() {
        assert_eq!(shuffle_key(1, "a"), shuffle_key(1, "a"));
        assert_ne!(shuffle_key(1, "a"), shuffle_key(2, "a"));
        // Neighbouring keys land all over the range: roughly half of the ranks are negative.
        let neg = (0..1000).filter(|i| shuffle_key(7, &format!("{i}")) < 0).count();
        assert!((400..600).contains(&neg), "{neg}");
        // The seed is part of the hash, not a suffix of the key: (1, "2") ≠ (12, "").
        assert_ne!(shuffle_key(1, "2"), shuffle_key(12, ""));
    }

    #[tokio::test]
    async fn functions_work_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let b = ctx
            .sql("SELECT kaggle_id(x) AS k, kaggle_split(x) AS s, shuffle_key(3, x) AS h FROM (VALUES ('700'), ('701_rot90'), ('sabc')) t(x)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let k: Vec<Option<i64>> = b[0].column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(k, [Some(700), Some(701), None]);
        let s: Vec<Option<&str>> = b[0].column(1).as_string::<i32>().iter().collect();
        assert_eq!(s, [Some("validate"), Some("test"), None]);
        assert_eq!(b[0].column(2).as_primitive::<Int64Type>().value(2), shuffle_key(3, "sabc"));
    }
}
