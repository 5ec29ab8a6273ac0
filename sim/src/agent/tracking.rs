//! What a receiving agent keeps to account for messages: per-stream order
//! and duplicate detection, and the windows during which it was subscribed
//! to a channel (only messages sent inside a window are expected).

use std::collections::HashMap;

/// A channel of the ledger: a topic of a workspace, a workspace broadcast,
/// or the global broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKey {
    Topic { workspace: u32, topic: u32 },
    Workspace(u32),
    Global,
}

/// Sequence tracking of one (sender, channel) stream: the highest sequence
/// seen and a bitmap of the 128 below it, enough to tell a duplicate from a
/// late message.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamTracker {
    highest: Option<u64>,
    below: u128,
}

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    InOrder,
    /// Older than one already seen (a gap filled late).
    OutOfOrder,
    Duplicate,
}

impl StreamTracker {
    pub fn observe(&mut self, seq: u64) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return Arrival::InOrder;
        };
        if seq > highest {
            let shift = seq - highest;
            self.below = if shift >= 128 { 0 } else { self.below << shift };
            if shift <= 128 {
                self.below |= 1u128 << (shift - 1);
            }
            self.highest = Some(seq);
            return Arrival::InOrder;
        }
        if seq == highest {
            return Arrival::Duplicate;
        }
        let distance = highest - seq;
        if distance > 128 {
            return Arrival::OutOfOrder;
        }
        let bit = 1u128 << (distance - 1);
        if self.below & bit != 0 {
            Arrival::Duplicate
        } else {
            self.below |= bit;
            Arrival::OutOfOrder
        }
    }
}

/// A stretch of time an agent was subscribed to some channels, and how many
/// distinct messages sent inside it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The channels it covers (several for a pattern).
    pub channels: Vec<ChannelKey>,
    /// Whether it is a pattern subscription (its own ledger class).
    pub pattern: bool,
    /// Messages sent strictly after this instant (µs, run clock) are
    /// expected...
    pub start_us: u64,
    /// ...up to and including this one; `None` while open.
    pub end_us: Option<u64>,
    /// Distinct expected messages that arrived.
    pub delivered: u64,
    /// The agent was made a slow consumer by a fault: its losses follow the
    /// bus's slow-consumer policy and are accounted apart.
    pub slow: bool,
}

impl Window {
    pub fn new(channels: Vec<ChannelKey>, pattern: bool, start_us: u64) -> Self {
        Self {
            channels,
            pattern,
            start_us,
            end_us: None,
            delivered: 0,
            slow: false,
        }
    }

    /// Whether a message sent at `sent_us` is one this window expects.
    pub fn expects(&self, sent_us: u64) -> bool {
        sent_us > self.start_us && self.end_us.is_none_or(|end| sent_us <= end)
    }
}

/// Per-agent stream trackers, keyed by (sender, channel).
#[derive(Debug, Default)]
pub struct Streams {
    trackers: HashMap<(u32, ChannelKey), StreamTracker>,
}

impl Streams {
    pub fn observe(&mut self, sender: u32, channel: ChannelKey, seq: u64) -> Arrival {
        self.trackers
            .entry((sender, channel))
            .or_default()
            .observe(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_gaps_and_duplicates() {
        let mut t = StreamTracker::default();
        assert_eq!(t.observe(1), Arrival::InOrder);
        assert_eq!(t.observe(2), Arrival::InOrder);
        assert_eq!(t.observe(5), Arrival::InOrder, "a gap is not disorder yet");
        assert_eq!(t.observe(4), Arrival::OutOfOrder);
        assert_eq!(t.observe(4), Arrival::Duplicate);
        assert_eq!(t.observe(5), Arrival::Duplicate);
        assert_eq!(t.observe(2), Arrival::Duplicate);
        assert_eq!(t.observe(3), Arrival::OutOfOrder);
        assert_eq!(t.observe(500), Arrival::InOrder);
        assert_eq!(
            t.observe(300),
            Arrival::OutOfOrder,
            "beyond the bitmap: late, not dup"
        );
        assert_eq!(t.observe(499), Arrival::OutOfOrder);
        assert_eq!(t.observe(499), Arrival::Duplicate);
    }

    #[test]
    fn windows_are_half_open_at_the_start() {
        let mut w = Window::new(vec![ChannelKey::Global], false, 100);
        assert!(!w.expects(100));
        assert!(w.expects(101));
        w.end_us = Some(200);
        assert!(w.expects(200));
        assert!(!w.expects(201));
    }
}
