//! Training data from named selections: prepared once into a local cache, then fed in a
//! seeded order by a background thread, so the model never waits and nothing has to fit in
//! memory.
//!
//! **Prepare.** The selection's frame keys are joined (DataFusion) with `frames` (pixels) and
//! `labels` (the mask of the chosen labeller) on the data prefix — any store — and the pairs are
//! written to a local cache folder as Parquet with small row groups ("blocks", 64 samples),
//! sorted by study, slice, frame and labeller whatever order the tables' files hold them in
//! ([`key_order`](super::key_order), an external sort in bounded memory). A
//! cache folder is keyed by the data prefix, the selection's checksum, the table versions it
//! read and the labeller (the session reads the tables at those versions); it is written under
//! a name of its own and renamed into place once complete, and the least recently used folders
//! are removed to keep the cache under its size limit (`train::cache_dir`).
//!
//! **Order.** An epoch's order is a pure function of (seed, epoch): the blocks are shuffled, then
//! the samples of each window of `window` consecutive blocks are shuffled together (shard order +
//! block shuffle). So a run resumed at batch k sees exactly the batches an uninterrupted run saw.
//!
//! **Intensity.** Each sample carries the scale that maps it to 0…1 (see
//! [`Intensity`](crate::model::scaling::Intensity)): by
//! default the 99.95th percentile of every pixel of its *study*, computed while preparing (a
//! top-k pass over the study's frames), so all slices of one acquisition keep the scanner's
//! relative intensities.
//!
//! **Feeding.** A thread reads blocks (keeping the current window decoded), scales each image to
//! 0…1 by its sample's scale, augments it with a generator seeded by (seed, epoch,
//! position) and sends whole batches through a bounded channel (`prefetch` deep).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use arrow::array::{AsArray, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TrainError;
use super::cache_dir;
use super::key_order::{KeyColumns, KeyOrder};
use crate::model::augment::{self, Preset};
use crate::model::scaling::{Intensity, Percentile, image_scale, to_unit};
use crate::pixels::pixel_values;
use crate::query::Session;
use crate::query::read::{ReadError, collect, column};
use crate::query::selection::{self, SelectionRecord};
use crate::store::StoreLocation;

/// Samples per Parquet row group of the cache ("block").
pub const BLOCK_ROWS: usize = 64;
/// Part of every cache key: a new layout of the cache files never reads an old one.
const CACHE_FORMAT: &str = "cache-v3 (key order, key columns with labeller)";
/// Rows a cache build holds in memory before it spills a sorted run ([`KeyOrder`]).
const RUN_BYTES: usize = 128 << 20;

/// Where prepared sets are kept and how large the cache may grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub dir: PathBuf,
    pub max_mib: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { dir: std::env::temp_dir().join("cinestream-cache"), max_mib: 8192 }
    }
}

/// One block: a row group of a cache file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub file: String,
    pub row_group: usize,
    pub rows: usize,
}

/// A prepared selection in the local cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    pub selection: String,
    pub selection_sha256: String,
    pub labeller: Option<String>,
    pub samples: usize,
    pub bytes: u64,
    pub blocks: Vec<Block>,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Prepares (or finds in the cache) the image/mask pairs of selection `name`.
pub async fn prepare(
    session: &Session,
    data: &StoreLocation,
    name: &str,
    labeller: Option<&str>,
    intensity: Intensity,
    cache: &CacheConfig,
) -> Result<(Prepared, SelectionRecord), TrainError> {
    let (record, keys) = selection::load(data, name).await?;
    // Keyed by the table versions too: the same keys over other data are another data set.
    let key = hex::encode(Sha256::digest(format!(
        "{CACHE_FORMAT}\n{}\n{name}\n{}\n{}\n{labeller:?}\n{intensity:?}",
        data.url(),
        record.file.sha256,
        record.as_of()
    )));
    let dir = cache.dir.join(&key[..24]);
    if let Some(p) = ready(&dir)? {
        tracing::info!(selection = name, samples = p.samples, "training data from the cache");
        return Ok((p, record));
    }
    // Written under a name of its own and renamed into place when complete (`cache_dir`).
    let part = cache_dir::partial(&dir);
    if let Err(e) = write_folder(session, name, labeller, intensity, &keys, &record, &part).await {
        let _ = std::fs::remove_dir_all(&part);
        return Err(e);
    }
    let io = |e: std::io::Error| TrainError::Cache { dir: dir.display().to_string(), source: e.into() };
    cache_dir::publish(&part, &dir).map_err(io)?;
    let prepared = ready(&dir)?.ok_or_else(|| {
        io(std::io::Error::other("the prepared folder vanished (removed by another process's cache eviction?): run again"))
    })?;
    cache_dir::evict(&cache.dir, cache.max_mib * 1024 * 1024, &dir);
    tracing::info!(selection = name, samples = prepared.samples, mb = prepared.bytes as f64 / 1e6, "training data prepared in the cache");
    Ok((prepared, record))
}

/// The complete cache folder `dir` (with its `ready.json`), if there is one; marks it used.
fn ready(dir: &Path) -> Result<Option<Prepared>, TrainError> {
    let Ok(text) = std::fs::read_to_string(dir.join(cache_dir::READY)) else { return Ok(None) };
    let mut p: Prepared =
        serde_json::from_str(&text).map_err(|e| TrainError::Cache { dir: dir.display().to_string(), source: Box::new(e) })?;
    p.dir = dir.to_path_buf();
    cache_dir::touch(dir);
    Ok(Some(p))
}

/// Writes the selection's image/mask pairs, in key order, and its `ready.json` into `dir`.
async fn write_folder(
    session: &Session,
    name: &str,
    labeller: Option<&str>,
    intensity: Intensity,
    keys: &[RecordBatch],
    record: &SelectionRecord,
    dir: &Path,
) -> Result<(), TrainError> {
    let io = |e: std::io::Error| TrainError::Cache { dir: dir.display().to_string(), source: e.into() };
    std::fs::create_dir_all(dir).map_err(io)?;
    let has_labeller = keys.first().is_some_and(|b| b.schema().column_with_name("labeller").is_some());
    let labeller_sql = match (has_labeller, labeller) {
        (true, _) => "s.labeller".to_string(),
        (false, Some(l)) => format!("'{}'", l.replace('\'', "''")),
        (false, None) => {
            return Err(TrainError::Config(format!(
                "selection `{name}` has no labeller column: set train.labeller to the labeller whose masks to learn"
            )));
        }
    };
    const KEYS: &str = "the selection's frames, as a table to join";
    let table = MemTable::try_new(keys[0].schema(), vec![keys.to_vec()]).map_err(ReadError::execute(KEYS))?;
    let ctx = session.context();
    // Rows carry whole images (~100 KB each): with 64-row batches, preparing the demo's two sets
    // from scratch plus an epoch peaked at 720 MB RSS; it was 1,509 MB before (BENCHMARKS.md).
    session.for_images().await?;
    // One stream: the join's rows arrive a batch of whole images at a time (their order is
    // fixed by the key sort in `write_cache`, not by the scan).
    session.one_stream().await?;
    ctx.register_table("_train_keys", Arc::new(table)).map_err(ReadError::execute(KEYS))?;
    let sql = format!(
        "SELECT s.study_id, s.slice_index, s.frame_index, f.height, f.width, f.pixels, l.height AS mask_height, l.width AS mask_width, l.mask, l.labeller \
         FROM _train_keys s \
         JOIN frames f ON f.study_id = s.study_id AND f.slice_index = s.slice_index AND f.frame_index = s.frame_index \
         JOIN labels l ON l.study_id = s.study_id AND l.slice_index = s.slice_index AND l.frame_index = s.frame_index AND l.labeller = {labeller_sql}"
    );
    let result = async {
        let scales = match intensity {
            Intensity::Study => Some(study_scales(session).await?),
            Intensity::Image => None,
        };
        write_cache(session, &sql, dir, scales.as_ref()).await
    }
    .await;
    let _ = ctx.deregister_table("_train_keys");
    let (blocks, samples, bytes) = result?;
    let wanted: usize = keys.iter().map(|b| b.num_rows()).sum();
    if samples != wanted {
        return Err(TrainError::Config(format!(
            "selection `{name}` lists {wanted} frames but only {samples} have a mask from labeller {}: label them, or select only labelled frames",
            labeller.unwrap_or("(the selection's)")
        )));
    }
    let prepared = Prepared {
        selection: name.into(),
        selection_sha256: record.file.sha256.clone(),
        labeller: labeller.map(String::from),
        samples,
        bytes,
        blocks,
        dir: dir.to_path_buf(),
    };
    std::fs::write(dir.join(cache_dir::READY), serde_json::to_vec_pretty(&prepared).expect("serialises")).map_err(io)
}

/// The [`Intensity::Study`] scale of every study in `_train_keys`, from all of its frames: a
/// metadata query for each study's pixel count, then one pass over the pixels keeping each
/// study's top k values (k = 0.05% of its pixels), so memory stays small however large the
/// studies are.
async fn study_scales(session: &Session) -> Result<HashMap<String, f32>, TrainError> {
    let studies = "study_id IN (SELECT DISTINCT study_id FROM _train_keys)";
    let counts = collect(
        session,
        &format!("SELECT study_id, SUM(CAST(height AS BIGINT) * CAST(width AS BIGINT)) AS n FROM frames WHERE {studies} GROUP BY study_id"),
        "the pixel count of each training study",
    )
    .await?;
    let mut acc: HashMap<String, Percentile> = HashMap::new();
    for b in &counts {
        let ids = study_ids(b)?;
        let (ids, n) = (ids.as_string::<i32>(), b.column(1).as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            acc.insert(ids.value(i).to_string(), Percentile::new(n.value(i).max(1) as u64));
        }
    }
    let context = "the pixels of each training study (for its intensity scale)";
    let df = session.sql(&format!("SELECT study_id, pixels FROM frames WHERE {studies}")).await?;
    let mut stream = df.execute_stream().await.map_err(ReadError::execute(context))?;
    while let Some(batch) = stream.next().await {
        let b = batch.map_err(ReadError::execute(context))?;
        let ids = study_ids(&b)?;
        let (ids, px) = (ids.as_string::<i32>(), b.column(1).as_binary::<i32>());
        for i in 0..b.num_rows() {
            if let Some(p) = acc.get_mut(ids.value(i)) {
                p.add(pixel_values(px.value(i)));
            }
        }
    }
    Ok(acc.into_iter().map(|(id, p)| (id, p.scale())).collect())
}

/// The `study_id` column of a result as plain strings (whatever string type the scan chose).
fn study_ids(b: &RecordBatch) -> Result<arrow::array::ArrayRef, TrainError> {
    Ok(column(b, "study_id", &DataType::Utf8, "a training query")?)
}

async fn write_cache(
    session: &Session,
    sql: &str,
    dir: &Path,
    study_scales: Option<&HashMap<String, f32>>,
) -> Result<(Vec<Block>, usize, u64), TrainError> {
    let context = "the training images and masks";
    let df = session.sql(sql).await?;
    let mut stream = df.execute_stream().await.map_err(ReadError::execute(context))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("height", DataType::Int32, false),
        Field::new("width", DataType::Int32, false),
        Field::new("pixels", DataType::Binary, false),
        Field::new("mask", DataType::Binary, false),
        Field::new("scale", DataType::Float32, false),
        Field::new("study_id", DataType::Utf8, false),
        Field::new("slice_index", DataType::Int32, false),
        Field::new("frame_index", DataType::Int32, false),
        Field::new("labeller", DataType::Utf8, false),
    ]));
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(BLOCK_ROWS)).build();
    let io = |e: Box<dyn std::error::Error + Send + Sync>| TrainError::Cache { dir: dir.display().to_string(), source: e };
    let file_name = "samples-0.parquet".to_string();
    let file = std::fs::File::create(dir.join(&file_name)).map_err(|e| io(e.into()))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| io(e.into()))?;
    let mut sorted = KeyOrder::new(dir, schema.clone(), KeyColumns { study: 5, slice: 6, frame: 7, labeller: 8 }, RUN_BYTES, BLOCK_ROWS);
    let mut samples = 0;
    while let Some(batch) = stream.next().await {
        let b = batch.map_err(ReadError::execute(context))?;
        let col = |n: &str| b.column_by_name(n).expect("selected column").clone();
        let (h, w, mh, mw) = (col("height"), col("width"), col("mask_height"), col("mask_width"));
        let (h, w, mh, mw) =
            (h.as_primitive::<Int32Type>(), w.as_primitive::<Int32Type>(), mh.as_primitive::<Int32Type>(), mw.as_primitive::<Int32Type>());
        let ids = study_ids(&b)?;
        for i in 0..b.num_rows() {
            if h.value(i) != mh.value(i) || w.value(i) != mw.value(i) {
                return Err(TrainError::Config(format!(
                    "study {}: a mask is {}×{} but its image is {}×{}; re-run ingest with these labels",
                    ids.as_string::<i32>().value(i),
                    mh.value(i),
                    mw.value(i),
                    h.value(i),
                    w.value(i)
                )));
            }
        }
        let (id_strs, pixels) = (ids.as_string::<i32>(), col("pixels"));
        let pixels = pixels.as_binary::<i32>();
        let scales: Float32Array = (0..b.num_rows())
            .map(|i| match study_scales {
                Some(by_study) => by_study
                    .get(id_strs.value(i))
                    .copied()
                    .ok_or_else(|| TrainError::Config(format!("study {}: no frames to take its intensity scale from", id_strs.value(i)))),
                None => Ok(image_scale(pixels.value(i))),
            })
            .collect::<Result<Vec<f32>, TrainError>>()?
            .into();
        let cast = |n: &str, to: &DataType| arrow::compute::cast(&col(n), to).map_err(|e| io(e.into()));
        let (int32, utf8) = (|n: &str| cast(n, &DataType::Int32), |n: &str| cast(n, &DataType::Utf8));
        let out = RecordBatch::try_new(
            schema.clone(),
            vec![
                col("height"),
                col("width"),
                col("pixels"),
                col("mask"),
                Arc::new(scales),
                ids.clone(),
                int32("slice_index")?,
                int32("frame_index")?,
                utf8("labeller")?,
            ],
        )
        .map_err(|e| io(e.into()))?;
        samples += out.num_rows();
        sorted.push(out).map_err(io)?;
    }
    sorted.finish(&mut writer).map_err(io)?;
    let meta = writer.close().map_err(|e| io(e.into()))?;
    let blocks = meta
        .row_groups()
        .iter()
        .enumerate()
        .map(|(i, rg)| Block { file: file_name.clone(), row_group: i, rows: rg.num_rows() as usize })
        .collect();
    let bytes = std::fs::metadata(dir.join(&file_name)).map(|m| m.len()).unwrap_or(0);
    Ok((blocks, samples, bytes))
}

/// The order of one epoch: (block, row) pairs; see the module docs.
pub fn epoch_order(blocks: &[Block], seed: u64, epoch: u64, window: usize) -> Vec<(u32, u32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.shuffle(&mut rng);
    let mut out = Vec::with_capacity(blocks.iter().map(|b| b.rows).sum());
    for chunk in order.chunks(window.max(1)) {
        let mut pairs: Vec<(u32, u32)> = chunk.iter().flat_map(|b| (0..blocks[*b].rows as u32).map(move |r| (*b as u32, r))).collect();
        pairs.shuffle(&mut rng);
        out.extend(pairs);
    }
    out
}

/// The sequential order (validation).
pub fn sequential_order(blocks: &[Block]) -> Vec<(u32, u32)> {
    blocks.iter().enumerate().flat_map(|(b, blk)| (0..blk.rows as u32).map(move |r| (b as u32, r))).collect()
}

/// A batch ready for the model: images `[n, 1, size, size]` in 0…1 and class maps `[n, size, size]`.
pub struct Batch {
    pub images: Vec<f32>,
    pub masks: Vec<i64>,
    pub n: usize,
    pub size: usize,
    /// Without augmentation (validation): each sample's mask on its curated grid, `(h, w, mask)`,
    /// so Dice is measured there, as labelling measures it.
    pub originals: Vec<(usize, usize, Vec<u8>)>,
}

/// How the feeder builds batches.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    pub batch_size: usize,
    pub image_size: usize,
    pub preset: Preset,
    pub seed: u64,
    pub epoch: u64,
    /// Batches to skip (resuming mid-epoch).
    pub start_batch: usize,
    /// Drop a last incomplete batch (training, as fastai).
    pub drop_last: bool,
    pub prefetch: usize,
    /// Classes above this are background (RV = 3 becomes 0 for a 3-class model).
    pub max_class: u8,
}

struct Decoded {
    image: Vec<f32>,
    mask: Vec<u8>,
    h: usize,
    w: usize,
}

/// A block of the training cache that could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("reading cached block {block} of `{file}`: {source}")]
pub struct FeedError {
    block: u32,
    file: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn read_block(dir: &Path, b: &Block, index: u32) -> Result<Vec<Decoded>, FeedError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| FeedError {
        block: index,
        file: dir.join(&b.file).display().to_string(),
        source,
    };
    let file = std::fs::File::open(dir.join(&b.file)).map_err(|e| err(e.into()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|r| r.with_row_groups(vec![b.row_group]).build())
        .map_err(|e| err(e.into()))?;
    let mut out = Vec::with_capacity(b.rows);
    for batch in reader {
        let batch = batch.map_err(|e| err(e.into()))?;
        let (h, w) = (batch.column(0).as_primitive::<Int32Type>(), batch.column(1).as_primitive::<Int32Type>());
        let (px, mk) = (batch.column(2).as_binary::<i32>(), batch.column(3).as_binary::<i32>());
        let scale = batch.column(4).as_primitive::<Float32Type>();
        for i in 0..batch.num_rows() {
            out.push(Decoded {
                image: to_unit(px.value(i), scale.value(i)),
                mask: mk.value(i).to_vec(),
                h: h.value(i) as usize,
                w: w.value(i) as usize,
            });
        }
    }
    Ok(out)
}

fn sample_seed(seed: u64, epoch: u64, position: usize) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(epoch.to_le_bytes());
    h.update((position as u64).to_le_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// Starts the feeder thread over `order`; batches arrive in order through the receiver.
pub fn feed(set: &Prepared, order: Vec<(u32, u32)>, opts: FeedOptions) -> Receiver<Result<Batch, FeedError>> {
    let (tx, rx) = sync_channel(opts.prefetch.max(1));
    let (dir, blocks) = (set.dir.clone(), set.blocks.clone());
    std::thread::Builder::new()
        .name("cinestream-feeder".into())
        .spawn(move || {
            let mut decoded: HashMap<u32, Arc<Vec<Decoded>>> = HashMap::new();
            let mut recent: Vec<u32> = Vec::new();
            let batches = order.chunks(opts.batch_size).enumerate().skip(opts.start_batch);
            for (bi, chunk) in batches {
                if opts.drop_last && chunk.len() < opts.batch_size {
                    break;
                }
                let mut samples = Vec::with_capacity(chunk.len());
                for (k, (b, r)) in chunk.iter().enumerate() {
                    if !decoded.contains_key(b) {
                        match read_block(&dir, &blocks[*b as usize], *b) {
                            Ok(d) => {
                                decoded.insert(*b, Arc::new(d));
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                        recent.push(*b);
                        // Keep about two shuffle windows decoded.
                        if recent.len() > 64 {
                            let old = recent.remove(0);
                            decoded.remove(&old);
                        }
                    }
                    samples.push((decoded[b].clone(), *r as usize, bi * opts.batch_size + k));
                }
                let batch = build(&samples, &opts);
                if tx.send(Ok(batch)).is_err() {
                    return;
                }
            }
        })
        .expect("spawn the feeder thread");
    rx
}

fn build(samples: &[(Arc<Vec<Decoded>>, usize, usize)], o: &FeedOptions) -> Batch {
    let s = o.image_size;
    let work = |(block, row, position): &(Arc<Vec<Decoded>>, usize, usize)| {
        let d = &block[*row];
        let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(o.seed, o.epoch, *position));
        let draw = o.preset.draw(&mut rng);
        augment::apply(&d.image, &d.mask, d.h, d.w, s, &draw)
    };
    // Augment on two threads: the training step is the other consumer of the cores.
    let half = samples.len().div_ceil(2);
    let (a, b) = samples.split_at(half);
    let (mut first, second) = std::thread::scope(|scope| {
        let h = scope.spawn(|| b.iter().map(work).collect::<Vec<_>>());
        (a.iter().map(work).collect::<Vec<_>>(), h.join().expect("augmentation thread"))
    });
    first.extend(second);
    let mut images = Vec::with_capacity(samples.len() * s * s);
    let mut masks = Vec::with_capacity(samples.len() * s * s);
    for (img, mask) in first {
        images.extend(img);
        masks.extend(mask.into_iter().map(|m| if m > o.max_class { 0 } else { m as i64 }));
    }
    let originals = if o.preset == Preset::None {
        samples
            .iter()
            .map(|(block, row, _)| {
                (block[*row].h, block[*row].w, block[*row].mask.iter().map(|m| if *m > o.max_class { 0 } else { *m }).collect())
            })
            .collect()
    } else {
        Vec::new()
    };
    Batch { images, masks, n: samples.len(), size: s, originals }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(sizes: &[usize]) -> Vec<Block> {
        sizes.iter().enumerate().map(|(i, r)| Block { file: "f".into(), row_group: i, rows: *r }).collect()
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let b = blocks(&[64, 64, 64, 10]);
        let o = epoch_order(&b, 3, 0, 2);
        let mut sorted = o.clone();
        sorted.sort();
        assert_eq!(sorted, sequential_order(&b), "every sample exactly once");
        assert_eq!(o, epoch_order(&b, 3, 0, 2), "same seed and epoch, same order");
        assert_ne!(o, epoch_order(&b, 3, 1, 2), "epochs differ");
        assert_ne!(o, epoch_order(&b, 4, 0, 2), "seeds differ");
        // Block shuffle: the first 128 samples come from one window of two blocks.
        let first: std::collections::BTreeSet<u32> = o[..128].iter().map(|p| p.0).collect();
        assert!(first.len() <= 2, "{first:?}");
    }
}
