//! Deliberate delivery faults, so tests can prove that the simulator and
//! the regression checks catch a misbehaving bus: drop, duplicate, delay or
//! misroute a fraction of deliveries.
//!
//! The settings ([`DeliveryFaults`]) always exist, so a program that embeds
//! the bus compiles either way; the code that acts on them (here, and the
//! delay in the WebSocket outbound sink) is built only with the
//! `test-faults` cargo feature, so release builds carry no fault branch on
//! the delivery path. Without the feature `BusConfig::validate` refuses
//! non-zero faults rather than ignoring them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which deliveries to spoil. All zero (none) by default.
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
    /// True when no fault is set.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(feature = "test-faults")]
pub(super) use self::injector::FaultInjector;

#[cfg(feature = "test-faults")]
mod injector {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::DeliveryFaults;
    use crate::router::subscriptions::{DeliverySink, Dispatched};

    /// Picks which deliveries a fault hits, from a fixed seed so that a
    /// faulty run is as repeatable as the bus's scheduling allows.
    #[derive(Debug)]
    pub(in crate::router) struct FaultInjector {
        faults: DeliveryFaults,
        rng: SmallRng,
    }

    impl FaultInjector {
        /// An injector for `faults`, or `None` when there are none (the
        /// dispatcher then delivers as a release build does).
        pub(in crate::router) fn new(faults: DeliveryFaults) -> Option<Self> {
            (!faults.is_none()).then(|| Self {
                faults,
                rng: SmallRng::seed_from_u64(0x5EED),
            })
        }

        /// True with probability `ratio` (clamped into 0..=1).
        fn roll(&mut self, ratio: f64) -> bool {
            ratio > 0.0 && self.rng.random_bool(ratio.min(1.0))
        }

        /// Delivers to one sink with the faults applied; `stranger` is a
        /// sink that did not ask for this delivery, for misroutes.
        pub(in crate::router) fn deliver(
            &mut self,
            sink: &dyn DeliverySink,
            dispatched: &Dispatched<'_>,
            stranger: impl FnOnce() -> Option<std::sync::Arc<dyn DeliverySink>>,
        ) {
            let faults = self.faults;
            if self.roll(faults.drop_ratio) {
                return;
            }
            sink.deliver(dispatched);
            if self.roll(faults.duplicate_ratio) {
                sink.deliver(dispatched);
            }
            if self.roll(faults.misroute_ratio)
                && let Some(stranger) = stranger()
            {
                stranger.deliver(dispatched);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rolls_hit_about_their_ratio() {
            let faults = DeliveryFaults {
                drop_ratio: 0.01,
                ..DeliveryFaults::default()
            };
            let mut injector = FaultInjector::new(faults).unwrap();
            let hits = (0..100_000).filter(|_| injector.roll(0.01)).count();
            assert!((800..1200).contains(&hits), "{hits}");
            assert!(!injector.roll(0.0));
            assert!(FaultInjector::new(DeliveryFaults::default()).is_none());
        }
    }
}
