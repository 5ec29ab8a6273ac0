//! One simulated agent: a real WebSocket client that connects when its plan
//! says, subscribes, sends on its open-model schedule, answers requests,
//! works queue jobs, and accounts for everything it receives.
//!
//! - [`socket`]: connecting (source addresses, retries).
//! - [`wire`]: frames out (hand-written) and in (borrowed views).
//! - [`arrivals`]: planned send instants.
//! - `session`: one connected session (serve, settle what was left).
//! - `windows`: subscription windows for the ledger.
//! - `send`, `receive`, `work`, `adversary`: the behaviours.

mod adversary;
pub mod arrivals;
mod receive;
mod resume;
mod scan;
mod send;
mod session;
pub mod socket;
mod windows;
pub mod wire;
mod work;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::HashMap;
use futures_util::StreamExt;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio_tungstenite::tungstenite::Message;

pub use self::adversary::FLOOD_PREFIX;
use self::arrivals::Arrivals;
use self::socket::{Endpoint, Socket};
use crate::context::{Counters, RunContext};
use crate::ledger::{AgentOutcome, ChannelKey, MessageClass, Streams, Window};
use crate::metrics::Operation;
use crate::plan::AgentPlan;
use crate::scenario::{Behaviour, Group};

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
    /// An adversary's subscription flood: `limit_exceeded` is the bus
    /// bounding it; an `ok` is taken (up to the bus's budget).
    Flood,
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
    /// Planned send instants (agents that send on their own).
    arrivals: Option<Arrivals>,
    /// What it sent and awaits answers to.
    sending: Sending,
    /// What it is subscribed to and has received, for the ledger.
    listening: Listening,
    /// Queue jobs and requests being worked on.
    working: Working,
    /// Frames to write at the end of this turn.
    outbox: Vec<String>,
    /// This session's frames, added to its node's [`NodeTraffic`] when it
    /// ends.
    traffic: Traffic,
    outcome: AgentOutcome,
}

/// The requests side of an agent: sequence numbers and replies awaited.
#[derive(Debug, Default)]
struct Sending {
    /// Next sequence number per channel it sends on.
    seqs: HashMap<ChannelKey, u64>,
    next_request: u64,
    in_flight: HashMap<u64, InFlight>,
    /// Direct requests awaiting a response: seq → planned µs.
    outstanding: HashMap<u64, u64>,
}

/// The receiving side of an agent: its subscription windows and the
/// streams it has seen, from which the ledger counts what it was owed.
#[derive(Debug, Default)]
struct Listening {
    streams: Streams,
    /// Per pattern window: a message matching two of an agent's patterns
    /// arrives once per pattern (as Redis sends it), and each copy is owed
    /// to its own window, so each pattern tracks its streams apart.
    pattern_streams: HashMap<usize, Streams>,
    /// Open windows: exact channel → index, pattern → index.
    windows: Vec<Window>,
    /// Subscribing: deliveries may arrive before the bus's reply opens
    /// their windows; they are neither expected nor misrouted.
    subscribing: bool,
    exact: HashMap<ChannelKey, usize>,
    patterns: HashMap<String, usize>,
    /// Resuming groups: where the agent stopped reading each topic with
    /// history (kept across sessions).
    positions: HashMap<ChannelKey, resume::Position>,
    /// Resuming groups: windows ended by a lost connection, to be
    /// continued if the next subscribe recovers their topic.
    parked: HashMap<ChannelKey, Window>,
}

/// The working side of an agent: queue jobs claimed and requests being
/// answered.
#[derive(Debug, Default)]
struct Working {
    /// Inbox message ids already answered (bounded), to ignore redeliveries.
    answered: VecDeque<String>,
    work: VecDeque<WorkItem>,
    dequeue_pending: bool,
    /// Priority of the previous job in the current claimed batch.
    last_claimed_priority: Option<u8>,
}

/// Text frames written and `message` frames read in this session.
#[derive(Debug, Default)]
struct Traffic {
    frames_written: u64,
    messages_received: u64,
    /// Deliveries not yet added to the run's live `delivered` counter (one
    /// shared atomic: added once per read burst, not once per message).
    delivered_unposted: u64,
    /// While a read burst is handled: when it was read (run-clock µs, and
    /// the metrics' offset). Every frame of a burst had arrived when the
    /// burst began, so each is timed at that instant, read once per burst
    /// rather than twice per frame.
    read_at: Option<(u64, Duration)>,
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
    agent.hand_over_parked();
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
            sending: Sending::default(),
            listening: Listening::default(),
            working: Working::default(),
            outbox: Vec::new(),
            traffic: Traffic::default(),
            outcome: AgentOutcome::default(),
        }
    }

    /// Now on the run clock (µs); during a read burst, when it was read.
    fn now_us(&self) -> u64 {
        match self.traffic.read_at {
            Some((now_us, _)) => now_us,
            None => self.ctx.clock.now_us(),
        }
    }

    /// Records into this thread's recorder, at the metrics' offset of now
    /// (during a read burst, of when it was read).
    fn record(&self, f: impl FnOnce(&mut crate::metrics::Recorder, Duration)) {
        let local = self.ctx.hub.local();
        let at = match self.traffic.read_at {
            Some((_, at)) => at,
            None => local.elapsed(),
        };
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
