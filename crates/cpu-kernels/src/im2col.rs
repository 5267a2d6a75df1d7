//! Patches of one NCHW image as the rows of a matrix (`im2col`), and back (`col2im`).
//!
//! The matrix of a band of output rows `oy` has one row per input channel and kernel tap
//! (`(ci · kh + ky) · kw + kx`, the order of an OIHW weight's flattened row) and one column per
//! output pixel of the band. Each (tap, output row) segment is one slice of an input row: a
//! plain copy when the stride is 1, with the zero padding at its ends computed, not tested per
//! pixel.

use std::ops::Range;

use crate::geometry::Conv2d;

/// Output columns `lo..hi` whose input column `ox · stride + offset − pad` lies inside `0..len`.
fn valid(out_len: usize, len: usize, stride: usize, offset: usize, pad: usize) -> Range<usize> {
    let lo = if offset >= pad { 0 } else { (pad - offset).div_ceil(stride) };
    let hi = if len + pad > offset { ((len + pad - offset - 1) / stride + 1).min(out_len) } else { 0 };
    lo.min(hi)..hi
}

/// The input row and column range that one kernel tap reads for output row `oy`, or `None`
/// where that row falls in the padding.
struct Tap {
    cols: Range<usize>,
    col_offset: usize,
}

impl Tap {
    fn new(g: &Conv2d, kx: usize, ow: usize) -> Self {
        let offset = kx * g.dilation[1];
        Tap { cols: valid(ow, g.w, g.stride[1], offset, g.pad[1]), col_offset: offset }
    }

    fn input_row(g: &Conv2d, oy: usize, ky: usize) -> Option<usize> {
        (oy * g.stride[0] + ky * g.dilation[0]).checked_sub(g.pad[0]).filter(|&iy| iy < g.h)
    }

    /// Input column of output column `ox` (inside `cols`).
    fn input_col(&self, g: &Conv2d, ox: usize) -> usize {
        ox * g.stride[1] + self.col_offset - g.pad[1]
    }
}

/// Calls `f(channel, ky, tap, row)` for every row of the patch matrix, in its order.
fn each_row(g: &Conv2d, mut f: impl FnMut(usize, usize, &Tap, usize)) {
    let taps: Vec<Tap> = (0..g.kw).map(|kx| Tap::new(g, kx, g.out_w())).collect();
    let mut row = 0;
    for ci in 0..g.cin {
        for ky in 0..g.kh {
            for tap in &taps {
                f(ci, ky, tap, row);
                row += 1;
            }
        }
    }
}

/// Fills `col` (`patch_len × (oy.len() · ow)`, every value written) from image `x`
/// (`cin × h × w`).
pub(crate) fn im2col(g: &Conv2d, x: &[f32], oy: Range<usize>, col: &mut [f32]) {
    let ow = g.out_w();
    let n = oy.len() * ow;
    // Stride 1 with the output as wide as the input ("same" padding): a tap's row of the band
    // is one run of the input plane, shifted; only the columns that fall in the padding differ.
    let one_run = g.stride == [1, 1] && ow == g.w;
    each_row(g, |ci, ky, tap, r| {
        let plane = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        let dst = &mut col[r * n..(r + 1) * n];
        if one_run {
            shifted_run(g, plane, oy.clone(), ky, tap, dst);
            return;
        }
        for (dst, y) in dst.chunks_exact_mut(ow).zip(oy.clone()) {
            let Some(iy) = Tap::input_row(g, y, ky) else {
                dst.fill(0.0);
                continue;
            };
            let src = &plane[iy * g.w..(iy + 1) * g.w];
            let Range { start, end } = tap.cols.clone();
            dst[..start].fill(0.0);
            dst[end..].fill(0.0);
            if g.stride[1] == 1 && start < end {
                let ix = tap.input_col(g, start);
                dst[start..end].copy_from_slice(&src[ix..ix + end - start]);
            } else {
                for ox in start..end {
                    dst[ox] = src[tap.input_col(g, ox)];
                }
            }
        }
    });
}

/// One tap's row of a band for stride 1 and `out_w == w`: the rows whose input row lies in the
/// image are one copy of the plane from `(iy, tap offset)` on; then the padding columns of each
/// row (which that copy filled from the neighbouring input row) and the rows in the padding are
/// zeroed.
fn shifted_run(g: &Conv2d, plane: &[f32], oy: Range<usize>, ky: usize, tap: &Tap, dst: &mut [f32]) {
    let w = g.w;
    let inside: Vec<usize> = oy.clone().filter(|&y| Tap::input_row(g, y, ky).is_some()).collect();
    let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
        dst.fill(0.0);
        return;
    };
    let (r0, r1) = (first - oy.start, last + 1 - oy.start);
    dst[..r0 * w].fill(0.0);
    dst[r1 * w..].fill(0.0);
    let iy = Tap::input_row(g, first, ky).expect("a row inside the image");
    // Plane index of output column 0 of row `first`; may be before the plane's start.
    let start = (iy * w + tap.col_offset) as isize - g.pad[1] as isize;
    let len = (r1 - r0) * w;
    let from = start.max(0) as usize;
    let to = ((start + len as isize) as usize).min(plane.len());
    let skip = (from as isize - start) as usize;
    let run = &mut dst[r0 * w..r1 * w];
    run[skip..skip + (to - from)].copy_from_slice(&plane[from..to]);
    let Range { start: lo, end: hi } = tap.cols.clone();
    for row in run.chunks_exact_mut(w) {
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
    }
}

/// Adds the patch matrix `col` of band `oy` back onto image gradient `dx` (`cin × h × w`): the
/// transpose of [`im2col`].
pub(crate) fn col2im_add(g: &Conv2d, col: &[f32], oy: Range<usize>, dx: &mut [f32]) {
    let ow = g.out_w();
    let n = oy.len() * ow;
    each_row(g, |ci, ky, tap, r| {
        let plane = &mut dx[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for (src, y) in col[r * n..(r + 1) * n].chunks_exact(ow).zip(oy.clone()) {
            let Some(iy) = Tap::input_row(g, y, ky) else { continue };
            let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
            for ox in tap.cols.clone() {
                dst[tap.input_col(g, ox)] += src[ox];
            }
        }
    });
}
