//! Running a study: every start trained on every subset, each run labelled on the test
//! volunteers and evaluated against the expert masks, every result committed exactly once.
//!
//! 1. **Prepare** (before any training, so bad input fails at once): the validation and test
//!    sets must have labelled images; the subsets are drawn (or read from the membership file)
//!    and committed to `study_subsets` once — a rerun must draw the same ones; each subset and
//!    the validation set become selections (`study-<name>-<subset>`, `study-<name>-valid`).
//! 2. **Runs**, in a fixed order (starts, then subsets by size): a run whose `study_runs`
//!    commit exists is done; otherwise it trains under `<data>/studies/<name>/runs/<run>/`
//!    (two stages of round(epochs · N_full / N) epochs: frozen at lr[0] — except random
//!    weights — then unfrozen at lr[1]; validated on the images-seen schedule), resuming from
//!    its checkpoint when an earlier attempt left one; its last epoch's model labels the test
//!    studies (labeller `study-<name>-<run>`) and is evaluated against the expert masks; then
//!    `study_log` and `study_runs` are committed under the run's transaction id.
//! 3. **Base rows**: a start that is a model of ours (TL²) is also evaluated untouched, on the
//!    validation and the test studies (`subset` = `base`): the domain shift before transfer.
//! 4. **Report**: `fig6.png`, `peaks.png`, `report.html`, `summary.md` and the subsets in the
//!    authors' shape (`subsets.tsv`) under `<data>/studies/<name>/report/`.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::config::{StartSpec, StudyConfig, SubsetKind};
use super::record::{self, RunId, RunResult};
use super::subsets::{self, Drawn};
use object_store::ObjectStoreExt;

use super::{StudyError, report};
use crate::evaluate::{self, EvaluateConfig, Evaluation, Reference};
use crate::label::{self, LabelConfig};
use crate::model::{Device, ModelConfig};
use crate::progress::{Progress, Quiet};
use crate::query::read::{self, quote};
use crate::query::selection::{self, QuerySource, SelectionError};
use crate::query::{Session, SessionOptions};
use crate::store::{self, StoreLocation, StoreOptions};
use crate::tables;
use crate::train::{self, Init, SelectionSpec, Stage, TrainConfig};
use crate::workers::WorkShare;

/// How to run a study.
#[derive(Debug, Clone, Default)]
pub struct StudyOptions {
    pub device: Device,
    /// Only this worker's share of the runs (by a hash of the run's name).
    pub share: Option<WorkShare>,
    pub store: StoreOptions,
}

/// One planned run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub id: RunId,
    pub start: StartSpec,
    pub epochs_per_stage: usize,
    /// The training selection (None for a base row).
    pub selection: Option<String>,
}

/// A prepared study.
pub struct Prepared {
    pub cfg: StudyConfig,
    pub model: ModelConfig,
    pub data: StoreLocation,
    pub folder: StoreLocation,
    pub n_full: usize,
    pub runs: Vec<RunPlan>,
    pub valid_selection: String,
    /// Starts skipped, and why.
    pub notes: Vec<String>,
    pub pool: Vec<subsets::PoolImage>,
    pub drawn: Drawn,
}

/// What a study did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StudyReport {
    pub study: String,
    pub trained: Vec<String>,
    pub already_committed: Vec<String>,
    pub other_workers: Vec<String>,
    pub notes: Vec<String>,
    pub written: Vec<String>,
}

async fn session(data: &StoreLocation, store: &StoreOptions) -> Result<Session, StudyError> {
    Ok(Session::open(Some(data), &SessionOptions { store: store.clone(), ..Default::default() }).await?)
}

async fn count(session: &Session, sql: &str, context: &str) -> Result<i64, StudyError> {
    let b = read::collect(session, sql, context).await?;
    let c = b.first().map(|b| read::column(b, "n", &arrow::datatypes::DataType::Int64, context)).transpose()?;
    Ok(c.map(|c| arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&c).value(0)).unwrap_or(0))
}

/// Checks the study against the data and commits its subsets and selections: everything that
/// can fail on bad input fails here, before any training.
pub async fn prepare(cfg: &StudyConfig, model: &ModelConfig, data: &StoreLocation, opts: &StudyOptions) -> Result<Prepared, StudyError> {
    cfg.validate().map_err(StudyError::Config)?;
    model.validate().map_err(StudyError::Config)?;
    let s = session(data, &opts.store).await?;
    let labeller = quote(&cfg.labeller);
    for (what, cond) in [("validation", &cfg.valid), ("test", &cfg.test)] {
        let n = count(
            &s,
            &format!(
                "SELECT COUNT(*) AS n FROM labels WHERE labeller = {labeller} AND study_id IN (SELECT study_id FROM studies WHERE {cond})"
            ),
            &format!("the study's {what} set"),
        )
        .await?;
        if n == 0 {
            return Err(StudyError::Config(format!(
                "the {what} set (`{cond}`) has no images labelled by `{}`: check study.{} and study.labeller",
                cfg.labeller,
                if what == "test" { "test" } else { "valid" }
            )));
        }
    }
    let pool = subsets::pool(&s, cfg).await?;
    if pool.is_empty() {
        return Err(StudyError::Config(format!("the training set (`{}`) has no images labelled by `{}`", cfg.train, cfg.labeller)));
    }
    let drawn = match &cfg.membership {
        None => subsets::draw(&pool, &cfg.subsets),
        Some(url) => {
            let bytes =
                store::read_object(url, &opts.store).await.map_err(|e| StudyError::Config(format!("study.membership `{url}`: {e}")))?;
            subsets::from_membership(&pool, &String::from_utf8_lossy(&bytes), &cfg.subsets, url)
        }
    }
    .map_err(StudyError::Config)?;
    let folder = data.sub(&format!("studies/{}", cfg.name));
    commit_subsets(data, cfg, &pool, &drawn, &opts.store).await?;

    // Selections, read from the committed subsets.
    let s = session(data, &opts.store).await?;
    let valid_selection = format!("study-{}-valid", cfg.name);
    let valid_sql = format!(
        "SELECT study_id, slice_index, frame_index, labeller FROM labels WHERE labeller = {labeller} AND study_id IN (SELECT study_id FROM studies WHERE {})",
        cfg.valid
    );
    ensure_selection(&s, data, &valid_selection, &valid_sql).await?;
    let n_full = pool.len();
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    for start in &cfg.starts {
        if let Some(why) = start.skipped() {
            tracing::warn!("{why}");
            notes.push(why);
            continue;
        }
        if matches!(start.init, Init::Checkpoint(_)) {
            runs.push(RunPlan { id: id(cfg, start, "base", 0), start: start.clone(), epochs_per_stage: 0, selection: None });
        }
        let mut ordered: Vec<&String> = cfg.subsets.iter().collect();
        ordered.sort_by_key(|n| (std::cmp::Reverse(drawn[*n].len()), SubsetKind::parse(n)));
        for subset in ordered {
            let n = drawn[subset].len();
            let name = format!("study-{}-{subset}", cfg.name);
            let sql = format!(
                "SELECT study_id, slice_index, frame_index, {labeller} AS labeller FROM study_subsets WHERE study = {} AND subset = {}",
                quote(&cfg.name),
                quote(subset)
            );
            ensure_selection(&s, data, &name, &sql).await?;
            runs.push(RunPlan {
                id: id(cfg, start, subset, n),
                start: start.clone(),
                epochs_per_stage: cfg.epochs_per_stage(n_full, n),
                selection: Some(name),
            });
        }
    }
    Ok(Prepared { cfg: cfg.clone(), model: model.clone(), data: data.clone(), folder, n_full, runs, valid_selection, notes, pool, drawn })
}

fn id(cfg: &StudyConfig, start: &StartSpec, subset: &str, n: usize) -> RunId {
    RunId {
        study: cfg.name.clone(),
        run: format!("{}_{subset}", start.name),
        start: start.name.clone(),
        subset: subset.to_string(),
        subset_images: n as i64,
    }
}

/// Commits the subsets once; a rerun, or another worker, must have drawn the same images.
async fn commit_subsets(
    data: &StoreLocation,
    cfg: &StudyConfig,
    pool: &[subsets::PoolImage],
    drawn: &Drawn,
    store: &StoreOptions,
) -> Result<(), StudyError> {
    let app_id = record::subsets_app_id(&cfg.name);
    if record::published(data, &app_id).await? {
        // A session opened now: another worker may have published them a moment ago.
        let s = &session(data, store).await?;
        let sql = format!("SELECT subset, study_id, slice_index, frame_index FROM study_subsets WHERE study = {}", quote(&cfg.name));
        let mut had = BTreeSet::new();
        for b in read::collect(s, &sql, "the study's committed subsets").await? {
            let text = |c: &str| read::column(&b, c, &arrow::datatypes::DataType::Utf8, "study_subsets");
            let int = |c: &str| read::column(&b, c, &arrow::datatypes::DataType::Int32, "study_subsets");
            let (sub, ids, z, t) = (text("subset")?, text("study_id")?, int("slice_index")?, int("frame_index")?);
            use arrow::array::AsArray;
            let (sub, ids) = (sub.as_string::<i32>(), ids.as_string::<i32>());
            let (z, t) = (z.as_primitive::<arrow::datatypes::Int32Type>(), t.as_primitive::<arrow::datatypes::Int32Type>());
            for r in 0..b.num_rows() {
                had.insert((sub.value(r).to_string(), ids.value(r).to_string(), z.value(r), t.value(r)));
            }
        }
        let now: BTreeSet<(String, String, i32, i32)> = drawn
            .iter()
            .flat_map(|(n, idx)| {
                idx.iter().map(move |i| (n.clone(), pool[*i].study_id.clone(), pool[*i].slice_index, pool[*i].frame_index))
            })
            .collect();
        if had != now {
            return Err(StudyError::Config(format!(
                "study `{}` already drew other subsets ({} rows committed, {} drawn now: the data, study.train, study.seed, study.subsets or study.membership changed); give the study another name",
                cfg.name,
                had.len(),
                now.len()
            )));
        }
        return Ok(());
    }
    let batch = subsets::batch(&cfg.name, pool, drawn);
    let summary = serde_json::json!({ "study": cfg.name, "subsets": drawn.iter().map(|(k, v)| (k.clone(), v.len())).collect::<std::collections::BTreeMap<_, _>>() });
    record::commit(data, &app_id, &summary, vec![(&tables::STUDY_SUBSETS, batch)]).await
}

/// Makes a selection from `sql` unless it exists (from the same SQL). Another worker making it
/// at the same moment is fine: the create-only writes let one win, and the other checks it.
async fn ensure_selection(s: &Session, data: &StoreLocation, name: &str, sql: &str) -> Result<(), StudyError> {
    let same = |record: &selection::SelectionRecord| {
        if record.sql.trim() == sql.trim() {
            Ok(())
        } else {
            Err(StudyError::Config(format!(
                "selection `{name}` exists but was made by other SQL ({}); give the study another name",
                record.sql.trim()
            )))
        }
    };
    match selection::load(data, name).await {
        Ok((record, _)) => same(&record),
        Err(SelectionError::Read { source: object_store::Error::NotFound { .. }, .. }) => {
            let source = QuerySource { label: format!("the study's selection `{name}`"), sql: sql.to_string() };
            match selection::create(s, data, name, &source, false).await {
                Ok(_) => Ok(()),
                Err(SelectionError::Exists { .. }) => same(&selection::load(data, name).await?.0),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

impl Prepared {
    /// The training configuration of a run.
    pub fn train_config(&self, run: &RunPlan) -> TrainConfig {
        let r = &self.cfg.recipe;
        let e = run.epochs_per_stage;
        let freeze = run.start.freezes();
        TrainConfig {
            name: run.id.run.clone(),
            train: SelectionSpec { name: run.selection.clone().unwrap_or_default(), query: None, params: Default::default() },
            valid: SelectionSpec { name: self.valid_selection.clone(), query: None, params: Default::default() },
            labeller: Some(self.cfg.labeller.clone()),
            seed: r.seed,
            batch_size: r.batch_size,
            image_size: r.image_size,
            loss: r.loss,
            augment: r.augment,
            intensity: Default::default(),
            weight_decay: r.weight_decay,
            init: run.start.init.clone(),
            stages: vec![Stage { epochs: e, lr_max: r.lr[0], frozen: freeze }, Stage { epochs: e, lr_max: r.lr[1], frozen: false }],
            scale_epochs_to: None,
            validate_every_images: ((self.n_full as f64) * r.validate_every).round().max(1.0) as u64,
            max_images: r.max_images,
            checkpoint_every: 200,
            output: Some(self.run_folder(&run.id.run).url().to_string()),
            cache: Default::default(),
            prefetch: 4,
            shuffle_window: 8,
        }
    }

    fn run_folder(&self, run: &str) -> StoreLocation {
        self.folder.sub(&format!("runs/{run}"))
    }

    /// Labels `where_` with `model` as `labeller` and evaluates it against the experts.
    async fn label_and_evaluate(
        &self,
        model: &str,
        labeller: &str,
        where_: &str,
        out: &StoreLocation,
        opts: &StudyOptions,
    ) -> Result<Evaluation, StudyError> {
        let mut lc = LabelConfig::new(self.data.url().to_string(), model, labeller);
        lc.filter = Some(format!("study_id IN (SELECT study_id FROM studies WHERE {where_})"));
        lc.device = opts.device;
        lc.store = opts.store.clone();
        label::run(&lc, Arc::new(Quiet)).await?;
        let s = session(&self.data, &opts.store).await?;
        let ec = EvaluateConfig {
            labeller: labeller.to_string(),
            reference: Reference::Labeller(self.cfg.labeller.clone()),
            filter: Some(where_.to_string()),
            selection: None,
            worst: 0,
            attachments: Vec::new(),
        };
        Ok(evaluate::run(&s, Some(&self.data), &ec, out, &Quiet).await?)
    }

    /// Trains (or resumes), labels, evaluates and commits one run.
    pub async fn run_one(&self, run: &RunPlan, opts: &StudyOptions, progress: Arc<dyn Progress>) -> Result<(), StudyError> {
        let folder = self.run_folder(&run.id.run);
        let labeller = format!("study-{}-{}", self.cfg.name, run.id.run);
        let (log, mut result, model_url) = match &run.selection {
            Some(_) => {
                let cfg = self.train_config(run);
                let plan = train::plan(cfg, self.model.clone(), self.data.url(), &opts.store).await?;
                let resume = train::checkpoint::Checkpoint::new(&plan.output, &plan.train, &plan.model).latest().await?.is_some();
                let handle = tokio::runtime::Handle::current();
                let device = opts.device;
                let report = tokio::task::spawn_blocking(move || train::run_on(&plan, device, resume, &handle, progress.as_ref()))
                    .await
                    .map_err(|e| StudyError::Config(format!("the training thread of run `{}` stopped: {e}", run.id.run)))??;
                let log = report.log.clone();
                let result = RunResult {
                    epochs_per_stage: run.epochs_per_stage as i32,
                    images_seen: report.images_seen as i64,
                    seconds: report.seconds,
                    model_url: format!("{}/model", report.output.trim_end_matches('/')),
                    ..Default::default()
                };
                let model_url = result.model_url.clone();
                (log, result, model_url)
            }
            None => {
                // The untouched start model: validated and tested as it is.
                let Init::Checkpoint(url) = &run.start.init else { unreachable!("base rows are planned for models only") };
                let model = url.clone();
                let ev = self.label_and_evaluate(&model, &format!("{labeller}-valid"), &self.cfg.valid, &folder.sub("valid"), opts).await?;
                let point = train::log::EpochRow {
                    stage: 0,
                    epoch: 0,
                    global_epoch: 0,
                    steps: 0,
                    images_seen: 0,
                    lr_max: 0.0,
                    frozen: true,
                    train_loss: f64::NAN,
                    valid_loss: f64::NAN,
                    dice_lv: ev.dice.mean[0],
                    dice_my: ev.dice.mean[1],
                    seconds: 0.0,
                };
                (vec![point], RunResult { model_url: model.clone(), ..Default::default() }, model)
            }
        };
        let ev = self.label_and_evaluate(&model_url, &labeller, &self.cfg.test, &folder.sub("test"), opts).await?;
        fill_test(&mut result, &ev);
        let app_id = record::run_app_id(&self.cfg.name, &run.id.run);
        // A base row has no learning curve: its one validation point goes to `study_runs` only.
        let mut batches = vec![(&tables::STUDY_RUNS, record::runs_batch(&run.id, &result, &log))];
        if run.selection.is_some() {
            batches.insert(0, (&tables::STUDY_LOG, record::log_batch(&run.id, &log)));
        }
        record::commit(&self.data, &app_id, &serde_json::json!({ "run": run.id, "result": result }), batches).await
    }
}

/// The test figures of an evaluation.
fn fill_test(r: &mut RunResult, ev: &Evaluation) {
    let finite = |v: f64| v.is_finite().then_some(v);
    r.test_dice = [finite(ev.dice.mean[0]), finite(ev.dice.mean[1])];
    r.test_dice_nonempty = [finite(ev.dice.mean_nonempty[0]), finite(ev.dice.mean_nonempty[1])];
    r.test_studies = Some(ev.studies.len() as i64);
    r.test_ef_error_mean = ev.ef_errors.mean;
    r.test_ef_error_median = ev.ef_errors.median;
    let mean_abs = |g: fn(&evaluate::agreement::StudyRow) -> Option<f64>| {
        let v: Vec<f64> = ev.studies.iter().filter_map(g).map(f64::abs).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    r.test_edv_error_mean_ml = mean_abs(|s| s.edv_diff_ml);
    r.test_esv_error_mean_ml = mean_abs(|s| s.esv_diff_ml);
}

/// Prepares the study, runs every run this worker owns that is not committed yet, and writes
/// the report.
pub async fn run(
    cfg: &StudyConfig,
    model: &ModelConfig,
    data_url: &str,
    opts: &StudyOptions,
    out: Option<&StoreLocation>,
    progress: Arc<dyn Progress>,
) -> Result<StudyReport, StudyError> {
    let data = store::open_existing(data_url, &opts.store)?;
    let prepared = prepare(cfg, model, &data, opts).await?;
    let mut report = StudyReport { study: cfg.name.clone(), notes: prepared.notes.clone(), ..Default::default() };
    for run in &prepared.runs {
        let name = run.id.run.clone();
        if opts.share.is_some_and(|s| !s.owns(&name)) {
            report.other_workers.push(name);
            continue;
        }
        if record::published(&data, &record::run_app_id(&cfg.name, &name)).await? {
            report.already_committed.push(name);
            continue;
        }
        tracing::info!(run = %name, images = run.id.subset_images, epochs_per_stage = run.epochs_per_stage, "study run");
        prepared.run_one(run, opts, progress.clone()).await?;
        report.trained.push(name);
    }
    let out = out.cloned().unwrap_or_else(|| prepared.folder.sub("report"));
    let s = Session::open(
        Some(&data),
        &SessionOptions { store: opts.store.clone(), params: vec![format!("study={}", cfg.name)], ..Default::default() },
    )
    .await?;
    match report::write(&s, &out, Some(&cfg.name)).await {
        Ok((written, _)) => report.written = written,
        Err(StudyError::Empty(why)) => report.notes.push(why),
        Err(e) => return Err(e),
    }
    let tsv = subsets::subsets_tsv(&prepared.pool, &prepared.drawn);
    let path = out.child("subsets.tsv");
    out.store.put(&path, tsv.into_bytes().into()).await.map_err(|source| StudyError::Put { url: out.object_url(&path), source })?;
    report.written.push(out.object_url(&path));
    Ok(report)
}
