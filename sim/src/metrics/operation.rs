//! The names of what the simulator measures: operations (latencies) and message classes (counts).

use std::fmt;
use std::str::FromStr;

use crate::ledger::MessageClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A timed operation: each has its own HDR histogram, its own line in the
/// reports and (except [`Operation::SendLag`]) its own verdict.
///
/// The snake_case names are part of the scenario format
/// (`[thresholds.operations.<name>]`) and of the report schema.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Opening a WebSocket to the bus until its first reply arrives.
    Connect,
    /// A publish until its delivery, once per recipient (topic and pattern
    /// subscriptions).
    PublishDelivery,
    /// A direct request until its response arrives back at the sender.
    DirectRtt,
    /// A broadcast until its first recipient got it.
    BroadcastFirst,
    /// A broadcast until its last expected recipient got it.
    BroadcastLast,
    /// An enqueue until a worker claimed the job.
    QueueWait,
    /// A claim until the worker's ack was confirmed.
    QueueProcess,
    /// The planned send instant until the actual send. This measures the
    /// simulator itself (a busy simulator sends late), never the bus, so it is
    /// reported but not judged: a late simulator must not blame the bus, and
    /// since latencies run from the planned instant the lag still shows up in
    /// the bus operations (no coordinated omission).
    SendLag,
    /// REST (goose, `rest_client` groups): `GET /health`.
    HttpHealth,
    /// REST: `POST /publish`.
    HttpPublish,
    /// REST: `POST /queues/{w}/{q}/enqueue`.
    HttpEnqueue,
    /// REST: `POST .../claim`, then `POST .../ack` of the claimed job (one
    /// sample for both calls).
    HttpClaimAck,
    /// A publish until its delivery to an agent that a fault made a slow
    /// consumer: reported beside `publish_delivery` (so the other agents'
    /// figures stay clean), never judged.
    SlowDelivery,
}

impl Operation {
    /// Every operation, in report order.
    pub const ALL: [Operation; 13] = [
        Operation::Connect,
        Operation::PublishDelivery,
        Operation::DirectRtt,
        Operation::BroadcastFirst,
        Operation::BroadcastLast,
        Operation::QueueWait,
        Operation::QueueProcess,
        Operation::SendLag,
        Operation::HttpHealth,
        Operation::HttpPublish,
        Operation::HttpEnqueue,
        Operation::HttpClaimAck,
        Operation::SlowDelivery,
    ];

    /// The snake_case name used in scenario files, reports and file names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::PublishDelivery => "publish_delivery",
            Operation::DirectRtt => "direct_rtt",
            Operation::BroadcastFirst => "broadcast_first",
            Operation::BroadcastLast => "broadcast_last",
            Operation::QueueWait => "queue_wait",
            Operation::QueueProcess => "queue_process",
            Operation::SendLag => "send_lag",
            Operation::HttpHealth => "http_health",
            Operation::HttpPublish => "http_publish",
            Operation::HttpEnqueue => "http_enqueue",
            Operation::HttpClaimAck => "http_claim_ack",
            Operation::SlowDelivery => "slow_delivery",
        }
    }

    /// Whether verdicts judge this operation. Only [`Operation::SendLag`] is
    /// exempt: it measures the simulator, not the bus.
    pub const fn is_judged(self) -> bool {
        !matches!(self, Operation::SendLag | Operation::SlowDelivery)
    }

    /// The operations the per-second series times, each in its own
    /// per-second histogram: those that end when a message reached its
    /// recipient and are recorded at that moment. `broadcast_first` and
    /// `broadcast_last` are left out: they are recorded once per broadcast
    /// when the run ends (the agents' evidence is only complete then), so
    /// every one of them would land in the run's last second and read as a
    /// jump of the latency during the drain.
    pub const PER_SECOND: [Operation; 3] = [
        Operation::PublishDelivery,
        Operation::DirectRtt,
        Operation::QueueWait,
    ];

    /// Where this operation sits in [`Operation::PER_SECOND`], if it is one
    /// of them.
    pub const fn per_second_index(self) -> Option<usize> {
        match self {
            Operation::PublishDelivery => Some(0),
            Operation::DirectRtt => Some(1),
            Operation::QueueWait => Some(2),
            _ => None,
        }
    }

    /// Whether samples of this operation feed the per-second latency of the
    /// time series (see [`Operation::PER_SECOND`]).
    pub const fn is_delivery(self) -> bool {
        self.per_second_index().is_some()
    }

    /// Position in [`Operation::ALL`], for dense per-operation arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not one of [`Operation::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

impl MessageClass {
    /// The operation whose threshold overrides (notably `max_loss`) apply to
    /// this class's loss verdict.
    pub const fn operation(self) -> Operation {
        match self {
            MessageClass::Pubsub | MessageClass::Pattern => Operation::PublishDelivery,
            MessageClass::Direct => Operation::DirectRtt,
            MessageClass::Broadcast => Operation::BroadcastLast,
            MessageClass::Queue => Operation::QueueWait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for (i, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.as_str()));
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), op);
        }
        assert!("nope".parse::<Operation>().is_err());
        for class in MessageClass::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
    }

    #[test]
    fn only_the_simulators_own_and_slow_consumer_figures_are_not_judged() {
        let unjudged: Vec<_> = Operation::ALL
            .into_iter()
            .filter(|op| !op.is_judged())
            .collect();
        assert_eq!(unjudged, vec![Operation::SendLag, Operation::SlowDelivery]);
    }

    #[test]
    fn per_second_operations_know_their_place() {
        for (i, op) in Operation::PER_SECOND.into_iter().enumerate() {
            assert_eq!(op.per_second_index(), Some(i));
        }
        let timed = Operation::ALL.iter().filter(|op| op.is_delivery()).count();
        assert_eq!(timed, Operation::PER_SECOND.len());
        assert!(!Operation::BroadcastLast.is_delivery());
    }
}
