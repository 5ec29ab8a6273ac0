//! The queue ops of a session: enqueue (one message or a batch), dequeue
//! (now, or waiting beside the reader), ack (one id or a batch) and reject.
//! Bounds come from [`crate::limits`], shared with REST.

use std::time::Duration;

use super::session::{OpResult, Session};
use crate::limits::{self, MAX_WAITS};
use crate::message::names;
use crate::message::{AgentMessage, MessageKind};
use crate::protocol::{ErrorCode, OkResult, QueueItem, RequestId, ServerFrame};
use crate::reply::{self, OpError};
use crate::router::MessageRouter;

impl Session {
    /// The broker queue behind a wire queue name the agent may use.
    fn resolve_queue(&self, queue: &str) -> Result<String, OpError> {
        self.allowed(queue)?;
        Ok(names::resolve_queue(self.identity().scope(), queue)?)
    }

    pub(super) async fn enqueue(
        &mut self,
        queue: String,
        payload: Option<serde_json::Value>,
        priority: u8,
        items: Vec<QueueItem>,
    ) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        let items = match (payload, items.is_empty()) {
            (Some(payload), true) => vec![QueueItem { payload, priority }],
            (None, false) => {
                limits::check_batch(items.len(), "messages", "enqueue")?;
                items
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

    pub(super) async fn dequeue_now(&mut self, queue: String, max: usize) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        let claimed = self
            .state
            .router
            .claim(&resolved, limits::claim_max(max))
            .await?;
        Ok(OkResult {
            jobs: Some(reply::jobs(&queue, claimed)),
            ..Default::default()
        })
    }

    /// A dequeue that may wait runs beside the reader, so the connection
    /// keeps serving other requests meanwhile.
    pub(super) fn dequeue_waiting(
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
        let state = self.state.clone();
        let close = self.entry.close.clone();
        let wait = limits::claim_wait(wait_ms);
        tokio::spawn(async move {
            let _permit = permit;
            let frame = tokio::select! {
                _ = close.cancelled() => return,
                frame = waited_dequeue(&router, id, &queue, &resolved, max, wait) => frame,
            };
            if let ServerFrame::Error { code, .. } = &frame {
                state.telemetry.error(*code);
            }
            outbound.push_frame(&frame);
        });
        Ok(())
    }

    pub(super) async fn ack(
        &mut self,
        queue: String,
        message_id: Option<String>,
        message_ids: Vec<String>,
    ) -> OpResult {
        let resolved = self.resolve_queue(&queue)?;
        let router = &self.state.router;
        match (message_id, message_ids.len()) {
            (Some(message_id), 0) => Ok(OkResult {
                acked: Some(router.ack(&resolved, &message_id).await?),
                ..Default::default()
            }),
            (None, 1..) => {
                limits::check_batch(message_ids.len(), "message ids", "ack")?;
                Ok(OkResult {
                    acks: router.ack_many(&resolved, &message_ids).await?,
                    ..Default::default()
                })
            }
            _ => Err(OpError::new(
                ErrorCode::BadFrame,
                "ack takes either `message_id` or `message_ids`",
            )),
        }
    }

    pub(super) async fn reject(
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
            outcome: outcome.map(Into::into),
            ..Default::default()
        })
    }
}

/// The reply to a waiting dequeue of `queue` (broker queue `resolved`).
async fn waited_dequeue(
    router: &MessageRouter,
    id: Option<RequestId>,
    queue: &str,
    resolved: &str,
    max: usize,
    wait: Duration,
) -> ServerFrame {
    match router.dequeue(resolved, limits::claim_max(max), wait).await {
        Ok(claimed) => ServerFrame::ok(
            id,
            "dequeue",
            OkResult {
                jobs: Some(reply::jobs(queue, claimed)),
                ..Default::default()
            },
        ),
        Err(e) => {
            let e = OpError::from(e);
            ServerFrame::error(id, e.code, e.message)
        }
    }
}
