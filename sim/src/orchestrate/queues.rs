//! The bus's own counts of a scenario's queues at the end of a run, which
//! settle the queue ledger (see [`crate::ledger::settle_queue`]).

use std::collections::BTreeSet;

use crate::bus_under_test::{self, RunningTarget};
use crate::ledger::QueueReading;
use crate::scenario::{Behaviour, Scenario};

/// Every (workspace, queue) the scenario's queue groups use.
fn queues_of(scenario: &Scenario) -> BTreeSet<(String, String)> {
    scenario
        .groups
        .iter()
        .filter(|g| {
            matches!(
                g.behaviour,
                Behaviour::QueueProducer | Behaviour::QueueWorker
            )
        })
        .flat_map(|g| (0..g.workspaces.max(1)).map(move |w| (format!("ws-{w}"), g.queue.clone())))
        .collect()
}

/// Reads the bus's counts of the scenario's queues: `None` when it has no
/// queues; queues whose stats could not be read are left out and noted.
pub(super) async fn read_queues(
    scenario: &Scenario,
    target: &RunningTarget,
) -> (Option<QueueReading>, Vec<String>) {
    let queues = queues_of(scenario);
    if queues.is_empty() {
        return (None, Vec::new());
    }
    let mut reading = QueueReading::default();
    let mut notes = Vec::new();
    for (workspace, queue) in &queues {
        match bus_under_test::queue_stats(target, workspace, queue).await {
            Ok(stats) => {
                reading.still_queued += stats.ready + stats.processing + stats.delayed;
                reading.dead += stats.dead;
            }
            Err(e) => notes.push(format!(
                "could not read the stats of queue {workspace}/{queue}: {e}"
            )),
        }
    }
    (Some(reading), notes)
}
