//! Resuming topics with history after a reconnect (`resume = true`
//! groups): the last offset seen on each topic, the subscription windows
//! parked across an outage, and what the bus's subscribe reply says was
//! recovered.
//!
//! The ledger owes an agent what was sent while one of its windows was
//! open. Without resume a window ends at the disconnect and a new one opens
//! at the next subscribe reply, so nothing sent during the outage is owed.
//! With resume the ended window is parked; when the bus answers
//! `recovered: true` (it replayed everything after the agent's offset), the
//! window is reopened as if it had never closed, so every message sent
//! during the outage is owed and must arrive (a loss there is counted as
//! lost). When the bus answers `recovered: false`, the parked window stays
//! ended at the disconnect and a fresh one opens, as without resume.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use super::Agent;
use super::wire::{HistoryView, MessageView};
use crate::ledger::{ChannelKey, MessageClass};

/// Where the agent stopped reading a topic: the offset and epoch of the
/// last message it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    offset: String,
    epoch: String,
    /// The offset's `n` (position in the epoch).
    n: u64,
}

/// The `n` of an offset `"<ms>-<n>"`.
fn offset_n(offset: &str) -> Option<u64> {
    offset.rsplit_once('-')?.1.parse().ok()
}

impl Agent<'_> {
    /// Notes where a message on an exact topic subscription sits in the
    /// topic's history (a later epoch, or a later offset, replaces).
    pub(super) fn note_offset(&mut self, message: &MessageView<'_>, offset: &str, epoch: &str) {
        if !self.group.resume {
            return;
        }
        let (Some(channel @ ChannelKey::Topic { .. }), Some(n)) =
            (self.channel_of(message), offset_n(offset))
        else {
            return;
        };
        let position = Position {
            offset: offset.to_owned(),
            epoch: epoch.to_owned(),
            n,
        };
        match self.listening.positions.get_mut(&channel) {
            Some(p) if p.epoch == epoch && p.n >= n => {}
            Some(p) => *p = position,
            None => {
                self.listening.positions.insert(channel, position);
            }
        }
    }

    /// Moves the ended windows out at the end of a session: those of
    /// topics with a known position are parked (to be continued if the
    /// next subscribe recovers them), the others go to the outcome.
    pub(super) fn park_or_hand_over_windows(&mut self) {
        let parked: HashSet<usize> = self
            .listening
            .exact
            .iter()
            .filter(|(channel, _)| self.listening.positions.contains_key(channel))
            .map(|(_, index)| *index)
            .collect();
        let exact: Vec<(ChannelKey, usize)> =
            self.listening.exact.iter().map(|(c, i)| (*c, *i)).collect();
        let mut windows: Vec<Option<_>> = self.listening.windows.drain(..).map(Some).collect();
        for (channel, index) in exact {
            if parked.contains(&index)
                && let Some(w) = windows[index].take()
                && let Some(older) = self.listening.parked.insert(channel, w)
            {
                // Parked before and not resumed since: it is over.
                self.outcome.windows.push(older);
            }
        }
        self.outcome.windows.extend(windows.into_iter().flatten());
    }

    /// The `resume` field of a subscribe: each parked topic's position.
    pub(super) fn resume_field(&self) -> Option<Value> {
        let mut points = Map::new();
        for channel in self.listening.parked.keys() {
            let (ChannelKey::Topic { topic, .. }, Some(p)) =
                (channel, self.listening.positions.get(channel))
            else {
                continue;
            };
            let name = self.ctx.plan.topics.name(*topic).to_owned();
            points.insert(name, json!({"offset": p.offset, "epoch": p.epoch}));
        }
        (!points.is_empty()).then_some(Value::Object(points))
    }

    /// What the subscribe reply says of each parked topic: recovered ones
    /// get their window back, open, and are returned (they need no new
    /// window); the others' windows stay ended at the disconnect.
    pub(super) fn on_resumed(
        &mut self,
        history: Option<&BTreeMap<String, HistoryView>>,
    ) -> HashSet<ChannelKey> {
        let mut reopened = HashSet::new();
        let parked: Vec<ChannelKey> = self.listening.parked.keys().copied().collect();
        let (mut resumed, mut recovered, mut replayed, mut missed) = (0, 0, 0, 0);
        for channel in parked {
            let ChannelKey::Topic { topic, .. } = channel else {
                continue;
            };
            let window = self.listening.parked.remove(&channel).expect("parked");
            let name = self.ctx.plan.topics.name(topic);
            let answer = history.and_then(|h| h.get(name));
            resumed += 1;
            match answer {
                Some(h) if h.recovered == Some(true) => {
                    recovered += 1;
                    replayed += h.replayed.unwrap_or(0);
                    let mut window = window;
                    window.end_us = None;
                    let index = self.listening.windows.len();
                    self.listening.windows.push(window);
                    self.listening.exact.insert(channel, index);
                    reopened.insert(channel);
                }
                other => {
                    missed += other.and_then(|h| h.missed).unwrap_or(0);
                    // A new epoch makes the old position meaningless.
                    if other.is_some_and(|h| h.reason.as_deref() == Some("epoch_changed")) {
                        self.listening.positions.remove(&channel);
                    }
                    self.outcome.windows.push(window);
                }
            }
        }
        if resumed > 0 {
            self.ledger(MessageClass::Pubsub, |l| {
                l.resumed += resumed;
                l.recovered += recovered;
                l.not_recovered += resumed - recovered;
                l.replayed += replayed;
                l.missed += missed;
            });
        }
        reopened
    }

    /// At the agent's end: parked windows go to the outcome as they ended.
    pub(super) fn hand_over_parked(&mut self) {
        let parked = std::mem::take(&mut self.listening.parked);
        self.outcome.windows.extend(parked.into_values());
    }
}

#[cfg(test)]
mod tests {
    use super::offset_n;

    #[test]
    fn offsets_give_their_position() {
        assert_eq!(offset_n("1733155200123-42"), Some(42));
        assert_eq!(offset_n("42"), None);
        assert_eq!(offset_n("1-x"), None);
    }
}
