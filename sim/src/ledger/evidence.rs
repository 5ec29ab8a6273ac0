//! The evidence the delivery ledger is reconciled from: when every
//! published or broadcast message was sent, every subscription window and
//! what arrived in it, and the first and last arrival of each broadcast.
//!
//! One process reconciles its own evidence at the end of a run. A sharded
//! run cannot: a message one shard sends is owed to subscribers in every
//! shard. So each shard writes its evidence next to its report, and `sim
//! merge` adds the shards' evidence up ([`Evidence::merge`]) and reconciles
//! it once, as if one process had run every agent.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::tracking::{ChannelKey, Window};

/// What an agent hands back when the run ends, for the ledger.
#[derive(Debug, Default)]
pub struct AgentOutcome {
    /// Every message it published or broadcast that the bus confirmed:
    /// channel and send instant.
    pub sent: Vec<(ChannelKey, u64)>,
    /// Publishes and broadcasts whose outcome is unknown (an error reply or
    /// none before the connection ended): the bus may have taken them, so
    /// the ledger owes them only where they arrived.
    pub unconfirmed: Vec<(ChannelKey, u64)>,
    /// Its subscription windows, closed.
    pub windows: Vec<Window>,
}

/// Everything the pub/sub, pattern and broadcast ledger is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When each message was sent (run-clock µs), per channel.
    pub sent: BTreeMap<ChannelKey, SendTimes>,
    /// Sends whose outcome is unknown (an error reply or none), per
    /// channel: owed to a window only as far as its deliveries exceed the
    /// confirmed sends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unconfirmed: BTreeMap<ChannelKey, SendTimes>,
    /// Every subscription window, closed.
    pub windows: Vec<Window>,
    /// First and last arrival of each broadcast, in (sender, seq) order.
    pub broadcasts: Vec<BroadcastArrivals>,
}

/// How long one broadcast took to reach its first and its last recipient
/// (among the recipients this evidence saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastArrivals {
    /// The broadcasting agent's id.
    pub sender: u32,
    /// Its sequence number on its channel.
    pub seq: u64,
    /// Latency to the first recipient, µs from the planned instant.
    pub first_us: u64,
    /// Latency to the last recipient, µs.
    pub last_us: u64,
}

/// Send instants of one channel, ascending. Serialized as the first
/// instant and then the gaps between instants, which are short numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendTimes(Vec<u64>);

impl SendTimes {
    /// The instants, ascending.
    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }

    /// Messages sent strictly after `start` and up to `end`.
    pub fn between(&self, start: u64, end: u64) -> u64 {
        let from = self.0.partition_point(|t| *t <= start);
        let to = self.0.partition_point(|t| *t <= end);
        to.saturating_sub(from) as u64
    }

    fn extend(&mut self, more: &[u64]) {
        self.0.extend_from_slice(more);
        self.0.sort_unstable();
    }
}

impl From<Vec<u64>> for SendTimes {
    fn from(mut times: Vec<u64>) -> Self {
        times.sort_unstable();
        Self(times)
    }
}

impl Serialize for SendTimes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut previous = 0;
        serializer.collect_seq(self.0.iter().map(|t| {
            let gap = t - previous;
            previous = *t;
            gap
        }))
    }
}

impl<'de> Deserialize<'de> for SendTimes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let gaps = Vec::<u64>::deserialize(deserializer)?;
        let mut at = 0u64;
        let mut times = Vec::with_capacity(gaps.len());
        for gap in gaps {
            at = at
                .checked_add(gap)
                .ok_or_else(|| serde::de::Error::custom("send instants overflow"))?;
            times.push(at);
        }
        Ok(Self(times))
    }
}

impl Evidence {
    /// The evidence of one process's agents and broadcast tracker.
    pub fn gather(outcomes: Vec<AgentOutcome>, broadcasts: Vec<((u32, u64), (u64, u64))>) -> Self {
        let mut sent: HashMap<ChannelKey, Vec<u64>> = HashMap::new();
        let mut unconfirmed: HashMap<ChannelKey, Vec<u64>> = HashMap::new();
        let mut windows = Vec::new();
        for outcome in outcomes {
            for (channel, at) in outcome.sent {
                sent.entry(channel).or_default().push(at);
            }
            for (channel, at) in outcome.unconfirmed {
                unconfirmed.entry(channel).or_default().push(at);
            }
            windows.extend(outcome.windows);
        }
        let by_channel = |map: HashMap<ChannelKey, Vec<u64>>| {
            map.into_iter()
                .map(|(k, v)| (k, SendTimes::from(v)))
                .collect()
        };
        let mut evidence = Self {
            sent: by_channel(sent),
            unconfirmed: by_channel(unconfirmed),
            windows,
            broadcasts: Vec::new(),
        };
        evidence.add_broadcasts(broadcasts.into_iter().map(
            |((sender, seq), (first_us, last_us))| BroadcastArrivals {
                sender,
                seq,
                first_us,
                last_us,
            },
        ));
        evidence
    }

    /// Adds another shard's evidence: its sends and windows join these, and
    /// a broadcast seen by both keeps the earlier first and the later last
    /// arrival.
    pub fn merge(&mut self, other: &Evidence) {
        for (channel, times) in &other.sent {
            self.sent
                .entry(*channel)
                .or_default()
                .extend(times.as_slice());
        }
        for (channel, times) in &other.unconfirmed {
            self.unconfirmed
                .entry(*channel)
                .or_default()
                .extend(times.as_slice());
        }
        self.windows.extend(other.windows.iter().cloned());
        self.add_broadcasts(other.broadcasts.iter().copied());
    }

    fn add_broadcasts(&mut self, more: impl Iterator<Item = BroadcastArrivals>) {
        let mut by_key: BTreeMap<(u32, u64), (u64, u64)> = self
            .broadcasts
            .iter()
            .map(|b| ((b.sender, b.seq), (b.first_us, b.last_us)))
            .collect();
        for b in more {
            let entry = by_key
                .entry((b.sender, b.seq))
                .or_insert((b.first_us, b.last_us));
            entry.0 = entry.0.min(b.first_us);
            entry.1 = entry.1.max(b.last_us);
        }
        self.broadcasts = by_key
            .into_iter()
            .map(|((sender, seq), (first_us, last_us))| BroadcastArrivals {
                sender,
                seq,
                first_us,
                last_us,
            })
            .collect();
    }
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
    fn send_times_serialize_as_gaps() {
        let times = SendTimes::from(vec![1_700_000_000_000_300, 1_700_000_000_000_100]);
        let json = serde_json::to_string(&times).unwrap();
        assert_eq!(json, "[1700000000000100,200]");
        assert_eq!(serde_json::from_str::<SendTimes>(&json).unwrap(), times);
        assert!(serde_json::from_str::<SendTimes>(&format!("[{},1]", u64::MAX)).is_err());
        assert_eq!(times.between(1_700_000_000_000_100, u64::MAX), 1);
    }

    #[test]
    fn merging_shards_joins_sends_windows_and_broadcasts() {
        let a = Evidence::gather(
            vec![AgentOutcome {
                sent: vec![(topic(1), 30), (topic(1), 10)],
                unconfirmed: Vec::new(),
                windows: vec![Window::new(vec![topic(1)], false, 0)],
            }],
            vec![((7, 1), (100, 400))],
        );
        let b = Evidence::gather(
            vec![AgentOutcome {
                sent: vec![(topic(1), 20), (topic(2), 5)],
                unconfirmed: Vec::new(),
                windows: vec![Window::new(vec![topic(2)], false, 0)],
            }],
            vec![((7, 1), (50, 300)), ((7, 2), (60, 70))],
        );
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.sent[&topic(1)].as_slice(), [10, 20, 30]);
        assert_eq!(merged.sent[&topic(2)].as_slice(), [5]);
        assert_eq!(merged.windows.len(), 2);
        assert_eq!(
            merged
                .broadcasts
                .iter()
                .map(|b| (b.seq, b.first_us, b.last_us))
                .collect::<Vec<_>>(),
            [(1, 50, 400), (2, 60, 70)]
        );
        let json = serde_json::to_string(&merged).unwrap();
        assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), merged);
    }
}
