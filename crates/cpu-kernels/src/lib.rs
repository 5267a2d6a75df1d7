//! cinestream's CPU convolution kernels: 2-D f32 convolutions over NCHW tensors with OIHW
//! weights (groups 1), for the forward pass and both gradients, as im2col + gemm on every core.
//!
//! Burn's flex backend (0.21) runs a convolution as a 3-D one: it copies the input to NHWC,
//! gathers each tile's patches element by element, and scatters the gemm's result back; its
//! input gradient is a single-threaded transposed convolution and its weight gradient a
//! convolution whose "kernel" is the whole output gradient. Here:
//!
//! - **forward**: per image and band of output rows, the patches are copied row by row from
//!   NCHW (`im2col`, a `memcpy` per kernel tap and output row when the stride is 1), and one
//!   gemm writes the band straight into the NCHW output; a pointwise convolution skips the copy;
//! - **input gradient**: for stride 1 it *is* a forward convolution of the output gradient with
//!   the flipped, transposed kernel; otherwise a gemm per band and a scatter-add (`col2im`);
//! - **weight gradient**: one gemm per band, accumulated per thread over a fixed split of the
//!   bands, the partial sums added in a fixed order (the same bits for the same thread count).
//!
//! Batch normalisation ([`channel_stats`], [`scale_shift`], [`batch_norm_backward`]) in as few
//! passes over the maps as its arithmetic needs.
//!
//! [`keep_freed_tensor_memory`] tunes glibc's allocator for a tensor engine's traffic.
//!
//! The vendored `burn-flex` (`vendor/burn-flex`, see `vendor/PATCHES.md`) calls these for f32,
//! groups 1; every other case stays flex's own.

mod conv;
mod geometry;
mod im2col;
mod memory;
mod norm;
mod scratch;

pub use conv::{conv2d_bias_grad, conv2d_forward, conv2d_input_grad, conv2d_weight_grad};
pub use geometry::Conv2d;
pub use memory::keep_freed_tensor_memory;
pub use norm::{Maps, Relu, Stats, batch_norm_backward, channel_stats, scale_shift};

#[cfg(test)]
mod tests;
