//! cinestream's patch: 2-D f32 convolutions with groups 1 (forward, input gradient, weight
//! gradient) run through `cinestream-cpu-kernels` (im2col + gemm on every core). Other dtypes
//! and grouped convolutions keep flex's own forward and burn's default gradients, restated
//! here because an overriding trait method cannot call the default it replaces.

use alloc::vec::Vec;

use burn_backend::DType;
use burn_backend::ops::conv::calculate_padding_out;
use burn_backend::ops::{ConvOptions, ConvTransposeOptions, FloatTensorOps, ModuleOps};
use burn_std::{Bytes, Shape, Slice};
use cinestream_cpu_kernels::{Conv2d, conv2d_bias_grad, conv2d_forward, conv2d_input_grad, conv2d_weight_grad};

use crate::{Flex, FlexTensor, Layout};

/// The kernels' geometry, where they apply: f32 tensors, groups 1.
fn geometry(x: &Shape, weight: &Shape, options: &ConvOptions<2>, dtype: DType) -> Option<Conv2d> {
    if dtype != DType::F32 || options.groups != 1 || x.num_dims() != 4 || weight.num_dims() != 4 {
        return None;
    }
    Conv2d {
        batch: x[0],
        cin: x[1],
        h: x[2],
        w: x[3],
        cout: weight[0],
        kh: weight[2],
        kw: weight[3],
        stride: options.stride,
        pad: options.padding,
        dilation: options.dilation,
    }
    .checked()
    .filter(|g| weight[1] == g.cin)
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(Shape::from(shape.to_vec())), DType::F32)
}

/// Forward convolution, or `None` where flex's own applies.
pub(crate) fn conv2d(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let g = geometry(x.layout().shape(), weight.layout().shape(), options, x.dtype())?;
    let (x, weight, bias) = (x.to_contiguous(), weight.to_contiguous(), bias.map(FlexTensor::to_contiguous));
    let y = conv2d_forward(&g, x.storage(), weight.storage(), bias.as_ref().map(|b| b.storage()));
    Some(tensor(y, [g.batch, g.cout, g.out_h(), g.out_w()]))
}

/// Gradient of the input.
pub(crate) fn x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    if let Some(g) = geometry(x.layout().shape(), weight.layout().shape(), &options, output_grad.dtype()) {
        let dx = conv2d_input_grad(&g, output_grad.to_contiguous().storage(), weight.to_contiguous().storage());
        return tensor(dx, [g.batch, g.cin, g.h, g.w]);
    }
    // burn's default: a transposed convolution of the output gradient.
    let (xs, ws, ys) = (x.layout().shape().clone(), weight.layout().shape().clone(), output_grad.layout().shape().clone());
    let padding_out = |i: usize| calculate_padding_out(ws[2 + i], options.stride[i], options.padding[i], options.dilation[i], xs[2 + i], ys[2 + i]);
    let transpose = ConvTransposeOptions::new(options.stride, options.padding, [padding_out(0), padding_out(1)], options.dilation, options.groups);
    Flex::conv_transpose2d(output_grad, weight, None, transpose)
}

/// Gradient of the weight.
pub(crate) fn weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: ConvOptions<2>,
) -> FlexTensor {
    let ws = weight.layout().shape().clone();
    if let Some(g) = geometry(x.layout().shape(), &ws, &options, output_grad.dtype()) {
        let dw = conv2d_weight_grad(&g, x.to_contiguous().storage(), output_grad.to_contiguous().storage());
        return tensor(dw, [g.cout, g.cin, g.kh, g.kw]);
    }
    // burn's default: per group, a convolution of the input by the output gradient with batch
    // and channels swapped.
    let groups = options.groups;
    let (cin_g, cout_g) = (ws[1], ws[0] / groups);
    let per_group = |x: FlexTensor, dy: FlexTensor| {
        let swapped = ConvOptions::new(options.dilation, options.padding, options.stride, 1);
        let dw = Flex::float_swap_dims(
            Flex::conv2d(Flex::float_swap_dims(x, 0, 1), Flex::float_swap_dims(dy, 0, 1), None, swapped),
            0,
            1,
        );
        let keep = [Slice::from(0..cout_g), Slice::from(0..cin_g), Slice::from(0..ws[2]), Slice::from(0..ws[3])];
        Flex::float_slice(dw, &keep)
    };
    if groups == 1 {
        return per_group(x, output_grad);
    }
    let channels = |t: &FlexTensor, c: core::ops::Range<usize>| {
        let mut s: Vec<Slice> = t.layout().shape().iter().map(|&n| Slice::from(0..n)).collect();
        s[1] = Slice::from(c);
        Flex::float_slice(t.clone(), &s)
    };
    let parts = (0..groups)
        .map(|i| per_group(channels(&x, i * cin_g..(i + 1) * cin_g), channels(&output_grad, i * cout_g..(i + 1) * cout_g)))
        .collect();
    Flex::float_cat(parts, 0)
}

/// Gradient of the bias: the output gradient summed per channel (burn's default swaps the batch
/// and channel axes and copies the whole gradient first).
pub(crate) fn bias_backward(bias: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
    let ys = output_grad.layout().shape().clone();
    if output_grad.dtype() != DType::F32 || ys.num_dims() != 4 {
        let c = ys[1];
        let grad = Flex::float_swap_dims(output_grad, 0, 1);
        let grad = Flex::float_reshape(grad, Shape::from(alloc::vec![c, ys.num_elements() / c]));
        return Flex::float_reshape(Flex::float_sum_dim(grad, 1), bias.layout().shape().clone());
    }
    let db = conv2d_bias_grad(output_grad.to_contiguous().storage(), ys[0], ys[1], ys[2] * ys[3]);
    FlexTensor::new(Bytes::from_elems(db), Layout::contiguous(bias.layout().shape().clone()), DType::F32)
}
