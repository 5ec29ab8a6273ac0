//! The open-model arrivals of one agent: when each of its messages is due.
//! Latency is measured from these planned instants, so a stalled bus (or a
//! stalled simulator) cannot hide its stall by delaying the next send.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp};

use crate::scenario::{Arrival, Scenario};

/// How far ahead to look for a phase that sends again when the current
/// rate is zero.
const IDLE_STEP: Duration = Duration::from_millis(50);

/// Planned send instants of one agent, relative to the run start.
#[derive(Debug, Clone)]
pub struct Arrivals {
    rate: f64,
    arrival: Arrival,
    next: Option<Duration>,
}

impl Arrivals {
    /// A schedule for `rate` messages/s (before phase multipliers), first due
    /// from `start` on.
    pub fn new(
        rate: f64,
        arrival: Arrival,
        start: Duration,
        scenario: &Scenario,
        rng: &mut SmallRng,
    ) -> Self {
        let mut s = Self {
            rate,
            arrival,
            next: None,
        };
        if rate > 0.0 {
            // Spread agents' first sends over one interval, so they do not
            // all fire together.
            let first = match arrival {
                Arrival::Constant => start + Duration::from_secs_f64(rng.random::<f64>() / rate),
                Arrival::Poisson => start,
            };
            s.next = s.advance_from(first, scenario, rng, matches!(arrival, Arrival::Poisson));
        }
        s
    }

    /// The instant the next message is due, if any before the run ends.
    pub fn peek(&self) -> Option<Duration> {
        self.next
    }

    /// Consumes the due instant and plans the one after.
    pub fn pop(&mut self, scenario: &Scenario, rng: &mut SmallRng) -> Option<Duration> {
        let due = self.next?;
        self.next = self.advance_from(due, scenario, rng, true);
        Some(due)
    }

    /// The first instant after `from` (or `from` itself when `step` is
    /// false) at which a message is due under the phase's rate.
    fn advance_from(
        &self,
        from: Duration,
        scenario: &Scenario,
        rng: &mut SmallRng,
        step: bool,
    ) -> Option<Duration> {
        let end = scenario.total_duration();
        let mut t = from;
        let mut step = step;
        while t < end {
            let (_, multiplier) = scenario.schedule_at(t);
            let rate = self.rate * multiplier;
            if rate <= 0.0 {
                // Quiet phase: look again a little later; the first instant
                // with traffic is due as soon as it comes.
                t += IDLE_STEP;
                step = false;
                continue;
            }
            if !step {
                return Some(t);
            }
            let gap = match self.arrival {
                Arrival::Constant => 1.0 / rate,
                Arrival::Poisson => Exp::new(rate).map(|e| e.sample(rng)).unwrap_or(1.0 / rate),
            };
            // The candidate still has to fall in a phase that sends.
            t += Duration::from_secs_f64(gap);
            step = false;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
name = "t"
[[phases]]
name = "a"
kind = "steady"
duration = "10s"
[[phases]]
name = "quiet"
kind = "steady"
duration = "5s"
rate = 0.0
[[phases]]
name = "spike"
kind = "spike"
duration = "5s"
rate = 3.0
[[groups]]
name = "p"
count = 1
behaviour = "publisher"
rate = 10.0
"#,
            "t.toml",
        )
        .unwrap()
    }

    fn count(arrival: Arrival, from: f64, to: f64) -> usize {
        let s = scenario();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut schedule = Arrivals::new(10.0, arrival, Duration::ZERO, &s, &mut rng);
        let mut n = 0;
        while let Some(t) = schedule.pop(&s, &mut rng) {
            let t = t.as_secs_f64();
            if t >= from && t < to {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn constant_rate_follows_the_phases() {
        assert!((99..=101).contains(&count(Arrival::Constant, 0.0, 10.0)));
        assert_eq!(
            count(Arrival::Constant, 10.05, 15.0),
            0,
            "rate 0 sends nothing"
        );
        assert!(
            (148..=151).contains(&count(Arrival::Constant, 15.0, 20.0)),
            "spike triples"
        );
    }

    #[test]
    fn poisson_averages_the_rate() {
        let n = count(Arrival::Poisson, 0.0, 10.0);
        assert!((70..=130).contains(&n), "{n}");
    }
}
