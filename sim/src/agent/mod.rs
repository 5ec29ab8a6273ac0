//! One simulated agent: a real WebSocket client that connects when its plan
//! says, subscribes, sends on its open-model schedule, answers requests,
//! works queue jobs, and accounts for everything it receives.
//!
//! - [`socket`]: connecting (source addresses, retries).
//! - [`wire`]: frames out (hand-written) and in (borrowed views).
//! - [`arrivals`]: planned send instants.
//! - `send`, `receive`, `work`: the behaviours.

mod adversary;
pub mod arrivals;
mod receive;
mod send;
pub mod socket;
pub mod wire;
mod work;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio_tungstenite::tungstenite::Message;

use self::arrivals::Arrivals;
use self::socket::{Endpoint, Socket};
use crate::context::{Counters, NodeTraffic, RunContext};
use crate::ledger::{AgentOutcome, ChannelKey, MessageClass, Streams, Window};
use crate::metrics::Operation;
use crate::plan::{AgentPlan, Stay};
use crate::scenario::{Behaviour, Group};

/// Frames an agent handles per wake-up when more are already read: a
/// backlog drains without a timer round per frame, and the agent's own
/// sends wait at most this many frames.
const READ_BURST: u32 = 64;

/// A send waiting for its reply, so an error can take it back (or retry
/// it: acks and rejects are retried while the bus reports its broker
/// unavailable, as a careful client would).
#[derive(Debug, Clone)]
enum InFlight {
    Published(ChannelKey, u64),
    Request(u64),
    /// An enqueue of this many jobs.
    Enqueue(u32),
    Ack {
        message: String,
        claimed: Instant,
        tries: u32,
    },
    /// Several acks in one frame (`message_ids`): message, claimed, tries.
    AckBatch(Vec<(String, Instant, u32)>),
    Reject {
        message: String,
        tries: u32,
    },
    /// An adversary's attempt: an `ok` reply is a breach.
    Attack,
}

/// A claimed job or a request being "processed".
#[derive(Debug)]
struct WorkItem {
    due: tokio::time::Instant,
    kind: WorkKind,
}

#[derive(Debug)]
enum WorkKind {
    Ack {
        id: String,
        claimed: Instant,
        tries: u32,
    },
    Reject {
        id: String,
        tries: u32,
    },
    Crash,
    Respond {
        frame: String,
    },
}

/// The agent's state across its sessions.
struct Agent<'a> {
    plan: &'a AgentPlan,
    group: &'a Group,
    ctx: &'a RunContext,
    workspace: String,
    rng: SmallRng,
    arrivals: Option<Arrivals>,
    /// Next sequence number per channel it sends on.
    seqs: HashMap<ChannelKey, u64>,
    next_request: u64,
    in_flight: HashMap<u64, InFlight>,
    /// Direct requests awaiting a response: seq → planned µs.
    outstanding: HashMap<u64, u64>,
    streams: Streams,
    /// Per pattern window: a message matching two of an agent's patterns
    /// arrives once per pattern (as Redis sends it), and each copy is owed
    /// to its own window, so each pattern tracks its streams apart.
    pattern_streams: HashMap<usize, Streams>,
    /// Open windows: exact channel → index, pattern → index.
    windows: Vec<Window>,
    /// Subscribing: deliveries on these may arrive before the bus's reply
    /// opens their windows; they are neither expected nor misrouted.
    subscribing: bool,
    exact: HashMap<ChannelKey, usize>,
    patterns: HashMap<String, usize>,
    /// Inbox message ids already answered (bounded), to ignore redeliveries.
    answered: VecDeque<String>,
    work: VecDeque<WorkItem>,
    dequeue_pending: bool,
    /// Priority of the previous job in the current claimed batch.
    last_claimed_priority: Option<u8>,
    /// Frames to write at the end of this turn.
    outbox: Vec<String>,
    /// Text frames written and `message` frames read in this session,
    /// added to the node's [`NodeTraffic`] when it ends.
    frames_written: u64,
    messages_received: u64,
    outcome: AgentOutcome,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its planned leave time came.
    Left,
    /// The run is over.
    Stopped,
    /// The connection broke (a fault, the bus going away): reconnect.
    Lost,
    /// A reconnect storm asked it to drop and reconnect.
    Storm,
}

/// Runs an agent's planned sessions until the run stops. A session whose
/// connection breaks is resumed on a new connection (new subscription
/// windows) until its planned end.
pub async fn run(plan: AgentPlan, ctx: Arc<RunContext>) -> AgentOutcome {
    let group = &ctx.scenario.groups[plan.group];
    let mut agent = Agent::new(&plan, group, &ctx);
    for (n, session) in plan.stays.iter().enumerate() {
        let start = ctx.clock.instant(session.connect_at);
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = tokio::time::sleep_until(start) => {}
        }
        if n == 0 && group.behaviour == crate::scenario::Behaviour::Adversary {
            agent.try_bad_tokens().await;
        }
        let leave = session.leave_at.map(|t| ctx.clock.instant(t));
        // The ledger counts planned sessions: connected at least once, or
        // never (reconnects after a broken connection are retries).
        let (mut attempted, mut connected) = (false, false);
        loop {
            if ctx.is_draining() || ctx.stop.is_cancelled() {
                break;
            }
            attempted = true;
            let Some(socket) = agent.connect_until(leave).await else {
                break;
            };
            connected = true;
            ctx.set_online(plan.id, true);
            let end = agent.session(socket, session).await;
            ctx.set_online(plan.id, false);
            if matches!(end, End::Left | End::Stopped) {
                break;
            }
            agent.record(|r, _| r.ledger_mut().connections.connect_retries += 1);
        }
        agent.record(|r, _| {
            let c = &mut r.ledger_mut().connections;
            if !attempted {
                return;
            }
            c.target_connections += 1;
            if connected {
                c.connected += 1;
            } else {
                c.connect_failures += 1;
            }
        });
        agent.arrivals = None;
    }
    agent.outcome
}

impl<'a> Agent<'a> {
    fn new(plan: &'a AgentPlan, group: &'a Group, ctx: &'a RunContext) -> Self {
        Self {
            plan,
            group,
            ctx,
            workspace: plan.workspace_name(),
            rng: SmallRng::seed_from_u64(plan.seed),
            arrivals: None,
            seqs: HashMap::new(),
            next_request: 0,
            in_flight: HashMap::new(),
            outstanding: HashMap::new(),
            streams: Streams::default(),
            pattern_streams: HashMap::new(),
            windows: Vec::new(),
            subscribing: false,
            exact: HashMap::new(),
            patterns: HashMap::new(),
            answered: VecDeque::new(),
            work: VecDeque::new(),
            dequeue_pending: false,
            last_claimed_priority: None,
            outbox: Vec::new(),
            frames_written: 0,
            messages_received: 0,
            outcome: AgentOutcome::default(),
        }
    }

    fn now_us(&self) -> u64 {
        self.ctx.clock.now_us()
    }

    fn record(&self, f: impl FnOnce(&mut crate::metrics::Recorder, Duration)) {
        let local = self.ctx.hub.local();
        let at = local.elapsed();
        local.with(|r| f(r, at));
    }

    fn count_error(&self, kind: &str) {
        Counters::add(&self.ctx.counters.errors, 1);
        self.record(|r, at| r.count_error(at, kind));
    }

    fn ledger(&self, class: MessageClass, f: impl FnOnce(&mut crate::ledger::ClassLedger)) {
        self.record(|r, _| f(r.ledger_mut().class_mut(class)));
    }

    /// Opens the WebSocket (bounded concurrency, retries) and reads the
    /// welcome; records the connect latency and the connection ledger.
    async fn connect(&mut self) -> Option<Socket> {
        let ctx = self.ctx;
        let token = ctx.jwt_secret.as_deref().map(|s| self.token(s));
        let url = &ctx.ws_urls[self.plan.node % ctx.ws_urls.len()];
        let endpoint = Endpoint {
            url,
            agent: &self.plan.name,
            workspace: &self.workspace,
            token: token.as_deref(),
            source: self.plan.source,
        };
        let permit = ctx.connects.acquire().await.ok()?;
        let started = Instant::now();
        let result = socket::open_with_retry(&endpoint).await;
        drop(permit);
        let (mut socket, retries) = match result {
            Ok(ok) => ok,
            Err(e) => {
                tracing::debug!(agent = %self.plan.name, cause = %e, "connect failed");
                self.record(|r, at| {
                    r.ledger_mut().connections.connect_retries += u64::from(socket::ATTEMPTS);
                    r.count_error(at, "connect_failed");
                });
                return None;
            }
        };
        let welcome = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        if !matches!(welcome, Ok(Some(Ok(Message::Text(_))))) {
            self.count_error("no_welcome");
            return None;
        }
        let latency = started.elapsed();
        self.record(|r, at| {
            r.record_duration(Operation::Connect, latency, at);
            r.ledger_mut().connections.connect_retries += u64::from(retries);
        });
        Counters::add(&ctx.counters.connected, 1);
        if let Some(node) = self.node_traffic() {
            Counters::add(&node.connects, 1);
        }
        let at_us = ctx.clock.start.elapsed().as_micros() as u64;
        ctx.counters
            .first_connect_us
            .fetch_min(at_us, std::sync::atomic::Ordering::Relaxed);
        ctx.counters
            .last_connect_us
            .fetch_max(at_us, std::sync::atomic::Ordering::Relaxed);
        Some(socket)
    }

    /// Connects, trying again (with backoff up to 1 s) while the bus is
    /// unreachable, until `leave` or the end of the run.
    async fn connect_until(&mut self, leave: Option<tokio::time::Instant>) -> Option<Socket> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(socket) = self.connect().await {
                return Some(socket);
            }
            let now = tokio::time::Instant::now();
            if self.ctx.is_draining() || leave.is_some_and(|l| now + backoff >= l) {
                return None;
            }
            tokio::select! {
                _ = self.ctx.stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn token(&self, secret: &str) -> String {
        bus::auth::issue_token(
            secret,
            &bus::auth::Claims {
                sub: self.plan.name.clone(),
                workspace: self.workspace.clone(),
                user: None,
                topics: None,
                global_broadcast: true,
                admin: false,
                exp: bus::auth::unix_now() + 24 * 3600,
            },
        )
    }

    /// One connected session: set up, then serve until leave, stop or loss.
    async fn session(&mut self, socket: Socket, session: &Stay) -> End {
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
        self.dequeue_pending = false;
        self.account_traffic();
        end
    }

    /// A publish or broadcast whose outcome became unknown: no longer owed
    /// outright, owed where it arrived.
    fn unconfirm(&mut self, channel: ChannelKey, sent_us: u64) {
        let sent = &mut self.outcome.sent;
        if let Some(i) = sent.iter().rposition(|e| *e == (channel, sent_us)) {
            sent.swap_remove(i);
            self.outcome.unconfirmed.push((channel, sent_us));
        }
    }

    /// This agent's node's traffic counters.
    fn node_traffic(&self) -> Option<&'a NodeTraffic> {
        let ctx = self.ctx;
        ctx.node_traffic
            .get(self.plan.node % ctx.ws_urls.len().max(1))
    }

    /// Adds the session's frames to its node's traffic.
    fn account_traffic(&mut self) {
        if let Some(node) = self.node_traffic() {
            Counters::add(&node.frames_sent, std::mem::take(&mut self.frames_written));
            Counters::add(
                &node.messages_received,
                std::mem::take(&mut self.messages_received),
            );
        }
    }

    /// Requests that got no reply before the session ended have an unknown
    /// outcome: publishes are counted unconfirmed (owed only where they
    /// arrived), enqueues are counted unconfirmed,
    /// acks and rejects are tried again on the next connection (acks are
    /// idempotent; work not yet done stays queued for it too).
    fn forget_unanswered(&mut self) {
        let mut unconfirmed = 0;
        let pending: Vec<InFlight> = self.in_flight.drain().map(|(_, r)| r).collect();
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
    fn resume_schedule(&mut self, session: &Stay) {
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

    async fn serve(
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
                    // Frames already read from the socket are handled in one
                    // go, without a new round of timers and wake-ups each.
                    let (mut next, mut polled, mut texts) = (Some(frame), 0, 0);
                    while let Some(frame) = next.take() {
                        polled += 1;
                        match frame {
                            Some(Ok(Message::Text(text))) => {
                                texts += 1;
                                self.on_frame(&text);
                            }
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                                Counters::add(&ctx.counters.received, texts);
                                Counters::add(&ctx.counters.disconnects, 1);
                                self.record(|r, at| {
                                    r.ledger_mut().connections.disconnects += 1;
                                    r.count_error(at, "disconnected");
                                });
                                return if leaving { End::Left } else { End::Lost };
                            }
                            Some(Ok(_)) => {}
                        }
                        if polled < READ_BURST {
                            next = stream.next().now_or_never();
                        }
                    }
                    Counters::add(&ctx.counters.received, texts);
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

    async fn flush(&mut self, sink: &mut SplitSink<Socket, Message>) -> Result<(), ()> {
        for frame in self.outbox.drain(..) {
            sink.feed(Message::text(frame)).await.map_err(|_| ())?;
            self.frames_written += 1;
        }
        sink.flush().await.map_err(|_| ())
    }

    /// The earliest timer: a due send, a finished job or response, or now
    /// when a dequeue should be (re)issued.
    fn next_due(&self, leaving: bool) -> tokio::time::Instant {
        let mut due = far_future();
        if let Some(t) = self
            .arrivals
            .as_ref()
            .and_then(Arrivals::peek)
            .filter(|_| !leaving && !self.ctx.is_draining())
        {
            due = due.min(self.ctx.clock.instant(t));
        }
        if let Some(item) = self.work.front() {
            due = due.min(item.due);
        }
        if !leaving && self.wants_dequeue() {
            due = tokio::time::Instant::now();
        }
        due
    }

    /// Opens a window on `channel` (or a pattern's channels) from `start_us`.
    fn open_window(
        &mut self,
        channel: ChannelKey,
        pattern: Option<(&str, Vec<ChannelKey>)>,
        start_us: u64,
    ) {
        let index = self.windows.len();
        match pattern {
            None => {
                self.windows
                    .push(Window::new(vec![channel], false, start_us));
                self.exact.insert(channel, index);
            }
            Some((glob, channels)) => {
                self.windows.push(Window::new(channels, true, start_us));
                self.patterns.insert(glob.to_owned(), index);
            }
        }
    }

    /// Ends every open window now (an agent leaving keeps reading for a
    /// while: what arrives then is still recognised, and counted when it was
    /// sent inside the window).
    fn end_windows(&mut self) {
        let now = self.now_us();
        let slow = self.ctx.faults.was_slow(self.plan.id);
        for w in &mut self.windows {
            w.end_us.get_or_insert(now);
            w.slow |= slow;
        }
    }

    /// Ends the windows and hands them to the outcome (the session is over).
    fn close_windows(&mut self) {
        self.end_windows();
        self.outcome.windows.append(&mut self.windows);
        self.exact.clear();
        self.patterns.clear();
    }
}

/// What a serve round sleeps until: the agent's own next timer and, until
/// it has passed, the leave instant; while lingering, the end of lingering.
/// The (past) leave instant is no timer then: it would fire at once on
/// every round and spin the agent.
fn round_due(
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

/// Whether this group's agents subscribe to topics or patterns on connect.
pub fn subscribes(behaviour: Behaviour) -> bool {
    matches!(
        behaviour,
        Behaviour::Subscriber | Behaviour::PatternSubscriber
    )
}

#[cfg(test)]
mod tests;
