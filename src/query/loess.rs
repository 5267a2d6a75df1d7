//! Loess, the smoother the paper drew its learning curves with (R's `loess` as ggplot's
//! `geom_smooth` calls it: local quadratic fits, span 0.75, tricube weights, no robustness
//! iterations), and the SQL aggregates that report a curve's smoothed peak:
//!
//! - `loess_peak(x, y)` → DOUBLE: the highest value of the loess fit at the observed x;
//! - `loess_peak_at(x, y)` → DOUBLE: the x where it is (the first, when several tie).
//!
//! The fit is evaluated exactly at each point (R's `surface = "direct"`); R's default
//! interpolates between kd-tree vertices, which differs from it in the third decimal at most
//! on curves like the learning curves.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};

/// ggplot's default span.
pub const SPAN: f64 = 0.75;

/// The loess fit (degree 2, tricube weights, `span`) of `points` at `x0`.
#[allow(clippy::needless_range_loop)] // 3×3 normal equations read best with indices
pub fn fit_at(points: &[(f64, f64)], x0: f64, span: f64) -> f64 {
    let n = points.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut dist: Vec<f64> = points.iter().map(|(x, _)| (x - x0).abs()).collect();
    let q = ((n as f64 * span).floor() as usize).clamp(1, n);
    let mut sorted = dist.clone();
    sorted.sort_by(f64::total_cmp);
    let mut h = sorted[q - 1];
    if span > 1.0 {
        h *= span;
    }
    if h <= 0.0 {
        // Every neighbour sits on x0: their mean is the fit.
        let near: Vec<f64> = points.iter().zip(&dist).filter(|(_, d)| **d == 0.0).map(|(p, _)| p.1).collect();
        return near.iter().sum::<f64>() / near.len() as f64;
    }
    for d in &mut dist {
        *d /= h;
    }
    // Weighted least squares of y on (1, u, u²), u = (x − x0)/h; the fit at x0 is the intercept.
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for ((x, y), d) in points.iter().zip(&dist) {
        if *d >= 1.0 {
            continue;
        }
        let w = (1.0 - d.powi(3)).powi(3);
        let u = (x - x0) / h;
        let basis = [1.0, u, u * u];
        for i in 0..3 {
            v[i] += w * basis[i] * y;
            for j in 0..3 {
                m[i][j] += w * basis[i] * basis[j];
            }
        }
    }
    solve_intercept(m, v)
        .or_else(|| solve_intercept_linear(&m, &v))
        .unwrap_or_else(|| if m[0][0] > 0.0 { v[0] / m[0][0] } else { f64::NAN })
}

/// The intercept of the 3×3 system `m·β = v` (Gaussian elimination with partial pivoting), or
/// None when it is singular (fewer than three distinct x with weight).
#[allow(clippy::needless_range_loop)]
fn solve_intercept(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<f64> {
    let scale = m[0][0].abs().max(1e-300);
    for col in 0..3 {
        let pivot = (col..3).max_by(|a, b| m[*a][col].abs().total_cmp(&m[*b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 * scale {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            for k in col..3 {
                m[row][k] -= f * m[col][k];
            }
            v[row] -= f * v[col];
        }
    }
    let mut beta = [0.0; 3];
    for row in (0..3).rev() {
        let rest: f64 = (row + 1..3).map(|k| m[row][k] * beta[k]).sum();
        beta[row] = (v[row] - rest) / m[row][row];
    }
    Some(beta[0])
}

/// The local linear fit's intercept, for neighbourhoods with two distinct x.
fn solve_intercept_linear(m: &[[f64; 3]; 3], v: &[f64; 3]) -> Option<f64> {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    (det.abs() > 1e-12 * m[0][0].abs().max(1e-300)).then(|| (v[0] * m[1][1] - m[0][1] * v[1]) / det)
}

/// The fit at every distinct observed x, in increasing x.
pub fn smooth(points: &[(f64, f64)], span: f64) -> Vec<(f64, f64)> {
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).filter(|x| x.is_finite()).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    xs.into_iter().map(|x| (x, fit_at(&finite, x, span))).collect()
}

/// The smoothed curve's peak: (x, fitted value), the first x when several tie.
pub fn peak(points: &[(f64, f64)], span: f64) -> Option<(f64, f64)> {
    smooth(points, span).into_iter().filter(|p| p.1.is_finite()).fold(None, |best, p| match best {
        Some((_, v)) if v >= p.1 => best,
        _ => Some(p),
    })
}

/// The SQL aggregates `loess_peak` and `loess_peak_at`.
pub fn aggregates() -> Vec<AggregateUDF> {
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    let state = Arc::new(vec![list.clone(), list]);
    let make = |name: &str, at: bool| {
        create_udaf(
            name,
            vec![DataType::Float64, DataType::Float64],
            Arc::new(DataType::Float64),
            Volatility::Immutable,
            Arc::new(move |_| Ok(Box::new(PeakAccumulator { at, points: Vec::new() }) as Box<dyn Accumulator>)),
            state.clone(),
        )
    };
    vec![make("loess_peak", false), make("loess_peak_at", true)]
}

/// Collects the (x, y) pairs of a group; the peak is computed at the end.
#[derive(Debug)]
struct PeakAccumulator {
    /// `loess_peak_at` (the x) rather than `loess_peak` (the value).
    at: bool,
    points: Vec<(f64, f64)>,
}

fn floats(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(a, &DataType::Float64)?)
}

impl PeakAccumulator {
    fn push(&mut self, xs: &ArrayRef, ys: &ArrayRef) -> Result<()> {
        let (xs, ys) = (floats(xs)?, floats(ys)?);
        let (xs, ys) = (xs.as_primitive::<Float64Type>(), ys.as_primitive::<Float64Type>());
        self.points.extend(xs.iter().zip(ys.iter()).filter_map(|(x, y)| Some((x?, y?))));
        Ok(())
    }
}

impl Accumulator for PeakAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push(&values[0], &values[1])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(peak(&self.points, SPAN).map(|(x, y)| if self.at { x } else { y })))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.points.capacity() * std::mem::size_of::<(f64, f64)>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |g: fn(&(f64, f64)) -> f64| {
            let values: Vec<ScalarValue> = self.points.iter().map(|p| ScalarValue::Float64(Some(g(p)))).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64))
        };
        Ok(vec![list(|p| p.0), list(|p| p.1)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (xs, ys) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for i in 0..xs.len() {
            if xs.is_valid(i) && ys.is_valid(i) {
                self.push(&xs.value(i), &ys.value(i))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quadratic_is_reproduced_exactly() {
        let pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 0.5 + 0.1 * i as f64 - 0.0041 * (i * i) as f64)).collect();
        for (x, y) in smooth(&pts, SPAN) {
            let truth = 0.5 + 0.1 * x - 0.0041 * x * x;
            assert!((y - truth).abs() < 1e-9, "at {x}: {y} vs {truth}");
        }
        let (at, top) = peak(&pts, SPAN).unwrap();
        assert_eq!(at, 12.0); // the vertex is at 12.2
        assert!((top - (0.5 + 1.2 - 0.0041 * 144.0)).abs() < 1e-9);
    }

    #[test]
    fn a_lone_spike_is_smoothed_away() {
        let mut pts: Vec<(f64, f64)> = (0..30).map(|i| (1000.0 * i as f64, 0.8)).collect();
        pts[15].1 = 0.95;
        let (_, top) = peak(&pts, SPAN).unwrap();
        assert!(top < 0.85, "the raw peak is 0.95, the smoothed one {top}");
        assert!(top > 0.8);
    }

    #[test]
    fn few_or_tied_points_still_fit() {
        assert_eq!(peak(&[], SPAN), None);
        assert_eq!(peak(&[(1.0, 0.5)], SPAN), Some((1.0, 0.5)));
        let two = peak(&[(1.0, 0.5), (2.0, 0.7)], SPAN).unwrap();
        assert!((two.1 - 0.7).abs() < 1e-9 && two.0 == 2.0, "{two:?}");
        let tied = smooth(&[(1.0, 0.4), (1.0, 0.6), (3.0, 0.9)], 0.5);
        assert!((tied[0].1 - 0.5).abs() < 1e-9, "{tied:?}");
    }
}
