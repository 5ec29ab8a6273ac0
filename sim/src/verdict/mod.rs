//! Verdicts: healthy / warning / critical per operation, per message class (loss) and for connections, and the exit code.
//!
//! Exit codes of a run (the CLI returns them):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | overall verdict healthy |
//! | 2 | setup error: bad scenario, bus unreachable, ... (see [`ScenarioError::EXIT_CODE`](crate::scenario::ScenarioError::EXIT_CODE)) |
//! | 1 | the run failed its integrity check: the simulator's own counts and the bus's disagree (see [`trust`]); no verdict on the bus |
//! | 10 | overall verdict warning |
//! | 11 | overall verdict critical |
//! | 12 | inconclusive: a bad figure may be the simulator's own delay (it could not keep its schedule), and nothing conclusive is critical |
//! | 13 | interrupted (SIGINT or SIGTERM): the report holds what was measured until then |

mod judge;
pub mod trust;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use judge::{
    ConnectionVerdict, LossVerdict, OperationVerdict, SecurityVerdict, Verdicts, judge, min_samples,
};

/// How a measured figure compares with its limits. Ordered, so the worst of
/// several is their `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// At or below the warning limit.
    #[default]
    Healthy,
    /// Above warning, at or below critical.
    Warning,
    /// Above critical (or any loss beyond `max_loss`, or missing
    /// connections).
    Critical,
}

impl Status {
    /// The snake_case name used in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }

    /// Maps the bus's own `/health` status (healthy / degraded / unhealthy)
    /// onto the simulator's scale, so both can be compared and plotted;
    /// unknown texts are taken as critical.
    pub fn from_bus_health(status: &str) -> Status {
        match status {
            "healthy" => Status::Healthy,
            "degraded" | "warning" => Status::Warning,
            _ => Status::Critical,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exit code for an overall healthy verdict.
pub const EXIT_HEALTHY: i32 = 0;
/// Exit code for an overall warning verdict.
pub const EXIT_WARNING: i32 = 10;
/// Exit code for an overall critical verdict.
pub const EXIT_CRITICAL: i32 = 11;
/// Exit code of a run whose bad figures the simulator could not vouch for.
pub const EXIT_INCONCLUSIVE: i32 = 12;
/// Exit code of an interrupted run (SIGINT, SIGTERM).
pub const EXIT_INTERRUPTED: i32 = 13;
/// Exit code of a run that failed its integrity check.
pub const EXIT_INTEGRITY: i32 = 1;

/// The process exit code for an overall verdict: 0 healthy, 10 warning, 11
/// critical. Distinct from 1 (a panic or unexpected failure) and 2 (setup
/// errors), so CI can tell "the bus is slow" from "the run broke".
pub const fn exit_code(overall: Status) -> i32 {
    match overall {
        Status::Healthy => EXIT_HEALTHY,
        Status::Warning => EXIT_WARNING,
        Status::Critical => EXIT_CRITICAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins_and_maps_to_exit_codes() {
        let all = [Status::Warning, Status::Healthy, Status::Critical];
        assert_eq!(all.into_iter().max(), Some(Status::Critical));
        assert_eq!(exit_code(Status::Healthy), 0);
        assert_eq!(exit_code(Status::Warning), 10);
        assert_eq!(exit_code(Status::Critical), 11);
    }

    #[test]
    fn bus_health_maps_onto_status() {
        assert_eq!(Status::from_bus_health("healthy"), Status::Healthy);
        assert_eq!(Status::from_bus_health("degraded"), Status::Warning);
        assert_eq!(Status::from_bus_health("unhealthy"), Status::Critical);
        assert_eq!(Status::from_bus_health("???"), Status::Critical);
    }
}
