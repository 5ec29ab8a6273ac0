//! What a cluster subscription receives: the redis crate hands every RESP3
//! push of the subscription's cluster connection to a [`Forwarder`], which
//! turns messages into deliveries for the node and notices when a slot the
//! node listens to has moved to another shard.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use redis::aio::{AsyncPushSender, SendError};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc, watch};

use super::channels::ChannelNames;
use super::compress;
use crate::broker::{DELIVERY_BUFFER, Delivery, envelope};

/// State shared by a subscription's control half, its maintenance task and
/// the forwarders of its (current and replaced) connections.
#[derive(Debug)]
pub(super) struct Feed {
    deliveries: mpsc::Sender<Delivery>,
    pub names: ChannelNames,
    /// Redis names of the exact channels the node wants.
    pub channels: Mutex<HashSet<String>>,
    /// Redis names of the patterns the node wants.
    pub patterns: Mutex<HashSet<String>>,
    /// Signalled when a shard unsubscribed a channel the node still wants:
    /// its slot has moved and the connection must be rebuilt.
    pub moved: Notify,
    /// Deliveries dropped because the node was a full buffer behind.
    dropped: AtomicU64,
    /// Counts the times deliveries were lost (dropped here, or the
    /// connection rebuilt): the node then reads what it missed from topic
    /// history (see `Subscription::restored`).
    pub restored: watch::Sender<u64>,
}

impl Feed {
    pub(super) fn new(deliveries: mpsc::Sender<Delivery>, names: ChannelNames) -> Self {
        Self {
            deliveries,
            names,
            channels: Mutex::default(),
            patterns: Mutex::default(),
            moved: Notify::new(),
            dropped: AtomicU64::new(0),
            restored: watch::Sender::new(0),
        }
    }

    /// What the node wants, to subscribe a fresh connection to.
    pub(super) fn wanted(&self) -> (Vec<String>, Vec<String>) {
        let channels = self
            .channels
            .lock()
            .expect("lock")
            .iter()
            .cloned()
            .collect();
        let patterns = self
            .patterns
            .lock()
            .expect("lock")
            .iter()
            .cloned()
            .collect();
        (channels, patterns)
    }

    fn delivery(&self, info: PushInfo) -> Option<Delivery> {
        let mut data = info.data.into_iter().map(|v| match v {
            Value::BulkString(bytes) => Some(bytes),
            _ => None,
        });
        let pattern = match info.kind {
            PushKind::PMessage => Some(data.next()??),
            _ => None,
        };
        let channel = data.next()??;
        let payload = data.next()??;
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .ok()
                .map(|s| self.names.broker_name(s).into_owned())
        };
        let (stamp, payload) = envelope::open(Bytes::from(payload));
        let payload = compress::open_delivery(&String::from_utf8_lossy(&channel), payload)?;
        Some(Delivery {
            channel: text(&channel)?,
            pattern: match pattern {
                Some(p) => Some(text(&p)?),
                None => None,
            },
            payload,
            stamp,
        })
    }

    /// The crate cannot wait for the node, so a node a full buffer behind
    /// loses deliveries (pub/sub is at-most-once); losses are counted and
    /// logged, never silent.
    fn forward(&self, delivery: Delivery) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.deliveries.try_send(delivery) {
            self.restored.send_modify(|n| *n += 1);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    buffer = DELIVERY_BUFFER,
                    "node subscription is a full buffer behind; dropping cluster pub/sub deliveries"
                );
            }
        }
    }

    /// A `sunsubscribe` for a channel the node still wants came from the
    /// server (our own unsubscribes drop the channel from the wanted set
    /// first): the shard no longer owns its slot.
    fn note_unsubscribed(&self, info: &PushInfo) {
        let Some(Value::BulkString(name)) = info.data.first() else {
            return;
        };
        let wanted = std::str::from_utf8(name)
            .is_ok_and(|name| self.channels.lock().expect("lock").contains(name));
        if wanted {
            self.moved.notify_one();
        }
    }
}

/// The push sender given to the redis crate.
#[derive(Debug)]
pub(super) struct Forwarder(pub std::sync::Arc<Feed>);

impl AsyncPushSender for Forwarder {
    /// Never fails: an error here would only be ignored by the crate.
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Message | PushKind::SMessage | PushKind::PMessage => {
                if let Some(delivery) = self.0.delivery(info) {
                    self.0.forward(delivery);
                }
            }
            PushKind::SUnsubscribe => self.0.note_unsubscribed(&info),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn pushes_become_deliveries_with_broker_names() {
        let (tx, mut rx) = mpsc::channel(4);
        let feed = Feed::new(tx, ChannelNames::new("ns:".into(), true));
        let forwarder = Forwarder(std::sync::Arc::new(feed));
        forwarder
            .send(PushInfo {
                kind: PushKind::PMessage,
                data: vec![
                    bulk("ns:topic:{w1}/a*"),
                    bulk("ns:topic:{w1}/ab"),
                    bulk("hi"),
                ],
            })
            .unwrap();
        forwarder
            .send(PushInfo {
                kind: PushKind::SMessage,
                data: vec![bulk("ns:inbox:w1/a1"), bulk("yo")],
            })
            .unwrap();
        let d = rx.try_recv().unwrap();
        assert_eq!(
            (d.channel.as_str(), d.pattern.as_deref(), &d.payload[..]),
            ("topic:w1/ab", Some("topic:w1/a*"), &b"hi"[..])
        );
        let d = rx.try_recv().unwrap();
        assert_eq!((d.channel.as_str(), d.pattern), ("inbox:w1/a1", None));
    }

    #[test]
    fn only_unsubscribes_of_wanted_channels_mean_a_slot_moved() {
        let (tx, _rx) = mpsc::channel(1);
        let feed = std::sync::Arc::new(Feed::new(tx, ChannelNames::new("ns:".into(), true)));
        feed.channels
            .lock()
            .unwrap()
            .insert("ns:inbox:w1/a1".into());
        let forwarder = Forwarder(feed.clone());
        let unsubscribed = |name: &str| PushInfo {
            kind: PushKind::SUnsubscribe,
            data: vec![bulk(name), Value::Int(0)],
        };
        forwarder.send(unsubscribed("ns:inbox:w1/other")).unwrap();
        assert!(
            futures_util::FutureExt::now_or_never(feed.moved.notified()).is_none(),
            "our own unsubscribe"
        );
        forwarder.send(unsubscribed("ns:inbox:w1/a1")).unwrap();
        assert!(futures_util::FutureExt::now_or_never(feed.moved.notified()).is_some());
    }

    #[test]
    fn a_dropped_delivery_says_the_node_missed_something() {
        let (tx, _rx) = mpsc::channel(1);
        let feed = std::sync::Arc::new(Feed::new(tx, ChannelNames::new("ns:".into(), true)));
        let restored = feed.restored.subscribe();
        let forwarder = Forwarder(feed.clone());
        let message = || PushInfo {
            kind: PushKind::SMessage,
            data: vec![bulk("ns:topic:{w1}/a"), bulk("{}")],
        };
        forwarder.send(message()).unwrap();
        assert!(!restored.has_changed().unwrap(), "room in the buffer");
        forwarder.send(message()).unwrap();
        assert!(restored.has_changed().unwrap(), "the second was dropped");
    }
}
