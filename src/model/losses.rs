//! Segmentation losses over logits `[batch, classes, H, W]` and integer targets `[batch, H, W]`:
//!
//! - **cross-entropy**: mean over pixels of −log p(target);
//! - **focal** (γ = 2): mean over pixels of −(1 − p_t)^γ · log p_t (Lin et al.), no class weights;
//! - **generalized Dice** (Sudre et al. 2017): 1 − 2 Σ_c w_c Σ p_c g_c / Σ_c w_c Σ (p_c + g_c),
//!   w_c = 1 / (Σ g_c)², over the whole batch. A class absent from the batch has an infinite
//!   weight; it gets the largest finite weight instead (MONAI's rule), and 1e-5 is added to the
//!   numerator and denominator;
//! - **cross-entropy + per-image Dice**: cross-entropy plus 1 − the mean over images and
//!   foreground classes of (2 Σ p g + 1) / (Σ p + Σ g + 1). Every image weighs the same, as in
//!   the per-image Dice we report, however few pixels its structures have: a 50-pixel apical
//!   myocardial cap counts as much as a 500-pixel ring (cross-entropy alone weighs it by its
//!   pixels), and an image without the class is rewarded for predicting none of it.
//!   Not one of the paper's losses; the phantom demo uses it.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// Which loss trains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    CrossEntropy,
    Focal,
    GeneralizedDice,
    CrossEntropyDice,
}

const SMOOTH: f64 = 1e-5;
/// Smoothing of the per-image Dice (one pixel).
const IMAGE_SMOOTH: f64 = 1.0;

/// One-hot `[batch, classes, H, W]` floats of integer targets `[batch, H, W]`.
pub fn one_hot<B: Backend>(target: Tensor<B, 3, Int>, classes: usize) -> Tensor<B, 4> {
    let t = target.unsqueeze_dim::<4>(1);
    Tensor::cat((0..classes).map(|c| t.clone().equal_elem(c as i64).float()).collect(), 1)
}

/// The loss as a scalar tensor `[1]`.
pub fn loss<B: Backend>(kind: LossKind, logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
    let classes = logits.dims()[1];
    let g = one_hot(target, classes);
    match kind {
        LossKind::CrossEntropy => -(log_softmax(logits, 1) * g).sum_dim(1).mean(),
        LossKind::CrossEntropyDice => {
            let ce = -(log_softmax(logits.clone(), 1) * g.clone()).sum_dim(1).mean();
            let [b, c, _, _] = g.dims();
            let p = softmax(logits, 1);
            // Per image and class: [b, c, 1, 1].
            let per_image = |t: Tensor<B, 4>| t.sum_dim(3).sum_dim(2);
            let intersect = per_image(p.clone() * g.clone());
            let total = per_image(p) + per_image(g);
            let dice = (intersect * 2.0 + IMAGE_SMOOTH) / (total + IMAGE_SMOOTH);
            ce + (dice.slice([0..b, 1..c]).mean().neg() + 1.0)
        }
        LossKind::Focal => {
            let logp_t = (log_softmax(logits, 1) * g).sum_dim(1);
            let p_t = logp_t.clone().exp();
            let w = (p_t.neg() + 1.0).powi_scalar(2);
            -(w * logp_t).mean()
        }
        LossKind::GeneralizedDice => {
            let p = softmax(logits, 1);
            // Per class sums over batch and pixels: [classes].
            let per_class = |t: Tensor<B, 4>| t.swap_dims(0, 1).reshape([classes as i32, -1]).sum_dim(1).reshape([classes]);
            let g_sum = per_class(g.clone());
            let intersect = per_class(p.clone() * g);
            let total = per_class(p) + g_sum.clone();
            let w = g_sum.powi_scalar(2).recip();
            // Absent classes: infinite weight → the largest finite weight.
            let finite = w.clone().is_inf().bool_not();
            let max_finite = w.clone().mask_fill(finite.clone().bool_not(), 0.0).max();
            let w = w.mask_where(finite.bool_not(), max_finite.expand([classes]));
            let num = (w.clone() * intersect).sum() * 2.0 + SMOOTH;
            let den = (w * total).sum() + SMOOTH;
            (num / den).neg() + 1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    /// Two pixels, two classes, both targets class 0. Logits (ln 3, 0) and (0, ln 3) give
    /// p(class 0) = 0.75 and 0.25.
    fn case() -> (Tensor<B, 4>, Tensor<B, 3, Int>) {
        let dev = Default::default();
        let l3 = 3f32.ln();
        // [batch 1, classes 2, H 1, W 2]: class 0 row then class 1 row.
        let logits = Tensor::from_data(TensorData::new(vec![l3, 0.0, 0.0, l3], [1, 2, 1, 2]), &dev);
        let target = Tensor::from_data(TensorData::new(vec![0i64, 0], [1, 1, 2]), &dev);
        (logits, target)
    }

    fn value(kind: LossKind) -> f64 {
        let (l, t) = case();
        loss(kind, l, t).into_scalar() as f64
    }

    #[test]
    fn cross_entropy_by_hand() {
        // −(ln 0.75 + ln 0.25) / 2
        let want = -(0.75f64.ln() + 0.25f64.ln()) / 2.0;
        assert!((value(LossKind::CrossEntropy) - want).abs() < 1e-6, "{}", value(LossKind::CrossEntropy));
        assert!((want - 0.836_988_2).abs() < 1e-6);
    }

    #[test]
    fn focal_by_hand() {
        // −((1 − 0.75)² ln 0.75 + (1 − 0.25)² ln 0.25) / 2 = (0.0179801 + 0.7797906) / 2
        let want = 0.398_885_4;
        assert!((value(LossKind::Focal) - want).abs() < 1e-6, "{}", value(LossKind::Focal));
    }

    #[test]
    fn generalized_dice_by_hand() {
        // Class 0: Σg = 2 → w = 1/4; intersection 0.75 + 0.25 = 1; Σp + Σg = 1 + 2 = 3.
        // Class 1 is absent (w = ∞ → 1/4); intersection 0; Σp + Σg = 1.
        // 1 − 2·(¼·1) / (¼·3 + ¼·1) = 0.5 (to the 1e-5 smoothing).
        assert!((value(LossKind::GeneralizedDice) - 0.5).abs() < 2e-5, "{}", value(LossKind::GeneralizedDice));
    }

    #[test]
    fn cross_entropy_plus_image_dice_by_hand() {
        // Cross-entropy as above; class 1 is absent: Σp = 0.25 + 0.75 = 1, Σg = 0, so its Dice
        // is (0 + 1) / (1 + 0 + 1) = 0.5 and the Dice term 1 − 0.5.
        let want = -(0.75f64.ln() + 0.25f64.ln()) / 2.0 + 0.5;
        assert!((value(LossKind::CrossEntropyDice) - want).abs() < 1e-6, "{}", value(LossKind::CrossEntropyDice));
    }

    #[test]
    fn image_dice_weighs_every_image_the_same() {
        // Two images of 1×4 pixels, two classes. Image 0 has 3 foreground pixels, image 1 one;
        // the model misses one foreground pixel in each (logits ±30: p ≈ 0 or 1). Dice: image 0
        // (2·2 + 1) / (2 + 3 + 1) = 5/6, image 1 (0 + 1) / (0 + 1 + 1) = 1/2; cross-entropy ≈
        // 60 · 2 / 8 (two misses by a logit margin of 60, in 8 pixels).
        let dev = Default::default();
        let fg = [1i64, 1, 1, 0, 1, 0, 0, 0];
        let pred = [1i64, 1, 0, 0, 0, 0, 0, 0];
        // [image, class, 1, pixel]: +30 for the predicted class, −30 for the other.
        let logit = |c: i64, class: i64| if c == class { 30.0f32 } else { -30.0 };
        let logits: Vec<f32> =
            (0..2).flat_map(|i| (0..2).flat_map(move |class| (0..4).map(move |k| logit(pred[i * 4 + k], class)))).collect();
        let logits = Tensor::<B, 4>::from_data(TensorData::new(logits, [2, 2, 1, 4]), &dev);
        let target = Tensor::<B, 3, Int>::from_data(TensorData::new(fg.to_vec(), [2, 1, 4]), &dev);
        let v = loss(LossKind::CrossEntropyDice, logits, target).into_scalar() as f64;
        let want = 120.0 / 8.0 + 1.0 - (5.0 / 6.0 + 0.5) / 2.0;
        assert!((v - want).abs() < 1e-4, "{v} vs {want}");
    }

    #[test]
    fn perfect_predictions_cost_nothing() {
        let dev = Default::default();
        let logits = Tensor::<B, 4>::from_data(TensorData::new(vec![30.0f32, -30.0, -30.0, 30.0], [1, 2, 1, 2]), &dev);
        let target = Tensor::<B, 3, Int>::from_data(TensorData::new(vec![0i64, 1], [1, 1, 2]), &dev);
        for kind in [LossKind::CrossEntropy, LossKind::Focal, LossKind::GeneralizedDice, LossKind::CrossEntropyDice] {
            let v = loss(kind, logits.clone(), target.clone()).into_scalar();
            assert!(v.abs() < 1e-4, "{kind:?}: {v}");
        }
    }
}
