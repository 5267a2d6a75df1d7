//! The pixel codec of `frames.pixels`: u16 little-endian, row-major. A leaf: ingest writes it,
//! training, labelling and the viewer read it.

/// The `frames.pixels` encoding of an image: u16 little-endian ([`pixel_values`] reads it). On
/// little-endian machines that is the image's memory as it is (no per-pixel work: a per-pixel
/// `extend_from_slice` cost 10% of an ingest in the dev profile, where it was not inlined).
pub fn pixel_bytes(pixels: &[u16]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(pixels))
    } else {
        std::borrow::Cow::Owned(pixels.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// The values of a `frames.pixels` cell: little-endian u16, row-major (as `frames` writes them).
pub fn pixel_values(pixels: &[u8]) -> impl Iterator<Item = u16> + '_ {
    pixel_vec(pixels).into_iter()
}

/// [`pixel_values`] as a vector: on little-endian machines one copy of the bytes (a cell's
/// bytes need not be aligned for u16), not a decode per pixel, which the labelling profile
/// showed at 10% of its CPU time in the dev build.
pub fn pixel_vec(pixels: &[u8]) -> Vec<u16> {
    let even = &pixels[..pixels.len() & !1];
    if cfg!(target_endian = "little") {
        bytemuck::pod_collect_to_vec(even)
    } else {
        even.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_little_endian_u16_and_read_back() {
        let px = [0u16, 1, 0x1234, u16::MAX];
        assert_eq!(&*pixel_bytes(&px), &[0, 0, 1, 0, 0x34, 0x12, 0xff, 0xff]);
        assert_eq!(pixel_values(&pixel_bytes(&px)).collect::<Vec<_>>(), px);
        // An unaligned cell (Arrow packs binary values back to back) and a stray odd byte.
        let mut odd = vec![9u8];
        odd.extend_from_slice(&pixel_bytes(&px));
        odd.push(7);
        assert_eq!(pixel_vec(&odd[1..]), px);
    }
}
