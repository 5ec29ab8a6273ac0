//! Which loads to try: a fixed sweep, or a search that doubles the load
//! until it turns critical and then bisects the two boundaries (last
//! healthy, last below critical). Both stop past critical. Generic over how
//! a point is measured, so the logic is tested on synthetic curves.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::verdict::Status;

/// How loads are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Strategy {
    /// `steps` loads evenly spaced from `from` to `to`.
    Sweep {
        /// The first load.
        from: f64,
        /// The last load.
        to: f64,
        /// How many loads (at least one).
        steps: u32,
    },
    /// Double from `from` (up to `to`) until critical, then bisect each
    /// boundary `refine` times.
    Search {
        /// The first load.
        from: f64,
        /// The highest load the doubling goes to.
        to: f64,
        /// Most bisection steps per boundary.
        refine: u32,
    },
}

/// A load as people write it: whole when it is whole, else one decimal.
pub fn load_text(load: f64) -> String {
    if load.fract() == 0.0 {
        format!("{load:.0}")
    } else {
        format!("{load:.1}")
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Strategy::Sweep { from, to, steps } => write!(
                f,
                "a sweep of {steps} loads from {} to {}",
                load_text(from),
                load_text(to)
            ),
            Strategy::Search { from, to, refine } => write!(
                f,
                "a search doubling from {} (up to {}) until critical, then up to {refine} bisections per boundary",
                load_text(from),
                load_text(to)
            ),
        }
    }
}

/// Measures one load; returns the verdict (worst of its repeats).
pub trait Prober {
    /// Measures `load` and returns its status.
    fn probe(&mut self, load: f64) -> impl Future<Output = Status>;
}

/// Loads are whole numbers when the varied quantity is a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// Loads are rounded to whole numbers, at least 1.
    Whole,
    /// Loads are used as they are.
    Fractional,
}

impl Grain {
    fn round(self, load: f64) -> f64 {
        match self {
            Grain::Whole => load.round().max(1.0),
            Grain::Fractional => load,
        }
    }

    /// Whether `lo` and `hi` are as close as it makes sense to get.
    fn settled(self, lo: f64, hi: f64) -> bool {
        hi - lo <= 1.0 && self == Grain::Whole || (hi - lo) <= 0.02 * hi
    }
}

/// What a search learnt: every load tried, in order, with its status.
pub type Trail = Vec<(f64, Status)>;

/// Runs the strategy; returns the loads in the order they were tried.
pub async fn explore<P: Prober>(prober: &mut P, strategy: Strategy, grain: Grain) -> Trail {
    match strategy {
        Strategy::Sweep { from, to, steps } => sweep(prober, from, to, steps.max(1), grain).await,
        Strategy::Search { from, to, refine } => search(prober, from, to, refine, grain).await,
    }
}

async fn sweep<P: Prober>(prober: &mut P, from: f64, to: f64, steps: u32, grain: Grain) -> Trail {
    let mut trail = Trail::new();
    for i in 0..steps {
        let fraction = if steps == 1 {
            0.0
        } else {
            f64::from(i) / f64::from(steps - 1)
        };
        let load = grain.round(from + (to - from) * fraction);
        if trail.iter().any(|(l, _)| *l == load) {
            continue;
        }
        let status = prober.probe(load).await;
        trail.push((load, status));
        if status == Status::Critical {
            break;
        }
    }
    trail
}

async fn search<P: Prober>(prober: &mut P, from: f64, to: f64, refine: u32, grain: Grain) -> Trail {
    let mut trail = Trail::new();
    let mut load = grain.round(from);
    loop {
        let status = prober.probe(load).await;
        trail.push((load, status));
        if status == Status::Critical || load >= to {
            break;
        }
        load = grain.round((load * 2.0).min(to));
    }
    // The healthy boundary, then the critical one.
    for good in [Status::Healthy, Status::Warning] {
        let lo = trail
            .iter()
            .filter(|(_, s)| *s <= good)
            .map(|(l, _)| *l)
            .fold(None, max);
        let hi = trail
            .iter()
            .filter(|(_, s)| *s > good)
            .map(|(l, _)| *l)
            .fold(None, min);
        let (Some(mut lo), Some(mut hi)) = (lo, hi) else {
            continue;
        };
        for _ in 0..refine {
            if hi <= lo || grain.settled(lo, hi) {
                break;
            }
            let mid = grain.round((lo + hi) / 2.0);
            if mid <= lo || mid >= hi {
                break;
            }
            let status = prober.probe(mid).await;
            trail.push((mid, status));
            if status <= good {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    trail
}

fn max(acc: Option<f64>, x: f64) -> Option<f64> {
    Some(acc.map_or(x, |a| a.max(x)))
}

fn min(acc: Option<f64>, x: f64) -> Option<f64> {
    Some(acc.map_or(x, |a| a.min(x)))
}

/// The highest load judged at most `status` (e.g. the highest healthy).
pub fn highest_at_most(trail: &[(f64, Status)], status: Status) -> Option<f64> {
    trail
        .iter()
        .filter(|(_, s)| *s <= status)
        .map(|(l, _)| *l)
        .fold(None, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bus that turns warning at 1,000 and critical at 3,000.
    struct Curve(Vec<f64>);

    impl Prober for Curve {
        async fn probe(&mut self, load: f64) -> Status {
            self.0.push(load);
            if load > 3000.0 {
                Status::Critical
            } else if load > 1000.0 {
                Status::Warning
            } else {
                Status::Healthy
            }
        }
    }

    #[tokio::test]
    async fn search_brackets_both_boundaries() {
        let mut curve = Curve(Vec::new());
        let trail = explore(
            &mut curve,
            Strategy::Search {
                from: 100.0,
                to: 1e6,
                refine: 12,
            },
            Grain::Whole,
        )
        .await;
        let healthy = highest_at_most(&trail, Status::Healthy).unwrap();
        let below_critical = highest_at_most(&trail, Status::Warning).unwrap();
        assert!((990.0..=1000.0).contains(&healthy), "{healthy}");
        assert!(
            (2990.0..=3000.0).contains(&below_critical),
            "{below_critical}"
        );
        assert!(
            trail.iter().filter(|(l, _)| *l > 3000.0).count() <= 4,
            "stops past critical: {trail:?}"
        );
    }

    #[tokio::test]
    async fn sweep_stops_past_critical() {
        let mut curve = Curve(Vec::new());
        let trail = explore(
            &mut curve,
            Strategy::Sweep {
                from: 500.0,
                to: 5000.0,
                steps: 10,
            },
            Grain::Whole,
        )
        .await;
        assert_eq!(trail.last().unwrap().1, Status::Critical);
        assert_eq!(
            trail.len(),
            7,
            "500, 1000, 1500, 2000, 2500, 3000 then 3500: {trail:?}"
        );
        assert_eq!(highest_at_most(&trail, Status::Healthy), Some(1000.0));
    }

    #[tokio::test]
    async fn a_bus_that_never_breaks_reaches_the_ceiling() {
        struct Flat;
        impl Prober for Flat {
            async fn probe(&mut self, _load: f64) -> Status {
                Status::Healthy
            }
        }
        let trail = explore(
            &mut Flat,
            Strategy::Search {
                from: 1.0,
                to: 64.0,
                refine: 4,
            },
            Grain::Fractional,
        )
        .await;
        assert_eq!(highest_at_most(&trail, Status::Healthy), Some(64.0));
        assert_eq!(trail.len(), 7, "1, 2, 4, ..., 64");
    }
}
