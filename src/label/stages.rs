//! The labelling pipeline's threads: pre-process → infer → post-process, behind bounded
//! channels, so the model never waits for reading or writing and memory is bounded by
//! `studies_in_flight` studies and two batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::InferError;
use super::engine::Engine;
use super::frames::StudyFrames;
use super::post;
use crate::model::contract::Contract;
use crate::model::contract::Layout;
use crate::model::prep::{self, Bounds, Over, Placement};
use crate::tables::label_rows::FrameGrid;

/// What post-processing needs to know about a frame.
#[derive(Debug, Clone)]
pub struct FrameMeta {
    pub slice: i32,
    pub frame: i32,
    pub grid: FrameGrid,
    pub source_key: String,
    pub fill: Option<String>,
    pub placement: Placement,
}

/// A study on its way through the model.
#[derive(Debug, Clone)]
pub struct StudyMeta {
    pub study_id: String,
    pub split: Option<String>,
    pub frames: Vec<FrameMeta>,
    /// Only some of the study's frames are labelled.
    pub partial: bool,
}

/// Work for the inference thread: a study starts, or a batch of its frames.
pub enum Job {
    Study(Arc<StudyMeta>),
    Batch { input: Vec<f32>, shape: [usize; 4] },
}

/// What the inference thread hands on.
pub enum Output {
    Study(Arc<StudyMeta>),
    Batch { output: Vec<f32>, n: usize, out_h: usize, out_w: usize },
}

/// A labelled study: its frames and their masks on the curated grid.
pub struct Labelled {
    pub meta: Arc<StudyMeta>,
    pub masks: Vec<Vec<u8>>,
}

/// Pre-processing: each study's frames scaled, placed on the model grid and cut into batches.
pub fn preprocess(
    contract: &Contract,
    batch: usize,
    mut rx: mpsc::Receiver<Result<StudyFrames, InferError>>,
    tx: mpsc::Sender<Result<Job, InferError>>,
) {
    while let Some(study) = rx.blocking_recv() {
        let study = match study {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let rule = &contract.intensity;
        // The window of each frame: the study's, its time point's stack's, or its own.
        let windows: Vec<(f32, f32)> = match rule.over() {
            Over::Study => {
                let hist = match &study.whole_study {
                    Some(h) => h.clone(),
                    None => rule.histogram(study.frames.iter().map(|f| f.pixels.as_slice())),
                };
                vec![rule.window(&hist); study.frames.len()]
            }
            Over::TimePoint => {
                let mut by_time: HashMap<i32, (f32, f32)> = HashMap::new();
                for t in study.frames.iter().map(|f| f.frame) {
                    by_time.entry(t).or_insert_with(|| {
                        rule.window(&rule.histogram(study.frames.iter().filter(|f| f.frame == t).map(|f| f.pixels.as_slice())))
                    });
                }
                study.frames.iter().map(|f| by_time[&f.frame]).collect()
            }
            Over::Image => study.frames.iter().map(|f| rule.window(&rule.histogram(std::iter::once(f.pixels.as_slice())))).collect(),
        };
        // Scaled (and transposed) images, then where each sits on the model grid.
        let mut images = Vec::with_capacity(study.frames.len());
        for (f, window) in study.frames.iter().zip(&windows) {
            let (h, w) = (f.grid.height as usize, f.grid.width as usize);
            let image = prep::to_unit(&f.pixels, *window);
            images.push(if contract.transpose { (transpose(&image, h, w), w, h) } else { (image, h, w) });
        }
        let mut bounds: HashMap<i32, Option<Bounds>> = HashMap::new();
        if contract.size.crops_nonzero() {
            for t in study.frames.iter().map(|f| f.frame) {
                bounds.entry(t).or_insert_with(|| {
                    let (_, ih, iw) = &images[study.frames.iter().position(|f| f.frame == t).expect("a frame of t")];
                    let stack = study.frames.iter().zip(&images).filter(|(f, _)| f.frame == t).map(|(_, (img, _, _))| img.as_slice());
                    Bounds::nonzero(stack, *ih, *iw)
                });
            }
        }
        let mut metas = Vec::with_capacity(study.frames.len());
        let mut samples = Vec::with_capacity(study.frames.len());
        for (f, (image, ih, iw)) in study.frames.iter().zip(images) {
            let placement = contract.size.place_within(ih, iw, bounds.get(&f.frame).copied().flatten());
            samples.push((placement, placement.forward(&image)));
            metas.push(FrameMeta {
                slice: f.slice,
                frame: f.frame,
                grid: f.grid,
                source_key: f.source_key.clone(),
                fill: f.fill.clone(),
                placement,
            });
        }
        let meta = Arc::new(StudyMeta { study_id: study.study_id, split: study.split, frames: metas, partial: study.partial });
        if tx.blocking_send(Ok(Job::Study(meta))).is_err() {
            return;
        }
        for chunk in samples.chunks(batch.max(1)) {
            let (oh, ow) = (chunk[0].0.out_h, chunk[0].0.out_w);
            let c = contract.channels;
            let mut input = Vec::with_capacity(chunk.len() * c * oh * ow);
            for (p, img) in chunk {
                debug_assert_eq!((p.out_h, p.out_w), (oh, ow), "one grid per study");
                let planes = prep::channels(img, c, contract.intensity.normalise);
                match contract.layout {
                    Layout::Nchw => input.extend_from_slice(&planes),
                    Layout::Nhwc => {
                        input.extend((0..oh * ow).flat_map(|px| (0..c).map(move |ch| (ch, px))).map(|(ch, px)| planes[ch * oh * ow + px]))
                    }
                }
            }
            let shape = match contract.layout {
                Layout::Nchw => [chunk.len(), c, oh, ow],
                Layout::Nhwc => [chunk.len(), oh, ow, c],
            };
            if tx.blocking_send(Ok(Job::Batch { input, shape })).is_err() {
                return;
            }
        }
    }
}

/// Inference: runs every batch through the engine; returns the time the model was busy.
pub fn infer(
    engine: &mut dyn Engine,
    contract: &Contract,
    mut rx: mpsc::Receiver<Result<Job, InferError>>,
    tx: mpsc::Sender<Result<Output, InferError>>,
) -> Duration {
    let mut busy = Duration::ZERO;
    let classes = contract.output_channels();
    while let Some(job) = rx.blocking_recv() {
        let out = match job {
            Err(e) => Err(e),
            Ok(Job::Study(m)) => Ok(Output::Study(m)),
            Ok(Job::Batch { input, shape }) => {
                let (n, oh, ow) = match contract.layout {
                    Layout::Nchw => (shape[0], shape[2], shape[3]),
                    Layout::Nhwc => (shape[0], shape[1], shape[2]),
                };
                let started = Instant::now();
                let result = engine.run(input, shape);
                busy += started.elapsed();
                result.and_then(|output| {
                    if output.len() != n * classes * oh * ow {
                        return Err(InferError::Output(format!(
                            "the model returned {} values for a batch of {n} at {oh}×{ow}; its contract expects {classes} value(s) per pixel ({:?} output)",
                            output.len(),
                            contract.output_kind
                        )));
                    }
                    Ok(Output::Batch { output, n, out_h: oh, out_w: ow })
                })
            }
        };
        let failed = out.is_err();
        if tx.blocking_send(out).is_err() || failed {
            break;
        }
    }
    busy
}

/// Post-processing: model outputs → masks on the curated grid, gathered per study.
pub fn postprocess(
    contract: &Contract,
    mut rx: mpsc::Receiver<Result<Output, InferError>>,
    tx: mpsc::Sender<Result<Labelled, InferError>>,
) {
    let mut current: Option<Labelled> = None;
    let classes = contract.output_channels();
    let flush = |current: &mut Option<Labelled>, tx: &mpsc::Sender<Result<Labelled, InferError>>| -> bool {
        match current.take() {
            Some(l) => tx.blocking_send(Ok(l)).is_ok(),
            None => true,
        }
    };
    while let Some(out) = rx.blocking_recv() {
        match out {
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            Ok(Output::Study(meta)) => {
                if !flush(&mut current, &tx) {
                    return;
                }
                current = Some(Labelled { masks: Vec::with_capacity(meta.frames.len()), meta });
            }
            Ok(Output::Batch { output, n, out_h, out_w }) => {
                let l = current.as_mut().expect("a study precedes its batches");
                for i in 0..n {
                    let f = &l.meta.frames[l.masks.len()];
                    let mut model_mask = post::classes_of(&output, i, classes, out_h, out_w, contract.layout, contract.output_kind);
                    post::map_classes(&mut model_mask, &contract.classes);
                    let placed = f.placement.inverse(&model_mask);
                    let (h, w) = (f.grid.height as usize, f.grid.width as usize);
                    let mut mask = if contract.transpose { transpose(&placed, w, h) } else { placed };
                    if contract.post.min_component_pixels > 0 {
                        post::drop_small_components(&mut mask, h, w, contract.post.min_component_pixels);
                    }
                    if contract.post.keep_largest_lv {
                        post::keep_largest_lv(&mut mask, h, w);
                    }
                    l.masks.push(mask);
                }
            }
        }
    }
    flush(&mut current, &tx);
}

/// The `w × h` transpose of an `h × w` row-major image.
fn transpose<T: Copy + Default>(img: &[T], h: usize, w: usize) -> Vec<T> {
    let mut out = vec![T::default(); img.len()];
    for r in 0..h {
        for c in 0..w {
            out[c * h + r] = img[r * w + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(super::transpose(&[1, 2, 3, 4, 5, 6], 2, 3), vec![1, 4, 2, 5, 3, 6]);
    }
}
