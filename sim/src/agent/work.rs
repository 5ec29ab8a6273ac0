//! Timed work: queue jobs being processed (then acked, rejected, or dropped
//! as if the worker crashed) and direct requests being answered, each after
//! the group's processing time, one at a time per agent.

use std::fmt::Write;
use std::time::Instant;

use rand::Rng;

use super::wire::{self, MessageView};
use super::{Agent, InFlight, WorkItem, WorkKind};
use crate::ledger::MessageClass;
use crate::metrics::Operation;

/// Inbox message ids remembered to ignore redelivered requests.
const ANSWERED_MEMORY: usize = 4096;
/// Pause before an ack or reject is tried again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(200);
/// Tries of one ack or reject at most (about 10 s of an unreachable broker).
pub(super) const MAX_TRIES: u32 = 50;
/// Ids in one ack frame at most (the bus takes 1,000).
const MAX_ACK_BATCH: usize = 1000;

impl Agent<'_> {
    /// When the next piece of work finishes: after the previous one, plus
    /// the processing time.
    fn work_due(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let after = self.working.work.back().map_or(now, |w| w.due.max(now));
        after + self.group.processing_time.get()
    }

    /// A job claimed by this worker.
    pub(super) fn on_claimed(&mut self, message: &MessageView<'_>) {
        let now = self.now_us();
        let redelivered = message.attempts > 1;
        let wrong_workspace = message.workspace.as_deref() != Some(self.my_workspace());
        let latency = message.payload.map(|s| now.saturating_sub(s.t));
        let inversion = self
            .working
            .last_claimed_priority
            .is_some_and(|last| message.priority > last);
        self.working.last_claimed_priority = Some(message.priority);
        self.record(|r, at| {
            let ledger = r.ledger_mut();
            ledger.queue.claimed += 1;
            if redelivered {
                ledger.queue.redelivered += 1;
            }
            if inversion {
                ledger.queue.priority_inversions += 1;
            }
            if wrong_workspace {
                ledger.class_mut(MessageClass::Queue).misrouted += 1;
            }
            if let (Some(latency), false) = (latency, redelivered) {
                r.record(Operation::QueueWait, latency, at);
            }
        });
        // The outcome depends on the job and attempt, not on which worker
        // got it, so the totals are the same in every run of a seed.
        let roll = message.payload.map_or_else(
            || self.rng.random(),
            |s| unit_hash(self.ctx.scenario.seed, s.s, s.q, message.attempts),
        );
        let kind = if self.ctx.faults.crashes(self.plan.id) {
            WorkKind::Crash
        } else if roll < self.group.ack_ratio {
            WorkKind::Ack {
                id: message.id.to_string(),
                claimed: Instant::now(),
                tries: 0,
            }
        } else if roll < self.group.ack_ratio + self.group.reject_ratio {
            WorkKind::Reject {
                id: message.id.to_string(),
                tries: 0,
            }
        } else {
            WorkKind::Crash
        };
        let due = self.work_due();
        self.working.work.push_back(WorkItem { due, kind });
    }

    /// A direct request to answer after the processing time.
    pub(super) fn on_request(&mut self, message: &MessageView<'_>, from_inbox: bool) {
        let stored_copy = message.payload.is_some_and(|s| s.k == 2);
        if stored_copy && !from_inbox {
            self.ack_stored("inbox", &message.id);
        }
        if self.working.answered.iter().any(|id| *id == *message.id) {
            return;
        }
        if self.working.answered.len() == ANSWERED_MEMORY {
            self.working.answered.pop_front();
        }
        self.working.answered.push_back(message.id.to_string());
        let (Some(from), Some(correlation), Some(stamp)) = (
            message.from.as_deref(),
            message.correlation_id.as_deref(),
            message.payload,
        ) else {
            return self.ledger(MessageClass::Direct, |l| l.misrouted += 1);
        };
        let mut frame = String::with_capacity(160);
        let _ = write!(frame, r#"{{"op":"send","to":"#);
        wire::quoted(&mut frame, from);
        frame.push_str(r#","kind":"response","correlation_id":"#);
        wire::quoted(&mut frame, correlation);
        frame.push_str(r#","payload":"#);
        wire::write_payload(&mut frame, &stamp, 0);
        frame.push('}');
        let due = self.work_due();
        self.working.work.push_back(WorkItem {
            due,
            kind: WorkKind::Respond { frame },
        });
    }

    /// Acks a stored inbox copy (no reply tracking: its outcome is the
    /// bus's business, and a missing copy is fine).
    pub(super) fn ack_stored(&mut self, queue: &str, id: &str) {
        let mut f = String::with_capacity(96);
        f.push_str(r#"{"op":"ack","queue":"#);
        wire::quoted(&mut f, queue);
        f.push_str(r#","message_id":"#);
        wire::quoted(&mut f, id);
        f.push('}');
        self.outbox.push(f);
    }

    /// Finishes every piece of work whose time has come.
    /// Acks due together go out in one frame (`message_ids`).
    pub(super) fn finish_due_work(&mut self) {
        let now = tokio::time::Instant::now();
        let mut acks = Vec::new();
        while self.working.work.front().is_some_and(|w| w.due <= now) {
            let Some(item) = self.working.work.pop_front() else {
                break;
            };
            match item.kind {
                WorkKind::Ack { id, claimed, tries } => acks.push((id, claimed, tries)),
                WorkKind::Reject { id, tries } => self.send_reject(id, tries),
                WorkKind::Crash => self.record(|r, _| r.ledger_mut().queue.crashed += 1),
                WorkKind::Respond { frame } => self.outbox.push(frame),
            }
        }
        match acks.len() {
            0 => {}
            1 => {
                let (id, claimed, tries) = acks.swap_remove(0);
                self.send_ack(id, claimed, tries);
            }
            _ => {
                while !acks.is_empty() {
                    let rest = acks.split_off(acks.len().min(MAX_ACK_BATCH));
                    self.send_acks(std::mem::replace(&mut acks, rest));
                }
            }
        }
    }

    fn send_acks(&mut self, acks: Vec<(String, Instant, u32)>) {
        self.sending.next_request += 1;
        let id = self.sending.next_request;
        let mut f = String::with_capacity(64 + 40 * acks.len());
        let _ = write!(f, r#"{{"op":"ack","id":"{id}","queue":"#);
        wire::quoted(&mut f, &self.group.queue);
        f.push_str(r#","message_ids":["#);
        for (i, (message, _, _)) in acks.iter().enumerate() {
            if i > 0 {
                f.push(',');
            }
            wire::quoted(&mut f, message);
        }
        f.push_str("]}");
        self.outbox.push(f);
        self.sending.in_flight.insert(id, InFlight::AckBatch(acks));
    }

    fn send_ack(&mut self, message_id: String, claimed: Instant, tries: u32) {
        self.sending.next_request += 1;
        let id = self.sending.next_request;
        let mut f = String::with_capacity(128);
        let _ = write!(f, r#"{{"op":"ack","id":"{id}","queue":"#);
        wire::quoted(&mut f, &self.group.queue);
        f.push_str(r#","message_id":"#);
        wire::quoted(&mut f, &message_id);
        f.push('}');
        self.outbox.push(f);
        self.sending.in_flight.insert(
            id,
            InFlight::Ack {
                message: message_id,
                claimed,
                tries,
            },
        );
    }

    fn send_reject(&mut self, message_id: String, tries: u32) {
        self.sending.next_request += 1;
        let id = self.sending.next_request;
        let mut f = String::with_capacity(160);
        let _ = write!(f, r#"{{"op":"reject","id":"{id}","queue":"#);
        wire::quoted(&mut f, &self.group.queue);
        f.push_str(r#","message_id":"#);
        wire::quoted(&mut f, &message_id);
        let _ = write!(
            f,
            r#","reason":"simulated failure","requeue":{}}}"#,
            self.group.requeue
        );
        self.outbox.push(f);
        self.sending.in_flight.insert(
            id,
            InFlight::Reject {
                message: message_id,
                tries,
            },
        );
    }

    /// Tries an ack or reject again in a moment (the bus could not reach
    /// its broker; acks are idempotent, so a repeat is safe).
    pub(super) fn retry_later(&mut self, kind: WorkKind) {
        let due = tokio::time::Instant::now() + RETRY_AFTER;
        let at = self
            .working
            .work
            .iter()
            .position(|w| w.due > due)
            .unwrap_or(self.working.work.len());
        self.working.work.insert(at, WorkItem { due, kind });
    }
}

/// A number in [0, 1) fixed by the seed, the sender, its sequence number and
/// the attempt (splitmix64 of their mix).
fn unit_hash(seed: u64, sender: u32, seq: u64, attempt: u32) -> f64 {
    let mut x = seed
        ^ u64::from(sender).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ seq.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ u64::from(attempt).wrapping_mul(0x94D0_49BB_1331_11EB);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
