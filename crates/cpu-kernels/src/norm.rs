//! Batch normalisation of `[batch, channels, plane]` maps in as few passes as the arithmetic
//! allows: statistics in one read (f64 sums per channel), the output in one read and one write,
//! the gradients in two reads and one write. Burn's composed version makes a full-size tensor
//! at each of its steps (centre, square, scale, shift) and again in the backward pass.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// A `[batch, channels, plane]` map (NCHW with `plane = H · W`).
#[derive(Clone, Copy, Debug)]
pub struct Maps {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
    /// Where a ReLU sits next to the normalisation, fused into its passes.
    pub relu: Relu,
}

/// A ReLU fused with the batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relu {
    None,
    /// Before it (fastai's conv → ReLU → BatchNorm): applied as the input is read; no gradient
    /// passes where the input was ≤ 0.
    Before,
    /// After it (torchvision's conv → BatchNorm → ReLU): applied as the output is written; no
    /// gradient passes where the normalised value was ≤ 0.
    After,
}

impl Maps {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// The value the normalisation sees.
    #[inline(always)]
    fn seen(&self, v: f32) -> f32 {
        if self.relu == Relu::Before { v.max(0.0) } else { v }
    }

    /// The planes of channel `c`, one per image.
    fn planes<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (plane, stride) = (self.plane, self.channels * self.plane);
        (0..self.batch).map(move |b| &x[b * stride + c * plane..][..plane])
    }
}

/// Per channel: the mean and the biased variance over batch and plane.
pub fn channel_stats(m: Maps, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), m.len(), "batch norm: input length");
    let count = (m.batch * m.plane) as f64;
    let stats: Vec<(f32, f32)> = (0..m.channels)
        .into_par_iter()
        .map(|c| {
            // In f64: the variance is E[x²] − mean², which f32 sums of a 256² plane would blur.
            let (sum, squares) = m.planes(x, c).flatten().map(|&v| m.seen(v) as f64).fold((0.0f64, 0.0f64), |(s, q), v| (s + v, q + v * v));
            let mean = sum / count;
            ((mean) as f32, (squares / count - mean * mean).max(0.0) as f32)
        })
        .collect();
    stats.into_iter().unzip()
}

/// A batch's statistics and the affine parameters, per channel.
#[derive(Clone, Copy, Debug)]
pub struct Stats<'a> {
    pub mean: &'a [f32],
    pub invstd: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
}

/// `x · scale[c] + shift[c]` for every value of channel `c`.
pub fn scale_shift(m: Maps, x: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), m.len(), "batch norm: input length");
    planes_out(m, |i, out| {
        let (a, b, inp) = (scale[i % m.channels], shift[i % m.channels], &x[i * m.plane..(i + 1) * m.plane]);
        out.iter_mut().zip(inp).for_each(|(o, &v)| {
            let y = m.seen(v) * a + b;
            o.write(if m.relu == Relu::After { y.max(0.0) } else { y });
        });
    })
}

/// A new map, each plane `i` (image · channels + channel) written by `f(i, plane)` on rayon's
/// pool; `f` must write every value (nothing is zeroed first).
fn planes_out(m: Maps, f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(m.len());
    out.spare_capacity_mut()[..m.len()].par_chunks_mut(m.plane).enumerate().for_each(|(i, plane)| f(i, plane));
    // SAFETY: `f` wrote every value of every plane.
    unsafe { out.set_len(m.len()) };
    out
}

/// The gradients of `y = (x − mean) · invstd · gamma + beta` given `dy`: `(dx, dgamma, dbeta)`,
/// with the batch statistics' own dependence on `x` (training mode), and through the ReLU of
/// `m.relu`.
pub fn batch_norm_backward(m: Maps, x: &[f32], dy: &[f32], stats: Stats<'_>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Stats { mean, invstd, gamma, beta } = stats;
    // With the ReLU after: the gradient reaching the normalised value (zero where it was ≤ 0).
    let reaching = |c: usize, v: f32, g: f32| {
        if m.relu == Relu::After && (v - mean[c]) * invstd[c] * gamma[c] + beta[c] <= 0.0 { 0.0 } else { g }
    };
    assert_eq!((x.len(), dy.len()), (m.len(), m.len()), "batch norm backward: lengths");
    // Per channel: Σ dy and Σ dy · x̂, x̂ = (x − mean) · invstd.
    let sums: Vec<(f32, f32)> = (0..m.channels)
        .into_par_iter()
        .map(|c| {
            let (sum, dot) = m.planes(x, c).flatten().zip(m.planes(dy, c).flatten()).fold((0.0f64, 0.0f64), |(s, d), (&v, &g)| {
                let g = reaching(c, v, g) as f64;
                (s + g, d + g * (m.seen(v) - mean[c]) as f64)
            });
            (sum as f32, (dot * invstd[c] as f64) as f32)
        })
        .collect();
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
    let count = (m.batch * m.plane) as f32;
    let dx = planes_out(m, |i, out| {
        let c = i % m.channels;
        let (k, mb, s, is) = (gamma[c] * invstd[c], dbeta[c] / count, dgamma[c] / count, invstd[c]);
        let (xp, gp) = (&x[i * m.plane..(i + 1) * m.plane], &dy[i * m.plane..(i + 1) * m.plane]);
        for ((o, &v), &g) in out.iter_mut().zip(xp).zip(gp) {
            // Where the ReLU before cut the input off, no gradient reaches it.
            let through = m.relu != Relu::Before || v > 0.0;
            let g = reaching(c, v, g);
            o.write(if through { k * (g - mb - (m.seen(v) - mean[c]) * is * s) } else { 0.0 });
        }
    });
    (dx, dgamma, dbeta)
}
