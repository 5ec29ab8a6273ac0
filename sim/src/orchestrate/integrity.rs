//! Whether a finished run's numbers can be trusted (see
//! [`crate::verdict::trust`]): the simulator's own load against its
//! schedule, the bus's counts as a second witness, and an interruption.

use crate::drive::RunResult;
use crate::metrics::Operation;
use crate::scenario::{Behaviour, Scenario};
use crate::verdict::Verdicts;
use crate::verdict::trust::{self, Allowances, Integrity, NodeWitness, SelfFigures};

/// What the witness found: one row per node, or why there is none.
pub type Witness = Result<Vec<NodeWitness>, String>;

/// Judges how far `result` can be trusted, and marks the verdicts the
/// simulator cannot vouch for as inconclusive.
pub fn assess(
    scenario: &Scenario,
    result: &RunResult,
    witness: &Witness,
    verdicts: &mut Verdicts,
) -> Integrity {
    let mut integrity = Integrity {
        interrupted_at_s: result.interrupted_at.map(|d| d.as_secs_f64()),
        ..Integrity::default()
    };
    integrity.saturation = trust::saturation(&self_figures(result, verdicts));
    if integrity.saturation.is_some() {
        trust::mark_inconclusive(verdicts);
    }
    match witness {
        Ok(rows) => {
            integrity.findings = trust::check_witness(rows, allowances(scenario, result));
            integrity.witness = rows.clone();
        }
        Err(why) => integrity.witness_missing = Some(why.clone()),
    }
    integrity.settle(verdicts);
    integrity
}

fn self_figures(result: &RunResult, verdicts: &Verdicts) -> SelfFigures {
    let load = &result.self_load;
    let lowest_warning_ms = verdicts
        .operations
        .iter()
        .map(|v| v.warning_ms)
        .fold(f64::INFINITY, f64::min);
    SelfFigures {
        scheduling_lag_p99_ms: load.lag_ms_at(0.99),
        send_lag_p99_ms: result.metrics.summary(Operation::SendLag).map(|s| s.p99_ms),
        machine_busy_percent: load.machine_busy_percent,
        lowest_warning_ms: if lowest_warning_ms.is_finite() {
            lowest_warning_ms
        } else {
            50.0
        },
    }
}

/// What may explain a gap between the bus's counts and the agents'.
fn allowances(scenario: &Scenario, result: &RunResult) -> Allowances {
    let connections = result.metrics.ledger().connections;
    let planned_leaves = scenario.phases.iter().any(|p| p.agents_at_end() < 1.0);
    let other_clients = scenario
        .groups
        .iter()
        .any(|g| g.behaviour == Behaviour::RestClient);
    Allowances {
        connections_ended_early: connections.disconnects > 0
            || connections.connect_failures > 0
            || connections.connect_retries > 0
            || planned_leaves
            || other_clients
            || !scenario.faults.is_empty(),
        drain_cut_short: !result.drained_quiet || result.interrupted_at.is_some(),
    }
}
