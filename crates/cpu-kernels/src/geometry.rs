//! The shape of one 2-D convolution, and how its output rows are cut into bands of work.

/// A 2-D convolution over `[batch, cin, h, w]` inputs with `[cout, cin, kh, kw]` weights
/// (groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

/// A band holds about this many patch values (4 MiB of f32), so that its im2col buffer stays
/// in the last-level cache while the gemm reads it.
const BAND_VALUES: usize = 1 << 20;
/// ... but at least this many output pixels, so that each gemm is wide enough to pay for
/// packing the weights.
const BAND_MIN_PIXELS: usize = 256;

impl Conv2d {
    /// `None` where the kernel does not fit the padded input, or a size is zero.
    pub fn checked(self) -> Option<Self> {
        let fits = |size: usize, pad: usize, k: usize, d: usize, s: usize| s > 0 && d > 0 && k > 0 && size + 2 * pad > d * (k - 1);
        let nonzero = self.batch > 0 && self.cin > 0 && self.cout > 0 && self.h > 0 && self.w > 0;
        (nonzero
            && fits(self.h, self.pad[0], self.kh, self.dilation[0], self.stride[0])
            && fits(self.w, self.pad[1], self.kw, self.dilation[1], self.stride[1]))
        .then_some(self)
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad[0] - self.dilation[0] * (self.kh - 1) - 1) / self.stride[0] + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad[1] - self.dilation[1] * (self.kw - 1) - 1) / self.stride[1] + 1
    }

    /// Rows of the im2col matrix: one per input channel and kernel tap.
    pub(crate) fn patch_len(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    pub(crate) fn in_plane(&self) -> usize {
        self.h * self.w
    }

    pub(crate) fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// A 1×1 convolution with stride 1 and no padding: the input already is its im2col matrix.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    /// Output rows per band of work.
    pub(crate) fn band_rows(&self) -> usize {
        let ow = self.out_w();
        let by_cache = BAND_VALUES / (self.patch_len() * ow).max(1);
        let by_width = BAND_MIN_PIXELS.div_ceil(ow);
        by_cache.max(by_width).clamp(1, self.out_h())
    }

    /// The bands of one image: `(first output row, rows)`.
    pub(crate) fn bands(&self) -> impl Iterator<Item = std::ops::Range<usize>> + Clone + use<> {
        let (oh, rows) = (self.out_h(), self.band_rows());
        (0..oh.div_ceil(rows)).map(move |i| i * rows..((i + 1) * rows).min(oh))
    }
}
