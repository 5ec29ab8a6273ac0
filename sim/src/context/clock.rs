//! The run's clock: monotonic microseconds that read as wall-clock µs, so
//! the processes of a sharded run compare the timestamps they exchange.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The run's clock: microseconds on a monotonic clock anchored to the wall
/// clock at the start. Every timestamp agents exchange (a message's planned
/// and sent instants, a subscription window's edges) is a run-clock value,
/// so it reads as wall-clock µs: processes of one sharded run compare them
/// directly, exactly on one machine and up to their clocks' offset (NTP)
/// across machines.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// The run's zero on the monotonic clock (may lie in the future while
    /// a run waits for its `--start-at`).
    pub start: Instant,
    /// The same instant on the wall clock, µs since the Unix epoch.
    pub start_wall_us: u64,
}

impl RunClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            start_wall_us: wall_us(SystemTime::now()),
        }
    }

    /// A clock whose zero is the wall-clock instant `at` (past or future),
    /// so shards started apart but given the same `at` share their zero.
    pub fn starting_at(at: SystemTime) -> Self {
        let (now_wall, now) = (SystemTime::now(), Instant::now());
        let start = match at.duration_since(now_wall) {
            Ok(ahead) => now + ahead,
            Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
        };
        Self {
            start,
            start_wall_us: wall_us(at),
        }
    }

    /// The clock's zero on the wall clock.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.start_wall_us)
    }

    /// Now, in run-clock µs.
    pub fn now_us(&self) -> u64 {
        self.start_wall_us + self.start.elapsed().as_micros() as u64
    }

    /// A run offset in run-clock µs.
    pub fn at_us(&self, offset: Duration) -> u64 {
        self.start_wall_us + offset.as_micros() as u64
    }

    /// The instant of a run offset.
    pub fn instant(&self, offset: Duration) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + offset)
    }

    /// Run offset of a run-clock µs value.
    pub fn offset(&self, us: u64) -> Duration {
        Duration::from_micros(us.saturating_sub(self.start_wall_us))
    }
}

/// µs since the Unix epoch (0 before it).
pub fn wall_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Default for RunClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_can_start_in_the_future_or_the_past() {
        let at = SystemTime::now() + Duration::from_secs(2);
        let clock = RunClock::starting_at(at);
        assert_eq!(clock.start_wall_us, wall_us(at));
        let ahead = clock.start.saturating_duration_since(Instant::now());
        assert!(
            ahead > Duration::from_millis(1500) && ahead <= Duration::from_secs(2),
            "{ahead:?}"
        );
        assert_eq!(
            clock.now_us(),
            clock.start_wall_us,
            "no time passes before the start"
        );

        let past = SystemTime::now() - Duration::from_secs(3);
        let clock = RunClock::starting_at(past);
        let elapsed = clock.start.elapsed();
        assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
        let drift = clock.now_us().abs_diff(wall_us(SystemTime::now()));
        assert!(
            drift < 1_000_000,
            "run-clock µs read as wall-clock µs: {drift}"
        );
    }
}
