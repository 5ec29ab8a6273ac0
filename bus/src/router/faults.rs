//! Deliberate delivery faults, so tests can prove that the simulator and
//! the regression checks catch a misbehaving bus: drop, duplicate, delay or
//! misroute a fraction of deliveries. Off unless set; the `bus` flags that
//! set them are hidden and meant for tests only.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryFaults {
    /// Fraction of deliveries to a local agent that are dropped.
    pub drop_ratio: f64,
    /// Fraction delivered twice.
    pub duplicate_ratio: f64,
    /// Fraction also delivered to an agent that did not subscribe.
    pub misroute_ratio: f64,
    /// Added to every delivery.
    pub delay: Duration,
}

impl DeliveryFaults {
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// A tiny deterministic generator (xorshift64*), enough to pick which
/// deliveries a fault hits.
#[derive(Debug, Clone)]
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// True with probability `p`.
    pub(crate) fn roll(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_hit_about_their_ratio() {
        let mut d = Dice::new(7);
        let hits = (0..100_000).filter(|_| d.roll(0.01)).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!(!Dice::new(1).roll(0.0));
    }
}
