//! Patient-space geometry of image planes (DICOM LPS, millimetres).
//!
//! An image is a [`Grid`]: the position of its first pixel centre, its row and column direction
//! cosines, its pixel spacing and its size. DICOM conventions: the first three
//! ImageOrientationPatient values are the direction of increasing column index (along a row),
//! the last three that of increasing row index; PixelSpacing is (row spacing, column spacing),
//! i.e. (distance between rows, distance between columns).

/// A 3-vector in patient space.
pub type V3 = [f64; 3];

pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
pub fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
pub fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}
pub fn normalize(a: V3) -> V3 {
    let n = norm(a);
    if n == 0.0 { a } else { scale(a, 1.0 / n) }
}

/// Rotates `v` by `angle_deg` about the unit axis `axis` (right-handed, Rodrigues).
pub fn rotate(v: V3, axis: V3, angle_deg: f64) -> V3 {
    let (s, c) = angle_deg.to_radians().sin_cos();
    let k = normalize(axis);
    add(add(scale(v, c), scale(cross(k, v), s)), scale(k, dot(k, v) * (1.0 - c)))
}

/// Signed angle (degrees, in (−180, 180]) that rotates `from` onto `to` about `normal`.
pub fn signed_angle_deg(from: V3, to: V3, normal: V3) -> f64 {
    dot(cross(from, to), normalize(normal)).atan2(dot(from, to)).to_degrees()
}

/// The anatomical direction from the base of the left ventricle towards its apex, roughly
/// (left, anterior, inferior) in LPS. Short-axis stacks are ordered along it (slice 0 = most
/// apical); it only needs to be on the right side of the true axis, not exact.
pub const APEX_DIRECTION_LPS: V3 = [0.58, -0.45, -0.68];

/// The sampling grid of one 2-D image in patient space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Centre of pixel (row 0, column 0).
    pub origin: V3,
    /// Direction of increasing column index.
    pub row_dir: V3,
    /// Direction of increasing row index.
    pub col_dir: V3,
    /// (row spacing, column spacing) in mm.
    pub spacing: [f64; 2],
    pub rows: u32,
    pub cols: u32,
}

impl Grid {
    pub fn from_dicom(position: V3, orientation: [f64; 6], spacing: [f64; 2], rows: u32, cols: u32) -> Self {
        Self {
            origin: position,
            row_dir: normalize([orientation[0], orientation[1], orientation[2]]),
            col_dir: normalize([orientation[3], orientation[4], orientation[5]]),
            spacing,
            rows,
            cols,
        }
    }

    /// Plane normal `row_dir × col_dir`.
    pub fn normal(&self) -> V3 {
        normalize(cross(self.row_dir, self.col_dir))
    }

    /// Patient position of pixel centre (row `i`, column `j`), fractional indices allowed.
    pub fn point(&self, i: f64, j: f64) -> V3 {
        add(self.origin, add(scale(self.row_dir, j * self.spacing[1]), scale(self.col_dir, i * self.spacing[0])))
    }

    /// Patient position of the image centre.
    pub fn centre(&self) -> V3 {
        self.point((self.rows as f64 - 1.0) / 2.0, (self.cols as f64 - 1.0) / 2.0)
    }

    /// The grid with the same centre and directions but another spacing and size.
    pub fn recentred(&self, spacing: [f64; 2], rows: u32, cols: u32) -> Grid {
        self.centred_at(self.centre(), spacing, rows, cols)
    }

    /// The grid with these directions, centred on `centre`, with this spacing and size.
    pub fn centred_at(&self, centre: V3, spacing: [f64; 2], rows: u32, cols: u32) -> Grid {
        let half =
            add(scale(self.row_dir, (cols as f64 - 1.0) / 2.0 * spacing[1]), scale(self.col_dir, (rows as f64 - 1.0) / 2.0 * spacing[0]));
        Grid { origin: sub(centre, half), spacing, rows, cols, ..*self }
    }

    /// Fractional (row, column) of patient point `p` projected into this grid's plane.
    pub fn index_of(&self, p: V3) -> (f64, f64) {
        let d = sub(p, self.origin);
        (dot(d, self.col_dir) / self.spacing[0], dot(d, self.row_dir) / self.spacing[1])
    }

    /// Pixel area in mm².
    pub fn pixel_area(&self) -> f64 {
        self.spacing[0] * self.spacing[1]
    }

    /// Whether two grids sample the same points (to `tol_mm`).
    pub fn same_as(&self, other: &Grid, tol_mm: f64) -> bool {
        self.rows == other.rows
            && self.cols == other.cols
            && (self.spacing[0] - other.spacing[0]).abs() < 1e-4
            && (self.spacing[1] - other.spacing[1]).abs() < 1e-4
            && norm(sub(self.origin, other.origin)) < tol_mm
            && dot(self.row_dir, other.row_dir) > 1.0 - 1e-8
            && dot(self.col_dir, other.col_dir) > 1.0 - 1e-8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_angles_have_a_direction() {
        let n = [0.0, 0.0, 1.0];
        let x = [1.0, 0.0, 0.0];
        assert!((signed_angle_deg(x, [0.0, 1.0, 0.0], n) - 90.0).abs() < 1e-9);
        assert!((signed_angle_deg(x, [0.0, -1.0, 0.0], n) + 90.0).abs() < 1e-9);
        let r = rotate(x, n, -17.0);
        assert!((signed_angle_deg(x, r, n) + 17.0).abs() < 1e-9);
    }

    #[test]
    fn recentring_keeps_the_centre() {
        let g = Grid::from_dicom([10.0, -5.0, 3.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.5, 1.5], 200, 160);
        let h = g.recentred([3.0, 3.0], 100, 80);
        let (a, b) = (g.centre(), h.centre());
        assert!(norm(sub(a, b)) < 1e-9);
        let (i, j) = g.index_of(g.point(12.5, 7.25));
        assert!((i - 12.5).abs() < 1e-9 && (j - 7.25).abs() < 1e-9);
    }
}
