//! The three convolution kernels: forward, input gradient, weight gradient.
//!
//! Work is split into (image, band of output rows) tasks on rayon's pool; each task's gemm runs
//! on its own thread (`Parallelism::None`), so that the pool is busy with whole tasks instead of
//! splitting every small gemm.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::geometry::Conv2d;
use crate::im2col::{col2im_add, im2col};
use crate::scratch::with_scratch;

/// A raw pointer that rayon tasks may share; each task writes a disjoint part.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every task writes only its own (image, band) rows or its own image.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the allocation this pointer came from.
        unsafe { self.0.add(offset) }
    }
}

/// A matrix operand of gemm: base pointer and (row, column) strides in elements.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}
// SAFETY: the operands are only read while the call that made them is running.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

/// `dst (m × n, strides (rs, cs)) = lhs (m × k) · rhs (k × n)`, plus `dst` when `accumulate`.
///
/// gemm's kernels read column-major operands: a row-major `dst` makes it solve the transposed
/// product, and an operand whose rows are not contiguous in that product is repacked (a
/// transposing copy) first.
///
/// # Safety
/// The operands must cover the given shapes and strides; `dst` must not alias them.
unsafe fn gemm([m, n, k]: [usize; 3], (dst, dst_rs, dst_cs): (*mut f32, usize, usize), accumulate: bool, lhs: Mat, rhs: Mat) {
    let s = |v: usize| v as isize;
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            s(dst_cs),
            s(dst_rs),
            accumulate,
            lhs.ptr,
            s(lhs.cs),
            s(lhs.rs),
            rhs.ptr,
            s(rhs.cs),
            s(rhs.rs),
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Forward convolution: `x` `[batch, cin, h, w]`, `weight` `[cout, cin, kh, kw]`, optional
/// `bias` `[cout]`; returns `[batch, cout, out_h, out_w]`, contiguous.
pub fn conv2d_forward(g: &Conv2d, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (k, in_img, out_plane) = (g.patch_len(), g.cin * g.in_plane(), g.out_plane());
    assert_eq!(x.len(), g.batch * in_img, "conv2d: input length");
    assert_eq!(weight.len(), g.cout * k, "conv2d: weight length");
    let ow = g.out_w();
    // Not zeroed first: the gemms below write every value (a memset was 6.5% of inference).
    let len = g.batch * g.cout * out_plane;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = SharedMut(out.as_mut_ptr());
    let bands: Vec<_> = g.bands().collect();
    let lhs = Mat { ptr: weight.as_ptr(), rs: k, cs: 1 };
    (0..g.batch * bands.len()).into_par_iter().for_each(|task| {
        let (b, oy) = (task / bands.len(), bands[task % bands.len()].clone());
        let xb = &x[b * in_img..(b + 1) * in_img];
        let n = oy.len() * ow;
        let out_at = b * g.cout * out_plane + oy.start * ow;
        let run = |rhs: Mat| {
            // SAFETY: rows `oy` of image `b` are this task's alone; the operands cover
            // `cout × k` and `k × n`.
            unsafe { gemm([g.cout, n, k], (dst.at(out_at), out_plane, 1), false, lhs, rhs) }
        };
        if g.is_pointwise() {
            run(Mat { ptr: xb[oy.start * ow..].as_ptr(), rs: out_plane, cs: 1 });
        } else {
            with_scratch(k * n, |col| {
                im2col(g, xb, oy.clone(), col);
                run(Mat { ptr: col.as_ptr(), rs: n, cs: 1 });
            });
        }
        if let Some(bias) = bias {
            for (c, &v) in bias.iter().enumerate() {
                // SAFETY: the same rows as the gemm wrote.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.at(out_at + c * out_plane), n) };
                row.iter_mut().for_each(|o| *o += v);
            }
        }
    });
    // SAFETY: the tasks covered every (image, band) and each gemm wrote all `cout × n` values
    // of its band.
    unsafe { out.set_len(len) };
    out
}

/// Gradient of the input: `dy` `[batch, cout, out_h, out_w]`, `weight` `[cout, cin, kh, kw]`;
/// returns `[batch, cin, h, w]`.
pub fn conv2d_input_grad(g: &Conv2d, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    if let Some(t) = transposed(g) {
        return conv2d_forward(&t, dy, &flip_transpose(g, weight), None);
    }
    let (k, in_img, out_plane, ow) = (g.patch_len(), g.cin * g.in_plane(), g.out_plane(), g.out_w());
    assert_eq!(dy.len(), g.batch * g.cout * out_plane, "conv2d input grad: output gradient length");
    let mut dx = vec![0.0f32; g.batch * in_img];
    // Wᵀ: `k × cout`.
    let lhs = Mat { ptr: weight.as_ptr(), rs: 1, cs: k };
    dx.par_chunks_mut(in_img).enumerate().for_each(|(b, dxb)| {
        let dyb = &dy[b * g.cout * out_plane..(b + 1) * g.cout * out_plane];
        for oy in g.bands() {
            let n = oy.len() * ow;
            with_scratch(k * n, |col| {
                let rhs = Mat { ptr: dyb[oy.start * ow..].as_ptr(), rs: out_plane, cs: 1 };
                // SAFETY: `col` is `k × n`; the operands cover their shapes.
                unsafe { gemm([k, n, g.cout], (col.as_mut_ptr(), n, 1), false, lhs, rhs) };
                col2im_add(g, col, oy.clone(), dxb);
            });
        }
    });
    dx
}

/// Gradient of the weight: `x` `[batch, cin, h, w]`, `dy` `[batch, cout, out_h, out_w]`;
/// returns `[cout, cin, kh, kw]`.
pub fn conv2d_weight_grad(g: &Conv2d, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, in_img, out_plane, ow) = (g.patch_len(), g.cin * g.in_plane(), g.out_plane(), g.out_w());
    assert_eq!(x.len(), g.batch * in_img, "conv2d weight grad: input length");
    assert_eq!(dy.len(), g.batch * g.cout * out_plane, "conv2d weight grad: output gradient length");
    let bands: Vec<_> = g.bands().collect();
    let tasks = g.batch * bands.len();
    // A fixed split of the tasks, summed in a fixed order: the same result for the same
    // thread count however the pool schedules them.
    let parts = rayon::current_num_threads().clamp(1, tasks);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut acc = vec![0.0f32; g.cout * k];
            for task in p * tasks / parts..(p + 1) * tasks / parts {
                let (b, oy) = (task / bands.len(), bands[task % bands.len()].clone());
                let xb = &x[b * in_img..(b + 1) * in_img];
                let n = oy.len() * ow;
                let lhs = Mat { ptr: dy[b * g.cout * out_plane + oy.start * ow..].as_ptr(), rs: out_plane, cs: 1 };
                // `acc` is dW column-major (`k × cout` in memory): gemm then solves this product
                // as it stands and repacks only the output gradient, not the 9× larger patches.
                // SAFETY: `acc` holds `cout × k`; the operands cover their shapes.
                let run = |rhs: Mat, acc: &mut [f32]| unsafe { gemm([g.cout, k, n], (acc.as_mut_ptr(), 1, g.cout), true, lhs, rhs) };
                if g.is_pointwise() {
                    // xᵀ of the band: `n × cin`.
                    run(Mat { ptr: xb[oy.start * ow..].as_ptr(), rs: 1, cs: out_plane }, &mut acc);
                } else {
                    with_scratch(k * n, |col| {
                        im2col(g, xb, oy.clone(), col);
                        run(Mat { ptr: col.as_ptr(), rs: 1, cs: n }, &mut acc);
                    });
                }
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut sum = parts.next().unwrap_or_default();
    for part in parts {
        sum.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
    }
    // `k × cout` → `cout × k`.
    let mut dw = vec![0.0f32; sum.len()];
    for (kk, row) in sum.chunks_exact(g.cout).enumerate() {
        for (co, &v) in row.iter().enumerate() {
            dw[co * k + kk] = v;
        }
    }
    dw
}

/// For stride 1, the input gradient is a forward convolution of the output gradient with the
/// flipped kernel and padding `dilation · (k − 1) − pad`; `None` where that padding would be
/// negative or the stride is not 1.
fn transposed(g: &Conv2d) -> Option<Conv2d> {
    if g.stride != [1, 1] {
        return None;
    }
    let pad = |k: usize, d: usize, p: usize| (d * (k - 1)).checked_sub(p);
    let t = Conv2d {
        batch: g.batch,
        cin: g.cout,
        h: g.out_h(),
        w: g.out_w(),
        cout: g.cin,
        kh: g.kh,
        kw: g.kw,
        stride: [1, 1],
        pad: [pad(g.kh, g.dilation[0], g.pad[0])?, pad(g.kw, g.dilation[1], g.pad[1])?],
        dilation: g.dilation,
    };
    (t.out_h() == g.h && t.out_w() == g.w).then_some(t)
}

/// `[cout, cin, kh, kw]` → `[cin, cout, kh, kw]`, each kernel rotated by 180°.
fn flip_transpose(g: &Conv2d, weight: &[f32]) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let mut out = vec![0.0f32; weight.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &weight[(co * g.cin + ci) * taps..][..taps];
            let dst = &mut out[(ci * g.cout + co) * taps..][..taps];
            dst.iter_mut().zip(src.iter().rev()).for_each(|(d, s)| *d = *s);
        }
    }
    out
}

/// Gradient of the bias: `dy` `[batch, channels, plane]` summed per channel.
pub fn conv2d_bias_grad(dy: &[f32], batch: usize, channels: usize, plane: usize) -> Vec<f32> {
    assert_eq!(dy.len(), batch * channels * plane, "conv2d bias grad: output gradient length");
    let mut sum = vec![0.0f32; channels];
    for image in dy.chunks_exact(channels * plane) {
        for (s, p) in sum.iter_mut().zip(image.chunks_exact(plane)) {
            *s += p.iter().sum::<f32>();
        }
    }
    sum
}
