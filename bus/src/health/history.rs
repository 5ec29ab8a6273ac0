//! Latency history of one check: a fixed-size ring and its summary.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The last `capacity` latencies of one check, oldest dropped first.
#[derive(Debug, Clone)]
pub struct LatencyHistory {
    samples: VecDeque<Duration>,
    capacity: usize,
}

/// Summary of a latency history, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Latencies in the ring.
    pub count: usize,
    /// Their mean.
    pub avg_ms: f64,
    /// The fastest.
    pub min_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The median (nearest rank).
    pub p50_ms: f64,
    /// The 99th percentile (nearest rank): what the thresholds are about.
    pub p99_ms: f64,
}

impl LatencyHistory {
    /// An empty ring of `capacity` latencies (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Adds a latency, dropping the oldest when the ring is full.
    pub fn record(&mut self, latency: Duration) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(latency);
    }

    /// Latencies held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True before the first latency.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Nearest-rank percentiles over the ring.
    pub fn stats(&self) -> LatencyStats {
        if self.samples.is_empty() {
            return LatencyStats::default();
        }
        let mut sorted: Vec<Duration> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        let ms = super::millis;
        let rank = |q: f64| {
            let idx = (q * sorted.len() as f64).ceil() as usize;
            sorted[idx.clamp(1, sorted.len()) - 1]
        };
        let total: Duration = sorted.iter().sum();
        LatencyStats {
            count: sorted.len(),
            avg_ms: ms(total / sorted.len() as u32),
            min_ms: ms(sorted[0]),
            max_ms: ms(sorted[sorted.len() - 1]),
            p50_ms: ms(rank(0.50)),
            p99_ms: ms(rank(0.99)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_drops_the_oldest() {
        let mut h = LatencyHistory::new(3);
        for ms in [100, 1, 2, 3] {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.stats().max_ms, 3.0);
    }

    #[test]
    fn stats_over_one_to_hundred() {
        let mut h = LatencyHistory::new(100);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.stats();
        assert_eq!(s.count, 100);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert!((s.avg_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn empty_history_has_zero_stats() {
        assert_eq!(LatencyHistory::new(4).stats(), LatencyStats::default());
    }
}
