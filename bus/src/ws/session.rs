//! One agent's session: decodes its frames, applies the rate limit and
//! dispatches each op to the handler of its family ([`super::topics`],
//! [`super::direct`], [`super::queues`]), replying `ok` or `error`; and the
//! session's life around that: the default subscriptions and the greeting
//! on open, the inbox pump, dropping every subscription on close.
//!
//! Publishes do not hold up the reader: each is handed to the node's
//! publish pipeline and its reply waits in [`InFlight`] while the next
//! frames are read. Any other op first lets the replies on their way go
//! out, so replies and side effects keep request order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::gate::Gates;
use super::in_flight::InFlight;
use super::outbound::Outbound;
use crate::auth::Identity;
use crate::limits;
use crate::message::names::{self, Channel};
use crate::message::{AgentMessage, MessageKind};
use crate::protocol::{self, ClientFrame, ErrorCode, Job, OkResult, RequestId, ServerFrame};
use crate::registry::ConnectionEntry;
use crate::reply::{self, OpError};
use crate::router::{DeliverySink, SinkId};
use crate::state::AppState;

/// Inbox messages handed over per batch when the inbox is pumped.
const INBOX_BATCH: usize = 100;

/// The channels every agent holds: its inbox, its workspace, broadcast.
fn default_channels(id: &Identity) -> [Channel; 3] {
    [
        names::inbox_channel(&id.workspace, &id.agent),
        names::workspace_channel(&id.workspace),
        Channel::Broadcast,
    ]
}

/// What an op handler answers: the `ok` reply's fields, or the error.
pub(super) type OpResult = Result<OkResult, OpError>;

/// Per-connection state of the protocol. The op families add their
/// handlers to it in their own files.
pub(super) struct Session {
    pub(super) state: AppState,
    pub(super) entry: Arc<ConnectionEntry>,
    /// This connection's id in the router's subscription index.
    pub(super) sink_id: SinkId,
    /// Where the router delivers this connection's subscriptions.
    pub(super) sink: Arc<dyn DeliverySink>,
    pub(super) outbound: Outbound,
    /// Permits of waiting dequeues, so one connection holds at most
    /// [`limits::MAX_WAITS`] of them.
    pub(super) waits: Arc<Semaphore>,
    /// Wire names of the channels every connection holds (its inbox, its
    /// workspace, broadcast), which the subscription budgets do not count.
    pub(super) defaults: [String; 3],
    /// Start of the current one-second rate window and frames seen in it.
    window: (Instant, u32),
    /// Inbox jobs claimed and not yet queued for the client (at most one
    /// claim's worth), waiting for room in the outbound queue.
    inbox_backlog: VecDeque<Job>,
    /// Replies of requests on their way (publishes), in request order.
    pub(super) in_flight: InFlight,
    /// Topics whose live messages wait for a resume (shared with the sink).
    pub(super) gates: Arc<Gates>,
    /// Resumes whose reply is about to go out: after it, each topic's
    /// replay and held messages.
    pub(super) resumes: Vec<Resume>,
}

/// A resumed topic to open once the `subscribe` reply is out.
pub(super) struct Resume {
    /// Its broker channel.
    pub(super) channel: String,
    /// The replayed messages, as frames.
    pub(super) replay: Vec<axum::extract::ws::Utf8Bytes>,
    /// Live copies up to this `n` are dropped (`None`: none are, the
    /// resume recovered nothing).
    pub(super) floor: Option<u64>,
}

impl Session {
    pub(super) fn new(
        state: AppState,
        entry: Arc<ConnectionEntry>,
        sink_id: SinkId,
        sink: Arc<dyn DeliverySink>,
        outbound: Outbound,
        gates: Arc<Gates>,
    ) -> Self {
        let defaults = default_channels(&entry.identity).map(|c| c.wire_name());
        Self {
            state,
            entry,
            sink_id,
            sink,
            outbound,
            waits: Arc::new(Semaphore::new(limits::MAX_WAITS)),
            defaults,
            window: (Instant::now(), 0),
            inbox_backlog: VecDeque::new(),
            in_flight: InFlight::default(),
            gates,
            resumes: Vec::new(),
        }
    }

    pub(super) fn identity(&self) -> &Identity {
        &self.entry.identity
    }

    /// Subscribes the channels every agent holds (its inbox, its workspace,
    /// broadcast) and greets the agent.
    pub(super) async fn open(&mut self) -> Result<(), OpError> {
        let channels = default_channels(self.identity());
        let subscribed = self.hold_channels(&channels).await?;
        let id = self.identity();
        self.outbound.push_frame(&ServerFrame::Welcome {
            connection_id: self.entry.id,
            agent: id.agent.clone(),
            workspace: id.workspace.clone(),
            node: self.state.node.clone(),
            subscribed,
        });
        Ok(())
    }

    /// Drops every subscription of the connection.
    pub(super) async fn close(&self) {
        self.release_all().await;
    }

    /// Hands waiting inbox messages over as `job` frames, in batches,
    /// while the outbound queue is less than half full (in frames and in
    /// bytes, so that a backlog of large messages never makes the client a
    /// slow consumer); when it is, asks the writer to say when it has
    /// drained, and goes on then.
    pub(super) async fn pump_inbox(&mut self) {
        let config = &self.state.config;
        let (max_frames, max_bytes) = (config.outbound_queue / 2, config.outbound_bytes / 2);
        let mut emptied = false;
        loop {
            let (frames, bytes) = self.outbound.occupancy();
            if frames >= max_frames || bytes >= max_bytes {
                self.outbound.notify_when_drained();
                return;
            }
            if let Some(job) = self.inbox_backlog.pop_front() {
                self.outbound.push_frame(&ServerFrame::Job { job });
                continue;
            }
            if emptied {
                return;
            }
            let id = self.identity();
            let asked = INBOX_BATCH.min(max_frames - frames);
            let claimed = match self
                .state
                .router
                .pending(&id.workspace, &id.agent, asked)
                .await
            {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(cause = %err, agent = %id.agent, "inbox pump failed");
                    return;
                }
            };
            emptied = claimed.len() < asked;
            self.inbox_backlog
                .extend(reply::jobs(names::INBOX, claimed));
        }
    }

    /// Handles one text frame.
    pub(super) async fn handle(&mut self, text: &str) {
        let telemetry = &self.state.telemetry;
        let frame = match protocol::decode(text) {
            Ok(frame) => frame,
            Err(e) => {
                telemetry.frame_in("invalid");
                self.reply_error(e.id.clone(), e.into());
                return;
            }
        };
        telemetry.frame_in(frame.op());
        let id = frame.id().cloned();
        if let Err(e) = self.check_rate() {
            self.reply_error(id, e);
            return;
        }
        let op = frame.op();
        let result = match frame {
            ClientFrame::Ping { id, data } => {
                self.reply(ServerFrame::Pong { id, data });
                return;
            }
            ClientFrame::Publish {
                topic,
                payload,
                kind,
                correlation_id,
                ..
            } => {
                let published = self.publish(id.clone(), topic, payload, kind, correlation_id);
                if let Err(e) = published.await {
                    self.reply_error(id, e);
                }
                return;
            }
            frame => {
                // Replies on their way go first: this op's reply and its
                // effects come after theirs, as the client sent them.
                self.flush_in_flight().await;
                match frame {
                    ClientFrame::Dequeue {
                        queue,
                        max,
                        wait_ms,
                        ..
                    } if wait_ms > 0 => {
                        if let Err(e) = self.dequeue_waiting(id.clone(), queue, max, wait_ms) {
                            self.reply_error(id, e);
                        }
                        return;
                    }
                    frame => self.dispatch(frame).await,
                }
            }
        };
        match result {
            Ok(ok) => self.reply(ServerFrame::ok(id, op, ok)),
            Err(e) => self.reply_error(id, e),
        }
        // A subscribe's resumed topics: their replay follows its reply.
        for resume in std::mem::take(&mut self.resumes) {
            let outbound = &self.outbound;
            self.gates
                .open(&resume.channel, resume.replay, resume.floor, |frame| {
                    outbound.deliver(frame)
                });
        }
    }

    /// Sends a reply now, or, while replies are on their way, after them.
    fn reply(&mut self, frame: ServerFrame) {
        if self.in_flight.is_empty() {
            self.outbound.push_frame(&frame);
        } else {
            self.in_flight.push_ready(frame);
        }
    }

    /// Waits for every reply on its way and sends them, in order.
    pub(super) async fn flush_in_flight(&mut self) {
        while !self.in_flight.is_empty() {
            let frame = self.in_flight.next().await;
            self.outbound.push_frame(&frame);
        }
    }

    pub(super) fn reply_error(&mut self, id: Option<RequestId>, e: OpError) {
        self.state.telemetry.error(e.code);
        self.reply(ServerFrame::error(id, e.code, e.message));
    }

    fn check_rate(&mut self) -> Result<(), OpError> {
        let limit = self.state.config.max_frames_per_sec;
        if limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        if self.window.1 > limit {
            return Err(OpError::new(
                ErrorCode::RateLimited,
                format!("more than {limit} frames per second"),
            ));
        }
        Ok(())
    }

    /// One handler per op; each family's handlers live in its own file.
    async fn dispatch(&mut self, frame: ClientFrame) -> OpResult {
        match frame {
            ClientFrame::Subscribe { topics, resume, .. } => self.subscribe(topics, resume).await,
            ClientFrame::Psubscribe { patterns, .. } => self.psubscribe(patterns).await,
            ClientFrame::Unsubscribe {
                topics, patterns, ..
            } => self.unsubscribe(topics, patterns).await,
            ClientFrame::Send {
                to,
                workspace,
                payload,
                mode,
                kind,
                priority,
                correlation_id,
                ..
            } => {
                let mut message = self.new_message(&to, payload, kind).with_priority(priority);
                message.correlation_id = correlation_id;
                self.send(to, workspace, message, mode).await
            }
            ClientFrame::Broadcast {
                scope,
                workspace,
                payload,
                kind,
                ..
            } => self.broadcast(scope, workspace, payload, kind).await,
            ClientFrame::Enqueue {
                queue,
                payload,
                priority,
                messages,
                ..
            } => self.enqueue(queue, payload, priority, messages).await,
            ClientFrame::Dequeue { queue, max, .. } => self.dequeue_now(queue, max).await,
            ClientFrame::Ack {
                queue,
                message_id,
                message_ids,
                ..
            } => self.ack(queue, message_id, message_ids).await,
            ClientFrame::Reject {
                queue,
                message_id,
                reason,
                requeue,
                ..
            } => self.reject(queue, message_id, reason, requeue).await,
            ClientFrame::History { topic, last, .. } => self.history(topic, last).await,
            ClientFrame::Ping { .. } | ClientFrame::Publish { .. } => {
                unreachable!("ping and publish are answered by handle")
            }
        }
    }

    /// A message from this agent, in its workspace.
    pub(super) fn new_message(
        &self,
        topic: &str,
        payload: serde_json::Value,
        kind: MessageKind,
    ) -> AgentMessage {
        AgentMessage::new(topic, payload)
            .with_kind(kind)
            .from_agent(&self.identity().agent)
            .in_workspace(&self.identity().workspace)
    }

    /// Refuses a wire name outside the topics the agent's token allows.
    pub(super) fn allowed(&self, wire: &str) -> Result<(), OpError> {
        if self.identity().may_use(wire) {
            Ok(())
        } else {
            Err(OpError::new(
                ErrorCode::Forbidden,
                format!("{wire:?} is outside the topics your token allows"),
            ))
        }
    }
}
