//! fastai v1's one-cycle policy (`OneCycleScheduler`), step by step as it ran:
//!
//! - `n` = batches of the whole cycle, `a1 = ⌊n · pct_start⌋` warm-up steps, `a2 = n − a1`;
//! - learning rate: cosine from `max/div` up to `max` over `a1` steps, then cosine from `max`
//!   down to `max/final_div` over `a2` (div = 25, final_div = 25·10⁴);
//! - β1 (Adam's momentum): cosine from 0.95 down to 0.85, then back up to 0.95.
//!
//! fastai sets the start values before the first batch and steps the schedule *after* each
//! batch, so batch 0 runs at `max/div`, batch `t ≤ a1` at phase 1's value for `t / a1`, and a
//! later batch at phase 2's value for `(t − a1) / a2` (each phase at least one step long).

use serde::{Deserialize, Serialize};

/// A one-cycle schedule over `total` batches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    pub lr_max: f64,
    pub total: usize,
    pub pct_start: f64,
    pub div: f64,
    pub final_div: f64,
    /// β1 at the ends and at the peak.
    pub moms: (f64, f64),
}

/// `end + (start − end)/2 · (cos(π·pct) + 1)`: fastai's `annealing_cos`.
pub fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

impl OneCycle {
    /// fastai v1's defaults: pct_start 0.3, div 25, final_div 25·10⁴, moms (0.95, 0.85).
    pub fn new(lr_max: f64, total: usize) -> Self {
        OneCycle { lr_max, total, pct_start: 0.3, div: 25.0, final_div: 25.0 * 1e4, moms: (0.95, 0.85) }
    }

    fn phases(&self) -> (usize, usize) {
        let a1 = (self.total as f64 * self.pct_start) as usize;
        (a1.max(1), (self.total - a1).max(1))
    }

    /// (learning rate, β1) for batch `t` (0-based).
    pub fn at(&self, t: usize) -> (f64, f64) {
        let (a1, a2) = self.phases();
        let low = self.lr_max / self.div;
        let (m0, m1) = self.moms;
        if t <= a1 {
            let p = t as f64 / a1 as f64;
            (annealing_cos(low, self.lr_max, p), annealing_cos(m0, m1, p))
        } else {
            let p = ((t - a1) as f64 / a2 as f64).min(1.0);
            (annealing_cos(self.lr_max, self.lr_max / self.final_div, p), annealing_cos(m1, m0, p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_and_momentum_follow_the_formula() {
        // 100 batches at max 1e-4: warm-up over 30 batches, annealing over 70.
        let s = OneCycle::new(1e-4, 100);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-12);
        // Start: max/25 and β1 0.95.
        let (lr, m) = s.at(0);
        assert!(close(lr, 4e-6) && close(m, 0.95), "{lr} {m}");
        // Batch 15 is half-way up: the cosine's midpoint, (max/25 + max)/2; β1 (0.95+0.85)/2.
        let (lr, m) = s.at(15);
        assert!(close(lr, (4e-6 + 1e-4) / 2.0) && close(m, 0.90), "{lr} {m}");
        // Batch 30: the peak.
        let (lr, m) = s.at(30);
        assert!(close(lr, 1e-4) && close(m, 0.85), "{lr} {m}");
        // Batch 65 is half-way down: (max + max/25e4)/2.
        let (lr, m) = s.at(65);
        assert!(close(lr, (1e-4 + 1e-4 / 25e4) / 2.0) && close(m, 0.90), "{lr} {m}");
        // Batch 10: a third of the way up, by the formula written out.
        let (lr, _) = s.at(10);
        let want = 1e-4 + (4e-6 - 1e-4) / 2.0 * ((std::f64::consts::PI / 3.0).cos() + 1.0);
        assert!(close(lr, want), "{lr} vs {want}");
        // The last batch is one step short of the end, as in fastai: pct 69/70 of phase 2.
        let (lr, m) = s.at(99);
        let end = 1e-4 / 25e4;
        let want = end + (1e-4 - end) / 2.0 * ((std::f64::consts::PI * 69.0 / 70.0).cos() + 1.0);
        assert!(close(lr, want) && lr > end, "{lr} vs {want}");
        assert!(m < 0.95 && m > 0.949, "{m}");
    }

    #[test]
    fn short_cycles_still_warm_up_and_anneal() {
        let s = OneCycle::new(1e-3, 2);
        assert!((s.at(0).0 - 1e-3 / 25.0).abs() < 1e-15);
        assert!((s.at(1).0 - 1e-3).abs() < 1e-15);
        assert!((s.at(1).1 - 0.85).abs() < 1e-15);
    }
}
