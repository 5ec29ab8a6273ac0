//! The message ledger: what was expected, delivered, lost, duplicated or misordered, plus queue and connection counters.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kind of message with its own delivery contract, so its own ledger line
/// and loss verdict.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    /// Topic publish to exact-name subscribers (at most once).
    Pubsub,
    /// Topic publish reaching glob-pattern subscribers (at most once).
    Pattern,
    /// Direct request/response between two agents.
    Direct,
    /// Workspace or global broadcast.
    Broadcast,
    /// Priority queue jobs (at least once).
    Queue,
}

impl MessageClass {
    /// Every class, in report order.
    pub const ALL: [MessageClass; 5] = [
        MessageClass::Pubsub,
        MessageClass::Pattern,
        MessageClass::Direct,
        MessageClass::Broadcast,
        MessageClass::Queue,
    ];

    /// The snake_case name used in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageClass::Pubsub => "pubsub",
            MessageClass::Pattern => "pattern",
            MessageClass::Direct => "direct",
            MessageClass::Broadcast => "broadcast",
            MessageClass::Queue => "queue",
        }
    }
}

impl fmt::Display for MessageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Delivery bookkeeping for one message class.
///
/// `delivered` counts distinct deliveries; repeats go to `duplicated`, so
/// `expected - delivered` is what never arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLedger {
    /// Deliveries the bus owed: for pub/sub, one per subscriber connected
    /// at publish time; for direct, queue and broadcast, one per intended
    /// recipient.
    pub expected: u64,
    /// Distinct messages that arrived.
    pub delivered: u64,
    /// Losses the runner recorded explicitly (e.g. a request that timed
    /// out). A floor for [`ClassLedger::lost`], never added on top of the
    /// derived figure, so one loss is never counted twice.
    pub recorded_lost: u64,
    /// Deliveries of a message the recipient had already seen.
    pub duplicated: u64,
    /// Deliveries older than one already seen from the same sender and
    /// topic (pub/sub promises publish order per publisher and topic).
    pub out_of_order: u64,
    /// Deliveries to an agent that should not have received the message
    /// (wrong topic, wrong workspace).
    pub misrouted: u64,
    /// Topics resumed from an offset after a reconnect (topics with
    /// history; `resume = true` groups).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed: u64,
    /// Of those, recovered: every message after the offset was replayed,
    /// so the outage is owed (a loss in it would show as lost).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recovered: u64,
    /// Of those, not recovered (the bus said why): the outage is not owed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_recovered: u64,
    /// Messages the bus replayed in recovered resumes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replayed: u64,
    /// Messages the bus said were missed for good in resumes that did not
    /// recover (when it could tell).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ClassLedger {
    /// Messages that never arrived: `expected - delivered` (never below
    /// zero), or the explicitly recorded losses when those are more.
    pub fn lost(&self) -> u64 {
        self.expected
            .saturating_sub(self.delivered)
            .max(self.recorded_lost)
    }

    /// `lost / expected`; 0 when nothing was expected and nothing lost, 1
    /// when losses were recorded without any expectation.
    pub fn loss_ratio(&self) -> f64 {
        let lost = self.lost();
        match (self.expected, lost) {
            (_, 0) => 0.0,
            (0, _) => 1.0,
            (expected, lost) => lost as f64 / expected as f64,
        }
    }

    /// Whether nothing at all was counted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl AddAssign<&ClassLedger> for ClassLedger {
    fn add_assign(&mut self, other: &ClassLedger) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.recorded_lost += other.recorded_lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.misrouted += other.misrouted;
        self.resumed += other.resumed;
        self.recovered += other.recovered;
        self.not_recovered += other.not_recovered;
        self.replayed += other.replayed;
        self.missed += other.missed;
    }
}

/// Queue semantics as the agents saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLedger {
    /// Jobs producers enqueued (confirmed by the bus).
    pub enqueued: u64,
    /// Enqueues whose outcome is unknown (an error reply, or no reply
    /// before the connection broke): each may or may not be in the queue.
    #[serde(default)]
    pub enqueue_unconfirmed: u64,
    /// Claims workers received (a redelivered job is claimed again).
    pub claimed: u64,
    /// Jobs acked.
    pub acked: u64,
    /// Jobs rejected.
    pub rejected: u64,
    /// Rejected jobs that asked to be requeued.
    pub requeued: u64,
    /// Jobs the bus moved to the dead-letter queue.
    pub dead_lettered: u64,
    /// Claims of a job that had been claimed before.
    pub redelivered: u64,
    /// Claims of a lower-priority job while a higher-priority one was known
    /// to be waiting in the same queue.
    pub priority_inversions: u64,
    /// Jobs claimed and dropped without an answer by a simulated crash.
    pub crashed: u64,
    /// Jobs left in the queues at the end (from the bus's queue stats).
    pub still_queued: u64,
}

impl AddAssign<&QueueLedger> for QueueLedger {
    fn add_assign(&mut self, other: &QueueLedger) {
        self.enqueued += other.enqueued;
        self.enqueue_unconfirmed += other.enqueue_unconfirmed;
        self.claimed += other.claimed;
        self.acked += other.acked;
        self.rejected += other.rejected;
        self.requeued += other.requeued;
        self.dead_lettered += other.dead_lettered;
        self.redelivered += other.redelivered;
        self.priority_inversions += other.priority_inversions;
        self.crashed += other.crashed;
        self.still_queued += other.still_queued;
    }
}

/// Connection attempts and their outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionLedger {
    /// Agents the scenario asked to connect (at the peak of its schedule).
    pub target_connections: u64,
    /// Agents that connected successfully at least once.
    pub connected: u64,
    /// Attempts that failed.
    pub connect_failures: u64,
    /// Attempts that were retries of a failed or dropped connection.
    pub connect_retries: u64,
    /// Connections that ended without the agent asking for it.
    pub disconnects: u64,
}

impl AddAssign<&ConnectionLedger> for ConnectionLedger {
    fn add_assign(&mut self, other: &ConnectionLedger) {
        self.target_connections += other.target_connections;
        self.connected += other.connected;
        self.connect_failures += other.connect_failures;
        self.connect_retries += other.connect_retries;
        self.disconnects += other.disconnects;
    }
}

/// Everything counted about messages and connections in a run. Recorders
/// keep one each; merging adds them up field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Per message class; a class nobody counted is absent.
    pub classes: BTreeMap<MessageClass, ClassLedger>,
    /// Queue semantics.
    pub queue: QueueLedger,
    /// Connection counters.
    pub connections: ConnectionLedger,
    /// What adversarial agents tried and what the bus let through.
    #[serde(default, skip_serializing_if = "SecurityLedger::is_empty")]
    pub security: SecurityLedger,
}

/// Attempts of adversarial agents to reach what is not theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityLedger {
    /// Requests naming another workspace or another agent's inbox.
    pub attempts: u64,
    /// Of those, refused with `cross_workspace` or `forbidden`.
    pub denied: u64,
    /// Of those, accepted: a hole in the bus's isolation.
    pub breaches: u64,
    /// Connections tried with forged, expired or `alg: none` tokens.
    pub token_attempts: u64,
    /// Of those, refused with HTTP 401.
    pub token_denied: u64,
    /// Subscription floods: requests for far more fresh topics or
    /// patterns than any agent needs, repeated until the bus says no.
    #[serde(default)]
    pub floods: u64,
    /// Of those, refused with `limit_exceeded` (the bus's budgets at work;
    /// the ones before the first refusal were accepted).
    #[serde(default)]
    pub floods_refused: u64,
}

impl SecurityLedger {
    /// Whether nothing was attempted (every count is zero).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Attempts that were neither refused nor counted as breaches (other
    /// errors, no reply) are not holes; breaches and accepted tokens are.
    pub fn holes(&self) -> u64 {
        self.breaches + self.token_attempts.saturating_sub(self.token_denied)
    }
}

impl AddAssign<&SecurityLedger> for SecurityLedger {
    fn add_assign(&mut self, other: &SecurityLedger) {
        self.attempts += other.attempts;
        self.denied += other.denied;
        self.breaches += other.breaches;
        self.token_attempts += other.token_attempts;
        self.token_denied += other.token_denied;
        self.floods += other.floods;
        self.floods_refused += other.floods_refused;
    }
}

impl Ledger {
    /// The counts of `class` (zeros when nothing was counted).
    pub fn class(&self, class: MessageClass) -> ClassLedger {
        self.classes.get(&class).copied().unwrap_or_default()
    }

    /// The counts of `class`, to update.
    pub fn class_mut(&mut self, class: MessageClass) -> &mut ClassLedger {
        self.classes.entry(class).or_default()
    }

    /// Adds `other` into this ledger.
    pub fn merge(&mut self, other: &Ledger) {
        for (class, counts) in &other.classes {
            *self.class_mut(*class) += counts;
        }
        self.queue += &other.queue;
        self.connections += &other.connections;
        self.security += &other.security;
    }
}

impl AddAssign<&Ledger> for Ledger {
    fn add_assign(&mut self, other: &Ledger) {
        self.merge(other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_is_derived_and_never_negative() {
        let mut c = ClassLedger {
            expected: 10,
            delivered: 7,
            ..Default::default()
        };
        assert_eq!(c.lost(), 3);
        assert!((c.loss_ratio() - 0.3).abs() < 1e-12);
        c.delivered = 12;
        assert_eq!(c.lost(), 0);
        assert_eq!(c.loss_ratio(), 0.0);
    }

    #[test]
    fn recorded_losses_are_a_floor_not_an_addition() {
        let c = ClassLedger {
            expected: 10,
            delivered: 8,
            recorded_lost: 1,
            ..Default::default()
        };
        assert_eq!(c.lost(), 2);
        let c = ClassLedger {
            recorded_lost: 4,
            ..c
        };
        assert_eq!(c.lost(), 4);
        let nothing_expected = ClassLedger {
            recorded_lost: 1,
            ..Default::default()
        };
        assert_eq!(nothing_expected.loss_ratio(), 1.0);
    }

    #[test]
    fn ledgers_merge_field_by_field() {
        let mut a = Ledger::default();
        a.class_mut(MessageClass::Pubsub).expected = 5;
        a.class_mut(MessageClass::Pubsub).delivered = 4;
        a.queue.acked = 2;
        a.connections.connected = 3;
        let mut b = Ledger::default();
        b.class_mut(MessageClass::Pubsub).expected = 5;
        b.class_mut(MessageClass::Pubsub).delivered = 5;
        b.class_mut(MessageClass::Queue).duplicated = 1;
        b.queue.acked = 1;
        b.connections.connect_failures = 1;
        a += &b;
        let pubsub = a.class(MessageClass::Pubsub);
        assert_eq!(
            (pubsub.expected, pubsub.delivered, pubsub.lost()),
            (10, 9, 1)
        );
        assert_eq!(a.class(MessageClass::Queue).duplicated, 1);
        assert_eq!(a.class(MessageClass::Direct), ClassLedger::default());
        assert_eq!(a.queue.acked, 3);
        assert_eq!(a.connections.connected, 3);
        assert_eq!(a.connections.connect_failures, 1);
    }

    #[test]
    fn ledger_round_trips_through_json() {
        let mut a = Ledger::default();
        a.class_mut(MessageClass::Broadcast).misrouted = 2;
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"broadcast\""), "{json}");
        assert_eq!(serde_json::from_str::<Ledger>(&json).unwrap(), a);
    }
}
