//! The learning curve as a PNG: validation Dice LV and MY (top) and training and validation
//! loss (bottom) against images seen — the paper's Fig. 6. Drawn by hand (lines on a white
//! canvas with axes and tick marks); no plotting library, no fonts.

const W: usize = 800;
const H: usize = 600;
const MARGIN: usize = 40;

struct Canvas {
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            self.px[y as usize * W + x as usize] = c;
        }
    }
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                self.set(x.round() as i64 + dx, y.round() as i64 + dy, c);
            }
        }
    }
}

/// A line: its points and colour.
type Series<'a> = (&'a [(f64, f64)], [u8; 3]);

/// One panel: series of (x, y) with colours, y range fixed or from the data.
fn panel(c: &mut Canvas, top: usize, height: usize, x_max: f64, series: &[Series<'_>], y_range: Option<(f64, f64)>) {
    let (x0, x1) = (MARGIN as f64, (W - MARGIN / 2) as f64);
    let (y0, y1) = ((top + height) as f64, (top + MARGIN / 2) as f64);
    let (lo, hi) = y_range.unwrap_or_else(|| {
        let ys = series.iter().flat_map(|(s, _)| s.iter().map(|p| p.1)).filter(|v| v.is_finite());
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if lo.is_finite() { (0f64.min(lo), hi.max(lo + 1e-9)) } else { (0.0, 1.0) }
    });
    let grey = [160, 160, 160];
    c.line((x0, y0), (x1, y0), grey);
    c.line((x0, y0), (x0, y1), grey);
    for k in 0..=4 {
        let y = y0 + (y1 - y0) * k as f64 / 4.0;
        c.line((x0 - 5.0, y), (x0, y), grey);
        let x = x0 + (x1 - x0) * k as f64 / 4.0;
        c.line((x, y0), (x, y0 + 5.0), grey);
    }
    let map = |(x, y): (f64, f64)| (x0 + (x1 - x0) * x / x_max.max(1.0), y0 + (y1 - y0) * (y - lo) / (hi - lo));
    for (points, colour) in series {
        for pair in points.windows(2) {
            c.line(map(pair[0]), map(pair[1]), *colour);
        }
        if let [only] = points {
            let (x, y) = map(*only);
            c.line((x - 2.0, y), (x + 2.0, y), *colour);
        }
    }
}

/// PNG bytes of the curve. Colours: Dice LV red, Dice MY blue; loss train grey, valid black.
pub fn learning_curve(rows: &[super::log::EpochRow]) -> Vec<u8> {
    let mut c = Canvas { px: vec![[255, 255, 255]; W * H] };
    let x_max = rows.iter().map(|r| r.images_seen as f64).fold(1.0, f64::max);
    let pts = |g: fn(&super::log::EpochRow) -> f64| rows.iter().map(|r| (r.images_seen as f64, g(r))).collect::<Vec<_>>();
    let (lv, my, tl, vl) = (pts(|r| r.dice_lv), pts(|r| r.dice_my), pts(|r| r.train_loss), pts(|r| r.valid_loss));
    panel(&mut c, 0, H / 2 - 10, x_max, &[(&lv, [200, 30, 30]), (&my, [30, 60, 200])], Some((0.0, 1.0)));
    panel(&mut c, H / 2, H / 2 - 30, x_max, &[(&tl, [150, 150, 150]), (&vl, [0, 0, 0])], None);
    let flat: Vec<u8> = c.px.iter().flatten().copied().collect();
    crate::plot::png_rgb(W, H, &flat)
}
