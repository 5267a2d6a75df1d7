//! Validation during training: per-image Dice of LV and MY on the validation selection (an image
//! empty in both masks scores 1; predictions mapped back to the curated grid as `cinestream
//! label` maps them), when it is due — after every epoch, or on the images-seen schedule of
//! `validate_every_images` (always after the first epoch and at the end) — and the point it
//! adds to the run's log.

use burn::module::AutodiffModule;
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;

use super::checkpoint::Progress as RunState;
use super::data::{self, FeedOptions, Prepared};
use super::log::EpochRow;
use super::{Plan, TrainConfig, TrainError, tensors};
use crate::model::augment::Preset;
use crate::model::prep::SizePolicy;
use crate::model::{SegModel, losses, metrics};
use crate::progress::Progress;

/// (loss, Dice LV, Dice MY) on the validation set, per image averaged.
pub fn validate<B: AutodiffBackend>(
    model: &SegModel<B>,
    set: &Prepared,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<(f64, f64, f64), TrainError> {
    let m = model.valid();
    let opts = FeedOptions {
        batch_size: cfg.batch_size,
        image_size: cfg.image_size,
        preset: Preset::None,
        seed: cfg.seed,
        epoch: 0,
        start_batch: 0,
        drop_last: false,
        prefetch: cfg.prefetch,
        max_class: 2,
    };
    let rx = data::feed(set, data::sequential_order(&set.blocks), opts);
    let (mut loss_sum, mut lv, mut my, mut n) = (0.0, 0.0, 0.0, 0usize);
    for batch in rx {
        let b = batch.map_err(TrainError::Feed)?;
        let (x, y) = tensors::<B::InnerBackend>(&b, device);
        let logits = m.forward(x);
        loss_sum += losses::loss(cfg.loss, logits.clone(), y).into_scalar().elem::<f64>() * b.n as f64;
        let pred: Vec<i64> = logits.argmax(1).into_data().convert::<i64>().to_vec().expect("ints");
        let px = b.size * b.size;
        // Dice on the curated grid: the prediction mapped back by the exact inverse of the
        // pad-resize, as `cinestream label` maps it.
        for (i, (h, w, truth)) in b.originals.iter().enumerate() {
            let model: Vec<u8> = pred[i * px..(i + 1) * px].iter().map(|c| *c as u8).collect();
            let p = SizePolicy::PadResize { size: b.size }.place(*h, *w).inverse(&model);
            lv += metrics::dice(&p, truth, 1);
            my += metrics::dice(&p, truth, 2);
        }
        n += b.n;
    }
    let n = n.max(1) as f64;
    Ok((loss_sum / n, lv / n, my / n))
}

/// Where in the recipe a validation point falls.
pub(super) struct Point {
    pub stage: usize,
    pub epoch: usize,
    pub global_epoch: u64,
    pub lr_max: f64,
    pub frozen: bool,
}

/// Whether `train.max_images` has been reached.
pub(super) fn capped(cfg: &TrainConfig, state: &RunState) -> bool {
    cfg.max_images > 0 && state.images_seen >= cfg.max_images
}

/// Whether the images-seen schedule asks for a validation (a multiple of
/// `validate_every_images` passed since the last one).
pub(super) fn due(cfg: &TrainConfig, state: &RunState) -> bool {
    let every = cfg.validate_every_images;
    every > 0 && state.images_seen / every > state.validated_at / every
}

/// Validates, logs the point (training loss averaged since the previous point) and resets the
/// running loss.
pub(super) fn validate_point<B: AutodiffBackend>(
    model: &SegModel<B>,
    plan: &Plan,
    at: &Point,
    state: &mut RunState,
    t0: std::time::Instant,
    device: &B::Device,
    progress: &dyn Progress,
) -> Result<(), TrainError> {
    let (valid_loss, dice_lv, dice_my) = validate(model, &plan.valid_set, &plan.train, device)?;
    let row = EpochRow {
        stage: at.stage as i32,
        epoch: at.epoch as i32,
        global_epoch: at.global_epoch as i32,
        steps: state.global_step as i64,
        images_seen: state.images_seen as i64,
        lr_max: at.lr_max,
        frozen: at.frozen,
        train_loss: state.loss_sum / state.loss_count.max(1) as f64,
        valid_loss,
        dice_lv,
        dice_my,
        seconds: state.seconds + t0.elapsed().as_secs_f64(),
    };
    progress.line(&row.summary());
    tracing::info!(
        stage = at.stage,
        epoch = at.epoch,
        images = state.images_seen,
        train_loss = row.train_loss,
        valid_loss,
        dice_lv,
        dice_my,
        "validated"
    );
    state.log.push(row);
    state.validated_at = state.images_seen;
    state.loss_sum = 0.0;
    state.loss_count = 0;
    Ok(())
}
