//! The simulator watching itself while it runs: how late its own runtime
//! wakes a timer (scheduling lag), its CPU, and the machine's busy share,
//! once a second. A load tool that cannot keep its own schedule measures
//! itself as much as the bus; these figures are how a report tells (see
//! [`crate::verdict::trust`]).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::procstat::{self, MachineSample};
use crate::report::SelfSample;

/// How often the probe asks to be woken.
const PROBE: Duration = Duration::from_millis(10);

/// What the simulator measured of itself over a run.
#[derive(Debug, Clone)]
pub struct SelfLoad {
    /// How late the probe woke (µs), every [`PROBE`].
    pub lag_us: Histogram<u64>,
    /// One sample per second.
    pub samples: Vec<SelfSample>,
    /// CPU over the whole watch, percent of one core.
    pub cpu_percent: f64,
    /// The machine's busy share over the whole watch.
    pub machine_busy_percent: Option<f64>,
}

/// The running watch; [`SelfWatch::stop`] ends it and returns its figures.
#[derive(Debug)]
pub struct SelfWatch {
    stop: CancellationToken,
    task: JoinHandle<SelfLoad>,
}

impl SelfWatch {
    /// Starts watching; `start` is the run's zero.
    pub fn start(start: Instant) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(start, stop.clone()));
        Self { stop, task }
    }

    /// Stops the watch and returns what it saw.
    pub async fn stop(self) -> SelfLoad {
        self.stop.cancel();
        self.task.await.unwrap_or_else(|_| SelfLoad::empty())
    }
}

impl SelfLoad {
    fn empty() -> Self {
        Self {
            lag_us: lag_histogram(),
            samples: Vec::new(),
            cpu_percent: 0.0,
            machine_busy_percent: None,
        }
    }

    /// The probe's lag at quantile `q`, ms (0 without samples).
    pub fn lag_ms_at(&self, q: f64) -> f64 {
        if self.lag_us.is_empty() {
            return 0.0;
        }
        self.lag_us.value_at_quantile(q) as f64 / 1000.0
    }
}

fn lag_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds")
}

/// CPU and machine readings at one instant.
struct Reading {
    at: Instant,
    cpu_seconds: f64,
    machine: Option<MachineSample>,
}

impl Reading {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu_seconds: procstat::self_sample().cpu_seconds,
            machine: procstat::machine_sample(),
        }
    }

    /// (CPU percent of one core, machine busy percent) since `earlier`.
    fn since(&self, earlier: &Reading) -> (f64, Option<f64>) {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let cpu = 100.0 * (self.cpu_seconds - earlier.cpu_seconds).max(0.0) / wall;
        let machine = match (&self.machine, &earlier.machine) {
            (Some(now), Some(then)) => now.busy_percent_since(then),
            _ => None,
        };
        (cpu, machine)
    }
}

async fn watch(start: Instant, stop: CancellationToken) -> SelfLoad {
    let mut load = SelfLoad::empty();
    let first = Reading::now();
    let mut second = Reading::now();
    let mut max_lag_us = 0u64;
    let mut due = tokio::time::Instant::now() + PROBE;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        let lag = tokio::time::Instant::now().saturating_duration_since(due);
        let lag_us = lag.as_micros() as u64;
        let _ = load.lag_us.record(lag_us.max(1));
        max_lag_us = max_lag_us.max(lag_us);
        // The next probe is due a period after this wake-up: a stall counts
        // once, as the lag it caused, not as a burst of late probes.
        due = tokio::time::Instant::now() + PROBE;
        if second.at.elapsed() >= Duration::from_secs(1) {
            let now = Reading::now();
            let (cpu_percent, machine_busy_percent) = now.since(&second);
            load.samples.push(SelfSample {
                at_s: now.at.saturating_duration_since(start).as_secs_f64(),
                cpu_percent,
                machine_busy_percent,
                max_lag_ms: max_lag_us as f64 / 1000.0,
            });
            max_lag_us = 0;
            second = now;
        }
    }
    let (cpu_percent, machine_busy_percent) = Reading::now().since(&first);
    load.cpu_percent = cpu_percent;
    load.machine_busy_percent = machine_busy_percent;
    load
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_as_scheduling_lag() {
        let watch = SelfWatch::start(Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Block the only runtime thread: the probe cannot wake meanwhile.
        std::thread::sleep(Duration::from_millis(120));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let load = watch.stop().await;
        assert!(load.lag_us.len() >= 5, "{}", load.lag_us.len());
        let max_ms = load.lag_us.max() as f64 / 1000.0;
        assert!(max_ms >= 100.0, "the 120 ms stall shows: {max_ms} ms");
        assert!(load.lag_ms_at(0.5) < 20.0, "most probes are on time");
    }
}
