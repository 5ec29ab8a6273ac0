//! The node's dedicated pub/sub connection, supervised: when Redis goes away
//! it reconnects with bounded backoff and resubscribes every channel and
//! pattern it held, without the rest of the bus noticing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink};
use tokio::sync::{mpsc, oneshot, watch};

use super::compress;
use crate::broker::{
    BrokerError, DELIVERY_BUFFER, Delivery, Result, Subscriber, Subscription, envelope,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// Kept short: delivery should resume within a fraction of a second of
/// Redis coming back.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
}

#[derive(Debug)]
struct Command {
    op: Op,
    /// Namespaced names.
    names: Vec<String>,
    done: oneshot::Sender<Result<()>>,
}

/// Control half of a supervised Redis subscription.
#[derive(Debug)]
struct RedisSubscriber {
    namespace: String,
    commands: mpsc::Sender<Command>,
}

impl RedisSubscriber {
    async fn send(&self, op: Op, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let (done, confirmed) = oneshot::channel();
        let names = names
            .iter()
            .map(|n| format!("{}{n}", self.namespace))
            .collect();
        self.commands
            .send(Command { op, names, done })
            .await
            .map_err(|_| BrokerError::Closed)?;
        confirmed.await.map_err(|_| BrokerError::Closed)?
    }
}

#[async_trait]
impl Subscriber for RedisSubscriber {
    async fn subscribe(&self, channels: &[String]) -> Result<()> {
        self.send(Op::Subscribe, channels).await
    }

    async fn unsubscribe(&self, channels: &[String]) -> Result<()> {
        self.send(Op::Unsubscribe, channels).await
    }

    async fn psubscribe(&self, patterns: &[String]) -> Result<()> {
        self.send(Op::PSubscribe, patterns).await
    }

    async fn punsubscribe(&self, patterns: &[String]) -> Result<()> {
        self.send(Op::PUnsubscribe, patterns).await
    }
}

/// Opens the connection now (so a bad URL fails at start-up) and hands it to
/// the supervisor task. `namespace` is the prefix (with its `:`) stripped
/// from delivered channel names.
pub(super) async fn open(client: redis::Client, namespace: String) -> Result<Subscription> {
    let first = connect(&client).await?;
    let (commands, command_rx) = mpsc::channel(256);
    let (tx, deliveries) = mpsc::channel(DELIVERY_BUFFER);
    let (restored_tx, restored) = watch::channel(0);
    let supervisor = Supervisor {
        client,
        namespace: namespace.clone(),
        channels: HashSet::new(),
        patterns: HashSet::new(),
        waiting: Vec::new(),
        commands: command_rx,
        deliveries: tx,
        restored: restored_tx,
    };
    tokio::spawn(supervisor.run(first));
    Ok(Subscription {
        control: Arc::new(RedisSubscriber {
            namespace,
            commands,
        }),
        deliveries,
        restored,
    })
}

async fn connect(client: &redis::Client) -> Result<PubSub> {
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BrokerError::Timeout(CONNECT_TIMEOUT)),
    }
}

struct Supervisor {
    client: redis::Client,
    namespace: String,
    /// What this node wants, namespaced; restored after every reconnect.
    channels: HashSet<String>,
    patterns: HashSet<String>,
    /// Callers whose change is recorded but not yet confirmed by Redis.
    waiting: Vec<oneshot::Sender<Result<()>>>,
    commands: mpsc::Receiver<Command>,
    deliveries: mpsc::Sender<Delivery>,
    /// Counts the reconnections that restored the subscription.
    restored: watch::Sender<u64>,
}

/// Why a connected session ended.
enum Ended {
    /// Everyone holding the subscription has gone: stop for good.
    Closed,
    /// The connection broke: reconnect.
    Lost,
}

impl Supervisor {
    async fn run(mut self, first: PubSub) {
        let mut next = Some(first);
        let mut first = true;
        let mut backoff = MIN_BACKOFF;
        loop {
            let pubsub = match next.take() {
                Some(p) => p,
                None => match connect(&self.client).await {
                    Ok(p) => p,
                    Err(err) => {
                        tracing::warn!(cause = %err, retry_in = ?backoff, "redis pub/sub reconnect failed");
                        if self.wait_recording_commands(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let (mut sink, mut stream) = pubsub.split();
            if let Err(err) = self.restore(&mut sink).await {
                tracing::warn!(cause = %err, "redis pub/sub resubscribe failed");
                continue;
            }
            backoff = MIN_BACKOFF;
            if !std::mem::replace(&mut first, false) {
                self.restored.send_modify(|n| *n += 1);
            }
            match self.serve(&mut sink, &mut stream).await {
                Ended::Closed => return,
                Ended::Lost => tracing::warn!("redis pub/sub connection lost; reconnecting"),
            }
        }
    }

    /// Sleeps out a backoff while still taking commands (they are recorded
    /// and confirmed after the next resubscribe). True when all handles are
    /// gone.
    async fn wait_recording_commands(&mut self, backoff: Duration) -> bool {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                cmd = self.commands.recv() => match cmd {
                    None => return true,
                    Some(cmd) => {
                        self.record(&cmd);
                        self.waiting.push(cmd.done);
                    }
                },
            }
        }
    }

    fn record(&mut self, cmd: &Command) {
        let names = cmd.names.iter().cloned();
        match cmd.op {
            Op::Subscribe => self.channels.extend(names),
            Op::PSubscribe => self.patterns.extend(names),
            Op::Unsubscribe => names.for_each(|n| {
                self.channels.remove(&n);
            }),
            Op::PUnsubscribe => names.for_each(|n| {
                self.patterns.remove(&n);
            }),
        }
    }

    async fn restore(&mut self, sink: &mut PubSubSink) -> redis::RedisResult<()> {
        if !self.channels.is_empty() {
            sink.subscribe(self.channels.iter().collect::<Vec<_>>())
                .await?;
        }
        if !self.patterns.is_empty() {
            sink.psubscribe(self.patterns.iter().collect::<Vec<_>>())
                .await?;
        }
        for done in self.waiting.drain(..) {
            let _ = done.send(Ok(()));
        }
        Ok(())
    }

    async fn serve(
        &mut self,
        sink: &mut PubSubSink,
        stream: &mut redis::aio::PubSubStream,
    ) -> Ended {
        loop {
            tokio::select! {
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { return Ended::Closed };
                    self.record(&cmd);
                    let applied = match cmd.op {
                        Op::Subscribe => sink.subscribe(&cmd.names).await,
                        Op::Unsubscribe => sink.unsubscribe(&cmd.names).await,
                        Op::PSubscribe => sink.psubscribe(&cmd.names).await,
                        Op::PUnsubscribe => sink.punsubscribe(&cmd.names).await,
                    };
                    match applied {
                        Ok(()) => {
                            let _ = cmd.done.send(Ok(()));
                        }
                        Err(err) => {
                            tracing::debug!(cause = %err, "subscription change deferred to reconnect");
                            self.waiting.push(cmd.done);
                            return Ended::Lost;
                        }
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { return Ended::Lost };
                    let (stamp, payload) =
                        envelope::open(Bytes::copy_from_slice(msg.get_payload_bytes()));
                    let Some(payload) = compress::open_delivery(msg.get_channel_name(), payload)
                    else {
                        continue;
                    };
                    let delivery = Delivery {
                        channel: self.strip(msg.get_channel_name()).to_owned(),
                        pattern: msg
                            .get_pattern::<Option<String>>()
                            .ok()
                            .flatten()
                            .map(|p| self.strip(&p).to_owned()),
                        payload,
                        stamp,
                    };
                    if self.deliveries.send(delivery).await.is_err() {
                        return Ended::Closed;
                    }
                }
            }
        }
    }

    fn strip<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.namespace.as_str()).unwrap_or(name)
    }
}
