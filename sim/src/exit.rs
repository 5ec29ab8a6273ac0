//! Every process exit code of `sim`, in one place.
//!
//! | code | `sim run`, `sim merge` | `sim capacity` | `sim check` |
//! | --- | --- | --- | --- |
//! | 0 | overall verdict healthy | the reports were written (each point's verdict is in them) | no regression |
//! | 1 | the run failed its integrity check (the bus's counts and the agents' disagree: no verdict on the bus), or an unexpected failure (a report that could not be written) | a report could not be written | |
//! | 2 | setup error: invalid scenario or flags, bus unreachable, too many agents for one process | setup error | bad input |
//! | 3 | | | a regression |
//! | 10 | overall verdict warning | | |
//! | 11 | overall verdict critical | | |
//! | 12 | inconclusive: a bad figure may be the simulator's own delay, nothing conclusive is critical | | |
//! | 13 | interrupted (SIGINT, SIGTERM): the report holds what was measured until then | | |
//!
//! Distinct codes let CI tell "the bus is slow" (10, 11) from "the run
//! could not tell" (12, 13) and "the run broke" (1, 2).

/// Overall verdict healthy; `sim check`: nothing regressed.
pub const HEALTHY: i32 = 0;
/// The run failed its integrity check (and unexpected failures).
pub const INTEGRITY: i32 = 1;
/// An unexpected failure (a report that could not be written); shares its
/// code with a failed integrity check: neither run gives a verdict.
pub const FAILURE: i32 = 1;
/// A setup error (bad scenario, flags or input; unreachable bus).
pub const SETUP: i32 = 2;
/// `sim check`: a regression against the baseline.
pub const REGRESSION: i32 = 3;
/// Overall verdict warning.
pub const WARNING: i32 = 10;
/// Overall verdict critical.
pub const CRITICAL: i32 = 11;
/// Some bad figure could not be judged (the simulator was the bottleneck).
pub const INCONCLUSIVE: i32 = 12;
/// The run was interrupted.
pub const INTERRUPTED: i32 = 13;
