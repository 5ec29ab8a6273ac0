//! Where the latency curve bends: the knee of a convex, rising curve is the
//! point farthest below the chord from its first to its last point, on
//! normalised axes (the Kneedle idea, without smoothing).

/// The index of the knee of `(load, latency)` points sorted by load; `None`
/// with fewer than three points or a curve that does not rise.
pub fn knee(points: &[(f64, f64)]) -> Option<usize> {
    if points.len() < 3 {
        return None;
    }
    let (x0, y0) = points[0];
    let (x1, y1) = points[points.len() - 1];
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let norm = |(x, y): (f64, f64)| ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0));
    let (best, gap) = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = norm(*p);
            (i, x - y)
        })
        .fold(
            (0, f64::MIN),
            |acc, (i, g)| if g > acc.1 { (i, g) } else { acc },
        );
    (gap > 0.0).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hockey_stick_bends_at_its_corner() {
        let points: Vec<(f64, f64)> = (1..=10)
            .map(|i| {
                let load = f64::from(i) * 1000.0;
                let latency = if i <= 6 {
                    2.0 + f64::from(i) * 0.1
                } else {
                    2.6 + f64::from(i - 6) * 500.0
                };
                (load, latency)
            })
            .collect();
        assert_eq!(knee(&points), Some(5));
    }

    #[test]
    fn straight_or_short_curves_have_no_knee() {
        assert_eq!(knee(&[(1.0, 1.0), (2.0, 2.0)]), None);
        let line: Vec<(f64, f64)> = (0..5).map(|i| (f64::from(i), f64::from(i))).collect();
        assert_eq!(knee(&line), None);
        let falling: Vec<(f64, f64)> = (0..5)
            .map(|i| (f64::from(i), 10.0 - f64::from(i)))
            .collect();
        assert_eq!(knee(&falling), None);
    }
}
