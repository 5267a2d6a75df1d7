//! The training cache in key order, in bounded memory.
//!
//! The join that prepares a selection returns rows in the order of the tables' files, and
//! `label` writes each study to whichever of its shard files is free, so two labelling runs of
//! the same studies order the rows differently. The cache's blocks fix an epoch's order
//! (an epoch shuffles blocks, then samples within a window of blocks), so the cache is
//! written sorted by (`study_id`, `slice_index`, `frame_index`, `labeller`): the same selection of the same
//! images gives the same blocks, and the same seed trains the same model.
//!
//! An external merge sort: rows are held until they pass `run_bytes`, then sorted and spilled
//! to a run file (Parquet, next to the cache); at the end the runs are merged into the cache
//! file, reading one batch of each at a time. A selection that fits one run is sorted in memory
//! and never spilled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::properties::WriterProperties;

/// Boxed errors of the file work here; the caller names the cache folder.
pub type SortError = Box<dyn std::error::Error + Send + Sync>;

/// A sample's place and whose mask it is: study, slice, frame, labeller. Two rows with one key
/// are the same sample (a selection may list a frame once per labeller).
type Key = (String, i32, i32, String);

/// The key columns' positions in every batch pushed: `study_id` (UTF-8), `slice_index`,
/// `frame_index` (Int32), `labeller` (UTF-8).
#[derive(Debug, Clone, Copy)]
pub struct KeyColumns {
    pub study: usize,
    pub slice: usize,
    pub frame: usize,
    pub labeller: usize,
}

impl KeyColumns {
    fn of(&self, b: &RecordBatch) -> Vec<Key> {
        let (ids, z, t, who) = (
            b.column(self.study).as_string::<i32>(),
            b.column(self.slice).as_primitive::<Int32Type>(),
            b.column(self.frame).as_primitive::<Int32Type>(),
            b.column(self.labeller).as_string::<i32>(),
        );
        (0..b.num_rows()).map(|i| (ids.value(i).to_string(), z.value(i), t.value(i), who.value(i).to_string())).collect()
    }
}

/// Collects batches and writes their rows in key order.
pub struct KeyOrder {
    dir: PathBuf,
    schema: SchemaRef,
    keys: KeyColumns,
    run_bytes: usize,
    batch_rows: usize,
    held: Vec<RecordBatch>,
    held_bytes: usize,
    runs: Vec<PathBuf>,
}

/// Batches with a cursor on one of them: the rows still to write of one sorted source.
struct Cursor {
    batch: usize,
    row: usize,
    keys: Vec<Key>,
}

impl KeyOrder {
    /// Spills runs into `dir` (removed again by [`finish`](Self::finish)) and writes batches
    /// of `batch_rows` rows.
    pub fn new(dir: &Path, schema: SchemaRef, keys: KeyColumns, run_bytes: usize, batch_rows: usize) -> Self {
        KeyOrder { dir: dir.to_path_buf(), schema, keys, run_bytes, batch_rows, held: Vec::new(), held_bytes: 0, runs: Vec::new() }
    }

    /// Takes a batch of the schema given to [`new`](Self::new).
    pub fn push(&mut self, batch: RecordBatch) -> Result<(), SortError> {
        self.held_bytes += batch.get_array_memory_size();
        self.held.push(batch);
        if self.held_bytes >= self.run_bytes {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes every row pushed to `out`, in key order, in batches of `batch_rows`.
    pub fn finish(mut self, out: &mut ArrowWriter<File>) -> Result<(), SortError> {
        if self.runs.is_empty() {
            let held = std::mem::take(&mut self.held);
            return write_sorted(&held, &self.keys, self.batch_rows, |b| out.write(&b).map_err(Into::into));
        }
        self.spill()?;
        let result = self.merge(out);
        for run in &self.runs {
            let _ = std::fs::remove_file(run);
        }
        result
    }

    /// Sorts the rows held and writes them to a new run file.
    fn spill(&mut self) -> Result<(), SortError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(format!("run-{}.parquet", self.runs.len()));
        self.runs.push(path.clone());
        let mut w = ArrowWriter::try_new(File::create(&path)?, self.schema.clone(), Some(WriterProperties::builder().build()))?;
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        write_sorted(&held, &self.keys, self.batch_rows, |b| w.write(&b).map_err(Into::into))?;
        w.close()?;
        Ok(())
    }

    /// Merges the run files into `out`, holding one batch of each (and the batches that the
    /// block being built still needs).
    fn merge(&self, out: &mut ArrowWriter<File>) -> Result<(), SortError> {
        let mut readers: Vec<ParquetRecordBatchReader> = self
            .runs
            .iter()
            .map(|p| Ok(ParquetRecordBatchReaderBuilder::try_new(File::open(p)?)?.with_batch_size(self.batch_rows).build()?))
            .collect::<Result<_, SortError>>()?;
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut cursors: Vec<Option<Cursor>> = Vec::with_capacity(readers.len());
        let mut heap = BinaryHeap::new();
        for (r, reader) in readers.iter_mut().enumerate() {
            let cursor = self.next_cursor(reader, &mut batches)?;
            if let Some(c) = &cursor {
                heap.push(Reverse((c.keys[0].clone(), r)));
            }
            cursors.push(cursor);
        }
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.batch_rows);
        while let Some(Reverse((_, r))) = heap.pop() {
            let c = cursors[r].as_mut().expect("a run in the heap has a cursor");
            picks.push((c.batch, c.row));
            c.row += 1;
            if c.row == c.keys.len() {
                cursors[r] = self.next_cursor(&mut readers[r], &mut batches)?;
            }
            if let Some(c) = &cursors[r] {
                heap.push(Reverse((c.keys[c.row].clone(), r)));
            }
            if picks.len() == self.batch_rows || heap.is_empty() {
                out.write(&take_rows(&batches, &picks)?)?;
                picks.clear();
                // Only the runs' current batches are still needed.
                let mut kept = Vec::new();
                for c in cursors.iter_mut().flatten() {
                    kept.push(batches[c.batch].clone());
                    c.batch = kept.len() - 1;
                }
                batches = kept;
            }
        }
        Ok(())
    }

    /// The next non-empty batch of a run, added to `batches`; `None` at the run's end.
    fn next_cursor(&self, reader: &mut ParquetRecordBatchReader, batches: &mut Vec<RecordBatch>) -> Result<Option<Cursor>, SortError> {
        for b in reader.by_ref() {
            let b = b?;
            if b.num_rows() > 0 {
                let keys = self.keys.of(&b);
                batches.push(b);
                return Ok(Some(Cursor { batch: batches.len() - 1, row: 0, keys }));
            }
        }
        Ok(None)
    }
}

/// Writes the rows of `batches` sorted by key, `batch_rows` at a time.
fn write_sorted(
    batches: &[RecordBatch],
    keys: &KeyColumns,
    batch_rows: usize,
    mut write: impl FnMut(RecordBatch) -> Result<(), SortError>,
) -> Result<(), SortError> {
    let mut order: Vec<(Key, usize, usize)> =
        batches.iter().enumerate().flat_map(|(b, batch)| keys.of(batch).into_iter().enumerate().map(move |(i, k)| (k, b, i))).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for chunk in order.chunks(batch_rows) {
        let picks: Vec<(usize, usize)> = chunk.iter().map(|(_, b, i)| (*b, *i)).collect();
        write(take_rows(batches, &picks)?)?;
    }
    Ok(())
}

/// The rows `picks` (batch, row) of `batches`, as one batch.
fn take_rows(batches: &[RecordBatch], picks: &[(usize, usize)]) -> Result<RecordBatch, SortError> {
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow::compute::interleave(&arrays, picks)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    use super::*;

    const KEYS: KeyColumns = KeyColumns { study: 0, slice: 1, frame: 2, labeller: 4 };

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("study_id", DataType::Utf8, false),
            Field::new("slice_index", DataType::Int32, false),
            Field::new("frame_index", DataType::Int32, false),
            Field::new("payload", DataType::Int32, false),
            Field::new("labeller", DataType::Utf8, false),
        ]))
    }

    fn payload(k: &Key) -> i32 {
        k.1 * 100 + k.2 + if k.3 == "b" { 10_000 } else { 0 }
    }

    /// Rows of 7 studies × 5 slices × 11 frames × 2 labellers in a shuffled order, in uneven
    /// batches; each row's payload encodes its slice, frame and labeller.
    fn shuffled_batches(seed: u64) -> Vec<RecordBatch> {
        let mut keys: Vec<Key> = (0..7)
            .flat_map(|s| {
                (0..5).flat_map(move |z| (0..11).flat_map(move |t| ["a", "b"].map(|l| (format!("study-{s}"), z, t, l.to_string()))))
            })
            .collect();
        keys.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let mut out = Vec::new();
        let mut rest = keys.as_slice();
        for n in [1, 50, 3, 64, 100].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*n).min(rest.len()));
            rest = later;
            out.push(
                RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(StringArray::from_iter_values(now.iter().map(|k| k.0.clone()))),
                        Arc::new(Int32Array::from_iter_values(now.iter().map(|k| k.1))),
                        Arc::new(Int32Array::from_iter_values(now.iter().map(|k| k.2))),
                        Arc::new(Int32Array::from_iter_values(now.iter().map(payload))),
                        Arc::new(StringArray::from_iter_values(now.iter().map(|k| k.3.clone()))),
                    ],
                )
                .unwrap(),
            );
        }
        out
    }

    /// The cache file written from batches in this order, with runs spilled past `run_bytes`.
    fn sorted(dir: &Path, seed: u64, run_bytes: usize) -> (Vec<RecordBatch>, usize) {
        let mut order = KeyOrder::new(dir, schema(), KEYS, run_bytes, 64);
        for b in shuffled_batches(seed) {
            order.push(b).unwrap();
        }
        let runs = order.runs.len();
        let path = dir.join(format!("out-{seed}-{run_bytes}.parquet"));
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema(), None).unwrap();
        order.finish(&mut w).unwrap();
        w.close().unwrap();
        let batches =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap().build().unwrap().map(|b| b.unwrap()).collect();
        (batches, runs)
    }

    #[test]
    fn rows_come_out_in_key_order_whatever_order_they_came_in() {
        let dir = tempfile::tempdir().unwrap();
        let (in_memory, runs) = sorted(dir.path(), 1, usize::MAX);
        assert_eq!(runs, 0, "nothing spilled");
        let rows: Vec<Key> = in_memory.iter().flat_map(|b| KEYS.of(b)).collect();
        assert_eq!(rows.len(), 7 * 5 * 11 * 2, "every row, once");
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "strictly increasing keys");
        for b in &in_memory {
            let p = b.column(3).as_primitive::<Int32Type>();
            assert!(KEYS.of(b).iter().enumerate().all(|(i, k)| p.value(i) == payload(k)), "payloads travel with their keys");
        }
        // A run spilled for every batch, merged, from another arrival order: the same rows.
        let (merged, runs) = sorted(dir.path(), 2, 1);
        assert!(runs > 3, "{runs} runs");
        assert_eq!(concat(&merged), concat(&in_memory));
        assert!(dir.path().read_dir().unwrap().flatten().all(|e| !e.file_name().to_string_lossy().starts_with("run-")), "runs removed");
    }

    fn concat(batches: &[RecordBatch]) -> RecordBatch {
        arrow::compute::concat_batches(&schema(), batches).unwrap()
    }
}
