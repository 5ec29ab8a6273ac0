//! The load profile over time: which phase runs at an instant, and how many agents and how much traffic it asks for.

use std::time::Duration;

use super::schema::{Phase, Scenario};

impl Scenario {
    /// The run's length: the sum of the phase durations.
    pub fn total_duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration.get()).sum()
    }

    /// The number of agents over all groups at full strength.
    pub fn total_agents(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.count)).sum()
    }

    /// The phase running at `t` since the start, with its index and start
    /// offset; times at or past the end give the last phase.
    pub fn phase_at(&self, t: Duration) -> Option<(usize, &Phase, Duration)> {
        let mut start = Duration::ZERO;
        for (i, phase) in self.phases.iter().enumerate() {
            let end = start + phase.duration.get();
            if t < end || i + 1 == self.phases.len() {
                return Some((i, phase, start));
            }
            start = end;
        }
        None
    }

    /// The load asked for at `t` since the start: the fraction of every
    /// group's agents that should be connected, and the multiplier on every
    /// group's message rate.
    ///
    /// Ramps move the fraction linearly from the previous phase's end value
    /// (0 before the first phase) to their own end value; steady and spike
    /// phases hold their value for the whole phase. At or past the end the
    /// last phase's end state holds.
    pub fn schedule_at(&self, t: Duration) -> (f64, f64) {
        let Some((index, phase, start)) = self.phase_at(t) else {
            return (0.0, 0.0);
        };
        let target = phase.agents_at_end();
        if !phase.is_linear() {
            return (target, phase.rate);
        }
        let from = match index {
            0 => 0.0,
            _ => self.phases[index - 1].agents_at_end(),
        };
        let length = phase.duration.get().as_secs_f64();
        let progress = if length > 0.0 {
            ((t.saturating_sub(start)).as_secs_f64() / length).clamp(0.0, 1.0)
        } else {
            1.0
        };
        (from + (target - from) * progress, phase.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
name = "schedule"
[[phases]]
name = "up"
kind = "ramp"
duration = "10s"
agents = 0.5
[[phases]]
name = "hold"
kind = "steady"
duration = "5s"
rate = 2.0
[[phases]]
name = "burst"
kind = "spike"
duration = "1s"
rate = 10.0
[[phases]]
name = "down"
kind = "ramp_down"
duration = "4s"
[[groups]]
name = "subs"
count = 3
behaviour = "subscriber"
[[groups]]
name = "pubs"
count = 2
behaviour = "publisher"
rate = 1.0
"#,
            "schedule.toml",
        )
        .unwrap()
    }

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9
    }

    #[test]
    fn totals_add_up() {
        let s = scenario();
        assert_eq!(s.total_duration(), Duration::from_secs(20));
        assert_eq!(s.total_agents(), 5);
    }

    #[test]
    fn ramps_are_linear_and_steady_phases_hold() {
        let s = scenario();
        let at = |ms| s.schedule_at(Duration::from_millis(ms));
        assert!(close(at(0), (0.0, 1.0)));
        assert!(close(at(5_000), (0.25, 1.0)));
        assert!(close(at(9_999), (0.49995, 1.0)));
        // Steady defaults to all agents: a step from the ramp's 0.5.
        assert!(close(at(10_000), (1.0, 2.0)));
        assert!(close(at(15_500), (1.0, 10.0)));
        // Ramp-down from the spike's 1.0 to its default 0.0.
        assert!(close(at(18_000), (0.5, 1.0)));
        assert!(close(at(20_000), (0.0, 1.0)));
        assert!(close(at(60_000), (0.0, 1.0)));
    }

    #[test]
    fn phase_at_finds_boundaries() {
        let s = scenario();
        assert_eq!(s.phase_at(Duration::from_secs(10)).unwrap().0, 1);
        assert_eq!(s.phase_at(Duration::from_millis(9_999)).unwrap().0, 0);
        assert_eq!(s.phase_at(Duration::from_secs(99)).unwrap().0, 3);
    }
}
