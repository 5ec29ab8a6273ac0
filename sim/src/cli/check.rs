//! `sim check REPORT --baseline FILE`: compares a report with a baseline, prints the diff table, optionally writes JUnit XML, and exits 3 on a regression.

use super::CheckArgs;
use crate::check::{
    self, Baseline, EXIT_BAD_INPUT, EXIT_CLEAN, EXIT_REGRESSION, Tolerance, compare,
};

/// Runs `sim check`; returns the exit code: 0 clean, 3 regression, 2 bad
/// input (unreadable files, another scenario, bad tolerance).
pub fn check_command(args: &CheckArgs) -> i32 {
    let tolerance = Tolerance {
        ratio: args.tolerance,
        latency_floor_ms: args.latency_floor_ms,
    };
    let comparison = check::read_report(&args.report)
        .and_then(|report| {
            let baseline = Baseline::read(&args.baseline)?;
            compare(&baseline, &Baseline::of(&report), tolerance)
        })
        .and_then(|comparison| {
            if let Some(path) = &args.junit {
                std::fs::write(path, check::render_junit(&comparison)).map_err(|source| {
                    check::CheckError::Write {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            Ok(comparison)
        });
    let comparison = match comparison {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sim check: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    print!("{}", check::render_table(&comparison));
    if comparison.is_clean() {
        EXIT_CLEAN
    } else {
        for row in comparison.regressions() {
            eprintln!(
                "sim check: regression: {} is {} (baseline {}, allowed {})",
                row.metric, row.current, row.baseline, row.allowed
            );
        }
        EXIT_REGRESSION
    }
}
