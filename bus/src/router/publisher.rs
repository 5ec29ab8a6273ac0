//! The node's publish pipeline: one task that takes every publish of the
//! node, in the order they were handed to it, and sends them to the broker
//! in batches (one pipelined round trip on Redis for everything that
//! arrived while the previous batch was on its way).
//!
//! Why it exists: a connection that awaited Redis for each publish before
//! reading its next frame could publish at most one message per round
//! trip, and under load a round trip is a turn of the whole runtime, so a
//! busy node read its publishers' frames ever later (measured at 500k
//! deliveries/s: 1.2 MB unread in the publishers' sockets, deliveries
//! seconds late). Now a session hands the publish over ([`Publisher::submit`],
//! which waits only for room in the queue) and reads on; the reply follows
//! when the broker answers.
//!
//! Order: publishes are sent in the order they were submitted, so the
//! publishes of one connection (submitted one after another) reach each
//! channel in the order the client sent them.
//!
//! Bounds: the queue holds at most [`QUEUE`] publishes; a batch at most
//! [`BATCH`]. The bytes a connection may have waiting here are bounded by
//! the session (see `limits::MAX_PUBLISHES_IN_FLIGHT`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{Result, RouterError};
use crate::broker::{Broker, HistoryPolicy, Outgoing, Published};

/// Publishes waiting for the pipeline task at most; a submit beyond it
/// waits for room.
const QUEUE: usize = 8192;

/// Most publishes sent in one round trip.
const BATCH: usize = 512;

struct Request {
    message: Outgoing,
    done: oneshot::Sender<Result<Published>>,
}

/// Handle to the node's publish pipeline; the task stops when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Publisher {
    queue: mpsc::Sender<Request>,
}

impl Publisher {
    pub(super) fn start(broker: Arc<dyn Broker>) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(run(broker, requests));
        Self { queue }
    }

    /// Queues a publish of `payload` on broker channel `channel` (kept in
    /// its history when `history` says so); returns once it has its place
    /// in the order (waiting only for room in the queue, never for the
    /// broker). The returned [`PendingPublish`] resolves to what the broker
    /// did with it.
    pub(super) async fn submit(
        &self,
        channel: String,
        payload: Bytes,
        history: Option<HistoryPolicy>,
    ) -> Result<PendingPublish> {
        let (done, answer) = oneshot::channel();
        let bytes = payload.len();
        self.queue
            .send(Request {
                message: Outgoing {
                    channel,
                    payload,
                    history,
                },
                done,
            })
            .await
            .map_err(|_| RouterError::Publish("the publish pipeline has stopped".into()))?;
        Ok(PendingPublish { answer, bytes })
    }
}

/// A publish that has its place in the order and waits for the broker's
/// answer: the number of subscriptions (nodes) that received it, and its
/// place in the topic's history if it was kept.
#[derive(Debug)]
pub struct PendingPublish {
    answer: oneshot::Receiver<Result<Published>>,
    /// Size of the published message, which the pipeline holds until the
    /// broker has it.
    bytes: usize,
}

impl PendingPublish {
    /// Bytes of the published message (held by the pipeline until the
    /// broker has it).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Future for PendingPublish {
    type Output = Result<Published>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answer).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                Err(RouterError::Publish(
                    "the publish pipeline stopped before the broker answered".into(),
                ))
            })
        })
    }
}

/// Takes what is queued (up to [`BATCH`]), publishes it as one batch,
/// answers each request, and goes again; what arrives meanwhile makes the
/// next batch, so batches grow with the load and a quiet node sends each
/// publish at once.
async fn run(broker: Arc<dyn Broker>, mut requests: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(BATCH);
    let mut messages: Vec<Outgoing> = Vec::with_capacity(BATCH);
    while requests.recv_many(&mut batch, BATCH).await > 0 {
        messages.extend(batch.iter_mut().map(|r| Outgoing {
            channel: std::mem::take(&mut r.message.channel),
            payload: r.message.payload.clone(),
            history: r.message.history,
        }));
        let outcome = broker.publish_many(&messages).await;
        messages.clear();
        match outcome {
            Ok(published) => {
                for (request, published) in batch.drain(..).zip(published) {
                    let _ = request.done.send(Ok(published));
                }
            }
            Err(err) => {
                let why = err.to_string();
                for request in batch.drain(..) {
                    let _ = request.done.send(Err(RouterError::Publish(why.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::memory::MemoryBroker;

    #[tokio::test]
    async fn publishes_reach_a_channel_in_submit_order() {
        let broker = Arc::new(MemoryBroker::new());
        let mut subscription = broker.subscribe().await.unwrap();
        subscription
            .control
            .subscribe(&["topic:w/t".to_owned()])
            .await
            .unwrap();
        let publisher = Publisher::start(broker);
        let mut pending = Vec::new();
        for i in 0..2_000u32 {
            let payload = Bytes::from(i.to_string());
            pending.push(
                publisher
                    .submit("topic:w/t".into(), payload, None)
                    .await
                    .unwrap(),
            );
        }
        for p in pending {
            assert_eq!(p.await.unwrap().receivers, 1);
        }
        for i in 0..2_000u32 {
            let delivery = subscription.deliveries.recv().await.unwrap();
            assert_eq!(delivery.payload, Bytes::from(i.to_string()));
        }
    }
}
