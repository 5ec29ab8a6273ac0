//! `sim baseline REPORT... --out FILE`: records the figures of one or more runs as the baseline `sim check` compares later runs with.

use super::BaselineArgs;
use crate::check::{self, Baseline, EXIT_BAD_INPUT};

/// Runs `sim baseline`; returns the exit code (0, or 2 when a file cannot
/// be read or written, or the runs disagree).
pub fn baseline_command(args: &BaselineArgs) -> i32 {
    let baseline = args
        .reports
        .iter()
        .map(|path| check::read_report(path))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|reports| Baseline::envelope(&reports))
        .and_then(|baseline| baseline.write(&args.out).map(|()| baseline));
    let baseline = match baseline {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sim baseline: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    println!(
        "sim baseline: {} from {} run(s): {} message classes, {} operations, {:.1} deliveries/s, verdict {} -> {}",
        baseline.snapshot.scenario,
        baseline.recorded_from.runs,
        baseline.snapshot.messages.len(),
        baseline.latency_ms.len(),
        baseline.throughput_per_s,
        baseline.snapshot.overall,
        args.out.display()
    );
    0
}
