//! `cinestream evaluate`: how well one labeller agrees with a reference — another labeller's
//! masks (per-image Dice of LV and MY, volumes, EF) or the truth volumes (EDV, ESV, EF) — read
//! from the tables only, so it works on any labeller: a model's output, manual masks, the phantom.
//!
//! - `dice`: per-image Dice and the pairing of the two labellers' masks as they stream;
//! - `agreement`: per-study differences, Bland–Altman, good EF but bad volumes, slice positions;
//! - `tables`: the `evaluation_images` and `evaluation_studies` Parquet files;
//! - `plots` and `report`: PNG plots, `report.html` and `summary.md`.
//!
//! Masks are read a few studies per query (`WHERE study_id IN (…)`, pruned by the tables'
//! statistics) and scored as pairs meet, so memory holds at most those studies' masks. Study
//! volumes come from the `volumes` view (or `label_quality` against the truth), so a `--table` /
//! `--view` replacing a link of that chain (another group's volumes, another truth) is used. The
//! |EF error| statistics come from the saved `ef_error_stats` query, run over this evaluation's
//! per-study errors in place of `ef_errors`.

pub mod agreement;
pub mod attach;
pub mod dice;
mod images;
pub mod plots;
pub mod report;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use datafusion::datasource::MemTable;

use serde::Serialize;

use crate::progress::Progress;
use crate::query::read::{ReadError, collect, column as col, quote};
use crate::query::{QueryError, Session, selection};
use crate::store::StoreLocation;
use agreement::{BlandAltman, SlicePositions, StudyRow, Volumes};
pub use images::{DICE_BINS, DiceSummary};

/// What went wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Study(#[from] crate::viewer::ViewerError),
    #[error(transparent)]
    Selection(#[from] crate::query::selection::SelectionError),
    #[error("labeller `{labeller}` has no masks in `labels` and no rows in `volumes`; the labellers are: {known}")]
    UnknownLabeller { labeller: String, known: String },
    #[error("nothing to evaluate: {0}")]
    Nothing(String),
    #[error("{0}")]
    Data(String),
    /// Building an in-memory table of this evaluation's rows for SQL.
    #[error("building the table of {what}: {source}")]
    Rows { what: &'static str, source: datafusion::error::DataFusionError },
    #[error("writing `{url}`: {source}")]
    Write { url: String, source: parquet::errors::ParquetError },
    #[error("reading the figure to attach `{url}`: {source}")]
    Attachment { url: String, source: crate::store::ReadError },
    #[error("writing `{url}`: {}", crate::store::explain(.source))]
    Put { url: String, source: object_store::Error },
}

fn rows_err(what: &'static str) -> impl FnOnce(datafusion::error::DataFusionError) -> EvaluateError {
    move |source| EvaluateError::Rows { what, source }
}

pub(super) fn query_err(context: &str) -> impl FnOnce(QueryError) -> EvaluateError + '_ {
    move |e| ReadError::query(context)(e).into()
}

/// What the labeller is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The truth volumes (the `truth` view, by default `studies.truth_*`).
    Truth,
    /// Another labeller's masks and volumes.
    Labeller(String),
}

impl Reference {
    pub fn name(&self) -> &str {
        match self {
            Reference::Truth => "truth",
            Reference::Labeller(l) => l,
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvaluateConfig {
    pub labeller: String,
    pub reference: Reference,
    /// Only the studies of `SELECT study_id FROM studies WHERE <this>` …
    pub filter: Option<String>,
    /// … or the frames of this selection (its studies for volumes, its frames for Dice).
    pub selection: Option<String>,
    /// Studies shown with overlays in the report (the lowest mean Dice, else the largest
    /// |EF error|).
    pub worst: usize,
    /// Other figures for the report (e.g. a training run's learning curve): file name → PNG.
    pub attachments: Vec<(String, Vec<u8>)>,
}

/// The `ef_error_stats` row of this evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EfErrorStats {
    pub studies: i64,
    pub not_computable: i64,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub median: Option<f64>,
    pub q1: Option<f64>,
    pub q3: Option<f64>,
    pub iqr: Option<f64>,
}

/// Everything an evaluation found.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub labeller: String,
    pub reference: String,
    pub dice: DiceSummary,
    pub ef_errors: EfErrorStats,
    pub bland_altman_ef: Option<BlandAltman>,
    pub bland_altman_edv: Option<BlandAltman>,
    pub bland_altman_esv: Option<BlandAltman>,
    /// Studies with |relative EF error| ≤ 10% and a volume off by more than 20%, and the
    /// studies where that can be judged.
    pub good_ef_bad_volumes: (usize, usize),
    pub slice_positions: Option<SlicePositions>,
    pub studies: Vec<StudyRow>,
    /// Problems that left studies out, each naming them.
    pub problems: Vec<String>,
    /// Images only one of the two labellers masked (in studies both labelled).
    pub unpaired_images: [usize; 2],
    /// Files written (URLs).
    pub written: Vec<String>,
}

fn opt_f64(a: &dyn Array, i: usize) -> Option<f64> {
    a.is_valid(i).then(|| a.as_primitive::<Float64Type>().value(i))
}

fn opt_i64(a: &dyn Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.as_primitive::<Int64Type>().value(i))
}

/// A list of ids for messages: the first ten, then how many more.
pub fn id_list(ids: &BTreeSet<String>) -> String {
    let more = ids.len().saturating_sub(10);
    let mut out = ids.iter().map(String::as_str).take(10).collect::<Vec<_>>().join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

/// Labellers with masks or volumes, with their studies (for messages and the check).
async fn known_labellers(session: &Session) -> Result<BTreeMap<String, i64>, EvaluateError> {
    let ctx = "listing the labellers (`volumes`)";
    let mut out = BTreeMap::new();
    for b in
        collect(session, "SELECT CAST(labeller AS VARCHAR) AS labeller, count(DISTINCT study_id) AS n FROM volumes GROUP BY 1", ctx).await?
    {
        let (l, n) = (col(&b, "labeller", &DataType::Utf8, ctx)?, col(&b, "n", &DataType::Int64, ctx)?);
        for i in 0..b.num_rows() {
            out.insert(l.as_string::<i32>().value(i).to_string(), n.as_primitive::<Int64Type>().value(i));
        }
    }
    Ok(out)
}

/// The study scope: `None` for every study, else the ids allowed.
async fn scope(session: &Session, data: Option<&StoreLocation>, cfg: &EvaluateConfig) -> Result<Option<BTreeSet<String>>, EvaluateError> {
    let mut ids = None;
    if let Some(w) = &cfg.filter {
        let ctx = "choosing the studies (--where)";
        let mut s = BTreeSet::new();
        for b in collect(session, &format!("SELECT study_id FROM studies WHERE {w}"), ctx).await? {
            s.extend(col(&b, "study_id", &DataType::Utf8, ctx)?.as_string::<i32>().iter().flatten().map(String::from));
        }
        ids = Some(s);
    }
    if let Some(name) = &cfg.selection {
        let data = data.ok_or_else(|| EvaluateError::Data("--selection needs --data".into()))?;
        let (_, batches) = selection::load(data, name).await?;
        let context = format!("selection `{name}`");
        let mut s = BTreeSet::new();
        let mut keys = Vec::new();
        for b in &batches {
            let id = col(b, "study_id", &DataType::Utf8, &context)?;
            s.extend(id.as_string::<i32>().iter().flatten().map(String::from));
            let (z, t) = (col(b, "slice_index", &DataType::Int32, &context)?, col(b, "frame_index", &DataType::Int32, &context)?);
            keys.push(
                RecordBatch::try_from_iter([("study_id", id), ("slice_index", z), ("frame_index", t)])
                    .map_err(|e| rows_err("the selection's frames")(e.into()))?,
            );
        }
        if let Some(first) = keys.first() {
            let table = MemTable::try_new(first.schema(), vec![keys.clone()]).map_err(rows_err("the selection's frames"))?;
            let ctx = session.context();
            let _ = ctx.deregister_table(KEYS);
            ctx.register_table(KEYS, Arc::new(table)).map_err(rows_err("the selection's frames"))?;
        }
        ids = Some(s);
    }
    Ok(ids)
}

/// The selection's frame keys in the session (when `--selection`).
pub(super) const KEYS: &str = "_evaluate_keys";

/// One labeller's volumes from `volumes`: study → volumes.
async fn volumes_of(session: &Session, labeller: &str) -> Result<BTreeMap<String, Volumes>, EvaluateError> {
    let ctx = format!("reading `{labeller}`'s volumes (`volumes`)");
    // Another group's `volumes` may lack the frame columns: they read as null.
    let df = session.sql("SELECT * FROM volumes").await.map_err(query_err(&ctx))?;
    let has = |c: &str| df.schema().fields().iter().any(|f| f.name() == c);
    for needed in ["study_id", "labeller", "edv_ml", "esv_ml"] {
        if !has(needed) {
            return Err(EvaluateError::Data(format!(
                "{ctx}: `volumes` has no `{needed}` column; a replacement needs study_id, labeller, edv_ml, esv_ml (ed_frame, es_frame optional)"
            )));
        }
    }
    let frame = |c: &str| {
        if has(c) { format!("CAST({c} AS BIGINT) AS {c}") } else { format!("CAST(NULL AS BIGINT) AS {c}") }
    };
    let sql = format!(
        "SELECT CAST(study_id AS VARCHAR) AS study_id, CAST(edv_ml AS DOUBLE) AS edv_ml, CAST(esv_ml AS DOUBLE) AS esv_ml, {}, {} FROM volumes WHERE labeller = {}",
        frame("ed_frame"),
        frame("es_frame"),
        quote(labeller)
    );
    let mut out = BTreeMap::new();
    for b in collect(session, &sql, &ctx).await? {
        let id = col(&b, "study_id", &DataType::Utf8, &ctx)?;
        let id = id.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.insert(
                id.value(i).to_string(),
                Volumes {
                    edv_ml: opt_f64(b.column(1), i),
                    esv_ml: opt_f64(b.column(2), i),
                    ed_frame: opt_i64(b.column(3), i),
                    es_frame: opt_i64(b.column(4), i),
                },
            );
        }
    }
    Ok(out)
}

/// Splits of the studies (`studies`).
async fn splits(session: &Session) -> Result<HashMap<String, (Option<String>, i32)>, EvaluateError> {
    let ctx = "reading `studies`";
    let mut out = HashMap::new();
    for b in collect(session, "SELECT study_id, split, n_slices FROM studies", ctx).await? {
        let (id, split, n) = (
            col(&b, "study_id", &DataType::Utf8, ctx)?,
            col(&b, "split", &DataType::Utf8, ctx)?,
            col(&b, "n_slices", &DataType::Int32, ctx)?,
        );
        let (id, split, n) = (id.as_string::<i32>(), split.as_string::<i32>(), n.as_primitive::<Int32Type>());
        for i in 0..b.num_rows() {
            out.insert(id.value(i).to_string(), (split.is_valid(i).then(|| split.value(i).to_string()), n.value(i)));
        }
    }
    Ok(out)
}

/// Per-study rows against the truth: `label_quality`'s preferred rows and `ef_errors`' studies
/// the labeller gave no volumes (the same studies and matching as `ef_error_stats`).
async fn against_truth(
    session: &Session,
    cfg: &EvaluateConfig,
    allowed: &Option<BTreeSet<String>>,
    ev: &mut Evaluation,
) -> Result<Vec<StudyRow>, EvaluateError> {
    let a = volumes_of(session, &cfg.labeller).await?;
    let ctx = "joining the volumes with the truth (`ef_errors`, `label_quality`)";
    let sql = format!(
        "SELECT CAST(e.study_id AS VARCHAR) AS study_id, CAST(e.split AS VARCHAR) AS split, CAST(q.truth_edv_ml AS DOUBLE) AS truth_edv_ml, CAST(q.truth_esv_ml AS DOUBLE) AS truth_esv_ml, \
         CAST(t.diastole_ml AS DOUBLE) AS diastole_ml, CAST(t.systole_ml AS DOUBLE) AS systole_ml \
         FROM ef_errors e \
         LEFT JOIN label_quality q ON q.study_id = e.study_id AND q.labeller = e.labeller AND q.preferred \
         LEFT JOIN truth t ON t.study_id = e.study_id \
         WHERE e.labeller = {}",
        quote(&cfg.labeller)
    );
    let mut rows = Vec::new();
    let mut matched = BTreeSet::new();
    for b in collect(session, &sql, ctx).await? {
        let (id, split) = (col(&b, "study_id", &DataType::Utf8, ctx)?, col(&b, "split", &DataType::Utf8, ctx)?);
        let (id, split) = (id.as_string::<i32>(), split.as_string::<i32>());
        for i in 0..b.num_rows() {
            let study = id.value(i).to_string();
            matched.insert(study.clone());
            if allowed.as_ref().is_some_and(|s| !s.contains(&study)) {
                continue;
            }
            let truth = Volumes {
                edv_ml: opt_f64(b.column(2), i).or(opt_f64(b.column(4), i)),
                esv_ml: opt_f64(b.column(3), i).or(opt_f64(b.column(5), i)),
                ..Default::default()
            };
            let split = split.is_valid(i).then(|| split.value(i).to_string());
            rows.push(agreement::compare(&study, split, &cfg.labeller, "truth", a.get(&study).copied(), truth));
        }
    }
    // Volumes of studies without truth (or whose rot90 variant was preferred) are not evaluated.
    let without: BTreeSet<String> =
        a.keys().filter(|s| !matched.contains(*s) && allowed.as_ref().is_none_or(|al| al.contains(*s))).cloned().collect();
    if !without.is_empty() {
        ev.problems.push(format!(
            "{} studies have `{}` volumes but no truth volumes (or their `_rot90` variant is the one used), so they are left out: {}; give their truth with `ingest --truth` or --table/--view truth=…",
            without.len(),
            cfg.labeller,
            id_list(&without)
        ));
    }
    Ok(rows)
}

/// Per-study rows against another labeller's volumes.
fn against_labeller(
    cfg: &EvaluateConfig,
    reference: &str,
    a: &BTreeMap<String, Volumes>,
    b: &BTreeMap<String, Volumes>,
    splits: &HashMap<String, (Option<String>, i32)>,
    allowed: &Option<BTreeSet<String>>,
    ev: &mut Evaluation,
) -> Vec<StudyRow> {
    let keep = |s: &String| allowed.as_ref().is_none_or(|al| al.contains(s));
    let no_ref: BTreeSet<String> = a.keys().filter(|s| !b.contains_key(*s) && keep(s)).cloned().collect();
    if !no_ref.is_empty() {
        ev.problems.push(format!(
            "{} studies have `{}` volumes but no `{reference}` volumes, so they are left out: {}",
            no_ref.len(),
            cfg.labeller,
            id_list(&no_ref)
        ));
    }
    b.iter()
        .filter(|(s, _)| keep(s))
        .map(|(s, r)| agreement::compare(s, splits.get(s).and_then(|x| x.0.clone()), &cfg.labeller, reference, a.get(s).copied(), *r))
        .collect()
}

/// Studies with masks of each labeller (from `labels`, metadata only).
async fn masked_studies(session: &Session, labeller: &str) -> Result<BTreeSet<String>, EvaluateError> {
    let ctx = format!("listing the studies `{labeller}` masked");
    let mut out = BTreeSet::new();
    for b in collect(session, &format!("SELECT DISTINCT study_id FROM labels WHERE labeller = {}", quote(labeller)), &ctx).await? {
        out.extend(col(&b, "study_id", &DataType::Utf8, &ctx)?.as_string::<i32>().iter().flatten().map(String::from));
    }
    Ok(out)
}

/// Runs the saved `ef_error_stats` over this evaluation's per-study errors.
async fn ef_error_stats(session: &Session, rows: &[StudyRow]) -> Result<EfErrorStats, EvaluateError> {
    use arrow::array::{BooleanArray, Float64Array, StringArray};
    let batch = RecordBatch::try_from_iter([
        ("study_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.study_id.as_str()))) as Arc<dyn Array>),
        ("labeller", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.labeller.as_str())))),
        ("split", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.split.as_deref())))),
        ("ef_pct", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.ef_pct)))),
        ("truth_ef_pct", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.reference_ef_pct)))),
        ("ef_error_pct", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.ef_error_pct)))),
        ("not_computable", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.not_computable))))),
        ("no_volumes", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.edv_ml.is_none() && r.esv_ml.is_none()))))),
    ])
    .map_err(|e| rows_err("EF errors")(e.into()))?;
    let ctx = session.context();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(rows_err("EF errors"))?;
    for t in ["ef_errors", "ef_error_stats"] {
        let _ = ctx.deregister_table(t);
    }
    ctx.register_table("ef_errors", Arc::new(table)).map_err(rows_err("EF errors"))?;
    let context = "the saved query `ef_error_stats` over this evaluation";
    let b = collect(session, "SELECT * FROM ef_error_stats", context).await?;
    let Some(b) = b.iter().find(|b| b.num_rows() > 0) else {
        return Ok(EfErrorStats::default());
    };
    let f = |n: &str| -> Result<Option<f64>, EvaluateError> { Ok(opt_f64(&col(b, n, &DataType::Float64, context)?, 0)) };
    let i = |n: &str| -> Result<i64, EvaluateError> { Ok(opt_i64(&col(b, n, &DataType::Int64, context)?, 0).unwrap_or(0)) };
    Ok(EfErrorStats {
        studies: i("studies")?,
        not_computable: i("not_computable")?,
        mean: f("mean")?,
        sd: f("sd")?,
        median: f("median")?,
        q1: f("q1")?,
        q3: f("q3")?,
        iqr: f("iqr")?,
    })
}

/// Evaluates `cfg.labeller` against `cfg.reference`, writing tables, plots and the report to
/// `out`; `progress` counts the studies whose masks were scored.
pub async fn run(
    session: &Session,
    data: Option<&StoreLocation>,
    cfg: &EvaluateConfig,
    out: &StoreLocation,
    progress: &dyn Progress,
) -> Result<Evaluation, EvaluateError> {
    let known = known_labellers(session).await?;
    for l in std::iter::once(&cfg.labeller).chain(match &cfg.reference {
        Reference::Labeller(r) => Some(r),
        Reference::Truth => None,
    }) {
        if !known.contains_key(l) {
            return Err(EvaluateError::UnknownLabeller { labeller: l.clone(), known: crate::viewer::known_list(&known) });
        }
    }
    session.for_images().await.map_err(query_err("setting up the session"))?;
    let allowed = scope(session, data, cfg).await?;
    let splits = splits(session).await?;
    let mut ev = Evaluation {
        labeller: cfg.labeller.clone(),
        reference: cfg.reference.name().to_string(),
        dice: DiceSummary::default(),
        ef_errors: EfErrorStats::default(),
        bland_altman_ef: None,
        bland_altman_edv: None,
        bland_altman_esv: None,
        good_ef_bad_volumes: (0, 0),
        slice_positions: None,
        studies: Vec::new(),
        problems: Vec::new(),
        unpaired_images: [0, 0],
        written: Vec::new(),
    };
    let mut rows = match &cfg.reference {
        Reference::Truth => {
            // No masks to compare: the per-image table is written empty, with its schema.
            ev.written.push(
                tables::TableWriter::create(out, "evaluation_images.parquet", crate::tables::schemas::evaluation_images())?.close().await?,
            );
            against_truth(session, cfg, &allowed, &mut ev).await?
        }
        Reference::Labeller(r) => {
            let (a, b) = (volumes_of(session, &cfg.labeller).await?, volumes_of(session, r).await?);
            let rows = against_labeller(cfg, r, &a, &b, &splits, &allowed, &mut ev);
            let (ma, mb) = (masked_studies(session, &cfg.labeller).await?, masked_studies(session, r).await?);
            let keep = |s: &&String| allowed.as_ref().is_none_or(|al| al.contains(*s));
            let both: Vec<String> = ma.intersection(&mb).filter(keep).cloned().collect();
            let one: BTreeSet<String> = ma.symmetric_difference(&mb).filter(keep).cloned().collect();
            if !one.is_empty() {
                ev.problems.push(format!(
                    "{} studies have masks of only one of `{}` and `{r}`, so they have no Dice: {}",
                    one.len(),
                    cfg.labeller,
                    id_list(&one)
                ));
            }
            let per_study = images::score_images(session, cfg, r, &both, &splits, out, &mut ev, progress).await?;
            let mut rows = rows;
            for row in &mut rows {
                if let Some((n, sums)) = per_study.get(&row.study_id) {
                    row.images = *n as i64;
                    row.dice_lv_mean = Some(sums[0] / *n as f64);
                    row.dice_my_mean = Some(sums[1] / *n as f64);
                }
            }
            rows
        }
    };
    if rows.is_empty() {
        let why = match &cfg.reference {
            Reference::Truth => format!("no study in scope has truth volumes (the `truth` view) and `{}` volumes", cfg.labeller),
            Reference::Labeller(r) => format!("no study in scope has `{r}` volumes"),
        };
        return Err(EvaluateError::Nothing(format!("{why}{}", ev.problems.iter().map(|p| format!("; {p}")).collect::<String>())));
    }
    rows.sort_by(|a, b| a.study_id.cmp(&b.study_id));
    ev.dice.finish();
    ev.ef_errors = ef_error_stats(session, &rows).await?;
    let pairs = |g: fn(&StudyRow) -> (Option<f64>, Option<f64>)| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| match g(r) {
                (Some(x), Some(y)) => Some((x, y)),
                _ => None,
            })
            .collect()
    };
    ev.bland_altman_ef = agreement::bland_altman(&pairs(|r| (r.reference_ef_pct, r.ef_pct)));
    ev.bland_altman_edv = agreement::bland_altman(&pairs(|r| (r.reference_edv_ml, r.edv_ml)));
    ev.bland_altman_esv = agreement::bland_altman(&pairs(|r| (r.reference_esv_ml, r.esv_ml)));
    let judged: Vec<bool> = rows.iter().filter_map(|r| r.good_ef_bad_volumes).collect();
    ev.good_ef_bad_volumes = (judged.iter().filter(|b| **b).count(), judged.len());
    ev.studies = rows;
    let mut studies_file = tables::TableWriter::create(out, "evaluation_studies.parquet", crate::tables::schemas::evaluation_studies())?;
    studies_file.write(&tables::studies_batch(&ev.studies)).await?;
    ev.written.push(studies_file.close().await?);
    report::write(session, cfg, &ev, out).await.map(|w| ev.written.extend(w))?;
    Ok(ev)
}
