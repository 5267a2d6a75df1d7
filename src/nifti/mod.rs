//! NIfTI-1 single files (`.nii`, `.nii.gz`): written so that 3D Slicer, ITK-SNAP and nibabel place
//! them correctly (this module), and read back with their affine ([`read`]).
//!
//! The voxel array is stored x fastest: x = image column, y = image row, z = slice (0 = most
//! apical), t = frame. An image row-major in memory (`[row][col]`) is therefore one contiguous
//! xy-plane, and a study's frames concatenate slice by slice, frame by frame.
//!
//! Geometry: the DICOM patient frame is LPS, NIfTI's world frame RAS, so the affine is
//! `diag(−1, −1, 1, 1) · [row_dir·Δcol | col_dir·Δrow | slice_dir·Δslice | origin]`. It is
//! written twice, as the sform and as the qform (quaternion + qfac), with code 1 (scanner
//! anatomical): nibabel reads the sform, ITK the qform; both give the same world positions.

use std::io::Write;

pub mod read;

use crate::geometry::{V3, cross, dot, normalize};

/// Voxel types we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voxel {
    /// Images: unsigned 16-bit (NIfTI datatype 512).
    U16,
    /// Masks: unsigned 8-bit (NIfTI datatype 2).
    U8,
}

impl Voxel {
    fn code(self) -> (i16, i16) {
        match self {
            Voxel::U16 => (512, 16),
            Voxel::U8 => (2, 8),
        }
    }

    pub fn bytes(self) -> usize {
        self.code().1 as usize / 8
    }
}

/// Where the voxel grid lies in the patient (DICOM LPS, mm) and its spacings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Centre of voxel (0, 0, 0): pixel (row 0, column 0) of slice 0.
    pub origin: V3,
    /// Unit vector of increasing column index (x).
    pub row_dir: V3,
    /// Unit vector of increasing row index (y).
    pub col_dir: V3,
    /// Unit vector from slice 0 towards slice 1 (z).
    pub slice_dir: V3,
    /// (distance between columns, between rows, between slices) in mm: the x, y, z zooms.
    pub spacing: [f64; 3],
    /// Time between frames (ms); 0 when unknown or a single frame.
    pub frame_interval_ms: f64,
}

impl Placement {
    /// The 4×4 voxel → RAS affine (rows).
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        let cols = [self.row_dir, self.col_dir, self.slice_dir];
        let mut m = [[0.0; 4]; 4];
        let flip = [-1.0, -1.0, 1.0];
        for (r, row) in m.iter_mut().take(3).enumerate() {
            for (c, dir) in cols.iter().enumerate() {
                row[c] = flip[r] * dir[r] * self.spacing[c];
            }
            row[3] = flip[r] * self.origin[r];
        }
        m[3][3] = 1.0;
        m
    }
}

/// A NIfTI-1 image: dimensions (x, y, z[, t]) and its voxels, x fastest.
pub struct Image<'a> {
    pub dims: &'a [usize],
    pub voxel: Voxel,
    pub data: &'a [u8],
    pub placement: Placement,
    /// Up to 79 bytes of ASCII (`descrip`); never anything that identifies a person.
    pub description: &'a str,
}

/// The quaternion parameters (b, c, d) and qfac of the rotation part of an affine whose columns
/// are orthogonal (NIfTI-1's `nifti_mat44_to_quatern`).
fn quaternion(dirs: [V3; 3]) -> ([f64; 3], f64) {
    let [x, y, mut z] = dirs.map(normalize);
    let qfac = if dot(cross(x, y), z) < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        z = [-z[0], -z[1], -z[2]];
    }
    // r[i][j]: row i, column j of the rotation matrix [x y z].
    let r = |i: usize, j: usize| [x, y, z][j][i];
    let trace = r(0, 0) + r(1, 1) + r(2, 2) + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r(2, 1) - r(1, 2)) / a;
        c = 0.25 * (r(0, 2) - r(2, 0)) / a;
        d = 0.25 * (r(1, 0) - r(0, 1)) / a;
    } else {
        let xd = 1.0 + r(0, 0) - (r(1, 1) + r(2, 2));
        let yd = 1.0 + r(1, 1) - (r(0, 0) + r(2, 2));
        let zd = 1.0 + r(2, 2) - (r(0, 0) + r(1, 1));
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r(0, 1) + r(1, 0)) / b;
            d = 0.25 * (r(0, 2) + r(2, 0)) / b;
            a = 0.25 * (r(2, 1) - r(1, 2)) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r(0, 1) + r(1, 0)) / c;
            d = 0.25 * (r(1, 2) + r(2, 1)) / c;
            a = 0.25 * (r(0, 2) - r(2, 0)) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r(0, 2) + r(2, 0)) / d;
            c = 0.25 * (r(1, 2) + r(2, 1)) / d;
            a = 0.25 * (r(1, 0) - r(0, 1)) / d;
        }
    }
    let s = if a < 0.0 { -1.0 } else { 1.0 };
    ([s * b, s * c, s * d], qfac)
}

/// The 348-byte header and the 4-byte empty extension flag.
pub fn header(img: &Image<'_>) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut [u8], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], at: usize, v: f64| h[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    put_i16(&mut h, 40, img.dims.len() as i16);
    for (k, d) in img.dims.iter().enumerate() {
        put_i16(&mut h, 42 + 2 * k, *d as i16);
    }
    for k in img.dims.len()..7 {
        put_i16(&mut h, 42 + 2 * k, 1);
    }
    let (datatype, bitpix) = img.voxel.code();
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, bitpix);
    let p = &img.placement;
    let m = p.affine_ras();
    let (q, qfac) = quaternion([0, 1, 2].map(|c| [m[0][c], m[1][c], m[2][c]]));
    put_f32(&mut h, 76, qfac);
    for k in 0..3 {
        put_f32(&mut h, 80 + 4 * k, p.spacing[k]);
    }
    put_f32(&mut h, 92, if img.dims.len() > 3 { p.frame_interval_ms } else { 0.0 });
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope: stored values are the values
    h[123] = 2 | 16; // xyzt_units: mm, ms
    let descrip: Vec<u8> = img.description.bytes().filter(|b| b.is_ascii_graphic() || *b == b' ').take(79).collect();
    h[148..148 + descrip.len()].copy_from_slice(&descrip);
    put_i16(&mut h, 252, 1); // qform_code: scanner anatomical
    put_i16(&mut h, 254, 1); // sform_code
    for k in 0..3 {
        put_f32(&mut h, 256 + 4 * k, q[k]);
        put_f32(&mut h, 268 + 4 * k, m[k][3]);
    }
    for (r, row) in m.iter().take(3).enumerate() {
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

/// The image as a gzip-compressed `.nii.gz` file.
pub fn encode_gz(img: &Image<'_>) -> Vec<u8> {
    let voxels: usize = img.dims.iter().product();
    assert_eq!(voxels * img.voxel.bytes(), img.data.len(), "NIfTI voxel data does not match its dimensions");
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(img.data.len() / 3), flate2::Compression::fast());
    gz.write_all(&header(img)).expect("writing to memory");
    gz.write_all(img.data).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::rotate;

    /// The rotation matrix of a NIfTI quaternion (b, c, d), a = sqrt(1 − b² − c² − d²).
    fn rotation(q: [f64; 3]) -> [[f64; 3]; 3] {
        let [b, c, d] = q;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
    }

    #[test]
    fn the_quaternion_gives_back_the_directions() {
        let n = normalize([0.3, -0.5, 0.8]);
        for angle in [0.0, 37.0, 90.0, 179.0, -120.0] {
            let x = normalize(rotate([0.8, 0.6, 0.0], n, angle));
            let x = normalize([x[0] - dot(x, n) * n[0], x[1] - dot(x, n) * n[1], x[2] - dot(x, n) * n[2]]);
            let y = cross(n, x);
            for z in [n, [-n[0], -n[1], -n[2]]] {
                let (q, qfac) = quaternion([x, y, z]);
                let r = rotation(q);
                for (j, dir) in [x, y, [z[0] * qfac, z[1] * qfac, z[2] * qfac]].iter().enumerate() {
                    for i in 0..3 {
                        assert!((r[i][j] - dir[i]).abs() < 1e-9, "angle {angle}: column {j} {:?} vs {dir:?}", [r[0][j], r[1][j], r[2][j]]);
                    }
                }
            }
        }
    }

    #[test]
    fn the_header_says_what_nibabel_needs() {
        let p = Placement {
            origin: [10.0, 20.0, 30.0],
            row_dir: [1.0, 0.0, 0.0],
            col_dir: [0.0, 1.0, 0.0],
            slice_dir: [0.0, 0.0, 1.0],
            spacing: [1.5, 1.25, 8.0],
            frame_interval_ms: 33.5,
        };
        let data = vec![0u8; 4 * 3 * 2 * 5 * 2];
        let img = Image { dims: &[4, 3, 2, 5], voxel: Voxel::U16, data: &data, placement: p, description: "study 7" };
        let h = header(&img);
        let f32_at = |at: usize| f32::from_le_bytes(h[at..at + 4].try_into().unwrap());
        let i16_at = |at: usize| i16::from_le_bytes(h[at..at + 2].try_into().unwrap());
        assert_eq!((i16_at(40), i16_at(42), i16_at(44), i16_at(46), i16_at(48), i16_at(50)), (4, 4, 3, 2, 5, 1));
        assert_eq!((i16_at(70), i16_at(72)), (512, 16));
        assert_eq!((f32_at(80), f32_at(84), f32_at(88), f32_at(92)), (1.5, 1.25, 8.0, 33.5));
        // LPS (10, 20, 30) is RAS (−10, −20, 30); x and y flip sign.
        assert_eq!(
            (f32_at(280), f32_at(292), f32_at(296 + 4), f32_at(308), f32_at(312 + 8), f32_at(324)),
            (-1.5, -10.0, -1.25, -20.0, 8.0, 30.0)
        );
        assert_eq!(&h[344..348], b"n+1\0");
        assert_eq!(h.len(), 352);
        let gz = encode_gz(&img);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }
}
