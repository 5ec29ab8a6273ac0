//! Reconciles what was sent with what arrived: for every subscription
//! window, the messages sent on its channels inside the window are
//! expected; what arrived is counted by the receivers. Also settles the
//! queue class from the bus's own counts. `sim run` and `sim merge` both
//! complete their metrics here, so a merged ledger is computed exactly as
//! an unsharded one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counts::{Ledger, MessageClass};
use super::evidence::{Evidence, SendTimes};
use super::tracking::{ChannelKey, Window};

/// Expected and delivered counts per class, and apart from them those of
/// agents that faults made slow consumers (their losses follow the bus's
/// slow-consumer policy rather than being the bus's fault).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// `(expected, delivered)` per class, slow consumers left out.
    pub classes: BTreeMap<MessageClass, (u64, u64)>,
    /// `(expected, delivered)` of the windows of slow consumers.
    pub slow: (u64, u64),
}

/// Which deliveries count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// All of them: the evidence holds every sender's sends (one process
    /// ran every agent, or `sim merge` joined every shard's evidence).
    All,
    /// Only those from senders of this process: a shard on its own knows
    /// only its own sends, so it can only owe, and count, those.
    Local,
}

fn class_of(window: &Window) -> MessageClass {
    if window.pattern {
        return MessageClass::Pattern;
    }
    match window.channels.first() {
        Some(ChannelKey::Topic { .. }) => MessageClass::Pubsub,
        _ => MessageClass::Broadcast,
    }
}

/// Counts, for every subscription window, the messages owed to it (sent
/// on its channels while it was open) and those delivered, per class.
pub fn reconcile(evidence: &Evidence, counting: Counting) -> Reconciled {
    let mut out = Reconciled::default();
    for window in &evidence.windows {
        let end = window.end_us.unwrap_or(u64::MAX);
        let sent_in = |sends: &BTreeMap<ChannelKey, SendTimes>| -> u64 {
            window
                .channels
                .iter()
                .filter_map(|c| sends.get(c))
                .map(|times| times.between(window.start_us, end))
                .sum()
        };
        let confirmed = sent_in(&evidence.sent);
        let delivered = match counting {
            Counting::All => window.delivered,
            Counting::Local => window.delivered_local,
        };
        // Sends of unknown outcome are owed where they arrived: as many as
        // the window's deliveries exceed its confirmed sends.
        let maybe = sent_in(&evidence.unconfirmed);
        let expected = confirmed + maybe.min(delivered.saturating_sub(confirmed));
        if expected == 0 && delivered == 0 {
            continue;
        }
        let entry = if window.slow {
            &mut out.slow
        } else {
            out.classes.entry(class_of(window)).or_default()
        };
        entry.0 += expected;
        entry.1 += delivered;
    }
    out
}

/// The bus's own counts of a scenario's queues at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReading {
    /// Jobs ready, being processed or delayed for a retry.
    pub still_queued: u64,
    /// Jobs in the dead-letter queues.
    pub dead: u64,
}

/// Completes the queue ledger from the bus's reading: enqueued = acked +
/// dead-lettered + still queued, or the difference is lost. Returns the
/// note that says whether it reconciled.
pub fn settle_queue(ledger: &mut Ledger, reading: QueueReading) -> String {
    ledger.queue.still_queued = reading.still_queued;
    ledger.queue.dead_lettered = ledger.queue.dead_lettered.max(reading.dead);
    let q = ledger.queue;
    let accounted = q.acked + q.dead_lettered + q.still_queued;
    // Unconfirmed enqueues (error or no reply) may have landed: those that
    // did are expected too, up to their number.
    let landed = accounted
        .saturating_sub(q.enqueued)
        .min(q.enqueue_unconfirmed);
    let class = ledger.class_mut(MessageClass::Queue);
    class.expected = q.enqueued + landed;
    class.delivered = accounted;
    let reconciled = class.expected == class.delivered;
    format!(
        "queue ledger: {} enqueued{} = {} acked + {} dead-lettered + {} still queued{}",
        q.enqueued,
        if landed > 0 {
            format!(
                " (+ {landed} of {} unconfirmed enqueues that landed)",
                q.enqueue_unconfirmed
            )
        } else {
            String::new()
        },
        q.acked,
        q.dead_lettered,
        q.still_queued,
        if reconciled {
            " (reconciled)"
        } else {
            " (NOT reconciled)"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AgentOutcome;

    fn topic(t: u32) -> ChannelKey {
        ChannelKey::Topic {
            workspace: 0,
            topic: t,
        }
    }

    #[test]
    fn only_messages_inside_a_window_are_expected() {
        let publisher = AgentOutcome {
            sent: vec![
                (topic(1), 10),
                (topic(1), 20),
                (topic(1), 30),
                (topic(2), 25),
            ],
            unconfirmed: Vec::new(),
            windows: Vec::new(),
        };
        let mut late = Window::new(vec![topic(1)], false, 15);
        late.end_us = Some(30);
        late.delivered = 1;
        let mut pattern = Window::new(vec![topic(1), topic(2)], true, 0);
        pattern.delivered = 4;
        let subscriber = AgentOutcome {
            sent: Vec::new(),
            unconfirmed: Vec::new(),
            windows: vec![late, pattern],
        };
        let r = reconcile(
            &Evidence::gather(vec![publisher, subscriber], Vec::new()),
            Counting::All,
        );
        assert_eq!(
            r.classes[&MessageClass::Pubsub],
            (2, 1),
            "20 and 30 expected, one arrived: one lost"
        );
        assert_eq!(r.classes[&MessageClass::Pattern], (4, 4));
    }

    #[test]
    fn unconfirmed_sends_are_owed_only_where_they_arrived() {
        // Two confirmed sends and two whose replies were lost; one of those
        // landed. Delivered never exceeds expected, and nothing is lost.
        let publisher = AgentOutcome {
            sent: vec![(topic(1), 10), (topic(1), 20)],
            unconfirmed: vec![(topic(1), 30), (topic(1), 40)],
            windows: Vec::new(),
        };
        let mut w = Window::new(vec![topic(1)], false, 0);
        w.delivered = 3;
        let mut short = Window::new(vec![topic(1)], false, 0);
        short.delivered = 1;
        let subscriber = AgentOutcome {
            sent: Vec::new(),
            unconfirmed: Vec::new(),
            windows: vec![w, short],
        };
        let r = reconcile(
            &Evidence::gather(vec![publisher, subscriber], Vec::new()),
            Counting::All,
        );
        assert_eq!(
            r.classes[&MessageClass::Pubsub],
            (2 + 3, 3 + 1),
            "3 of 2 confirmed + 1 unconfirmed; the second window lost a confirmed one"
        );
    }

    #[test]
    fn a_shard_alone_owes_only_its_own_senders_messages() {
        let channel = ChannelKey::Global;
        // One broadcast from this shard (at 10) and one from another (at
        // 20, not in this shard's evidence); both arrived.
        let mut window = Window::new(vec![channel], false, 0);
        window.count_delivery(true);
        window.count_delivery(false);
        let here = Evidence::gather(
            vec![AgentOutcome {
                sent: vec![(channel, 10)],
                unconfirmed: Vec::new(),
                windows: vec![window],
            }],
            Vec::new(),
        );
        let local = reconcile(&here, Counting::Local);
        assert_eq!(local.classes[&MessageClass::Broadcast], (1, 1));
        let other = Evidence::gather(
            vec![AgentOutcome {
                sent: vec![(channel, 20)],
                unconfirmed: Vec::new(),
                windows: Vec::new(),
            }],
            Vec::new(),
        );
        let mut all = here.clone();
        all.merge(&other);
        assert_eq!(
            reconcile(&all, Counting::All).classes[&MessageClass::Broadcast],
            (2, 2)
        );
        assert_eq!(
            reconcile(&here, Counting::All).classes[&MessageClass::Broadcast],
            (1, 2),
            "a shard's evidence alone cannot reconcile every delivery"
        );
    }

    #[test]
    fn queues_settle_from_the_bus_reading() {
        let mut ledger = Ledger::default();
        ledger.queue.enqueued = 10;
        ledger.queue.acked = 7;
        ledger.queue.dead_lettered = 1;
        let note = settle_queue(
            &mut ledger,
            QueueReading {
                still_queued: 1,
                dead: 2,
            },
        );
        let q = ledger.class(MessageClass::Queue);
        assert_eq!((q.expected, q.delivered), (10, 10), "{note}");
        assert!(note.ends_with("(reconciled)"), "{note}");
    }
}
