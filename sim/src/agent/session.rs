//! One connected session of an agent: subscribe, serve its timers and the
//! frames it reads until it leaves, the run stops or the connection
//! breaks; then settle what was left unanswered.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

use super::arrivals::Arrivals;
use super::socket::Socket;
use super::{Agent, End, InFlight, WorkKind};
use crate::context::{Counters, NodeTraffic};
use crate::ledger::ChannelKey;
use crate::plan::Stay;

/// Frames an agent handles per wake-up when more are already read: a
/// backlog drains without a timer round per frame, and the agent's own
/// sends wait at most this many frames.
const READ_BURST: u32 = 64;

impl<'a> Agent<'a> {
    /// One connected session: set up, then serve until leave, stop or loss.
    pub(super) async fn session(&mut self, socket: Socket, session: &Stay) -> End {
        let (mut sink, mut stream) = socket.split();
        let now = self.now_us();
        self.open_window(ChannelKey::Workspace(self.plan.workspace), None, now);
        self.open_window(ChannelKey::Global, None, now);
        if !self.subscribe(&mut sink, &mut stream).await {
            self.close_windows();
            self.account_traffic();
            return End::Lost;
        }
        self.ctx.set_subscribed(self.plan.id, true);
        self.resume_schedule(session);
        let leave = session.leave_at.map(|t| self.ctx.clock.instant(t));
        let end = self.serve(&mut sink, &mut stream, leave).await;
        self.ctx.set_subscribed(self.plan.id, false);
        self.forget_unanswered();
        self.close_windows();
        let _ = sink.send(Message::Close(None)).await;
        self.working.dequeue_pending = false;
        self.account_traffic();
        end
    }

    /// A publish or broadcast whose outcome became unknown: no longer owed
    /// outright, owed where it arrived.
    pub(super) fn unconfirm(&mut self, channel: ChannelKey, sent_us: u64) {
        let sent = &mut self.outcome.sent;
        if let Some(i) = sent.iter().rposition(|e| *e == (channel, sent_us)) {
            sent.swap_remove(i);
            self.outcome.unconfirmed.push((channel, sent_us));
        }
    }

    /// This agent's node's traffic counters.
    pub(super) fn node_traffic(&self) -> Option<&'a NodeTraffic> {
        let ctx = self.ctx;
        ctx.node_traffic
            .get(self.plan.node % ctx.ws_urls.len().max(1))
    }

    /// Adds the session's frames to its node's traffic.
    pub(super) fn account_traffic(&mut self) {
        Counters::add(
            &self.ctx.counters.delivered,
            std::mem::take(&mut self.traffic.delivered_unposted),
        );
        if let Some(node) = self.node_traffic() {
            Counters::add(
                &node.frames_sent,
                std::mem::take(&mut self.traffic.frames_written),
            );
            Counters::add(
                &node.messages_received,
                std::mem::take(&mut self.traffic.messages_received),
            );
        }
    }

    /// Requests that got no reply before the session ended have an unknown
    /// outcome: publishes are counted unconfirmed (owed only where they
    /// arrived), enqueues are counted unconfirmed,
    /// acks and rejects are tried again on the next connection (acks are
    /// idempotent; work not yet done stays queued for it too).
    pub(super) fn forget_unanswered(&mut self) {
        let mut unconfirmed = 0;
        let pending: Vec<InFlight> = self.sending.in_flight.drain().map(|(_, r)| r).collect();
        for request in pending {
            match request {
                InFlight::Ack {
                    message,
                    claimed,
                    tries,
                } => self.retry_later(WorkKind::Ack {
                    id: message,
                    claimed,
                    tries: tries + 1,
                }),
                InFlight::AckBatch(acks) => {
                    for (message, claimed, tries) in acks {
                        self.retry_later(WorkKind::Ack {
                            id: message,
                            claimed,
                            tries: tries + 1,
                        });
                    }
                }
                InFlight::Reject { message, tries } => self.retry_later(WorkKind::Reject {
                    id: message,
                    tries: tries + 1,
                }),
                InFlight::Published(channel, sent_us) => self.unconfirm(channel, sent_us),
                InFlight::Enqueue(jobs) => unconfirmed += u64::from(jobs),
                _ => {}
            }
        }
        if unconfirmed > 0 {
            self.record(|r, _| r.ledger_mut().queue.enqueue_unconfirmed += unconfirmed);
        }
    }

    /// Plans the sends of a session from its planned connect instant, not
    /// the actual one: the seed alone fixes how many messages each agent
    /// sends, and a slow connect shows as send lag, not fewer messages.
    /// Back from a broken connection, what fell due while disconnected is
    /// skipped (and counted), not sent in a burst.
    pub(super) fn resume_schedule(&mut self, session: &Stay) {
        if !(self.group.behaviour.requires_rate() || self.group.rate > 0.0) {
            return;
        }
        let Some(schedule) = self.arrivals.as_mut() else {
            self.arrivals = Some(Arrivals::new(
                self.group.rate,
                self.group.arrival,
                session.connect_at,
                &self.ctx.scenario,
                &mut self.rng,
            ));
            return;
        };
        let now = self.ctx.clock.offset(self.ctx.clock.now_us());
        let mut skipped = 0;
        while schedule.peek().is_some_and(|t| t < now) {
            schedule.pop(&self.ctx.scenario, &mut self.rng);
            skipped += 1;
        }
        if skipped > 0 {
            self.record(|r, at| {
                for _ in 0..skipped {
                    r.count_error(at, "not_sent_while_disconnected");
                }
            });
        }
    }

    pub(super) async fn serve(
        &mut self,
        sink: &mut SplitSink<Socket, Message>,
        stream: &mut SplitStream<Socket>,
        leave: Option<tokio::time::Instant>,
    ) -> End {
        let ctx = self.ctx;
        let mut faults = ctx.faults.subscribe();
        let storm = ctx.faults.storm_generation(self.plan.id);
        let mut linger_until: Option<tokio::time::Instant> = None;
        // One stop future and one timer for the whole session, re-armed
        // only when the due instant moves: a round per frame costs no timer
        // registration.
        let stopped = ctx.stop.cancelled();
        tokio::pin!(stopped);
        let timer = tokio::time::sleep_until(far_future());
        tokio::pin!(timer);
        loop {
            let leaving = linger_until.is_some();
            let reading = !ctx.faults.is_slow(self.plan.id);
            let due = round_due(self.next_due(leaving), leave, linger_until);
            let armed = timer.deadline();
            if due < armed || (due > armed && !(is_far(due) && is_far(armed))) {
                timer.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                _ = &mut stopped => return End::Stopped,
                _ = faults.changed() => {
                    if ctx.faults.storm_generation(self.plan.id) != storm {
                        return End::Storm;
                    }
                }
                frame = stream.next(), if reading => {
                    if !self.read_burst(frame, stream) {
                        return if leaving { End::Left } else { End::Lost };
                    }
                }
                _ = &mut timer => {
                    let now = tokio::time::Instant::now();
                    if linger_until.is_some_and(|l| now >= l) {
                        return End::Left;
                    }
                    if !leaving && leave.is_some_and(|l| now >= l) {
                        // Leaving: no new requests should pick this agent,
                        // but what is in flight is still answered.
                        ctx.set_online(self.plan.id, false);
                        self.end_windows();
                        self.arrivals = None;
                        linger_until = Some(now + ctx.linger);
                        continue;
                    }
                    self.on_timers(leaving);
                }
            }
            if !self.outbox.is_empty() && self.flush(sink).await.is_err() {
                return End::Lost;
            }
        }
    }

    /// Handles `first` and the frames already read behind it (up to
    /// [`READ_BURST`]) in one go, without a round of timers and wake-ups
    /// each; false when the connection ended.
    fn read_burst(
        &mut self,
        first: Option<Result<Message, tungstenite::Error>>,
        stream: &mut SplitStream<Socket>,
    ) -> bool {
        let counters = &self.ctx.counters;
        self.traffic.read_at = Some((self.ctx.clock.now_us(), self.ctx.hub.elapsed()));
        let (mut next, mut polled, mut texts) = (Some(first), 0, 0);
        while let Some(frame) = next.take() {
            polled += 1;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    texts += 1;
                    self.on_frame(&text);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    self.traffic.read_at = None;
                    Counters::add(&counters.received, texts);
                    Counters::add(
                        &counters.delivered,
                        std::mem::take(&mut self.traffic.delivered_unposted),
                    );
                    Counters::add(&counters.disconnects, 1);
                    self.record(|r, at| {
                        r.ledger_mut().connections.disconnects += 1;
                        r.count_error(at, "disconnected");
                    });
                    return false;
                }
                Some(Ok(_)) => {}
            }
            if polled < READ_BURST {
                next = stream.next().now_or_never();
            }
        }
        self.traffic.read_at = None;
        Counters::add(&counters.received, texts);
        Counters::add(
            &counters.delivered,
            std::mem::take(&mut self.traffic.delivered_unposted),
        );
        true
    }

    pub(super) async fn flush(&mut self, sink: &mut SplitSink<Socket, Message>) -> Result<(), ()> {
        for frame in self.outbox.drain(..) {
            if let Some(log) = &self.ctx.frame_log {
                log.record(&frame);
            }
            sink.feed(Message::text(frame)).await.map_err(|_| ())?;
            self.traffic.frames_written += 1;
        }
        sink.flush().await.map_err(|_| ())
    }

    /// The earliest timer: a due send, a finished job or response, or now
    /// when a dequeue should be (re)issued.
    pub(super) fn next_due(&self, leaving: bool) -> tokio::time::Instant {
        let mut due = far_future();
        if let Some(t) = self
            .arrivals
            .as_ref()
            .and_then(Arrivals::peek)
            .filter(|_| !leaving && !self.ctx.is_draining())
        {
            due = due.min(self.ctx.clock.instant(t));
        }
        if let Some(item) = self.working.work.front() {
            due = due.min(item.due);
        }
        if !leaving && self.wants_dequeue() {
            due = tokio::time::Instant::now();
        }
        due
    }
}

/// What a serve round sleeps until: the agent's own next timer and, until
/// it has passed, the leave instant; while lingering, the end of lingering.
/// The (past) leave instant is no timer then: it would fire at once on
/// every round and spin the agent.
pub(super) fn round_due(
    own: tokio::time::Instant,
    leave: Option<tokio::time::Instant>,
    linger_until: Option<tokio::time::Instant>,
) -> tokio::time::Instant {
    match linger_until {
        Some(l) => own.min(l),
        None => own.min(leave.unwrap_or(far_future())),
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

/// Whether `t` is "no timer" ([`far_future`], give or take when it was
/// taken).
fn is_far(t: tokio::time::Instant) -> bool {
    t > tokio::time::Instant::now() + Duration::from_secs(1800)
}
