//! `sim merge`: the shards of one run combined into one report, written
//! like a run's, with a run's exit code (the verdict's; 12 when a shard's
//! simulator could not keep its schedule, 1 when a shard failed its
//! integrity check, 13 when one was interrupted).

use super::{MergeArgs, run::print_summary};
use crate::exit;
use crate::merge;
use crate::orchestrate::FinishedRun;
use crate::report;
use crate::verdict::trust;

/// Runs `sim merge`; returns the exit code: a run's (see
/// [`trust::exit_code`]), 2 when the directories are not the complete
/// shards of one run.
pub fn merge_command(args: &MergeArgs) -> i32 {
    let FinishedRun {
        report, metrics, ..
    } = match merge::merge_dirs(&args.shards) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("sim merge: {e}");
            return exit::SETUP;
        }
    };
    if let Err(e) = report::write_all(&report, &metrics, &args.out) {
        eprintln!(
            "sim merge: writing the report to {}: {e}",
            args.out.display()
        );
        return exit::FAILURE;
    }
    if !args.quiet {
        print_summary(&report, &args.out);
    }
    trust::exit_code(&report.verdicts, &report.integrity)
}
