//! Holding a topic's live messages back while a resuming connection gets
//! its history, so that the switch from history to live has no gap and no
//! duplicate.
//!
//! The session gates a topic before it subscribes to it; from then on, the
//! topic's live messages for this connection are held here. Once it has
//! read the history after the agent's offset, it opens the gate: the
//! replayed messages go out first, then the held ones that come after the
//! last replayed offset, in order, and from then on every live message of
//! the topic at or before that offset is dropped (a copy of one that was
//! replayed) until the first one after it passes and the gate goes away.
//!
//! Why nothing is lost or doubled: the subscription is in place (the broker
//! confirmed it) before the history is read. A message written before the
//! read is in what was read, and any live copy of it is at or before the
//! last replayed offset, so dropped; one written after the read comes after
//! that offset, so it passes, held or live. Deciding and pushing happen
//! under one lock, so a live message never overtakes the replay.
//!
//! Bounded: a gate holds at most the connection's outbound byte budget;
//! beyond it the client is a slow consumer, as it would be for an outbound
//! queue that full.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::Utf8Bytes;

/// The gates of one connection.
#[derive(Debug, Default)]
pub(super) struct Gates {
    /// How many gates there are: the sink's fast path is one load.
    open: AtomicUsize,
    by_channel: Mutex<HashMap<String, Gate>>,
}

#[derive(Debug)]
enum Gate {
    /// History is being read: live messages wait here.
    Holding {
        frames: Vec<(u64, Utf8Bytes)>,
        bytes: usize,
    },
    /// History went out up to `n`: live copies up to it are dropped.
    Floor(u64),
}

/// What to do with one live message of a gated topic.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Passage {
    /// Not gated, or after the replay: deliver it.
    Deliver,
    /// Held, or a copy of something replayed: nothing to do now.
    Kept,
    /// The gate is over the byte budget: the client is a slow consumer.
    Overflow,
}

impl Gates {
    /// Whether no topic of the connection is gated (the sink's fast path).
    pub(super) fn is_empty(&self) -> bool {
        self.open.load(Ordering::Acquire) == 0
    }

    /// Starts holding `channel`'s live messages.
    pub(super) fn hold(&self, channel: &str) {
        let mut gates = self.by_channel.lock().expect("lock");
        let fresh = gates
            .insert(
                channel.to_owned(),
                Gate::Holding {
                    frames: Vec::new(),
                    bytes: 0,
                },
            )
            .is_none();
        if fresh {
            self.open.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Decides on one live message `frame` at history position `n` of
    /// `channel`, with `budget` bytes the gate may hold; `push` sends a
    /// frame out now (under the lock, so the order holds).
    pub(super) fn pass(
        &self,
        channel: &str,
        n: u64,
        frame: &Utf8Bytes,
        budget: usize,
        push: impl FnOnce(Utf8Bytes),
    ) -> Passage {
        let mut gates = self.by_channel.lock().expect("lock");
        let Some(gate) = gates.get_mut(channel) else {
            return Passage::Deliver;
        };
        match gate {
            Gate::Holding { frames, bytes } => {
                *bytes += frame.len();
                if *bytes > budget {
                    return Passage::Overflow;
                }
                frames.push((n, frame.clone()));
                Passage::Kept
            }
            Gate::Floor(floor) if n <= *floor => Passage::Kept,
            Gate::Floor(_) => {
                gates.remove(channel);
                self.open.fetch_sub(1, Ordering::AcqRel);
                push(frame.clone());
                Passage::Kept
            }
        }
    }

    /// Opens `channel`'s gate: `replay` goes out first, then the held
    /// messages after `floor` (all of them without one), in order; then
    /// live copies up to `floor` keep being dropped. `push` sends a frame
    /// out (under the lock).
    pub(super) fn open(
        &self,
        channel: &str,
        replay: Vec<Utf8Bytes>,
        floor: Option<u64>,
        mut push: impl FnMut(Utf8Bytes),
    ) {
        let mut gates = self.by_channel.lock().expect("lock");
        for frame in replay {
            push(frame);
        }
        let held = match gates.remove(channel) {
            Some(Gate::Holding { frames, .. }) => frames,
            Some(floor @ Gate::Floor(_)) => {
                gates.insert(channel.to_owned(), floor);
                return;
            }
            None => return,
        };
        let mut last = floor;
        for (n, frame) in held {
            if floor.is_none_or(|f| n > f) {
                last = Some(last.map_or(n, |l| l.max(n)));
                push(frame);
            }
        }
        match floor {
            // A held message after the floor passed: the gate has done
            // its work.
            Some(f) if last == Some(f) => {
                gates.insert(channel.to_owned(), Gate::Floor(f));
            }
            _ => {
                self.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Removes `channel`'s gate, whatever it holds (the subscribe failed).
    pub(super) fn remove(&self, channel: &str) {
        let mut gates = self.by_channel.lock().expect("lock");
        if gates.remove(channel).is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Utf8Bytes {
        Utf8Bytes::from(format!("m{n}"))
    }

    /// Pushes live messages `ns` through the gate and returns what went
    /// out, in order.
    fn live(gates: &Gates, ns: &[u64], out: &mut Vec<String>) {
        for &n in ns {
            let mut pushed = None;
            match gates.pass("t", n, &frame(n), 1 << 20, |f| pushed = Some(f)) {
                Passage::Deliver => out.push(frame(n).to_string()),
                Passage::Kept => out.extend(pushed.map(|f| f.to_string())),
                Passage::Overflow => panic!("overflow"),
            }
        }
    }

    #[test]
    fn replay_then_held_then_live_without_gap_or_duplicate() {
        let gates = Gates::default();
        let mut out = Vec::new();
        gates.hold("t");
        assert!(!gates.is_empty());
        // 6 and 7 arrive live while history (5..=7) is read.
        live(&gates, &[6, 7], &mut out);
        assert!(out.is_empty());
        gates.open("t", vec![frame(5), frame(6), frame(7)], Some(7), |f| {
            out.push(f.to_string())
        });
        // Late live copies of 7 (and older) are dropped; 8 passes and the
        // gate goes.
        live(&gates, &[7, 8, 9], &mut out);
        assert_eq!(out, ["m5", "m6", "m7", "m8", "m9"]);
        assert!(gates.is_empty());
    }

    #[test]
    fn held_messages_after_the_replay_go_out_at_the_switch() {
        let gates = Gates::default();
        let mut out = Vec::new();
        gates.hold("t");
        live(&gates, &[4, 5, 6], &mut out);
        gates.open("t", vec![frame(4)], Some(4), |f| out.push(f.to_string()));
        assert_eq!(out, ["m4", "m5", "m6"]);
        assert!(gates.is_empty(), "a held message passed the floor");
        live(&gates, &[7], &mut out);
        assert_eq!(out.last().unwrap(), "m7");
    }

    #[test]
    fn without_a_floor_everything_held_goes_out() {
        let gates = Gates::default();
        let mut out = Vec::new();
        gates.hold("t");
        live(&gates, &[1, 2], &mut out);
        gates.open("t", Vec::new(), None, |f| out.push(f.to_string()));
        assert_eq!(out, ["m1", "m2"]);
        assert!(gates.is_empty());
    }

    #[test]
    fn a_gate_holds_no_more_than_its_budget() {
        let gates = Gates::default();
        gates.hold("t");
        assert_eq!(gates.pass("t", 1, &frame(1), 2, |_| {}), Passage::Kept);
        assert_eq!(gates.pass("t", 2, &frame(2), 2, |_| {}), Passage::Overflow);
        gates.remove("t");
        assert!(gates.is_empty());
    }
}
