//! Receiving: every frame from the bus is classified and accounted for:
//! deliveries against subscription windows and streams (lost, duplicated,
//! out of order, misrouted), direct requests and responses, queue replies.

use super::wire::{self, Incoming, MessageView, OutcomeView};
use super::{Agent, InFlight};
use crate::ledger::{Arrival, ChannelKey, MessageClass};
use crate::metrics::Operation;
use crate::plan::Subscriptions;

impl Agent<'_> {
    pub(super) fn on_frame(&mut self, text: &str) {
        // The frame that comes by the hundred thousand, read without the
        // detour through the general frame type.
        if let Some(push) = super::scan::message_push(text) {
            if let Some(message) = push.message {
                self.on_message(&message, push.pattern, push.offset.zip(push.epoch));
            }
            return;
        }
        let frame = match wire::parse(text) {
            Ok(f) => f,
            Err(_) => return self.count_error("unreadable_frame"),
        };
        match frame.op.as_ref() {
            "message" => {
                let pattern = frame.pattern.as_deref().map(str::to_owned);
                let stamp = frame.offset.as_deref().zip(frame.epoch.as_deref());
                if let Some(message) = &frame.message {
                    self.on_message(message, pattern.as_deref(), stamp);
                }
            }
            "job" => {
                if let Some(message) = frame.message {
                    let queue = frame.queue.as_deref().unwrap_or("inbox").to_owned();
                    self.on_inbox_job(&message, &queue);
                }
            }
            "ok" => self.on_ok(frame),
            "error" => self.on_error(&frame),
            _ => {}
        }
    }

    fn request_of(&mut self, frame: &Incoming<'_>) -> Option<InFlight> {
        let id: u64 = frame.id.as_deref()?.parse().ok()?;
        self.sending.in_flight.remove(&id)
    }

    fn on_error(&mut self, frame: &Incoming<'_>) {
        let code = frame.code.as_deref().unwrap_or("error").to_owned();
        self.count_error(&code);
        if frame.id.as_deref() == Some("dq") {
            self.working.dequeue_pending = false;
            return;
        }
        match self.request_of(frame) {
            Some(InFlight::Attack) => self.attack_answered(Some(&code)),
            Some(InFlight::Flood) if code == "limit_exceeded" => {
                self.record(|r, _| r.ledger_mut().security.floods_refused += 1);
            }
            // It may not have been published: owed only where it arrived.
            Some(InFlight::Published(channel, sent_us)) => self.unconfirm(channel, sent_us),
            Some(InFlight::Request(seq)) if self.sending.outstanding.remove(&seq).is_some() => {
                self.ledger(MessageClass::Direct, |l| l.expected -= 1);
            }
            Some(InFlight::Enqueue(jobs)) => {
                self.record(|r, _| r.ledger_mut().queue.enqueue_unconfirmed += u64::from(jobs));
            }
            Some(InFlight::Ack {
                message,
                claimed,
                tries,
            }) if tries < super::work::MAX_TRIES => {
                self.retry_later(super::WorkKind::Ack {
                    id: message,
                    claimed,
                    tries: tries + 1,
                });
            }
            Some(InFlight::AckBatch(acks)) => {
                for (message, claimed, tries) in acks {
                    if tries < super::work::MAX_TRIES {
                        self.retry_later(super::WorkKind::Ack {
                            id: message,
                            claimed,
                            tries: tries + 1,
                        });
                    }
                }
            }
            Some(InFlight::Reject { message, tries }) if tries < super::work::MAX_TRIES => {
                self.retry_later(super::WorkKind::Reject {
                    id: message,
                    tries: tries + 1,
                });
            }
            _ => {}
        }
    }

    fn on_ok(&mut self, frame: Incoming<'_>) {
        if frame.id.as_deref() == Some("dq") {
            self.working.dequeue_pending = false;
            self.working.last_claimed_priority = None;
            for job in frame.jobs.unwrap_or_default() {
                self.on_claimed(&job.message);
            }
            return;
        }
        let claimed_at = match self.request_of(&frame) {
            Some(InFlight::Attack) => return self.attack_answered(None),
            Some(InFlight::Flood) => return,
            Some(InFlight::Enqueue(jobs)) => {
                return self.record(|r, _| r.ledger_mut().queue.enqueued += u64::from(jobs));
            }
            Some(InFlight::Reject { .. }) => {
                return self.record(|r, _| {
                    let q = &mut r.ledger_mut().queue;
                    q.rejected += 1;
                    match frame.outcome {
                        Some(OutcomeView::Requeued {}) => q.requeued += 1,
                        Some(OutcomeView::DeadLettered {}) => q.dead_lettered += 1,
                        None => {}
                    }
                });
            }
            Some(InFlight::Ack { claimed, .. }) => claimed,
            Some(InFlight::AckBatch(acks)) => {
                let answers = frame.acks.unwrap_or_default();
                for (i, (_, claimed, _)) in acks.iter().enumerate() {
                    self.on_acked(answers.get(i) == Some(&true), *claimed);
                }
                return;
            }
            _ => return,
        };
        self.on_acked(frame.acked == Some(true), claimed_at);
    }

    /// The bus's answer to one ack.
    fn on_acked(&mut self, acked: bool, claimed_at: std::time::Instant) {
        if acked {
            let latency = claimed_at.elapsed();
            self.record(|r, at| {
                r.ledger_mut().queue.acked += 1;
                r.record_duration(Operation::QueueProcess, latency, at);
            });
        } else {
            self.count_error("ack_not_found");
        }
    }

    /// The ledger channel a message travelled on, from its topic.
    pub(super) fn channel_of(&self, message: &MessageView<'_>) -> Option<ChannelKey> {
        let topic: &str = &message.topic;
        if topic == "broadcast" {
            return Some(ChannelKey::Global);
        }
        if topic.starts_with("workspace:") {
            return Some(ChannelKey::Workspace(self.plan.workspace));
        }
        let id = self.ctx.plan.topics.id(topic)?;
        Some(ChannelKey::Topic {
            workspace: self.plan.workspace,
            topic: id,
        })
    }

    /// Whether the plan has this agent subscribe to what `message` came on
    /// (its topic, or the pattern it matched).
    fn asked_for(&self, message: &MessageView<'_>, pattern: Option<&str>) -> bool {
        match (&self.plan.subscriptions, pattern) {
            (Subscriptions::Topics(ids), None) => self
                .ctx
                .plan
                .topics
                .id(&message.topic)
                .is_some_and(|id| ids.contains(&id)),
            (Subscriptions::Patterns(globs), Some(p)) => globs.iter().any(|g| g.glob == p),
            _ => false,
        }
    }

    /// A `message` frame: counted delivered (the live counter once per read
    /// burst, the recorder with its latency in one visit), then accounted.
    /// `stamp`: the offset and epoch of a message on a topic with history.
    fn on_message(
        &mut self,
        message: &MessageView<'_>,
        pattern: Option<&str>,
        stamp: Option<(&str, &str)>,
    ) {
        self.traffic.messages_received += 1;
        self.traffic.delivered_unposted += 1;
        if message.topic.ends_with(":inbox") {
            self.record(|r, at| r.count_delivered(at));
            return self.on_direct(message, false);
        }
        if let (Some((offset, epoch)), None) = (stamp, pattern) {
            self.note_offset(message, offset, epoch);
        }
        let latency = self.account_delivery(message, pattern);
        self.record(|r, at| {
            r.count_delivered(at);
            if let Some((op, latency)) = latency {
                r.record(op, latency, at);
            }
        });
    }

    /// Checks a topic, pattern or broadcast delivery against the windows
    /// and streams; the latency to record, if any.
    fn account_delivery(
        &mut self,
        message: &MessageView<'_>,
        pattern: Option<&str>,
    ) -> Option<(Operation, u64)> {
        let now = self.now_us();
        if message.topic == crate::plan::REST_TOPIC {
            // REST users' traffic (rest_client groups) reaching a pattern.
            return None;
        }
        let class = match (pattern, message.topic.as_ref()) {
            (Some(_), _) => MessageClass::Pattern,
            (None, "broadcast") => MessageClass::Broadcast,
            (None, t) if t.starts_with("workspace:") => MessageClass::Broadcast,
            _ => MessageClass::Pubsub,
        };
        let my_workspace = self.my_workspace();
        let wrong_workspace = match message.workspace.as_deref() {
            None => message.topic != "broadcast",
            Some(w) => w != my_workspace,
        };
        let channel = self.channel_of(message);
        let window = match (channel, pattern) {
            (Some(channel), None) => self.listening.exact.get(&channel).copied(),
            (Some(_), Some(p)) => self.listening.patterns.get(p).copied(),
            (None, _) => None,
        };
        if window.is_none()
            && self.listening.subscribing
            && !wrong_workspace
            && self.asked_for(message, pattern)
        {
            // Delivered between the bus taking the subscription and its
            // reply, which opens the window: not owed, not misrouted.
            return None;
        }
        let (Some(stamp), Some(channel), Some(window), false) =
            (message.payload, channel, window, wrong_workspace)
        else {
            self.ledger(class, |l| l.misrouted += 1);
            return None;
        };
        let streams = if pattern.is_some() {
            self.listening.pattern_streams.entry(window).or_default()
        } else {
            &mut self.listening.streams
        };
        match streams.observe(stamp.s, channel, stamp.q) {
            Arrival::Duplicate => {
                self.ledger(class, |l| l.duplicated += 1);
                return None;
            }
            Arrival::OutOfOrder => self.ledger(class, |l| l.out_of_order += 1),
            Arrival::InOrder => {}
        }
        let latency = now.saturating_sub(stamp.t);
        self.ctx.faults.delivered(stamp.w, now);
        let slow = self.ctx.faults.was_slow(self.plan.id);
        let recorded = if slow {
            Some((Operation::SlowDelivery, latency))
        } else if class == MessageClass::Broadcast {
            self.ctx.broadcasts.arrived(stamp.s, stamp.q, latency);
            None
        } else {
            Some((Operation::PublishDelivery, latency))
        };
        let local = self.ctx.is_local_agent(stamp.s);
        let w = &mut self.listening.windows[window];
        if w.expects(stamp.w) {
            w.count_delivery(local);
        }
        recorded
    }

    /// A direct message: a response to one of ours, or a request to answer.
    fn on_direct(&mut self, message: &MessageView<'_>, from_inbox: bool) {
        let for_me = message.to.as_deref() == Some(self.plan.name.as_str())
            && message.workspace.as_deref() == Some(self.my_workspace());
        if !for_me {
            return self.ledger(MessageClass::Direct, |l| l.misrouted += 1);
        }
        match message.kind.as_deref() {
            Some("response") => self.on_response(message),
            Some("request") => self.on_request(message, from_inbox),
            _ => {}
        }
    }

    fn on_response(&mut self, message: &MessageView<'_>) {
        let parsed = message.correlation_id.as_deref().and_then(|c| {
            let (s, q) = c.split_once('-')?;
            Some((s.parse::<u32>().ok()?, q.parse::<u64>().ok()?))
        });
        let Some((sender, seq)) = parsed.filter(|(s, _)| *s == self.plan.id) else {
            return self.ledger(MessageClass::Direct, |l| l.misrouted += 1);
        };
        let _ = sender;
        match self.sending.outstanding.remove(&seq) {
            Some(planned) => {
                let rtt = self.now_us().saturating_sub(planned);
                self.record(|r, at| {
                    r.record(Operation::DirectRtt, rtt, at);
                    r.ledger_mut().class_mut(MessageClass::Direct).delivered += 1;
                });
            }
            None => self.ledger(MessageClass::Direct, |l| l.duplicated += 1),
        }
    }

    /// A `job` from the inbox: requests get answered; every job is acked.
    fn on_inbox_job(&mut self, message: &MessageView<'_>, queue: &str) {
        self.ack_stored(queue, &message.id);
        if message.topic.ends_with(":inbox") {
            self.on_direct(message, true);
        }
    }
}
