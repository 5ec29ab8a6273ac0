//! Per-node figures of a run: the agents the plan put on each bus node and
//! the connects they completed, the most connections the node reported,
//! and CPU and memory of the nodes the simulator started.

use std::time::Duration;

use crate::bus_under_test::RunningTarget;
use crate::drive::RunResult;
use crate::monitor::node_label;
use crate::procstat::{self, ProcSample};
use crate::report::{HealthSample, NodeFigures};

/// CPU and memory of one node the simulator started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeCost {
    /// Which node (index into the target's URLs).
    pub node: usize,
    /// The node's process id.
    pub pid: u32,
    /// Percent of one core over the run.
    pub cpu_percent: f64,
    /// Peak resident memory (`VmHWM`) of the process up to the end of the
    /// run, bytes.
    pub peak_rss_bytes: u64,
}

/// Samples of the started nodes' processes, taken before the run.
pub(super) fn sample_nodes(target: &RunningTarget) -> Vec<Option<ProcSample>> {
    target
        .bus_pids
        .iter()
        .map(|p| procstat::sample(*p))
        .collect()
}

/// What the started nodes cost since `before`, over `duration`.
pub fn node_costs(
    target: &RunningTarget,
    before: &[Option<ProcSample>],
    duration: Duration,
) -> Vec<NodeCost> {
    target
        .bus_pids
        .iter()
        .zip(before)
        .enumerate()
        .filter_map(|(node, (pid, b))| {
            let (b, after) = (b.as_ref()?, procstat::sample(*pid)?);
            Some(NodeCost {
                node,
                pid: *pid,
                cpu_percent: 100.0 * (after.cpu_seconds - b.cpu_seconds)
                    / duration.as_secs_f64().max(1e-9),
                peak_rss_bytes: after.peak_rss_bytes,
            })
        })
        .collect()
}

/// One row per node of `target`, in the order of its URLs.
pub(super) fn node_figures(
    target: &RunningTarget,
    result: &RunResult,
    health: &[HealthSample],
    costs: &[NodeCost],
) -> Vec<NodeFigures> {
    target
        .http_urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let node = node_label(url);
            let cost = costs.iter().find(|c| c.node == i);
            NodeFigures {
                agents: result.node_agents.get(i).copied().unwrap_or(0),
                connects: result.node_traffic.get(i).map_or(0, |t| t.connects),
                peak_connections: health
                    .iter()
                    .filter(|s| s.node.as_deref() == Some(node.as_str()))
                    .filter_map(|s| s.connections)
                    .max(),
                cpu_percent: cost.map(|c| c.cpu_percent),
                peak_rss_bytes: cost.map(|c| c.peak_rss_bytes),
                node,
            }
        })
        .collect()
}
