//! Whether a run's own numbers can be trusted: what the simulator cannot
//! vouch for is said, not judged.
//!
//! Three things can make a figure untrustworthy, and each has its outcome:
//!
//! - **The simulator could not keep its schedule** ([`saturation`]): its
//!   runtime woke its timers late, or it lagged behind its send schedule on
//!   a machine with no CPU left. A bad latency or a loss may then be its own
//!   delay, so those verdicts are marked *inconclusive* ([`mark_inconclusive`])
//!   and the run exits 12 unless something conclusive is critical.
//! - **The bus disagrees with the agents** ([`check_witness`]): the bus's
//!   own counts (frames it read, deliveries it made, subscriptions it holds)
//!   beside what the agents wrote, read and subscribed to. A disagreement
//!   the run cannot explain means the instrument is broken: the run fails
//!   its integrity check (exit 1) and says nothing about the bus.
//! - **The run was interrupted** (SIGINT, SIGTERM): the report holds what
//!   was measured until then (exit 13).

use serde::{Deserialize, Serialize};

use super::{Status, Verdicts};
use crate::exit;

/// The simulator's runtime lag (p99) above which it is saturated, at
/// least: a timer woken 5 ms late is the simulator's delay, not the bus's.
pub const LAG_FLOOR_MS: f64 = 5.0;
/// ...or this share of the lowest warning threshold, if that is more.
pub const LAG_SHARE_OF_WARNING: f64 = 0.1;
/// The machine's busy share (all cores) from which a send lag above the
/// warning threshold is taken as the simulator starving, not the bus
/// pushing back.
pub const BUSY_MACHINE_PERCENT: f64 = 90.0;

/// What the simulator measured of itself, as [`saturation`] needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfFigures {
    /// p99 of how late its runtime woke a 10 ms probe, ms.
    pub scheduling_lag_p99_ms: f64,
    /// p99 of its lag behind the planned send instants, ms (none without
    /// scheduled sends).
    pub send_lag_p99_ms: Option<f64>,
    /// The machine's busy share over the run, percent of all cores.
    pub machine_busy_percent: Option<f64>,
    /// The lowest warning threshold of the judged operations, ms.
    pub lowest_warning_ms: f64,
}

/// Why the simulator could not keep its own schedule, if it could not.
pub fn saturation(f: &SelfFigures) -> Option<String> {
    let lag_limit = LAG_FLOOR_MS.max(LAG_SHARE_OF_WARNING * f.lowest_warning_ms);
    if f.scheduling_lag_p99_ms > lag_limit {
        return Some(format!(
            "the simulator's own runtime woke its timers {:.1} ms late (p99; limit {lag_limit:.1} ms): its measurements include its own delays",
            f.scheduling_lag_p99_ms
        ));
    }
    match (f.send_lag_p99_ms, f.machine_busy_percent) {
        (Some(send), Some(busy)) if send > f.lowest_warning_ms && busy >= BUSY_MACHINE_PERCENT => {
            Some(format!(
                "the simulator fell {send:.1} ms behind its send schedule (p99) while the machine was {busy:.0}% busy: the bus and the simulator were short of CPU together"
            ))
        }
        _ => None,
    }
}

/// Marks what a saturated simulator cannot vouch for: every latency
/// verdict worse than healthy (a healthy one stays: the simulator's delays
/// only add to a latency), and every loss verdict whose class lost
/// messages but misrouted none (an agent too slow to read loses messages;
/// it cannot make the bus misroute them). Recomputes the overall verdict
/// from what stays conclusive.
pub fn mark_inconclusive(verdicts: &mut Verdicts) {
    for v in &mut verdicts.operations {
        v.inconclusive = v.status > Status::Healthy;
    }
    for v in &mut verdicts.loss {
        v.inconclusive = v.status > Status::Healthy && v.lost > 0 && v.misrouted == 0;
    }
    verdicts.recompute_overall();
}

/// How far the run's numbers can be trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityStatus {
    /// Nothing found that would make a figure doubtful.
    #[default]
    Trusted,
    /// The simulator could not keep its schedule: bad figures are marked
    /// inconclusive.
    Inconclusive,
    /// The bus's counts and the agents' disagree beyond what the run
    /// explains: no verdict on the bus.
    Failed,
}

/// One bus node's own counts beside the agents' (from its `/metrics` at the
/// start and the end of the run), and an audit of the subscriptions it
/// held for some of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWitness {
    /// The node, as its health samples name it (`host:port`).
    pub node: String,
    /// Text frames the node read (`bus_frames_in_total`, every op).
    pub bus_frames_in: u64,
    /// Text frames the agents wrote to it.
    pub agents_frames_sent: u64,
    /// Deliveries the node queued to its connections
    /// (`bus_deliveries_total`).
    pub bus_deliveries: u64,
    /// `message` frames the agents read from it.
    pub agents_messages_received: u64,
    /// Connections whose subscriptions the node listed and the agents'
    /// plan was compared with.
    pub audited: u64,
    /// Of those, connections whose subscriptions differ from the plan.
    pub audit_mismatches: u64,
    /// The first mismatch, described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_mismatch: Option<String>,
    /// The node was killed and restarted during the run (a fault): its
    /// counters began again, so they are not compared with the agents'.
    #[serde(default, skip_serializing_if = "is_false")]
    pub restarted: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What explains a gap between a node's counts and the agents'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowances {
    /// Some connection ended before the run did (a disconnect, an agent
    /// leaving, a slow consumer closed by the bus): frames in flight then
    /// are on one side only.
    pub connections_ended_early: bool,
    /// The drain ended with deliveries still arriving: the bus was behind,
    /// so frames the agents wrote may still wait unread in its sockets, and
    /// deliveries it made may not have reached them yet.
    pub drain_cut_short: bool,
}

/// The disagreements between the bus's counts and the agents' that the run
/// cannot explain, one line each (none: the witness agrees).
pub fn check_witness(nodes: &[NodeWitness], allow: Allowances) -> Vec<String> {
    let mut findings = Vec::new();
    for n in nodes {
        let node = &n.node;
        if n.restarted {
            // Its counts began again at the restart; only the audit stands.
        } else if n.bus_frames_in > n.agents_frames_sent {
            findings.push(format!(
                "{node}: the bus read {} frames but the agents wrote only {}: the simulator does not count what it sends",
                n.bus_frames_in, n.agents_frames_sent
            ));
        } else if !allow.connections_ended_early
            && !allow.drain_cut_short
            && n.bus_frames_in != n.agents_frames_sent
        {
            findings.push(format!(
                "{node}: the agents wrote {} frames, the bus read {}, no connection ended early and the drain went quiet",
                n.agents_frames_sent, n.bus_frames_in
            ));
        }
        if n.restarted {
        } else if n.agents_messages_received > n.bus_deliveries {
            findings.push(format!(
                "{node}: the agents read {} messages but the bus delivered only {}: the simulator counts messages that were never sent",
                n.agents_messages_received, n.bus_deliveries
            ));
        } else if !allow.connections_ended_early
            && !allow.drain_cut_short
            && n.agents_messages_received != n.bus_deliveries
        {
            findings.push(format!(
                "{node}: the bus delivered {} messages, the agents read {}, no connection ended early and the drain went quiet",
                n.bus_deliveries, n.agents_messages_received
            ));
        }
        if n.audit_mismatches > 0 {
            findings.push(format!(
                "{node}: {} of {} audited connections hold other subscriptions on the bus than the ledger expects of them (first: {}): the ledger's expectations are wrong",
                n.audit_mismatches,
                n.audited,
                n.first_mismatch.as_deref().unwrap_or("?")
            ));
        }
    }
    findings
}

/// Whether a run's numbers can be trusted, why not, and what the bus's own
/// counts said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Integrity {
    /// The outcome.
    pub status: IntegrityStatus,
    /// When the run was interrupted (SIGINT, SIGTERM), seconds from its
    /// start; absent when it ran to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_at_s: Option<f64>,
    /// Why the simulator could not keep its schedule, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation: Option<String>,
    /// Disagreements between the bus's counts and the agents'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// Per node, the bus's counts beside the agents' (embedded and spawned
    /// nodes; absent for external ones and when `/metrics` could not be
    /// read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witness: Vec<NodeWitness>,
    /// Why there is no witness, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_missing: Option<String>,
}

impl Integrity {
    /// Settles the status from the findings and whether some verdict is
    /// inconclusive. A saturated simulator whose verdicts are all healthy
    /// leaves the run trusted: its delays only add to latency, so healthy
    /// figures stand (the saturation is still reported).
    pub fn settle(&mut self, verdicts: &Verdicts) {
        self.status = if !self.findings.is_empty() {
            IntegrityStatus::Failed
        } else if verdicts.is_inconclusive() {
            IntegrityStatus::Inconclusive
        } else {
            IntegrityStatus::Trusted
        };
    }

    /// What to tell the user to do, when the simulator was the bottleneck.
    pub fn advice(&self) -> Option<&'static str> {
        self.saturation.as_ref().map(|_| {
            "run fewer agents per simulator process (--shard i/n over several processes, or --scale-agents), move the simulator to another machine, or lower the load (--scale-rate)"
        })
    }
}

/// The process exit code of a run: 1 when it failed its integrity check,
/// 13 when it was interrupted, otherwise the verdicts' (0, 10, 11, or 12
/// when inconclusive).
pub fn exit_code(verdicts: &Verdicts, integrity: &Integrity) -> i32 {
    if integrity.status == IntegrityStatus::Failed {
        return exit::INTEGRITY;
    }
    if integrity.interrupted_at_s.is_some() {
        return exit::INTERRUPTED;
    }
    verdicts.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::OperationVerdict;

    fn figures(lag: f64, send: Option<f64>, busy: Option<f64>) -> SelfFigures {
        SelfFigures {
            scheduling_lag_p99_ms: lag,
            send_lag_p99_ms: send,
            machine_busy_percent: busy,
            lowest_warning_ms: 50.0,
        }
    }

    #[test]
    fn a_late_runtime_or_a_starved_machine_is_saturation() {
        assert_eq!(saturation(&figures(1.2, Some(3.0), Some(99.0))), None);
        assert!(saturation(&figures(5.1, None, None)).is_some());
        assert_eq!(
            saturation(&figures(1.0, Some(80.0), Some(60.0))),
            None,
            "send lag with CPU to spare: the bus pushed back"
        );
        let starved = saturation(&figures(1.0, Some(80.0), Some(97.0))).unwrap();
        assert!(starved.contains("97% busy"), "{starved}");
        let strict = SelfFigures {
            lowest_warning_ms: 500.0,
            ..figures(20.0, None, None)
        };
        assert_eq!(saturation(&strict), None, "10% of a 500 ms warning");
    }

    fn verdict(status: Status) -> OperationVerdict {
        OperationVerdict {
            operation: crate::metrics::Operation::PublishDelivery,
            samples: 1000,
            percentile: 99.0,
            value_ms: 300.0,
            warning_ms: 50.0,
            critical_ms: 200.0,
            status,
            few_samples: false,
            inconclusive: false,
        }
    }

    #[test]
    fn only_bad_figures_become_inconclusive_and_the_exit_code_says_so() {
        let mut v = Verdicts {
            operations: vec![verdict(Status::Critical), verdict(Status::Healthy)],
            ..Verdicts::default()
        };
        v.recompute_overall();
        assert_eq!(v.exit_code(), 11);
        mark_inconclusive(&mut v);
        assert!(v.operations[0].inconclusive && !v.operations[1].inconclusive);
        assert_eq!(v.overall, Status::Healthy, "nothing conclusive is bad");
        assert_eq!(v.exit_code(), exit::INCONCLUSIVE);
        let mut integrity = Integrity {
            saturation: Some("late".into()),
            ..Integrity::default()
        };
        integrity.settle(&Verdicts::default());
        assert_eq!(
            integrity.status,
            IntegrityStatus::Trusted,
            "nothing bad to doubt"
        );
        integrity.settle(&v);
        assert_eq!(integrity.status, IntegrityStatus::Inconclusive);
        assert_eq!(exit_code(&v, &integrity), 12);
        integrity.interrupted_at_s = Some(3.0);
        assert_eq!(exit_code(&v, &integrity), 13);
        integrity.findings.push("disagree".into());
        integrity.settle(&v);
        assert_eq!(exit_code(&v, &integrity), 1);
    }

    fn witness(sent: u64, read: u64, delivered: u64, received: u64) -> NodeWitness {
        NodeWitness {
            node: "127.0.0.1:1".into(),
            bus_frames_in: read,
            agents_frames_sent: sent,
            bus_deliveries: delivered,
            agents_messages_received: received,
            ..NodeWitness::default()
        }
    }

    #[test]
    fn the_witness_tolerates_only_what_the_run_explains() {
        let strict = Allowances {
            connections_ended_early: false,
            drain_cut_short: false,
        };
        let loose = Allowances {
            connections_ended_early: true,
            drain_cut_short: true,
        };
        assert!(check_witness(&[witness(10, 10, 50, 50)], strict).is_empty());
        assert_eq!(check_witness(&[witness(10, 9, 50, 49)], strict).len(), 2);
        assert!(check_witness(&[witness(10, 9, 50, 49)], loose).is_empty());
        // A bus so far behind that the drain could not wait it out (frames
        // still unread in its sockets) is the bus's fact, not the
        // instrument's fault.
        let behind = Allowances {
            connections_ended_early: false,
            drain_cut_short: true,
        };
        assert!(check_witness(&[witness(10, 4, 50, 20)], behind).is_empty());
        let impossible = check_witness(&[witness(10, 11, 50, 51)], loose);
        assert_eq!(impossible.len(), 2, "{impossible:?}");
        let mut audited = witness(10, 10, 5, 5);
        audited.audited = 20;
        audited.audit_mismatches = 3;
        audited.first_mismatch = Some("subs-1: bus {a} plan {b}".into());
        let found = check_witness(&[audited], strict);
        assert!(found[0].contains("3 of 20"), "{found:?}");
        // A node killed and restarted began its counts again (found: every
        // node_kill run failed its check): they are not compared, its
        // audit still is.
        let mut restarted = witness(10, 4, 50, 70);
        restarted.restarted = true;
        assert!(check_witness(std::slice::from_ref(&restarted), loose).is_empty());
        restarted.audited = 5;
        restarted.audit_mismatches = 1;
        assert_eq!(check_witness(&[restarted], loose).len(), 1);
    }
}
