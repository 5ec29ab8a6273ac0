//! CPU time and memory of a process, read from `/proc` (Linux), so a report
//! can tell whether the simulator, a bus node or Redis was the bottleneck.
//!
//! Reads only text files: no `unsafe`, no libc calls. On systems without
//! `/proc`, [`sample`] returns `None` and [`self_sample`] zeros.

use std::sync::OnceLock;

/// Clock ticks per second when `getconf CLK_TCK` cannot tell (the value on
/// every mainstream Linux architecture).
const DEFAULT_CLOCK_TICKS: f64 = 100.0;

/// What one process has cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time since the process started, seconds; the
    /// difference of two samples is the CPU spent in between.
    pub cpu_seconds: f64,
    /// Resident memory now (`VmRSS`).
    pub rss_bytes: u64,
    /// Highest resident memory so far (`VmHWM`), which a sampling loop
    /// would miss between two samples.
    pub peak_rss_bytes: u64,
}

/// CPU and memory of process `pid`; `None` when it does not exist (any
/// more) or `/proc` is unavailable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    read_sample(&format!("/proc/{pid}"))
}

/// CPU and memory of this process (zeros without `/proc`).
pub fn self_sample() -> ProcSample {
    read_sample("/proc/self").unwrap_or_default()
}

fn read_sample(dir: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    // A zombie has a stat file but no memory lines: it uses no memory.
    let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    Some(ProcSample {
        cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        rss_bytes: status_kib(&status, "VmRSS:").unwrap_or(0) * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:").unwrap_or(0) * 1024,
    })
}

/// `utime + stime` in clock ticks from the content of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (field 3) ... utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The value in kB of a `/proc/<pid>/status` line such as `VmRSS:  1234 kB`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// `getconf CLK_TCK`, asked once per process.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(DEFAULT_CLOCK_TICKS)
    })
}

/// The whole machine's CPU counters (`/proc/stat`'s `cpu` line), in clock
/// ticks summed over every core: the busy share between two samples is
/// `busy` grown over `total` grown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineSample {
    /// Ticks spent doing anything but idling or waiting for I/O.
    pub busy: u64,
    /// All ticks.
    pub total: u64,
}

impl MachineSample {
    /// Percent of the machine (all cores) busy from `earlier` to `self`;
    /// `None` when no tick passed.
    pub fn busy_percent_since(&self, earlier: &MachineSample) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.saturating_sub(earlier.busy);
        (total > 0).then(|| 100.0 * busy as f64 / total as f64)
    }
}

/// The machine's CPU counters now (`None` without `/proc`).
pub fn machine_sample() -> Option<MachineSample> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Cores this process may run on (what `busy_percent` is a share of).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn parse_machine(stat: &str) -> Option<MachineSample> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some(MachineSample {
        busy: total.saturating_sub(idle),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_line_gives_busy_and_total_ticks() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        let s = parse_machine(stat).unwrap();
        assert_eq!(
            s,
            MachineSample {
                busy: 160,
                total: 1000
            }
        );
        let later = MachineSample {
            busy: 260,
            total: 1200,
        };
        assert_eq!(later.busy_percent_since(&s), Some(50.0));
        assert_eq!(s.busy_percent_since(&s), None);
        assert!(machine_sample().is_some());
    }

    use std::time::{Duration, Instant};

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194304 100 0 0 0 \
                    250 75 0 0 20 0 1 0 12345 1000000 300 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_lines_give_kibibytes() {
        let status = "Name:\tsim\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn self_sample_sees_memory_and_counts_cpu() {
        let before = self_sample();
        assert!(before.rss_bytes > 0, "{before:?}");
        assert!(before.peak_rss_bytes >= before.rss_bytes, "{before:?}");
        // Spin until the kernel has charged us at least two ticks more.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut spin = 0u64;
        while self_sample().cpu_seconds < before.cpu_seconds + 0.02 {
            assert!(Instant::now() < deadline, "CPU time did not grow");
            for i in 0..100_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(i * i));
            }
        }
        assert!(self_sample().cpu_seconds > before.cpu_seconds);
    }

    #[test]
    fn a_missing_process_has_no_sample() {
        assert!(sample(std::process::id()).is_some());
        assert_eq!(sample(u32::MAX), None);
    }
}
