//! Reading NIfTI-1 single files (`.nii`, or gzip-compressed `.nii.gz`), either byte order.
//!
//! The voxel → patient mapping follows nibabel: the sform when `sform_code > 0`, else the qform
//! (quaternion, `pixdim`, `qfac`) when `qform_code > 0`. A file with neither (an Analyze-style
//! header) has no defined place in the patient and is refused. NIfTI's world frame is RAS; the
//! [`Placement`] returned is in DICOM's LPS, like everything else in cinestream.
//!
//! Voxels stay in the file's own type and byte order; [`Volume::convert`] maps each (after
//! `scl_slope`/`scl_inter`) through a function, with the type dispatched once per file.

use std::io::Read;

use super::Placement;
use crate::geometry::{V3, norm, scale};

/// Why a file cannot be read as a NIfTI-1 volume.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NiftiError {
    #[error("not a NIfTI-1 file ({0})")]
    NotNifti(String),
    #[error("a NIfTI-2 file: convert it to NIfTI-1, e.g. with nibabel (`nib.Nifti1Image(img.dataobj, img.affine)`)")]
    Nifti2,
    #[error("a header-only NIfTI (`ni1`, with a separate .img): convert the pair to one .nii file")]
    Pair,
    #[error("gzip decompression failed (truncated or corrupt .nii.gz?): {0}")]
    Gzip(String),
    #[error("the file is truncated: {need} bytes of voxels expected after the header, {have} present")]
    Truncated { need: usize, have: usize },
    #[error("unsupported dimensions {0}: cinestream reads 2-, 3- and 4-D volumes (x, y[, z[, t]])")]
    Dims(String),
    #[error("unsupported voxel type (datatype {0}): write the volume as integers or floats (u8, i16, u16, i32, u32, f32, f64)")]
    Datatype(i16),
    #[error(
        "no affine: qform_code and sform_code are both 0, so the voxels have no place in the patient; set the sform (nibabel: `img.set_sform(affine, code=1)`)"
    )]
    NoAffine,
    #[error("the affine is degenerate (a zero-length axis): {0}")]
    Degenerate(String),
}

/// Voxel types read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Kind {
    fn of(datatype: i16) -> Option<Kind> {
        Some(match datatype {
            2 => Kind::U8,
            256 => Kind::I8,
            4 => Kind::I16,
            512 => Kind::U16,
            8 => Kind::I32,
            768 => Kind::U32,
            16 => Kind::F32,
            64 => Kind::F64,
            _ => return None,
        })
    }

    fn bytes(self) -> usize {
        match self {
            Kind::U8 | Kind::I8 => 1,
            Kind::I16 | Kind::U16 => 2,
            Kind::I32 | Kind::U32 | Kind::F32 => 4,
            Kind::F64 => 8,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Kind::F32 | Kind::F64)
    }
}

/// A NIfTI-1 volume: its grid in the patient and its voxels, x fastest, then y, z, t.
#[derive(Debug, Clone)]
pub struct Volume {
    /// (x, y, z, t) voxels; absent dimensions are 1.
    pub dims: [usize; 4],
    /// Where voxel (0, 0, 0) lies and the axes' directions and spacings (LPS, mm);
    /// `frame_interval_ms` is 0 when the file gives no time step or no time unit.
    pub placement: Placement,
    /// The slice axis as the affine gives it (LPS, mm per slice): not always perpendicular to the
    /// image plane.
    pub slice_step: V3,
    kind: Kind,
    big_endian: bool,
    slope: f64,
    inter: f64,
    data: Vec<u8>,
}

impl Volume {
    /// Voxels in one xy-plane.
    pub fn plane(&self) -> usize {
        self.dims[0] * self.dims[1]
    }

    /// Whether the stored values (after scaling) may be fractional.
    pub fn is_float(&self) -> bool {
        self.kind.is_float() || self.slope.fract() != 0.0 || self.inter.fract() != 0.0
    }

    /// Every voxel's value (`stored · scl_slope + scl_inter`) through `f`, in file order.
    pub fn convert<T>(&self, f: impl FnMut(f64) -> T) -> Vec<T> {
        self.convert_range(0..self.voxels(), f)
    }

    /// Voxels `range` (indices in file order) through `f`.
    pub fn convert_range<T>(&self, range: std::ops::Range<usize>, mut f: impl FnMut(f64) -> T) -> Vec<T> {
        let (slope, inter) = (self.slope, self.inter);
        let w = self.kind.bytes();
        let bytes = &self.data[range.start * w..range.end * w];
        let be = self.big_endian;
        macro_rules! each {
            ($t:ty) => {
                bytes
                    .chunks_exact(w)
                    .map(|c| {
                        let a = c.try_into().expect("chunk width");
                        let v = if be { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) };
                        f(v as f64 * slope + inter)
                    })
                    .collect()
            };
        }
        match self.kind {
            Kind::U8 => bytes.iter().map(|v| f(*v as f64 * slope + inter)).collect(),
            Kind::I8 => bytes.iter().map(|v| f(*v as i8 as f64 * slope + inter)).collect(),
            Kind::I16 => each!(i16),
            Kind::U16 => each!(u16),
            Kind::I32 => each!(i32),
            Kind::U32 => each!(u32),
            Kind::F32 => each!(f32),
            Kind::F64 => each!(f64),
        }
    }

    /// Every voxel as a 16-bit value when the file stores unscaled 8- or 16-bit integers that
    /// all fit (no negatives): one pass, without the per-voxel dispatch of [`Volume::convert`].
    pub fn exact_u16(&self) -> Option<Vec<u16>> {
        if (self.slope, self.inter) != (1.0, 0.0) {
            return None;
        }
        let be = self.big_endian;
        let pair = |c: &[u8]| if be { [c[0], c[1]] } else { [c[1], c[0]] };
        match self.kind {
            Kind::U8 => Some(self.data.iter().map(|v| *v as u16).collect()),
            Kind::U16 => Some(self.data.chunks_exact(2).map(|c| u16::from_be_bytes(pair(c))).collect()),
            Kind::I16 => {
                let v: Vec<u16> = self.data.chunks_exact(2).map(|c| u16::from_be_bytes(pair(c))).collect();
                v.iter().all(|x| *x < 0x8000).then_some(v)
            }
            _ => None,
        }
    }

    /// The stored bytes of voxels `range`: two volumes of one type hold the same values exactly
    /// when these are equal.
    pub fn raw(&self, range: std::ops::Range<usize>) -> &[u8] {
        let w = self.kind.bytes();
        &self.data[range.start * w..range.end * w]
    }

    /// Whether `other` stores its voxels the same way (type, byte order, scaling).
    pub fn same_encoding(&self, other: &Volume) -> bool {
        (self.kind, self.big_endian, self.slope, self.inter) == (other.kind, other.big_endian, other.slope, other.inter)
    }

    pub fn voxels(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Reads a `.nii` or `.nii.gz` held in memory.
pub fn read(bytes: &[u8]) -> Result<Volume, NiftiError> {
    let data = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 3);
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).map_err(|e| NiftiError::Gzip(e.to_string()))?;
        out
    } else {
        bytes.to_vec()
    };
    parse(data)
}

fn parse(mut data: Vec<u8>) -> Result<Volume, NiftiError> {
    if data.len() < 348 {
        return Err(NiftiError::NotNifti(format!("{} bytes, shorter than a NIfTI-1 header (348)", data.len())));
    }
    let size = i32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let big_endian = match size {
        348 => false,
        _ if size.swap_bytes() == 348 => true,
        540 => return Err(NiftiError::Nifti2),
        _ if size.swap_bytes() == 540 => return Err(NiftiError::Nifti2),
        _ => return Err(NiftiError::NotNifti(format!("sizeof_hdr is {size}, not 348"))),
    };
    match &data[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => return Err(NiftiError::Pair),
        m => return Err(NiftiError::NotNifti(format!("magic {:?}, not \"n+1\"", String::from_utf8_lossy(m)))),
    }
    let h = Header { b: &data, be: big_endian };
    let rank = h.i16(40);
    let dim: Vec<i16> = (1..8).map(|k| h.i16(40 + 2 * k)).collect();
    let shown = || format!("{:?}", &dim[..rank.clamp(0, 7) as usize]);
    if !(2..=7).contains(&rank) || dim[..rank as usize].iter().any(|d| *d < 1) || dim[..rank as usize].iter().skip(4).any(|d| *d != 1) {
        return Err(NiftiError::Dims(shown()));
    }
    let get = |k: usize| if (k as i16) < rank { dim[k] as usize } else { 1 };
    let dims = [get(0), get(1), get(2), get(3)];
    let datatype = h.i16(70);
    let kind = Kind::of(datatype).ok_or(NiftiError::Datatype(datatype))?;
    let offset = (h.f32(108) as usize).max(352);
    let need = dims.iter().product::<usize>() * kind.bytes();
    let have = data.len().saturating_sub(offset);
    if have < need {
        return Err(NiftiError::Truncated { need, have });
    }
    let (slope, inter) = match (h.f32(112), h.f32(116)) {
        (s, i) if s != 0.0 && s.is_finite() && i.is_finite() => (s, i),
        _ => (1.0, 0.0),
    };
    let (columns, origin_ras) = affine(&h)?;
    let placement_and_step = placement(columns, origin_ras, &h)?;
    data.drain(..offset);
    data.truncate(need);
    Ok(Volume { dims, placement: placement_and_step.0, slice_step: placement_and_step.1, kind, big_endian, slope, inter, data })
}

struct Header<'a> {
    b: &'a [u8],
    be: bool,
}

impl Header<'_> {
    fn i16(&self, at: usize) -> i16 {
        let a = self.b[at..at + 2].try_into().expect("2 bytes");
        if self.be { i16::from_be_bytes(a) } else { i16::from_le_bytes(a) }
    }

    fn f32(&self, at: usize) -> f64 {
        let a = self.b[at..at + 4].try_into().expect("4 bytes");
        (if self.be { f32::from_be_bytes(a) } else { f32::from_le_bytes(a) }) as f64
    }
}

/// The affine's three columns and its offset, in RAS (nibabel's choice: sform, else qform).
fn affine(h: &Header<'_>) -> Result<([V3; 3], V3), NiftiError> {
    let (qcode, scode) = (h.i16(252), h.i16(254));
    if scode > 0 {
        let row = |at: usize| [h.f32(at), h.f32(at + 4), h.f32(at + 8), h.f32(at + 12)];
        let r = [row(280), row(296), row(312)];
        let col = |c: usize| [r[0][c], r[1][c], r[2][c]];
        return Ok(([col(0), col(1), col(2)], col(3)));
    }
    if qcode > 0 {
        let (b, c, d) = (h.f32(256), h.f32(260), h.f32(264));
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let rot = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let qfac = if h.f32(76) < 0.0 { -1.0 } else { 1.0 };
        let zoom = [h.f32(80), h.f32(84), h.f32(88) * qfac];
        let col = |j: usize| [rot[0][j] * zoom[j], rot[1][j] * zoom[j], rot[2][j] * zoom[j]];
        return Ok(([col(0), col(1), col(2)], [h.f32(268), h.f32(272), h.f32(276)]));
    }
    Err(NiftiError::NoAffine)
}

fn placement(columns: [V3; 3], origin_ras: V3, h: &Header<'_>) -> Result<(Placement, V3), NiftiError> {
    let lps = |v: V3| [-v[0], -v[1], v[2]];
    let [x, y, z] = columns.map(lps);
    let spacing = [norm(x), norm(y), norm(z)];
    if spacing.iter().any(|s| !s.is_finite() || *s <= 1e-9) {
        return Err(NiftiError::Degenerate(format!("column lengths {spacing:?}")));
    }
    let frame_interval_ms = match h.b[123] & 0x38 {
        8 => h.f32(92) * 1000.0,
        16 => h.f32(92),
        24 => h.f32(92) / 1000.0,
        _ => 0.0,
    };
    let p = Placement {
        origin: lps(origin_ras),
        row_dir: scale(x, 1.0 / spacing[0]),
        col_dir: scale(y, 1.0 / spacing[1]),
        slice_dir: scale(z, 1.0 / spacing[2]),
        spacing,
        frame_interval_ms: if frame_interval_ms.is_finite() && frame_interval_ms > 0.0 { frame_interval_ms } else { 0.0 },
    };
    Ok((p, z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::{Image, Voxel, encode_gz, header};

    fn placement() -> Placement {
        let (s, c) = (0.6f64.sin(), 0.6f64.cos());
        Placement {
            origin: [-12.5, 30.25, 71.0],
            row_dir: [c, s, 0.0],
            col_dir: [0.0, 0.0, -1.0],
            slice_dir: [s, -c, 0.0],
            spacing: [1.25, 1.5, 8.0],
            frame_interval_ms: 32.5,
        }
    }

    #[test]
    fn what_we_write_reads_back_with_its_geometry_and_values() {
        let values: Vec<u16> = (0..4 * 3 * 2 * 5).map(|v| v * 101).collect();
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = placement();
        let img = Image { dims: &[4, 3, 2, 5], voxel: Voxel::U16, data: &data, placement: p, description: "t" };
        let v = read(&encode_gz(&img)).unwrap();
        assert_eq!(v.dims, [4, 3, 2, 5]);
        assert_eq!(v.convert(|x| x as u16), values);
        assert_eq!(v.exact_u16().unwrap(), values, "the one-pass path gives the same values");
        let q = v.placement;
        for (a, b) in [(q.origin, p.origin), (q.row_dir, p.row_dir), (q.col_dir, p.col_dir), (q.slice_dir, p.slice_dir)] {
            for k in 0..3 {
                assert!((a[k] - b[k]).abs() < 1e-4, "{a:?} vs {b:?}");
            }
        }
        assert!((q.spacing[2] - 8.0).abs() < 1e-5 && (q.frame_interval_ms - 32.5).abs() < 1e-9);
        // The qform alone (sform_code 0) gives the same place.
        let mut raw = header(&img);
        raw[254..256].copy_from_slice(&0i16.to_le_bytes());
        raw.extend_from_slice(&data);
        let v = read(&raw).unwrap();
        for k in 0..3 {
            assert!((v.placement.origin[k] - p.origin[k]).abs() < 1e-4);
            assert!((v.placement.slice_dir[k] - p.slice_dir[k]).abs() < 1e-5, "{:?}", v.placement.slice_dir);
        }
        // Neither: refused.
        raw[252..254].copy_from_slice(&0i16.to_le_bytes());
        assert_eq!(read(&raw).unwrap_err(), NiftiError::NoAffine);
        raw.truncate(400);
        raw[252..254].copy_from_slice(&1i16.to_le_bytes());
        assert!(matches!(read(&raw).unwrap_err(), NiftiError::Truncated { .. }));
        assert!(matches!(read(b"not a nifti file at all").unwrap_err(), NiftiError::NotNifti(_)));
    }

    #[test]
    fn big_endian_files_and_scaling_are_read() {
        let img = Image { dims: &[2, 2], voxel: Voxel::U16, data: &[0; 8], placement: placement(), description: "" };
        let mut h = header(&img);
        // Swap the fields this test reads to big-endian: sizeof_hdr, dims, datatype, vox_offset,
        // slope, intercept, the codes and the sform.
        let swap = |h: &mut Vec<u8>, at: usize, w: usize| h[at..at + w].reverse();
        swap(&mut h, 0, 4);
        for k in 0..8 {
            swap(&mut h, 40 + 2 * k, 2);
        }
        for at in [70, 72, 252, 254] {
            swap(&mut h, at, 2);
        }
        for at in (76..120).step_by(4).chain((256..328).step_by(4)) {
            swap(&mut h, at, 4);
        }
        h[112..116].copy_from_slice(&2.0f32.to_be_bytes());
        h[116..120].copy_from_slice(&(-1.0f32).to_be_bytes());
        for v in [1u16, 2, 3, 300] {
            h.extend_from_slice(&v.to_be_bytes());
        }
        let v = read(&h).unwrap();
        assert_eq!((v.dims, v.convert(|x| x)), ([2, 2, 1, 1], vec![1.0, 3.0, 5.0, 599.0]));
        assert_eq!(v.exact_u16(), None, "scaled values take the general path");
        assert!((v.placement.origin[0] + 12.5).abs() < 1e-4);
    }
}
