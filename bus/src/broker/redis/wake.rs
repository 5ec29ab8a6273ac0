//! Wake-ups for blocked dequeues: the enqueue script publishes the number
//! added on `wake:{queue}`, and one subscription per node (opened on first
//! use) turns that into `Notify` permits for the local waiters.
//!
//! On a single Redis the script uses `PUBLISH`; on a cluster the wake
//! channel carries its queue's hash tag and the script uses `SPUBLISH`, so a
//! wake-up goes only to the shard holding the queue instead of to every node.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OnceCell, mpsc};

use crate::broker::{Delivery, Result, Subscriber, Subscription};

/// Most queues a node waits on through wake-ups; past it, waiters poll.
const WAITED_QUEUES_LIMIT: usize = 10_000;

const WAKE: &str = "wake:";

/// The broker channel that wakes the waiters of `queue`.
pub(super) fn wake_channel(queue: &str) -> String {
    format!("{WAKE}{queue}")
}

/// One node's waiters, by queue.
#[derive(Debug, Default)]
pub(super) struct WakeHub {
    subscription: OnceCell<Arc<dyn Subscriber>>,
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl WakeHub {
    /// The notify of `queue`, subscribing to its wake channel on first use
    /// (`open` makes the hub's subscription the first time). `None` when
    /// the node waits on too many queues already.
    pub(super) async fn waker<F, Fut>(&self, queue: &str, open: F) -> Result<Option<Arc<Notify>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Subscription>>,
    {
        let subscription = self
            .subscription
            .get_or_try_init(|| async {
                let sub = open().await?;
                spawn_listener(sub.deliveries, self.waiters.clone());
                Ok::<_, crate::broker::BrokerError>(sub.control)
            })
            .await?;
        let (notify, fresh) = {
            let mut waiters = self.waiters.lock().expect("lock");
            if let Some(n) = waiters.get(queue) {
                (n.clone(), false)
            } else if waiters.len() >= WAITED_QUEUES_LIMIT {
                return Ok(None);
            } else {
                let n = Arc::new(Notify::new());
                waiters.insert(queue.to_owned(), n.clone());
                (n, true)
            }
        };
        if fresh && let Err(err) = subscription.subscribe(&[wake_channel(queue)]).await {
            // Not subscribed after all: the next waiter tries again.
            self.waiters.lock().expect("lock").remove(queue);
            return Err(err);
        }
        Ok(Some(notify))
    }
}

fn spawn_listener(
    mut deliveries: mpsc::Receiver<Delivery>,
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
) {
    tokio::spawn(async move {
        while let Some(d) = deliveries.recv().await {
            let Some(queue) = d.channel.strip_prefix(WAKE) else {
                continue;
            };
            let added: usize = std::str::from_utf8(&d.payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let notify = waiters.lock().expect("lock").get(queue).cloned();
            if let Some(notify) = notify {
                for _ in 0..added {
                    notify.notify_one();
                }
            }
        }
    });
}
