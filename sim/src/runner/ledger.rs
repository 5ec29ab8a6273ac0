//! Reconciles what was sent with what arrived: for every subscription
//! window, the messages sent on its channels inside the window are
//! expected; what arrived is counted by the receivers.

use std::collections::{BTreeMap, HashMap};

use crate::agent::AgentOutcome;
use crate::agent::tracking::{ChannelKey, Window};
use crate::metrics::MessageClass;

/// Expected and delivered counts per class, and apart from them those of
/// agents that faults made slow consumers (their losses follow the bus's
/// slow-consumer policy rather than being the bus's fault).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub classes: BTreeMap<MessageClass, (u64, u64)>,
    pub slow: (u64, u64),
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

/// Messages in `sorted` sent strictly after `start` and up to `end`.
fn sent_between(sorted: &[u64], start: u64, end: u64) -> u64 {
    let from = sorted.partition_point(|t| *t <= start);
    let to = sorted.partition_point(|t| *t <= end);
    to.saturating_sub(from) as u64
}

pub fn reconcile(outcomes: &[AgentOutcome]) -> Reconciled {
    let mut sent: HashMap<ChannelKey, Vec<u64>> = HashMap::new();
    for outcome in outcomes {
        for (channel, at) in &outcome.sent {
            sent.entry(*channel).or_default().push(*at);
        }
    }
    for times in sent.values_mut() {
        times.sort_unstable();
    }
    let mut out = Reconciled::default();
    for window in outcomes.iter().flat_map(|o| &o.windows) {
        let end = window.end_us.unwrap_or(u64::MAX);
        let expected: u64 = window
            .channels
            .iter()
            .filter_map(|c| sent.get(c))
            .map(|times| sent_between(times, window.start_us, end))
            .sum();
        if expected == 0 && window.delivered == 0 {
            continue;
        }
        let entry = if window.slow {
            &mut out.slow
        } else {
            out.classes.entry(class_of(window)).or_default()
        };
        entry.0 += expected;
        entry.1 += window.delivered;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            windows: Vec::new(),
        };
        let mut late = Window::new(vec![topic(1)], false, 15);
        late.end_us = Some(30);
        late.delivered = 1;
        let mut pattern = Window::new(vec![topic(1), topic(2)], true, 0);
        pattern.delivered = 4;
        let subscriber = AgentOutcome {
            sent: Vec::new(),
            windows: vec![late, pattern],
        };
        let r = reconcile(&[publisher, subscriber]);
        assert_eq!(
            r.classes[&MessageClass::Pubsub],
            (2, 1),
            "20 and 30 expected, one arrived: one lost"
        );
        assert_eq!(r.classes[&MessageClass::Pattern], (4, 4));
    }
}
