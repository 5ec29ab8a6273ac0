//! Verdicts: healthy / warning / critical per operation, per message class (loss) and for connections, and the exit code.
//!
//! The exit codes these map to are in [`crate::exit`].

mod judge;
pub mod trust;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::exit;

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

/// The process exit code for an overall verdict: 0 healthy, 10 warning, 11
/// critical. Distinct from 1 (a panic or unexpected failure) and 2 (setup
/// errors), so CI can tell "the bus is slow" from "the run broke".
pub const fn exit_code(overall: Status) -> i32 {
    match overall {
        Status::Healthy => exit::HEALTHY,
        Status::Warning => exit::WARNING,
        Status::Critical => exit::CRITICAL,
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
