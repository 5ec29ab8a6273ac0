//! One in-process priority queue with the same states and transitions as the
//! Redis scripts: ready → processing → (acked | delayed → ready | dead).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::broker::{Claimed, DeadLetter, QueueStats, ReclaimOutcome, RejectOutcome, RetryPolicy};
use crate::message::AgentMessage;

/// Where a message is, with its key in that state's ordered map so it can be
/// removed in O(log n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Key: (255 - priority, sequence): smallest first = highest priority,
    /// then FIFO.
    Ready((u8, u64)),
    /// Key: (deadline ms, sequence).
    Processing((u64, u64)),
    /// Key: (ready-at ms, sequence).
    Delayed((u64, u64)),
    /// Key: (dead-at ms, sequence).
    Dead((u64, u64)),
}

#[derive(Debug)]
struct Entry {
    message: AgentMessage,
    attempts: u32,
    state: State,
    reason: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct MemoryQueue {
    seq: u64,
    entries: HashMap<String, Entry>,
    ready: BTreeMap<(u8, u64), String>,
    processing: BTreeMap<(u64, u64), String>,
    delayed: BTreeMap<(u64, u64), String>,
    dead: BTreeMap<(u64, u64), String>,
    /// Ids acked within the last `ACK_MEMORY`, oldest first.
    recently_acked: VecDeque<(u64, String)>,
    recently_acked_ids: HashSet<String>,
}

impl MemoryQueue {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Messages held in any state, dead letters included.
    pub(super) fn held(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Adds a message unless its id is already queued; returns whether added.
    pub(super) fn enqueue(&mut self, message: &AgentMessage) -> bool {
        if self.entries.contains_key(&message.id) {
            return false;
        }
        let mut message = message.clone();
        message.attempts = 0;
        let id = message.id.clone();
        let key = (u8::MAX - message.priority, self.next_seq());
        self.ready.insert(key, id.clone());
        self.entries.insert(
            id,
            Entry {
                message,
                attempts: 0,
                state: State::Ready(key),
                reason: None,
            },
        );
        true
    }

    /// Moves `id` out of whatever state it is in (removing its map key).
    fn detach(&mut self, id: &str) -> Option<State> {
        let state = self.entries.get(id)?.state;
        match state {
            State::Ready(k) => self.ready.remove(&k),
            State::Processing(k) => self.processing.remove(&k),
            State::Delayed(k) => self.delayed.remove(&k),
            State::Dead(k) => self.dead.remove(&k),
        };
        Some(state)
    }

    fn make_ready(&mut self, id: &str) {
        let seq = self.next_seq();
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let key = (u8::MAX - entry.message.priority, seq);
        entry.state = State::Ready(key);
        self.ready.insert(key, id.to_owned());
    }

    fn make_dead(&mut self, id: &str, reason: String, now_ms: u64) {
        let seq = self.next_seq();
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let key = (now_ms, seq);
        entry.state = State::Dead(key);
        entry.reason = Some(reason);
        self.dead.insert(key, id.to_owned());
    }

    pub(super) fn reclaim(&mut self, now_ms: u64, policy: &RetryPolicy) -> ReclaimOutcome {
        let mut outcome = ReclaimOutcome::default();
        let expired: Vec<String> = self
            .processing
            .range(..(now_ms + 1, 0))
            .map(|(_, id)| id.clone())
            .collect();
        for id in expired {
            self.detach(&id);
            let attempts = self.entries[&id].attempts;
            if attempts >= policy.max_attempts {
                let reason = format!("visibility timeout expired after {attempts} attempts");
                self.make_dead(&id, reason, now_ms);
                outcome.dead_lettered += 1;
            } else {
                self.make_ready(&id);
                outcome.requeued += 1;
            }
        }
        outcome
    }

    fn promote_delayed(&mut self, now_ms: u64) {
        let due: Vec<String> = self
            .delayed
            .range(..(now_ms + 1, 0))
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            self.detach(&id);
            self.make_ready(&id);
        }
    }

    pub(super) fn claim(
        &mut self,
        max: usize,
        now_ms: u64,
        visibility: Duration,
        policy: &RetryPolicy,
    ) -> Vec<Claimed> {
        self.reclaim(now_ms, policy);
        self.promote_delayed(now_ms);
        let deadline_ms = now_ms + visibility.as_millis() as u64;
        let mut out = Vec::with_capacity(max.min(self.ready.len()));
        while out.len() < max {
            let Some((_, id)) = self.ready.pop_first() else {
                break;
            };
            let key = (deadline_ms, self.next_seq());
            self.processing.insert(key, id.clone());
            let entry = self.entries.get_mut(&id).expect("ready ids have entries");
            entry.attempts += 1;
            entry.state = State::Processing(key);
            let mut message = entry.message.clone();
            message.attempts = entry.attempts;
            out.push(Claimed {
                message,
                deadline_ms,
            });
        }
        out
    }

    pub(super) fn ack(&mut self, id: &str, now_ms: u64) -> bool {
        let memory = crate::broker::ACK_MEMORY.as_millis() as u64;
        while self
            .recently_acked
            .front()
            .is_some_and(|(at, _)| at + memory < now_ms)
        {
            if let Some((_, old)) = self.recently_acked.pop_front() {
                self.recently_acked_ids.remove(&old);
            }
        }
        match self.entries.get(id).map(|e| e.state) {
            Some(State::Dead(_)) => false,
            None => self.recently_acked_ids.contains(id),
            Some(_) => {
                self.detach(id);
                self.entries.remove(id);
                self.recently_acked.push_back((now_ms, id.to_owned()));
                self.recently_acked_ids.insert(id.to_owned());
                true
            }
        }
    }

    pub(super) fn reject(
        &mut self,
        id: &str,
        reason: &str,
        requeue: bool,
        now_ms: u64,
        policy: &RetryPolicy,
    ) -> Option<RejectOutcome> {
        if !matches!(self.entries.get(id)?.state, State::Processing(_)) {
            return None;
        }
        self.detach(id);
        let attempts = self.entries[id].attempts;
        if requeue && attempts < policy.max_attempts {
            let delay_ms = policy.backoff(attempts).as_millis() as u64;
            let key = (now_ms + delay_ms, self.next_seq());
            self.delayed.insert(key, id.to_owned());
            self.entries.get_mut(id).expect("checked above").state = State::Delayed(key);
            Some(RejectOutcome::Requeued { delay_ms, attempts })
        } else {
            self.make_dead(id, reason.to_owned(), now_ms);
            Some(RejectOutcome::DeadLettered { attempts })
        }
    }

    pub(super) fn stats(&self) -> QueueStats {
        QueueStats {
            ready: self.ready.len() as u64,
            processing: self.processing.len() as u64,
            delayed: self.delayed.len() as u64,
            dead: self.dead.len() as u64,
        }
    }

    pub(super) fn dead_letters(&self, limit: usize) -> Vec<DeadLetter> {
        self.dead
            .iter()
            .take(limit)
            .map(|(&(dead_at_ms, _), id)| {
                let entry = &self.entries[id];
                let mut message = entry.message.clone();
                message.attempts = entry.attempts;
                DeadLetter {
                    message,
                    reason: entry.reason.clone().unwrap_or_default(),
                    dead_at_ms,
                }
            })
            .collect()
    }
}
