//! Sending: subscriptions at connect, and the scheduled messages of each
//! behaviour (publish, direct request, broadcast, enqueue).

use std::collections::HashSet;
use std::fmt::Write;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use tokio_tungstenite::tungstenite::Message;

use super::socket::Socket;
use super::wire::{self, Stamp};
use super::{Agent, InFlight};
use crate::context::Counters;
use crate::ledger::{ChannelKey, MessageClass};
use crate::metrics::Operation;
use crate::plan::Subscriptions;
use crate::scenario::{Behaviour, BroadcastScope, Delivery, TopicDistribution};

/// How long an agent waits for its subscribe reply.
const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Agent<'_> {
    /// An index into `n` topics by the group's distribution.
    fn pick_index(&mut self, n: usize) -> usize {
        match self.group.topics.distribution {
            TopicDistribution::Uniform => self.rng.random_range(0..n),
            TopicDistribution::Zipf => Zipf::new(n as f64, self.group.topics.zipf_exponent)
                .map(|z| (z.sample(&mut self.rng) as usize).clamp(1, n) - 1)
                .unwrap_or(0),
        }
    }

    /// The frame that subscribes this agent on connect, written from its
    /// plan's [`Subscriptions`] (as its windows are), if it subscribes.
    pub(super) fn subscribe_frame(&self) -> Option<String> {
        let frame = match &self.plan.subscriptions {
            Subscriptions::None => return None,
            Subscriptions::Topics(ids) => {
                let names: Vec<&str> = ids
                    .iter()
                    .map(|id| self.ctx.plan.topics.name(*id))
                    .collect();
                let mut frame = serde_json::json!({"op":"subscribe","id":"setup","topics":names});
                if let Some(resume) = self.resume_field() {
                    frame["resume"] = resume;
                }
                frame
            }
            Subscriptions::Patterns(patterns) => {
                let globs: Vec<&str> = patterns.iter().map(|p| p.glob.as_str()).collect();
                serde_json::json!({"op":"psubscribe","id":"setup","patterns":globs})
            }
        };
        Some(frame.to_string())
    }

    /// Subscribes (topics or patterns) and waits for the reply; windows open
    /// at the reply, when the bus is known to deliver.
    pub(super) async fn subscribe(
        &mut self,
        sink: &mut SplitSink<Socket, Message>,
        stream: &mut SplitStream<Socket>,
    ) -> bool {
        let Some(frame) = self.subscribe_frame() else {
            return true;
        };
        if let Some(log) = &self.ctx.frame_log {
            log.record(&frame);
        }
        if sink.send(Message::text(frame)).await.is_err() {
            return false;
        }
        self.traffic.frames_written += 1;
        self.listening.subscribing = true;
        let reply = tokio::time::timeout(SETUP_TIMEOUT, async {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(text) = msg {
                    match wire::parse(&text) {
                        Ok(f) if f.id.as_deref() == Some("setup") => {
                            return (f.op == "ok").then_some(f.history);
                        }
                        _ => self.on_frame(&text),
                    }
                }
            }
            None
        })
        .await;
        self.listening.subscribing = false;
        let Ok(Some(history)) = reply else {
            self.count_error("subscribe_failed");
            return false;
        };
        let reopened = self.on_resumed(history.as_ref());
        self.open_subscription_windows(&reopened);
        true
    }

    /// Opens a window per subscribed topic or pattern, from the plan's
    /// [`Subscriptions`]: exactly what [`Self::subscribe_frame`] asked for,
    /// but for the topics whose window a resume `reopened`.
    pub(super) fn open_subscription_windows(&mut self, reopened: &HashSet<ChannelKey>) {
        let now = self.now_us();
        let workspace = self.plan.workspace;
        let topic = |topic| ChannelKey::Topic { workspace, topic };
        match &self.plan.subscriptions {
            Subscriptions::None => {}
            Subscriptions::Topics(ids) => {
                for id in ids {
                    if !reopened.contains(&topic(*id)) {
                        self.open_window(topic(*id), None, now);
                    }
                }
            }
            Subscriptions::Patterns(patterns) => {
                for p in patterns.iter() {
                    let channels = p.topics.iter().map(|t| topic(*t)).collect();
                    self.open_window(ChannelKey::Global, Some((&p.glob, channels)), now);
                }
            }
        }
    }

    /// Everything whose time has come: scheduled sends (not while leaving
    /// or draining), finished work, a new dequeue.
    pub(super) fn on_timers(&mut self, leaving: bool) {
        if !leaving && !self.ctx.is_draining() {
            let now = self.ctx.clock.offset(self.now_us());
            while let Some(due) = self.arrivals.as_ref().and_then(|s| s.peek()) {
                if due > now {
                    break;
                }
                let scenario = &self.ctx.scenario;
                if let Some(s) = self.arrivals.as_mut() {
                    s.pop(scenario, &mut self.rng);
                }
                self.send_scheduled(self.ctx.clock.at_us(due));
            }
        }
        self.finish_due_work();
        if !leaving && self.wants_dequeue() {
            self.send_dequeue();
        }
    }

    fn next_seq(&mut self, channel: ChannelKey) -> u64 {
        let seq = self.sending.seqs.entry(channel).or_insert(0);
        *seq += 1;
        *seq
    }

    fn request_id(&mut self, kind: InFlight) -> u64 {
        self.sending.next_request += 1;
        self.sending
            .in_flight
            .insert(self.sending.next_request, kind);
        self.sending.next_request
    }

    fn payload_bytes(&mut self) -> u32 {
        let (min, max) = self.group.payload_bytes.bounds();
        if min >= max {
            min
        } else {
            self.rng.random_range(min..=max)
        }
    }

    /// One scheduled message, due at `planned_us`.
    fn send_scheduled(&mut self, planned_us: u64) {
        let lag = self.now_us().saturating_sub(planned_us);
        self.record(|r, at| {
            r.record(Operation::SendLag, lag, at);
            r.count_sent(at);
        });
        Counters::add(&self.ctx.counters.sent, 1);
        match self.group.behaviour {
            Behaviour::Publisher => self.publish(planned_us),
            Behaviour::Broadcaster => self.broadcast(planned_us),
            Behaviour::DirectChatter => self.request(planned_us),
            Behaviour::QueueProducer => self.enqueue(planned_us),
            Behaviour::Adversary => {
                let seq = self.next_seq(ChannelKey::Global);
                self.attack(seq);
            }
            _ => {}
        }
    }

    fn stamp(&mut self, channel: ChannelKey, key: u32, planned_us: u64) -> Stamp {
        Stamp {
            s: self.plan.id,
            k: key,
            q: self.next_seq(channel),
            t: planned_us,
            w: self.now_us(),
        }
    }

    fn publish(&mut self, planned_us: u64) {
        let ids = &self.ctx.plan.group_topics[self.plan.group];
        if ids.is_empty() {
            return;
        }
        let topic = ids[self.pick_index(ids.len())];
        let channel = ChannelKey::Topic {
            workspace: self.plan.workspace,
            topic,
        };
        let stamp = self.stamp(channel, topic, planned_us);
        let id = self.request_id(InFlight::Published(channel, stamp.w));
        self.outcome.sent.push((channel, stamp.w));
        let bytes = self.payload_bytes();
        let mut f = String::with_capacity(bytes as usize + 96);
        let _ = write!(f, r#"{{"op":"publish","id":"{id}","topic":"#);
        wire::quoted(&mut f, self.ctx.plan.topics.name(topic));
        f.push_str(r#","payload":"#);
        wire::write_payload(&mut f, &stamp, bytes);
        f.push('}');
        self.outbox.push(f);
    }

    fn broadcast(&mut self, planned_us: u64) {
        let (channel, scope) = match self.group.scope {
            BroadcastScope::Workspace => (ChannelKey::Workspace(self.plan.workspace), "workspace"),
            BroadcastScope::Global => (ChannelKey::Global, "global"),
        };
        let stamp = self.stamp(channel, 0, planned_us);
        let id = self.request_id(InFlight::Published(channel, stamp.w));
        self.outcome.sent.push((channel, stamp.w));
        let bytes = self.payload_bytes();
        let mut f = String::with_capacity(bytes as usize + 96);
        let _ = write!(
            f,
            r#"{{"op":"broadcast","id":"{id}","scope":"{scope}","payload":"#
        );
        wire::write_payload(&mut f, &stamp, bytes);
        f.push('}');
        self.outbox.push(f);
    }

    /// A direct request to a random peer of the peer group in the same
    /// workspace; `k` carries the delivery mode so the peer knows whether a
    /// stored copy needs acking.
    fn request(&mut self, planned_us: u64) {
        let peer_group = self
            .ctx
            .scenario
            .groups
            .iter()
            .position(|g| g.name == self.group.peer_group())
            .unwrap_or(self.plan.group);
        let Some(peers) = self
            .ctx
            .plan
            .members
            .get(&(peer_group, self.plan.workspace))
        else {
            return;
        };
        let candidates: Vec<u32> = peers
            .iter()
            .copied()
            .filter(|p| *p != self.plan.id && self.ctx.is_online(*p))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let peer = candidates[self.rng.random_range(0..candidates.len())];
        let peer_index = peer - self.ctx.plan.first_id[peer_group];
        let peer_name = format!("{}-{peer_index}", self.ctx.scenario.groups[peer_group].name);
        let (mode, k) = match self.group.delivery {
            Delivery::Pubsub => ("pubsub", 0),
            Delivery::Queue => ("queue", 1),
            Delivery::Both => ("both", 2),
        };
        let stamp = self.stamp(ChannelKey::Global, k, planned_us);
        let id = self.request_id(InFlight::Request(stamp.q));
        self.sending.outstanding.insert(stamp.q, planned_us);
        self.ledger(MessageClass::Direct, |l| l.expected += 1);
        let bytes = self.payload_bytes();
        let mut f = String::with_capacity(bytes as usize + 160);
        let _ = write!(
            f,
            r#"{{"op":"send","id":"{id}","to":"{peer_name}","mode":"{mode}","kind":"request","correlation_id":"{}-{}","payload":"#,
            self.plan.id, stamp.q
        );
        wire::write_payload(&mut f, &stamp, bytes);
        f.push('}');
        self.outbox.push(f);
    }

    /// Enqueues `batch` jobs (one frame, one broker round trip), each with
    /// its own stamp and a priority picked from `priorities`.
    fn enqueue(&mut self, planned_us: u64) {
        let count = self.group.batch.max(1);
        let id = self.request_id(InFlight::Enqueue(count));
        let mut f = String::with_capacity(count as usize * 160);
        let _ = write!(f, r#"{{"op":"enqueue","id":"{id}","queue":"#);
        wire::quoted(&mut f, &self.group.queue);
        f.push_str(r#","messages":["#);
        for i in 0..count {
            let priorities = &self.group.priorities;
            let priority = priorities[self.rng.random_range(0..priorities.len())];
            let stamp = self.stamp(ChannelKey::Global, u32::from(priority), planned_us);
            let bytes = self.payload_bytes();
            if i > 0 {
                f.push(',');
            }
            let _ = write!(f, r#"{{"priority":{priority},"payload":"#);
            wire::write_payload(&mut f, &stamp, bytes);
            f.push('}');
        }
        f.push_str("]}");
        self.outbox.push(f);
    }

    /// Whether a queue worker should ask for more jobs now.
    pub(super) fn wants_dequeue(&self) -> bool {
        self.group.behaviour == Behaviour::QueueWorker
            && !self.working.dequeue_pending
            && self.working.work.len() < self.group.batch.max(1) as usize
    }

    fn send_dequeue(&mut self) {
        self.working.dequeue_pending = true;
        let mut f = String::with_capacity(96);
        let _ = write!(f, r#"{{"op":"dequeue","id":"dq","queue":"#);
        wire::quoted(&mut f, &self.group.queue);
        let _ = write!(f, r#","max":{},"wait_ms":1000}}"#, self.group.batch.max(1));
        self.outbox.push(f);
    }

    /// The workspace name an agent of this plan belongs to.
    pub(super) fn my_workspace(&self) -> &str {
        &self.workspace
    }
}
