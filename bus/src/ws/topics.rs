//! The topic ops of a session: subscribe, psubscribe, unsubscribe, publish;
//! and the connection's subscription bookkeeping, kept in one place: every
//! change goes to the router's index (what the node receives) and to the
//! registry entry (what operators see and what close releases) together.

use std::collections::BTreeMap;

use super::session::{OpResult, Session};
use crate::limits::QuotaError;
use crate::message::MessageKind;
use crate::message::names::{self, Channel, NameError, Scope};
use crate::protocol::{ErrorCode, OkResult, RequestId, ResumePoint, ServerFrame};
use crate::reply::OpError;

impl Session {
    /// Subscribes the connection to `channels` and records them; returns
    /// their wire names.
    pub(super) async fn hold_channels(&self, channels: &[Channel]) -> Result<Vec<String>, OpError> {
        self.state
            .router
            .subscribe(self.sink_id, &self.sink, channels)
            .await?;
        let wire: Vec<String> = channels.iter().map(Channel::wire_name).collect();
        let mut subs = self.entry.subscriptions.lock().expect("lock");
        subs.topics.extend(wire.iter().cloned());
        Ok(wire)
    }

    /// Subscribes the connection to broker patterns `resolved` and records
    /// them under their wire names `wire`.
    async fn hold_patterns(&self, wire: &[String], resolved: &[String]) -> Result<(), OpError> {
        self.state
            .router
            .psubscribe(self.sink_id, &self.sink, resolved)
            .await?;
        let mut subs = self.entry.subscriptions.lock().expect("lock");
        subs.patterns.extend(wire.iter().cloned());
        Ok(())
    }

    /// Whether a wire topic counts against the budgets: every topic but the
    /// inbox, workspace and broadcast channels each connection holds.
    fn counted(&self, wire: &str) -> bool {
        !self.defaults.iter().any(|d| d == wire)
    }

    /// Checks that `wanted` wire names (topics, or patterns when
    /// `patterns`) fit the connection's and its workspace's budgets, and
    /// charges the workspace for those the connection does not hold yet;
    /// returns them (to refund if the subscribe fails).
    fn charge(&self, wanted: &[String], patterns: bool) -> Result<Vec<String>, OpError> {
        let config = &self.state.config;
        let (fresh, held, max, what) = {
            let subs = self.entry.subscriptions.lock().expect("lock");
            let held_names = if patterns {
                &subs.patterns
            } else {
                &subs.topics
            };
            let fresh: std::collections::BTreeSet<&String> = wanted
                .iter()
                .filter(|w| !held_names.contains(*w) && (patterns || self.counted(w)))
                .collect();
            let fresh: Vec<String> = fresh.into_iter().cloned().collect();
            let held = held_names
                .iter()
                .filter(|w| patterns || self.counted(w))
                .count();
            if patterns {
                (fresh, held, config.max_patterns_per_connection, "patterns")
            } else {
                (fresh, held, config.max_topics_per_connection, "topics")
            }
        };
        if held + fresh.len() > max {
            return Err(QuotaError {
                what,
                per: "connection",
                max,
            }
            .into());
        }
        let workspace = &self.identity().workspace;
        let registry = &self.state.registry;
        registry.charge_subscriptions(
            workspace,
            fresh.len(),
            config.max_subscriptions_per_workspace,
        )?;
        if patterns {
            let charged =
                registry.charge_patterns(workspace, &fresh, config.max_patterns_per_workspace);
            if let Err(e) = charged {
                registry.refund_subscriptions(workspace, fresh.len());
                return Err(e.into());
            }
        }
        Ok(fresh)
    }

    /// Gives back what [`Session::charge`] charged for `names`.
    fn refund(&self, names: &[String], patterns: bool) {
        let workspace = &self.identity().workspace;
        let registry = &self.state.registry;
        registry.refund_subscriptions(workspace, names.len());
        if patterns {
            registry.refund_patterns(workspace, names);
        }
    }

    /// Drops channels and patterns (broker patterns `resolved`, recorded as
    /// `wire_patterns`) from the connection; returns the channels' wire
    /// names.
    async fn release(
        &self,
        channels: &[Channel],
        resolved: &[String],
        wire_patterns: &[String],
    ) -> Vec<String> {
        let router = &self.state.router;
        router.unsubscribe(self.sink_id, channels).await;
        router.punsubscribe(self.sink_id, resolved).await;
        let wire: Vec<String> = channels.iter().map(Channel::wire_name).collect();
        let (mut topics, mut patterns) = (Vec::new(), Vec::new());
        {
            let mut subs = self.entry.subscriptions.lock().expect("lock");
            for t in &wire {
                if subs.topics.remove(t) && self.counted(t) {
                    topics.push(t.clone());
                }
            }
            for p in wire_patterns {
                if subs.patterns.remove(p) {
                    patterns.push(p.clone());
                }
            }
        }
        self.refund(&topics, false);
        self.refund(&patterns, true);
        wire
    }

    /// Drops everything the connection holds (on close).
    pub(super) async fn release_all(&self) {
        let subs = self.entry.subscriptions.lock().expect("lock").clone();
        let scope = self.identity().scope();
        let channels: Vec<Channel> = subs
            .topics
            .iter()
            .filter_map(|t| names::resolve_topic(scope, t).ok())
            .collect();
        let wire_patterns: Vec<String> = subs.patterns.into_iter().collect();
        let resolved: Vec<String> = wire_patterns
            .iter()
            .filter_map(|p| names::resolve_pattern(scope, p).ok())
            .collect();
        self.release(&channels, &resolved, &wire_patterns).await;
    }

    /// Resolves wire names the agent's token allows, with `resolve`
    /// (topics or patterns); the first refusal refuses them all.
    fn resolve_allowed<T>(
        &self,
        wire: &[String],
        resolve: impl Fn(Scope<'_>, &str) -> Result<T, NameError>,
    ) -> Result<Vec<T>, OpError> {
        let scope = self.identity().scope();
        wire.iter()
            .map(|name| {
                self.allowed(name)?;
                Ok(resolve(scope, name)?)
            })
            .collect()
    }

    /// Subscribes to `topics`; those of them with history that `resume`
    /// names are replayed from the agent's offset (see [`super::history`]),
    /// the others say where their history stands.
    pub(super) async fn subscribe(
        &mut self,
        topics: Vec<String>,
        resume: BTreeMap<String, ResumePoint>,
    ) -> OpResult {
        let channels = self.resolve_allowed(&topics, names::resolve_topic)?;
        let points = self.resume_points(&topics, &channels, resume)?;
        let wire: Vec<String> = channels.iter().map(Channel::wire_name).collect();
        let charged = self.charge(&wire, false)?;
        let gated = self.hold_resumed(&channels, &points);
        let topics = match self.hold_channels(&channels).await {
            Ok(topics) => topics,
            Err(e) => {
                self.refund(&charged, false);
                for channel in gated {
                    self.gates.remove(&channel);
                }
                return Err(e);
            }
        };
        let history = self.histories(&channels, points).await;
        Ok(OkResult {
            topics,
            history,
            ..Default::default()
        })
    }

    pub(super) async fn psubscribe(&mut self, patterns: Vec<String>) -> OpResult {
        let resolved = self.resolve_allowed(&patterns, names::resolve_pattern)?;
        let charged = self.charge(&patterns, true)?;
        if let Err(e) = self.hold_patterns(&patterns, &resolved).await {
            self.refund(&charged, true);
            return Err(e);
        }
        Ok(OkResult {
            patterns,
            ..Default::default()
        })
    }

    /// Unsubscribing needs no permission: it can only give something up.
    pub(super) async fn unsubscribe(
        &mut self,
        topics: Vec<String>,
        patterns: Vec<String>,
    ) -> OpResult {
        let scope = self.identity().scope();
        let channels = topics
            .iter()
            .map(|t| names::resolve_topic(scope, t))
            .collect::<Result<Vec<_>, _>>()?;
        let resolved = patterns
            .iter()
            .map(|p| names::resolve_pattern(scope, p))
            .collect::<Result<Vec<_>, _>>()?;
        let topics = self.release(&channels, &resolved, &patterns).await;
        Ok(OkResult {
            topics,
            patterns,
            ..Default::default()
        })
    }

    /// Publishes to a topic or the agent's workspace; broadcasts and
    /// inboxes have their own ops, which check their own permissions.
    /// Returns once the publish has its place in the node's publish
    /// pipeline; its reply (`ok` with the receiving nodes, or `error`)
    /// follows in [`Session::in_flight`] when the broker has answered.
    pub(super) async fn publish(
        &mut self,
        id: Option<RequestId>,
        topic: String,
        payload: serde_json::Value,
        kind: MessageKind,
        correlation_id: Option<String>,
    ) -> Result<(), OpError> {
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
        let message_id = message.id.clone();
        let pending = self.state.router.submit_publish(&channel, message).await?;
        let state = self.state.clone();
        let bytes = pending.bytes();
        self.in_flight.push(bytes, async move {
            match pending.await {
                Ok(published) => ServerFrame::ok(
                    id,
                    "publish",
                    OkResult {
                        receivers: Some(published.receivers),
                        message_ids: vec![message_id],
                        offset: published.stamp.as_ref().map(|s| s.offset.to_string()),
                        epoch: published.stamp.map(|s| s.epoch),
                        ..Default::default()
                    },
                ),
                Err(e) => {
                    let e = OpError::from(e);
                    state.telemetry.error(e.code);
                    ServerFrame::error(id, e.code, e.message)
                }
            }
        });
        Ok(())
    }
}
