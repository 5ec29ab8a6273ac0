//! One agent's session: decodes its frames and runs each op through the
//! router, replying `ok` or `error`. One handler per op.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::outbound::Outbound;
use super::registry::ConnectionEntry;
use crate::message::names::{self, Channel, NameError};
use crate::message::{AgentMessage, DeliveryMode, MessageKind};
use crate::protocol::{
    self, BroadcastScope, ClientFrame, ErrorCode, Job, OkResult, QueueItem, RequestId, ServerFrame,
};
use crate::router::{DeliverySink, RouterError, SinkId};
use crate::state::AppState;

/// Most dequeue waits one connection may have in progress.
const MAX_WAITS: usize = 8;
/// Longest dequeue wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most messages claimed by one dequeue.
const MAX_CLAIM: usize = 100;
/// Most messages in one batch enqueue.
const MAX_BATCH: usize = 1000;
/// Inbox messages handed over per batch when the inbox is pumped.
const INBOX_BATCH: usize = 100;

/// A failed op: the error frame's code and text.
#[derive(Debug)]
pub(super) struct OpError {
    code: ErrorCode,
    message: String,
}

impl OpError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<NameError> for OpError {
    fn from(e: NameError) -> Self {
        let code = match e {
            NameError::Invalid { .. } => ErrorCode::InvalidName,
            NameError::CrossWorkspace { .. } => ErrorCode::CrossWorkspace,
            NameError::Forbidden { .. } => ErrorCode::Forbidden,
        };
        Self::new(code, e.to_string())
    }
}

impl From<RouterError> for OpError {
    fn from(e: RouterError) -> Self {
        let code = match &e {
            RouterError::Broker(crate::broker::BrokerError::QueueFull { .. }) => {
                ErrorCode::QueueFull
            }
            _ => ErrorCode::BrokerUnavailable,
        };
        Self::new(code, e.to_string())
    }
}

type OpResult = Result<OkResult, OpError>;

/// Per-connection state of the protocol.
pub(super) struct Session {
    pub state: AppState,
    pub entry: Arc<ConnectionEntry>,
    pub sink_id: SinkId,
    pub sink: Arc<dyn DeliverySink>,
    pub outbound: Outbound,
    waits: Arc<Semaphore>,
    /// Start of the current one-second rate window and frames seen in it.
    window: (Instant, u32),
}

impl Session {
    pub fn new(
        state: AppState,
        entry: Arc<ConnectionEntry>,
        sink_id: SinkId,
        sink: Arc<dyn DeliverySink>,
        outbound: Outbound,
    ) -> Self {
        Self {
            state,
            entry,
            sink_id,
            sink,
            outbound,
            waits: Arc::new(Semaphore::new(MAX_WAITS)),
            window: (Instant::now(), 0),
        }
    }

    fn identity(&self) -> &crate::auth::Identity {
        &self.entry.identity
    }

    /// The channels every agent holds: its inbox, its workspace, broadcast.
    pub fn default_channels(&self) -> Vec<Channel> {
        let id = self.identity();
        vec![
            names::inbox_channel(&id.workspace, &id.agent),
            names::workspace_channel(&id.workspace),
            Channel::Broadcast,
        ]
    }

    /// Subscribes the defaults and greets the agent.
    pub async fn open(&mut self) -> Result<(), OpError> {
        let channels = self.default_channels();
        self.state
            .router
            .subscribe(self.sink_id, &self.sink, &channels)
            .await?;
        let wire: Vec<String> = channels.iter().map(Channel::wire_name).collect();
        self.entry
            .subscriptions
            .lock()
            .expect("lock")
            .topics
            .extend(wire.iter().cloned());
        let id = self.identity();
        self.outbound.push_frame(&ServerFrame::Welcome {
            connection_id: self.entry.id,
            agent: id.agent.clone(),
            workspace: id.workspace.clone(),
            node: self.state.node.clone(),
            subscribed: wire,
        });
        Ok(())
    }

    /// Drops every subscription of the connection.
    pub async fn close(&self) {
        let subs = self.entry.subscriptions.lock().expect("lock").clone();
        let scope = self.identity().scope();
        let channels: Vec<Channel> = subs
            .topics
            .iter()
            .filter_map(|t| names::resolve_topic(scope, t).ok())
            .collect();
        let patterns: Vec<String> = subs
            .patterns
            .iter()
            .filter_map(|p| names::resolve_pattern(scope, p).ok())
            .collect();
        self.state.router.unsubscribe(self.sink_id, &channels).await;
        self.state
            .router
            .punsubscribe(self.sink_id, &patterns)
            .await;
    }

    /// Hands waiting inbox messages over as `job` frames, in batches, until
    /// the inbox is empty or half the outbound queue is used.
    pub async fn pump_inbox(&self) {
        let id = self.identity();
        let budget = self.state.config.outbound_queue / 2;
        let mut handed = 0;
        while handed < budget {
            let claimed = match self
                .state
                .router
                .pending(&id.workspace, &id.agent, INBOX_BATCH.min(budget - handed))
                .await
            {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(cause = %err, agent = %id.agent, "inbox pump failed");
                    return;
                }
            };
            let n = claimed.len();
            for c in claimed {
                self.outbound.push_frame(&ServerFrame::Job {
                    job: Job::new(names::INBOX, c),
                });
            }
            handed += n;
            if n < INBOX_BATCH {
                return;
            }
        }
    }

    /// Handles one text frame.
    pub async fn handle(&mut self, text: &str) {
        let telemetry = &self.state.telemetry;
        let frame = match protocol::decode(text) {
            Ok(frame) => frame,
            Err(e) => {
                telemetry.frame_in("invalid");
                self.reply_error(e.id, OpError::new(e.code, e.message));
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
                self.outbound.push_frame(&ServerFrame::Pong { id, data });
                return;
            }
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
            frame => self.run(frame).await,
        };
        match result {
            Ok(ok) => {
                self.outbound.push_frame(&ServerFrame::ok(id, op, ok));
            }
            Err(e) => self.reply_error(id, e),
        }
    }

    fn reply_error(&self, id: Option<RequestId>, e: OpError) {
        self.state.telemetry.error(e.code);
        self.outbound
            .push_frame(&ServerFrame::error(id, e.code, e.message));
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

    async fn run(&mut self, frame: ClientFrame) -> OpResult {
        match frame {
            ClientFrame::Subscribe { topics, .. } => self.subscribe(topics).await,
            ClientFrame::Psubscribe { patterns, .. } => self.psubscribe(patterns).await,
            ClientFrame::Unsubscribe {
                topics, patterns, ..
            } => self.unsubscribe(topics, patterns).await,
            ClientFrame::Publish {
                topic,
                payload,
                kind,
                correlation_id,
                ..
            } => self.publish(topic, payload, kind, correlation_id).await,
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
                let message = self.new_message(&to, payload, kind).with_priority(priority);
                let message = match correlation_id {
                    Some(c) => message.with_correlation_id(c),
                    None => message,
                };
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
            ClientFrame::Ping { .. } => Ok(OkResult::default()),
        }
    }

    fn new_message(
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

    fn allowed(&self, wire: &str) -> Result<(), OpError> {
        if self.identity().may_use(wire) {
            Ok(())
        } else {
            Err(OpError::new(
                ErrorCode::Forbidden,
                format!("{wire:?} is outside the topics your token allows"),
            ))
        }
    }

    fn resolve_topics(&self, topics: &[String]) -> Result<Vec<Channel>, OpError> {
        let scope = self.identity().scope();
        topics
            .iter()
            .map(|t| {
                self.allowed(t)?;
                Ok(names::resolve_topic(scope, t)?)
            })
            .collect()
    }

    fn resolve_patterns(&self, patterns: &[String]) -> Result<Vec<String>, OpError> {
        let scope = self.identity().scope();
        patterns
            .iter()
            .map(|p| {
                self.allowed(p)?;
                Ok(names::resolve_pattern(scope, p)?)
            })
            .collect()
    }

    async fn subscribe(&mut self, topics: Vec<String>) -> OpResult {
        let channels = self.resolve_topics(&topics)?;
        self.state
            .router
            .subscribe(self.sink_id, &self.sink, &channels)
            .await?;
        let wire: Vec<String> = channels.iter().map(Channel::wire_name).collect();
        let mut subs = self.entry.subscriptions.lock().expect("lock");
        subs.topics.extend(wire.iter().cloned());
        Ok(OkResult {
            topics: wire,
            ..Default::default()
        })
    }

    async fn psubscribe(&mut self, patterns: Vec<String>) -> OpResult {
        let resolved = self.resolve_patterns(&patterns)?;
        self.state
            .router
            .psubscribe(self.sink_id, &self.sink, &resolved)
            .await?;
        let mut subs = self.entry.subscriptions.lock().expect("lock");
        subs.patterns.extend(patterns.iter().cloned());
        Ok(OkResult {
            patterns,
            ..Default::default()
        })
    }

    async fn unsubscribe(&mut self, topics: Vec<String>, patterns: Vec<String>) -> OpResult {
        let scope = self.identity().scope();
        let channels = topics
            .iter()
            .map(|t| names::resolve_topic(scope, t))
            .collect::<Result<Vec<_>, _>>()?;
        let resolved = patterns
            .iter()
            .map(|p| names::resolve_pattern(scope, p))
            .collect::<Result<Vec<_>, _>>()?;
        self.state.router.unsubscribe(self.sink_id, &channels).await;
        self.state
            .router
            .punsubscribe(self.sink_id, &resolved)
            .await;
        let wire: Vec<String> = channels.iter().map(Channel::wire_name).collect();
        let mut subs = self.entry.subscriptions.lock().expect("lock");
        for t in &wire {
            subs.topics.remove(t);
        }
        for p in &patterns {
            subs.patterns.remove(p);
        }
        Ok(OkResult {
            topics: wire,
            patterns,
            ..Default::default()
        })
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: serde_json::Value,
        kind: MessageKind,
        correlation_id: Option<String>,
    ) -> OpResult {
        self.allowed(&topic)?;
        let channel = names::resolve_topic(self.identity().scope(), &topic)?;
        match channel {
            Channel::Topic { .. } | Channel::Workspace(_) => {}
            Channel::Broadcast => {
                return Err(OpError::new(
                    ErrorCode::Forbidden,
                    "use the broadcast op with scope \"global\"",
                ));
            }
            Channel::Inbox { .. } | Channel::Internal(_) => {
                return Err(OpError::new(
                    ErrorCode::Forbidden,
                    "inboxes take direct messages: use the send op",
                ));
            }
        }
        let mut message = self.new_message(&topic, payload, kind);
        message.correlation_id = correlation_id;
        let id = message.id.clone();
        let receivers = self.state.router.publish(&channel, message).await?;
        Ok(OkResult {
            receivers: Some(receivers),
            message_ids: vec![id],
            ..Default::default()
        })
    }

    async fn send(
        &mut self,
        to: String,
        workspace: Option<String>,
        message: AgentMessage,
        mode: DeliveryMode,
    ) -> OpResult {
        let own = &self.identity().workspace;
        if let Some(w) = workspace.filter(|w| w != own) {
            return Err(NameError::CrossWorkspace {
                name: format!("agent {to} of workspace {w}"),
            }
            .into());
        }
        names::validate_id("agent id", &to)?;
        let id = message.id.clone();
        let outcome = self
            .state
            .router
            .send_direct(own, &to, message, mode)
            .await?;
        Ok(OkResult {
            receivers: Some(outcome.live),
            stored: Some(outcome.stored),
            message_ids: vec![id],
            ..Default::default()
        })
    }

    async fn broadcast(
        &mut self,
        scope: BroadcastScope,
        workspace: Option<String>,
        payload: serde_json::Value,
        kind: MessageKind,
    ) -> OpResult {
        let own = self.identity().workspace.clone();
        let receivers;
        let message;
        match scope {
            BroadcastScope::Workspace => {
                if let Some(w) = workspace.filter(|w| *w != own) {
                    return Err(NameError::CrossWorkspace {
                        name: format!("workspace:{w}"),
                    }
                    .into());
                }
                message = self.new_message(names::WORKSPACE, payload, kind);
                let id = message.id.clone();
                receivers = (
                    self.state.router.broadcast_workspace(&own, message).await?,
                    id,
                );
            }
            BroadcastScope::Global => {
                if !self.identity().global_broadcast {
                    return Err(OpError::new(
                        ErrorCode::Forbidden,
                        "your token does not allow global broadcasts",
                    ));
                }
                message = self.new_message(names::BROADCAST, payload, kind);
                let id = message.id.clone();
                receivers = (self.state.router.broadcast_global(message).await?, id);
            }
        }
        Ok(OkResult {
            receivers: Some(receivers.0),
            message_ids: vec![receivers.1],
            ..Default::default()
        })
    }

    fn resolve_queue(&self, queue: &str) -> Result<String, OpError> {
        self.allowed(queue)?;
        Ok(names::resolve_queue(self.identity().scope(), queue)?)
    }

    async fn enqueue(
        &mut self,
        queue: String,
        payload: Option<serde_json::Value>,
        priority: u8,
        items: Vec<QueueItem>,
    ) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        let items = match (payload, items.is_empty()) {
            (Some(payload), true) => vec![QueueItem { payload, priority }],
            (None, false) if items.len() <= MAX_BATCH => items,
            (None, false) => {
                return Err(OpError::new(
                    ErrorCode::BadFrame,
                    format!("at most {MAX_BATCH} messages per enqueue"),
                ));
            }
            _ => {
                return Err(OpError::new(
                    ErrorCode::BadFrame,
                    "enqueue takes either `payload` or `messages`",
                ));
            }
        };
        let messages: Vec<AgentMessage> = items
            .into_iter()
            .map(|i| {
                self.new_message(&queue, i.payload, MessageKind::Notification)
                    .with_priority(i.priority)
            })
            .collect();
        self.state.router.enqueue(&resolved, &messages).await?;
        Ok(OkResult {
            message_ids: messages.into_iter().map(|m| m.id).collect(),
            ..Default::default()
        })
    }

    async fn dequeue_now(&mut self, queue: String, max: usize) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        let claimed = self
            .state
            .router
            .claim(&resolved, max.clamp(1, MAX_CLAIM))
            .await?;
        Ok(OkResult {
            jobs: Some(claimed.into_iter().map(|c| Job::new(&queue, c)).collect()),
            ..Default::default()
        })
    }

    /// A dequeue that may wait runs beside the reader, so the connection
    /// keeps serving other requests meanwhile.
    fn dequeue_waiting(
        &self,
        id: Option<RequestId>,
        queue: String,
        max: usize,
        wait_ms: u64,
    ) -> Result<(), OpError> {
        let resolved = self.resolve_queue(&queue)?;
        let permit = self.waits.clone().try_acquire_owned().map_err(|_| {
            OpError::new(
                ErrorCode::Busy,
                format!("at most {MAX_WAITS} waiting dequeues per connection"),
            )
        })?;
        let router = self.state.router.clone();
        let outbound = self.outbound.clone();
        let telemetry_state = self.state.clone();
        let close = self.entry.close.clone();
        let wait = Duration::from_millis(wait_ms).min(MAX_WAIT);
        tokio::spawn(async move {
            let _permit = permit;
            let claimed = tokio::select! {
                _ = close.cancelled() => return,
                c = router.dequeue(&resolved, max.clamp(1, MAX_CLAIM), wait) => c,
            };
            let frame = match claimed {
                Ok(claimed) => ServerFrame::ok(
                    id,
                    "dequeue",
                    OkResult {
                        jobs: Some(claimed.into_iter().map(|c| Job::new(&queue, c)).collect()),
                        ..Default::default()
                    },
                ),
                Err(e) => {
                    let e = OpError::from(e);
                    telemetry_state.telemetry.error(e.code);
                    ServerFrame::error(id, e.code, e.message)
                }
            };
            outbound.push_frame(&frame);
        });
        Ok(())
    }

    async fn ack(
        &mut self,
        queue: String,
        message_id: Option<String>,
        message_ids: Vec<String>,
    ) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        match (message_id, message_ids.len()) {
            (Some(message_id), 0) => {
                let acked = self.state.router.ack(&resolved, &message_id).await?;
                Ok(OkResult {
                    acked: Some(acked),
                    ..Default::default()
                })
            }
            (None, 1..=MAX_BATCH) => {
                let acks = self.state.router.ack_many(&resolved, &message_ids).await?;
                Ok(OkResult {
                    acks,
                    ..Default::default()
                })
            }
            (None, n) if n > MAX_BATCH => Err(OpError::new(
                ErrorCode::BadFrame,
                format!("at most {MAX_BATCH} message ids per ack"),
            )),
            _ => Err(OpError::new(
                ErrorCode::BadFrame,
                "ack takes either `message_id` or `message_ids`",
            )),
        }
    }

    async fn reject(
        &mut self,
        queue: String,
        message_id: String,
        reason: String,
        requeue: bool,
    ) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        let reason = if reason.is_empty() {
            "rejected".to_owned()
        } else {
            reason
        };
        let outcome = self
            .state
            .router
            .reject(&resolved, &message_id, &reason, requeue)
            .await?;
        Ok(OkResult {
            outcome,
            ..Default::default()
        })
    }
}
