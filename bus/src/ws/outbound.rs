//! The outbound side of a connection: a bounded queue of frames for the
//! writer task, and the sink through which the router delivers pub/sub
//! messages into it.
//!
//! The queue is bounded twice: in frames (`--outbound-queue`) and in bytes
//! (`--outbound-bytes`; an empty queue takes any one frame, so a
//! connection holds at most the byte budget plus one frame). Bytes count
//! from the push until the writer's flush of them completes, so frames
//! taken off the queue but still in the socket's write buffer count too.
//!
//! Policy when either bound is reached: the client is a slow consumer. It
//! is counted (`bus_slow_consumers_total`) and disconnected with close code
//! 4001; nothing waits on it and no other connection is slowed down. The
//! writer's deadline (`--write-timeout`) catches the same client when its
//! socket stops taking writes before the queue fills.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::ws::{Message, Utf8Bytes};
use tokio::sync::{Notify, mpsc};

use super::gate::{Gates, Passage};
use crate::message::names;
use crate::protocol::{ServerFrame, close, message_frame};
use crate::registry::ConnectionEntry;
use crate::router::{DeliverySink, Dispatched, INBOX_WAKE};
use crate::state::AppState;

/// Handle to push frames to one client.
#[derive(Debug, Clone)]
pub(super) struct Outbound {
    tx: mpsc::Sender<Message>,
    /// Bytes pushed and not yet flushed by the writer.
    queued: Arc<AtomicUsize>,
    /// Set by a producer waiting for room; the writer then signals
    /// `drained` after its next flush.
    drain: Arc<DrainSignal>,
    entry: Arc<ConnectionEntry>,
    state: AppState,
}

/// How the writer tells a waiting producer (the inbox pump) that it has
/// made room: a flag checked after each flush, so that a writer nobody
/// waits on pays one relaxed load.
#[derive(Debug, Default)]
pub(super) struct DrainSignal {
    wanted: AtomicBool,
    /// Notified (one permit kept) after the flush that follows a request.
    pub(super) drained: Notify,
}

impl DrainSignal {
    /// Called by the writer after a flush.
    pub(super) fn flushed(&self) {
        if self.wanted.load(Ordering::Relaxed) && self.wanted.swap(false, Ordering::AcqRel) {
            self.drained.notify_one();
        }
    }
}

/// The bytes a frame holds while queued.
pub(super) fn frame_bytes(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) => 0,
    }
}

impl Outbound {
    pub(super) fn new(
        tx: mpsc::Sender<Message>,
        queued: Arc<AtomicUsize>,
        drain: Arc<DrainSignal>,
        entry: Arc<ConnectionEntry>,
        state: AppState,
    ) -> Self {
        Self {
            tx,
            queued,
            drain,
            entry,
            state,
        }
    }

    /// Frames and bytes queued and not yet written.
    pub(super) fn occupancy(&self) -> (usize, usize) {
        let frames = self.tx.max_capacity() - self.tx.capacity();
        (frames, self.queued.load(Ordering::Acquire))
    }

    /// Asks the writer to notify [`DrainSignal::drained`] after its next
    /// flush.
    pub(super) fn notify_when_drained(&self) {
        self.drain.wanted.store(true, Ordering::Release);
    }

    /// Queues a frame; false when it was not queued (connection closing, or
    /// the client is a slow consumer and is being disconnected).
    pub(super) fn push(&self, message: Message) -> bool {
        let bytes = frame_bytes(&message);
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > self.state.config.outbound_bytes {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            self.slow_consumer("outbound bytes over budget");
            return false;
        }
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(err) => {
                self.queued.fetch_sub(bytes, Ordering::AcqRel);
                if let mpsc::error::TrySendError::Full(_) = err {
                    self.slow_consumer("outbound queue full");
                }
                false
            }
        }
    }

    /// Queues a pub/sub delivery (counted in `bus_deliveries_total`).
    pub(super) fn deliver(&self, frame: Utf8Bytes) {
        if self.push(Message::Text(frame)) {
            self.state.telemetry.deliveries.increment(1);
        }
    }

    /// Counts the client as a slow consumer (once) and has it closed.
    pub(super) fn slow_consumer(&self, why: &str) {
        if !self.entry.close.is_cancelled() {
            self.state.telemetry.slow_consumers.increment(1);
            self.close_with(close::SLOW_CONSUMER, &format!("slow consumer: {why}"));
        }
    }

    pub(super) fn push_frame(&self, frame: &ServerFrame) -> bool {
        self.push(Message::Text(Utf8Bytes::from(frame.to_text())))
    }

    /// Asks the writer to close the connection; the first reason wins.
    pub(super) fn close_with(&self, code: u16, reason: &str) {
        self.entry.close_with(code, reason);
    }
}

/// The router's view of a connection: pub/sub deliveries become `message`
/// frames (built once per delivery, shared by every local recipient);
/// inbox wake-ups poke the connection to hand over inbox jobs.
#[derive(Debug)]
pub(super) struct ConnectionSink {
    pub outbound: Outbound,
    /// Broker channel of this agent's inbox.
    pub inbox_channel: String,
    pub inbox_wake: Arc<Notify>,
    /// Topics whose live messages wait while their history is replayed.
    pub gates: Arc<Gates>,
}

impl DeliverySink for ConnectionSink {
    fn deliver(&self, dispatched: &Dispatched<'_>) {
        let delivery = dispatched.delivery;
        if delivery.pattern.is_none()
            && delivery.payload.as_ref() == INBOX_WAKE
            && delivery.channel == self.inbox_channel
        {
            self.inbox_wake.notify_one();
            return;
        }
        let frame: Utf8Bytes = dispatched.frame(|d| {
            let pattern = d.pattern.as_deref().map(names::wire_pattern);
            Utf8Bytes::from(message_frame(pattern, d.stamp.as_ref(), &d.payload))
        });
        #[cfg(feature = "test-faults")]
        if self.delay_fault(&frame) {
            return;
        }
        if !self.gates.is_empty()
            && delivery.pattern.is_none()
            && let Some(stamp) = &delivery.stamp
        {
            let budget = self.outbound.state.config.outbound_bytes;
            let passage = self
                .gates
                .pass(&delivery.channel, stamp.offset.n, &frame, budget, |f| {
                    self.outbound.deliver(f)
                });
            match passage {
                Passage::Deliver => {}
                Passage::Kept => return,
                Passage::Overflow => {
                    return self
                        .outbound
                        .slow_consumer("live messages held during a resume over budget");
                }
            }
        }
        self.outbound.deliver(frame);
    }
}

#[cfg(feature = "test-faults")]
impl ConnectionSink {
    /// The delay fault: queues `frame` after the configured delay instead
    /// of now; false when no delay is set.
    fn delay_fault(&self, frame: &Utf8Bytes) -> bool {
        let delay = self.outbound.state.router.config().faults.delay;
        if delay.is_zero() {
            return false;
        }
        let outbound = self.outbound.clone();
        let frame = frame.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            outbound.push(Message::Text(frame));
        });
        true
    }
}
