//! The CPU engine's convolutions (`crates/cpu-kernels` through the patched flex of
//! `vendor/burn-flex`) against flex's own convolution and burn's default gradients (a
//! transposed convolution for the input, a batch/channel-swapped convolution for the weight),
//! on the convolution shapes of the U-Nets, through autodiff as training runs them.

use burn::backend::{Autodiff, Flex};
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensorOps};
use burn::tensor::{Distribution, Tensor};
use burn_flex::FlexTensor;
use burn_flex::ops::{conv::conv2d_f32, conv_transpose::conv_transpose2d_f32};

type A = Autodiff<Flex>;

fn flex(t: &Tensor<Flex, 4>) -> FlexTensor {
    FlexTensor::from_data(t.to_data())
}

fn values(t: FlexTensor) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

/// Largest difference, relative to the largest magnitude of the reference (at least 1).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 2e-5 * scale, "{what}: differs by {worst} (scale {scale})");
}

/// `[batch, cin, h, w]` input, `[cout, cin, k, k]` weight.
fn check(x_shape: [usize; 4], cout: usize, k: usize, stride: usize, pad: usize, bias: bool) {
    let what = format!("x {x_shape:?} → {cout} channels, {k}×{k} stride {stride} pad {pad}");
    let dev = Default::default();
    let [_, cin, h, w] = x_shape;
    let x = Tensor::<Flex, 4>::random(x_shape, Distribution::Uniform(-1.0, 1.0), &dev);
    let weight = Tensor::<Flex, 4>::random([cout, cin, k, k], Distribution::Uniform(-0.5, 0.5), &dev);
    let b = Tensor::<Flex, 1>::random([cout], Distribution::Uniform(-1.0, 1.0), &dev);
    let options = ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1);

    // The engine, through autodiff: y = conv(x, w) + b, loss = Σ y · dy, so ∂loss/∂y = dy.
    let xa = Tensor::<A, 4>::from_inner(x.clone()).require_grad();
    let wa = Tensor::<A, 4>::from_inner(weight.clone()).require_grad();
    let ba = bias.then(|| Tensor::<A, 1>::from_inner(b.clone()));
    let y = conv2d(xa.clone(), wa.clone(), ba, options.clone());
    let dy = Tensor::<Flex, 4>::random(y.dims(), Distribution::Uniform(-1.0, 1.0), &dev);
    let grads = (y.clone() * Tensor::<A, 4>::from_inner(dy.clone())).sum().backward();
    let dx = xa.grad(&grads).unwrap();
    let dw = wa.grad(&grads).unwrap();

    // Flex's own forward and burn's default gradients.
    let want_y = conv2d_f32(flex(&x), flex(&weight), bias.then(|| FlexTensor::from_data(b.to_data())), &options);
    let [_, _, oh, ow] = y.dims();
    let out_pad = |size: usize, out: usize| size + 2 * pad - k - (out - 1) * stride;
    let transpose = ConvTransposeOptions::new([stride; 2], [pad; 2], [out_pad(h, oh), out_pad(w, ow)], [1, 1], 1);
    let want_dx = conv_transpose2d_f32(flex(&dy), flex(&weight), None, &transpose);
    let swapped = |t: FlexTensor| Flex::float_swap_dims(t, 0, 1);
    let want_dw = swapped(conv2d_f32(swapped(flex(&x)), swapped(flex(&dy)), None, &ConvOptions::new([1, 1], [pad; 2], [stride; 2], 1)));
    let want_dw = Tensor::<Flex, 4>::from_data(want_dw.into_data(), &dev).slice([0..cout, 0..cin, 0..k, 0..k]);

    assert_close(&format!("forward, {what}"), &y.inner().to_data().to_vec().unwrap(), &values(want_y));
    assert_close(&format!("input gradient, {what}"), &dx.to_data().to_vec().unwrap(), &values(want_dx));
    assert_close(&format!("weight gradient, {what}"), &dw.to_data().to_vec().unwrap(), &want_dw.to_data().to_vec::<f32>().unwrap());
}

#[test]
fn unet_convolutions_match_flex_and_burns_default_gradients() {
    // ResNet stem, 3×3 blocks, strided downsampling and its 1×1 shortcut, the head's 1×1.
    check([2, 1, 40, 36], 8, 7, 2, 3, false);
    check([3, 8, 24, 24], 8, 3, 1, 1, false);
    check([2, 8, 24, 20], 16, 3, 2, 1, false);
    check([2, 8, 24, 20], 16, 1, 2, 0, false);
    check([2, 16, 12, 12], 3, 1, 1, 0, true);
    check([2, 12, 17, 13], 24, 3, 1, 1, true);
}

#[test]
fn a_band_split_image_matches_too() {
    // 64 channels × 9 taps per pixel at 8 pixels a row: the kernels cut the image into bands.
    check([1, 64, 600, 8], 4, 3, 1, 1, false);
}

#[test]
fn grouped_convolutions_keep_flexs_path_and_agree_group_by_group() {
    let dev = Default::default();
    let x = Tensor::<A, 4>::random([2, 4, 9, 9], Distribution::Uniform(-1.0, 1.0), &dev).require_grad();
    let w = Tensor::<A, 4>::random([6, 2, 3, 3], Distribution::Uniform(-1.0, 1.0), &dev).require_grad();
    let y = conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 2));
    let grads = y.clone().sum().backward();
    let (dx, dw) = (x.grad(&grads).unwrap(), w.grad(&grads).unwrap());
    // Each group by itself as a groups-1 convolution.
    for g in 0..2 {
        let xg = Tensor::<A, 4>::from_inner(x.clone().inner().slice([0..2, 2 * g..2 * g + 2, 0..9, 0..9])).require_grad();
        let wg = Tensor::<A, 4>::from_inner(w.clone().inner().slice([3 * g..3 * g + 3, 0..2, 0..3, 0..3])).require_grad();
        let yg = conv2d(xg.clone(), wg.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
        let gg = yg.clone().sum().backward();
        let part = |t: &Tensor<Flex, 4>| t.to_data().to_vec::<f32>().unwrap();
        assert_close("grouped forward", &part(&y.clone().inner().slice([0..2, 3 * g..3 * g + 3, 0..9, 0..9])), &part(&yg.inner()));
        assert_close(
            "grouped input gradient",
            &part(&dx.clone().slice([0..2, 2 * g..2 * g + 2, 0..9, 0..9])),
            &part(&xg.grad(&gg).unwrap()),
        );
        assert_close(
            "grouped weight gradient",
            &part(&dw.clone().slice([3 * g..3 * g + 3, 0..2, 0..3, 0..3])),
            &part(&wg.grad(&gg).unwrap()),
        );
    }
}
