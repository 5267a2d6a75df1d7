//! What every plot and picture shares: PNG encoding, and for charts plotters on an in-memory RGB canvas, text in the bundled DejaVu Sans
//! (no system font lookup), encoded as PNG by our own encoder, and a padded value range.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

/// The bundled font (Bitstream Vera licence: assets/fonts/DejaVuSans-LICENSE.txt).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The font family every plot's text uses.
pub const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled font is a valid TrueType file"));
    });
}

/// A drawing area on the canvas.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// What drawing returns.
pub type PlotResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Draws on a white `w × h` canvas and returns the PNG bytes.
pub fn canvas(w: u32, h: u32, draw: impl FnOnce(&Area<'_>) -> PlotResult) -> Result<Vec<u8>, String> {
    register_font();
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(png_rgb(w as usize, h as usize, &rgb))
}

/// RGB8 pixels as PNG bytes.
pub fn png_rgb(width: usize, height: usize, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(rgb.len(), width * height * 3, "RGB buffer does not match its size");
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("in memory");
        w.write_image_data(rgb).expect("in memory");
    }
    out
}

/// A range around `values` with 5% room, at least `min_pad` on each side (a unit range when
/// empty).
pub fn range(values: impl Iterator<Item = f64>, min_pad: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(min_pad);
    (lo - pad)..(hi + pad)
}
