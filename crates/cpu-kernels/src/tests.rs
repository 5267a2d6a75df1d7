//! The kernels against a direct convolution summed in f64, over the shapes the U-Nets use
//! (3×3, 1×1, the 7×7 stride-2 stem, strided downsampling) and the corners (dilation, padding
//! wider than needed, several bands per image, odd sizes).

use crate::{Conv2d, conv2d_bias_grad, conv2d_forward, conv2d_input_grad, conv2d_weight_grad};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
}

fn reference(g: &Conv2d, x: &[f32], w: &[f32], dy: &[f32]) -> Reference {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut r = Reference { y: vec![0.0; g.batch * g.cout * oh * ow], dx: vec![0.0; x.len()], dw: vec![0.0; w.len()] };
    for b in 0..g.batch {
        for co in 0..g.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((b * g.cout + co) * oh + oy) * ow + ox;
                    for ci in 0..g.cin {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                                let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                                if !((0..g.h as isize).contains(&iy) && (0..g.w as isize).contains(&ix)) {
                                    continue;
                                }
                                let xi = ((b * g.cin + ci) * g.h + iy as usize) * g.w + ix as usize;
                                let wi = ((co * g.cin + ci) * g.kh + ky) * g.kw + kx;
                                r.y[yi] += x[xi] as f64 * w[wi] as f64;
                                r.dx[xi] += dy[yi] as f64 * w[wi] as f64;
                                r.dw[wi] += dy[yi] as f64 * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    r
}

fn close(what: &str, g: &Conv2d, got: &[f32], want: &[f64], terms: usize) {
    assert_eq!(got.len(), want.len(), "{what} length for {g:?}");
    // f32 sums of `terms` products of values in [-1, 1].
    let tol = 1e-5 * (terms as f64).sqrt().max(1.0) * 4.0;
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!((a as f64 - b).abs() <= tol, "{what} [{i}] = {a}, want {b} (tolerance {tol}) for {g:?}");
    }
}

fn check(g: Conv2d) {
    let g = g.checked().expect("a valid geometry");
    let x = values(g.batch * g.cin * g.h * g.w, 1);
    let w = values(g.cout * g.cin * g.kh * g.kw, 2);
    let bias = values(g.cout, 3);
    let dy = values(g.batch * g.cout * g.out_h() * g.out_w(), 4);
    let r = reference(&g, &x, &w, &dy);
    let y = conv2d_forward(&g, &x, &w, None);
    close("forward", &g, &y, &r.y, g.patch_len());
    let with_bias = conv2d_forward(&g, &x, &w, Some(&bias));
    let plane = g.out_h() * g.out_w();
    let want: Vec<f64> = r.y.iter().enumerate().map(|(i, v)| v + bias[(i / plane) % g.cout] as f64).collect();
    close("forward with bias", &g, &with_bias, &want, g.patch_len());
    close("input gradient", &g, &conv2d_input_grad(&g, &dy, &w), &r.dx, g.cout * g.kh * g.kw);
    close("weight gradient", &g, &conv2d_weight_grad(&g, &x, &dy), &r.dw, g.batch * plane);
    let mut db = vec![0.0f64; g.cout];
    for (i, p) in dy.chunks_exact(plane).enumerate() {
        db[i % g.cout] += p.iter().map(|&v| v as f64).sum::<f64>();
    }
    close("bias gradient", &g, &conv2d_bias_grad(&dy, g.batch, g.cout, plane), &db, g.batch * plane);
}

fn conv(batch: usize, cin: usize, hw: [usize; 2], cout: usize, k: usize, stride: usize, pad: usize) -> Conv2d {
    Conv2d { batch, cin, h: hw[0], w: hw[1], cout, kh: k, kw: k, stride: [stride; 2], pad: [pad; 2], dilation: [1, 1] }
}

#[test]
fn three_by_three_same_padding() {
    check(conv(3, 5, [9, 11], 7, 3, 1, 1));
}

#[test]
fn three_by_three_stride_two() {
    check(conv(2, 4, [10, 9], 6, 3, 2, 1));
}

#[test]
fn pointwise_and_strided_pointwise() {
    check(conv(3, 6, [7, 5], 4, 1, 1, 0));
    check(conv(2, 6, [8, 7], 5, 1, 2, 0));
}

#[test]
fn resnet_stem_seven_by_seven_stride_two() {
    check(conv(2, 1, [20, 18], 4, 7, 2, 3));
}

#[test]
fn no_padding_wide_padding_and_dilation() {
    check(conv(2, 3, [8, 8], 4, 3, 1, 0));
    check(conv(1, 2, [6, 7], 3, 3, 1, 3));
    check(Conv2d { dilation: [2, 3], ..conv(2, 3, [12, 13], 4, 3, 1, 2) });
    // "Same" padding with dilation: the one-copy-per-tap path of im2col.
    check(Conv2d { dilation: [2, 2], ..conv(2, 3, [11, 10], 4, 3, 1, 2) });
    check(conv(2, 2, [9, 12], 3, 5, 1, 2));
    check(Conv2d { kh: 3, kw: 1, pad: [1, 0], ..conv(2, 3, [9, 6], 2, 3, 1, 1) });
}

#[test]
fn tall_images_run_in_several_bands() {
    // 576 patch values per pixel, 8 pixels per row: about 227 rows per band.
    let g = conv(1, 64, [600, 8], 2, 3, 1, 1);
    assert!(g.bands().count() >= 3, "{} bands", g.bands().count());
    check(g);
    let strided = conv(1, 64, [1200, 16], 2, 3, 2, 1);
    assert!(strided.bands().count() >= 3, "{} bands", strided.bands().count());
    check(strided);
}

#[test]
fn the_same_bits_on_every_run() {
    let g = conv(8, 16, [32, 32], 16, 3, 1, 1);
    let x = values(g.batch * g.cin * g.h * g.w, 5);
    let dy = values(g.batch * g.cout * g.out_h() * g.out_w(), 6);
    let first = conv2d_weight_grad(&g, &x, &dy);
    for _ in 0..3 {
        assert_eq!(conv2d_weight_grad(&g, &x, &dy), first);
    }
}

#[test]
fn geometry_rejects_a_kernel_larger_than_the_padded_input() {
    assert!(conv(1, 1, [2, 2], 1, 5, 1, 0).checked().is_none());
    assert!(conv(0, 1, [8, 8], 1, 3, 1, 1).checked().is_none());
    assert!(conv(1, 1, [2, 2], 1, 5, 1, 2).checked().is_some());
}

mod norm {
    use crate::{Maps, Relu, Stats, batch_norm_backward, channel_stats, scale_shift};

    use super::values;

    /// `Σ w · batch_norm(x)` (of `relu(x)` with `m.relu`) in f64, by the textbook formula.
    fn loss(m: Maps, x: &[f64], w: &[f32], gamma: &[f32], beta: &[f32]) -> f64 {
        let x: Vec<f64> = x.iter().map(|&v| if m.relu == Relu::Before { v.max(0.0) } else { v }).collect();
        let n = (m.batch * m.plane) as f64;
        let mut total = 0.0;
        for c in 0..m.channels {
            let idx: Vec<usize> = (0..m.batch).flat_map(|b| (0..m.plane).map(move |p| (b * m.channels + c) * m.plane + p)).collect();
            let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / n;
            let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / n;
            for &i in &idx {
                let y = (x[i] - mean) / (var + 1e-5).sqrt() * gamma[c] as f64 + beta[c] as f64;
                total += w[i] as f64 * if m.relu == Relu::After { y.max(0.0) } else { y };
            }
        }
        total
    }

    #[test]
    fn forward_and_gradients_match_the_formula_and_finite_differences() {
        check(Maps { batch: 3, channels: 2, plane: 5, relu: Relu::None });
    }

    #[test]
    fn with_a_relu_before_or_after_it_too() {
        check(Maps { batch: 3, channels: 2, plane: 5, relu: Relu::Before });
        check(Maps { batch: 3, channels: 2, plane: 5, relu: Relu::After });
    }

    fn check(m: Maps) {
        let x: Vec<f32> = values(30, 11).iter().map(|v| v * 2.0 + 0.5).collect();
        let w = values(30, 12);
        let (gamma, beta) = (vec![1.3f32, 0.7], vec![-0.2f32, 0.4]);
        let (mean, var) = channel_stats(m, &x);
        let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let scale: Vec<f32> = gamma.iter().zip(&invstd).map(|(g, s)| g * s).collect();
        let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((b, mu), k)| b - mu * k).collect();
        let y = scale_shift(m, &x, &scale, &shift);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let forward: f64 = y.iter().zip(&w).map(|(&y, &w)| y as f64 * w as f64).sum();
        assert!((forward - loss(m, &x64, &w, &gamma, &beta)).abs() < 1e-4, "{forward}");
        let (dx, dgamma, dbeta) = batch_norm_backward(m, &x, &w, Stats { mean: &mean, invstd: &invstd, gamma: &gamma, beta: &beta });
        let h = 1e-4;
        for i in 0..30 {
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(m, &up, &w, &gamma, &beta) - loss(m, &down, &w, &gamma, &beta)) / (2.0 * h);
            assert!((dx[i] as f64 - numeric).abs() < 1e-3, "dx[{i}] = {}, finite difference {numeric}", dx[i]);
        }
        for c in 0..2 {
            let bump = |dg: f32, db: f32| {
                let (mut g, mut b) = (gamma.clone(), beta.clone());
                g[c] += dg;
                b[c] += db;
                loss(m, &x64, &w, &g, &b)
            };
            let numeric_g = (bump(h as f32, 0.0) - bump(-h as f32, 0.0)) / (2.0 * h);
            let numeric_b = (bump(0.0, h as f32) - bump(0.0, -h as f32)) / (2.0 * h);
            assert!((dgamma[c] as f64 - numeric_g).abs() < 1e-2, "dgamma[{c}] = {}, {numeric_g}", dgamma[c]);
            assert!((dbeta[c] as f64 - numeric_b).abs() < 1e-2, "dbeta[{c}] = {}, {numeric_b}", dbeta[c]);
        }
    }
}
