//! What a receiving agent keeps to account for messages: per-stream order
//! and duplicate detection, and the windows during which it was subscribed
//! to a channel (only messages sent inside a window are expected).
//!
//! Channels and windows serialize compactly: a sharded run writes every
//! window of its agents for `sim merge` to reconcile across shards.

use std::fmt;
use std::str::FromStr;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

/// A channel of the ledger: a topic of a workspace, a workspace broadcast,
/// or the global broadcast. Written as `t<workspace>.<topic>`,
/// `w<workspace>` and `g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ChannelKey {
    /// A topic of a workspace.
    Topic {
        /// The workspace's number.
        workspace: u32,
        /// The topic's id in the plan's topic table.
        topic: u32,
    },
    /// The broadcast of the workspace with this number.
    Workspace(u32),
    /// The global broadcast.
    Global,
}

impl fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelKey::Topic { workspace, topic } => write!(f, "t{workspace}.{topic}"),
            ChannelKey::Workspace(w) => write!(f, "w{w}"),
            ChannelKey::Global => f.write_str("g"),
        }
    }
}

impl FromStr for ChannelKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a ledger channel (t<ws>.<topic>, w<ws> or g)");
        match s.split_at_checked(1).ok_or_else(bad)? {
            ("g", "") => Ok(ChannelKey::Global),
            ("w", w) => w.parse().map(ChannelKey::Workspace).map_err(|_| bad()),
            ("t", rest) => {
                let (w, t) = rest.split_once('.').ok_or_else(bad)?;
                Ok(ChannelKey::Topic {
                    workspace: w.parse().map_err(|_| bad())?,
                    topic: t.parse().map_err(|_| bad())?,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl From<ChannelKey> for String {
    fn from(key: ChannelKey) -> Self {
        key.to_string()
    }
}

impl TryFrom<String> for ChannelKey {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
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
    /// Higher than every sequence seen on the stream (gaps allowed).
    InOrder,
    /// Older than one already seen (a gap filled late).
    OutOfOrder,
    /// Seen before: the highest, or one of the 128 below it already seen.
    Duplicate,
}

impl StreamTracker {
    /// Notes sequence `seq` and says what its arrival was.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The channels it covers (several for a pattern).
    pub channels: Vec<ChannelKey>,
    /// Whether it is a pattern subscription (its own ledger class).
    #[serde(default, skip_serializing_if = "is_false")]
    pub pattern: bool,
    /// Messages sent strictly after this instant (µs, run clock) are
    /// expected...
    pub start_us: u64,
    /// ...up to and including this one; `None` while open.
    pub end_us: Option<u64>,
    /// Distinct expected messages that arrived, from any sender.
    #[serde(default)]
    pub delivered: u64,
    /// Of those, the ones whose sender ran in this process. A shard knows
    /// only its own senders' sends, so on its own it can only owe these;
    /// `sim merge` owes all of them.
    #[serde(default)]
    pub delivered_local: u64,
    /// The agent was made a slow consumer by a fault: its losses follow the
    /// bus's slow-consumer policy and are accounted apart.
    #[serde(default, skip_serializing_if = "is_false")]
    pub slow: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Window {
    /// An open window on `channels` from `start_us` (run-clock µs), nothing
    /// delivered yet.
    pub fn new(channels: Vec<ChannelKey>, pattern: bool, start_us: u64) -> Self {
        Self {
            channels,
            pattern,
            start_us,
            end_us: None,
            delivered: 0,
            delivered_local: 0,
            slow: false,
        }
    }

    /// Counts one expected message that arrived; `local`: its sender ran in
    /// this process.
    pub fn count_delivery(&mut self, local: bool) {
        self.delivered += 1;
        self.delivered_local += u64::from(local);
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
    /// Notes sequence `seq` of `sender` on `channel` and says what its
    /// arrival was.
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
    fn channels_and_windows_round_trip_compactly() {
        let keys = [
            ChannelKey::Topic {
                workspace: 3,
                topic: 17,
            },
            ChannelKey::Workspace(2),
            ChannelKey::Global,
        ];
        let text: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["t3.17", "w2", "g"]);
        for key in keys {
            assert_eq!(key.to_string().parse::<ChannelKey>(), Ok(key));
        }
        for bad in ["", "x1", "t3", "t3.x", "w", "gg"] {
            assert!(bad.parse::<ChannelKey>().is_err(), "{bad}");
        }
        let mut w = Window::new(keys.to_vec(), true, 5);
        w.end_us = Some(9);
        w.count_delivery(false);
        w.count_delivery(true);
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"channels":["t3.17","w2","g"],"pattern":true,"start_us":5,"end_us":9,"delivered":2,"delivered_local":1}"#
        );
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
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
