//! Publishing on Redis: one message (`PUBLISH`, or on a cluster the
//! sharded publish of `lua/publish_topic.lua`), and batches: one pipeline
//! on one Redis, every channel at once on a cluster; topics kept in
//! history go through `lua/publish_history.lua`, all of a topic's
//! messages of a batch in one call.

use std::collections::HashMap;

use bytes::Bytes;

use super::channels::ChannelNames;
use super::connection::retry_once;
use super::{RedisBroker, cluster_pubsub, history};
use crate::broker::{BrokerError, HistoryPolicy, Outgoing, Published, Result};

impl RedisBroker {
    /// Runs the history script for `payloads` of `channel` on their own
    /// (loading it first if Redis lost it); the script's raw answer.
    async fn publish_history<'a>(
        &self,
        channel: &str,
        payloads: impl Iterator<Item = &'a Bytes>,
        policy: HistoryPolicy,
    ) -> Result<redis::Value> {
        let packed: Vec<Bytes> = payloads.map(|p| self.pack(p)).collect();
        let name = self.inner.names.channel(channel);
        let (stream, meta) = history::keys(&self.inner.names, channel);
        let mut invocation = history::PUBLISH.prepare_invoke();
        invocation.key(name).key(stream).key(meta);
        for arg in history::publish_args(&packed, policy, self.is_cluster()) {
            invocation.arg(arg);
        }
        Ok(invocation.invoke_async(&mut self.conn()).await?)
    }

    pub(super) async fn publish_one(&self, channel: &str, payload: Bytes) -> Result<usize> {
        let payload = self.pack(&payload);
        let name = self.inner.names.channel(channel);
        if self.is_cluster() && ChannelNames::is_topic(channel) {
            return self.publish_topic_on_cluster(&name, &payload).await;
        }
        let command = if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let receivers: usize = retry_once(|| {
            let mut conn = self.conn();
            let cmd = redis::cmd(command)
                .arg(&name)
                .arg(payload.as_ref())
                .to_owned();
            async move { cmd.query_async(&mut conn).await }
        })
        .await?;
        Ok(receivers)
    }

    /// On one Redis: one pipeline, one round trip for the batch, in order:
    /// a `PUBLISH` per message, and for each topic kept in history one run
    /// of the history script with all its messages of the batch, at the
    /// place of its first (other topics may overtake them; no topic's own
    /// order changes). The script is loaded at the head of the pipeline, so
    /// a Redis that lost its scripts still runs it. On a cluster the
    /// channels of a batch are published to at once, each channel's
    /// messages in order (a script's first run on a shard may have to load
    /// it, and concurrent loads would let later messages overtake). A batch
    /// with history is not sent twice when the connection drops under it:
    /// that would keep its messages twice.
    pub(super) async fn publish_batch(&self, messages: &[Outgoing]) -> Result<Vec<Published>> {
        if self.is_cluster() {
            return self.publish_batch_on_cluster(messages).await;
        }
        let steps = steps(messages);
        let with_history = steps.iter().any(|s| s.history.is_some());
        let mut pipeline = redis::pipe();
        if with_history {
            // Each reply on its own: a Redis that lost its scripts answers
            // NOSCRIPT to those steps alone, which ran nothing.
            pipeline.ignore_errors();
        }
        for step in &steps {
            let first = &messages[step.indexes[0]];
            let name = self.inner.names.channel(&first.channel);
            match step.history {
                None => {
                    let payload = self.pack(&first.payload);
                    pipeline.cmd("PUBLISH").arg(name).arg(payload.as_ref());
                }
                Some(policy) => {
                    let payloads: Vec<Bytes> = step
                        .indexes
                        .iter()
                        .map(|&i| self.pack(&messages[i].payload))
                        .collect();
                    let (stream, meta) = history::keys(&self.inner.names, &first.channel);
                    pipeline
                        .cmd("EVALSHA")
                        .arg(history::PUBLISH.get_hash())
                        .arg(3)
                        .arg(name)
                        .arg(stream)
                        .arg(meta)
                        .arg(history::publish_args(&payloads, policy, false));
                }
            }
        }
        let values: Vec<redis::Value> = if with_history {
            pipeline.query_async(&mut self.conn()).await?
        } else {
            retry_once(|| {
                let mut conn = self.conn();
                let pipeline = &pipeline;
                async move { pipeline.query_async(&mut conn).await }
            })
            .await?
        };
        let mut published: Vec<Option<Published>> = vec![None; messages.len()];
        for (step, value) in steps.iter().zip(values) {
            match step.history {
                None => {
                    let receivers = history::parse(value)?;
                    published[step.indexes[0]] = Some(Published {
                        receivers,
                        stamp: None,
                    });
                }
                Some(policy) => {
                    let value = match value {
                        redis::Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                            let payloads = step.indexes.iter().map(|&i| &messages[i].payload);
                            let channel = &messages[step.indexes[0]].channel;
                            self.publish_history(channel, payloads, policy).await?
                        }
                        value => value,
                    };
                    let stamped = history::published(value, step.indexes.len())?;
                    for (&i, p) in step.indexes.iter().zip(stamped) {
                        published[i] = Some(p);
                    }
                }
            }
        }
        Ok(published.into_iter().flatten().collect())
    }

    /// Publishes a topic on a cluster: sharded to its exact subscribers and,
    /// when its shard has pattern subscribers, classically as well (see
    /// `lua/publish_topic.lua`).
    async fn publish_topic_on_cluster(&self, name: &str, payload: &[u8]) -> Result<usize> {
        let script = cluster_pubsub::publish_topic_script();
        Ok(retry_once(|| {
            let mut conn = self.conn();
            let mut invocation = script.prepare_invoke();
            invocation.key(name).arg(payload);
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?)
    }

    /// A batch on a cluster: every channel at once, each channel's
    /// messages in order (those kept in history in one script call); the
    /// results in batch order.
    async fn publish_batch_on_cluster(&self, messages: &[Outgoing]) -> Result<Vec<Published>> {
        // Per channel and history policy (a channel's messages all have the
        // same one, as every node has the same rules).
        let mut by_channel: Vec<(&str, Option<HistoryPolicy>, Vec<usize>)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match by_channel
                .iter_mut()
                .find(|(c, h, _)| *c == m.channel && *h == m.history)
            {
                Some((_, _, indexes)) => indexes.push(i),
                None => by_channel.push((&m.channel, m.history, vec![i])),
            }
        }
        let groups = by_channel
            .into_iter()
            .map(|(channel, history, indexes)| async move {
                if let Some(policy) = history {
                    let payloads = indexes.iter().map(|&i| &messages[i].payload);
                    let value = self.publish_history(channel, payloads, policy).await?;
                    let published = history::published(value, indexes.len())?;
                    return Ok(indexes.into_iter().zip(published).collect());
                }
                let mut out = Vec::with_capacity(indexes.len());
                for i in indexes {
                    let receivers = self
                        .publish_one(channel, messages[i].payload.clone())
                        .await?;
                    let stamp = None;
                    out.push((i, Published { receivers, stamp }));
                }
                Ok::<_, BrokerError>(out)
            });
        let mut published: Vec<Option<Published>> = vec![None; messages.len()];
        for group in futures_util::future::join_all(groups).await {
            for (i, p) in group? {
                published[i] = Some(p);
            }
        }
        Ok(published.into_iter().flatten().collect())
    }
}

/// One command of a publish batch on one Redis: a plain message alone, or
/// every message of one topic kept in history.
struct Step {
    history: Option<HistoryPolicy>,
    /// Indexes into the batch, in order.
    indexes: Vec<usize>,
}

/// `messages` as the commands that carry them, each topic with history at
/// the place of its first message.
fn steps(messages: &[Outgoing]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        match m.history {
            None => steps.push(Step {
                history: None,
                indexes: vec![i],
            }),
            Some(policy) => match at.get(m.channel.as_str()) {
                Some(&s) => steps[s].indexes.push(i),
                None => {
                    at.insert(&m.channel, steps.len());
                    steps.push(Step {
                        history: Some(policy),
                        indexes: vec![i],
                    });
                }
            },
        }
    }
    steps
}
