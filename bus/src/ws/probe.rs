//! The node's delivery path as a health probe (the `delivery` check of
//! `/health`): a probe message goes through the publish pipeline and the
//! dispatch like any publish, becomes a `message` frame in an
//! [`Outbound`] queue, and is written by the same writer task as an
//! agent's connection, whose far end here is a channel instead of a
//! socket. A node too busy to deliver to its agents in time is too busy to
//! deliver the probe in time.
//!
//! The probe is not an agent: it is not in the registry, and what it sends
//! and receives is not counted in the node's agent metrics (the
//! simulator's witness compares those with what agents did).

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use tokio::sync::{Mutex, mpsc};

use super::connection::{outbound, write_loop};
use super::outbound::Outbound;
use crate::auth::Identity;
use crate::health::NodeProbe;
use crate::message::names::Channel;
use crate::protocol::message_frame;
use crate::registry::ConnectionEntry;
use crate::router::{DeliverySink, Dispatched, SinkId};
use crate::state::AppState;

/// Frames the probe's writer may hold for it; the probe drains them each
/// round trip.
const PROBE_FRAMES: usize = 64;

/// The probe: its place in the router's subscription index, the outbound
/// queue the router delivers into, and the far end of its writer.
pub struct DeliveryProbe {
    state: AppState,
    channel: Channel,
    sink_id: SinkId,
    sink: Arc<dyn DeliverySink>,
    entry: Arc<ConnectionEntry>,
    /// What the writer wrote; locked by the round trip under way (and
    /// whether the probe channel is subscribed yet).
    written: Mutex<(mpsc::Receiver<Message>, bool)>,
}

impl DeliveryProbe {
    /// Sets up the probe's outbound queue and starts its writer; the
    /// caller attaches it to the health checker and calls
    /// [`DeliveryProbe::stop`] when the node shuts down.
    pub fn start(state: &AppState) -> Arc<Self> {
        let identity = Identity {
            agent: "_delivery_probe".to_owned(),
            workspace: "_health".to_owned(),
            user: None,
            allowed_topics: None,
            global_broadcast: false,
        };
        let entry = ConnectionEntry::unlisted(identity);
        // Not an agent: its frames are not counted as the node's agents'.
        let (outbound, rx, writer) = outbound(&entry, state, false);
        let (far_tx, far_rx) = mpsc::channel(PROBE_FRAMES);
        // A far end that never makes the writer wait: when the probe has
        // not read (no check for a while), the oldest frames are kept and
        // the newest dropped; each round trip drains it first.
        let far_end = futures_util::sink::unfold(far_tx, |far_tx, frame: Message| async move {
            let _ = far_tx.try_send(frame);
            Ok::<_, axum::Error>(far_tx)
        });
        tokio::spawn(write_loop(Box::pin(far_end), rx, entry.clone(), writer));
        Arc::new(Self {
            state: state.clone(),
            channel: Channel::Internal(format!("probe:{}", state.node)),
            sink_id: state.router.next_sink_id(),
            sink: Arc::new(ProbeSink { outbound }),
            entry,
            written: Mutex::new((far_rx, false)),
        })
    }

    /// Takes the probe out of the health checker and the router's index
    /// and stops its writer, at once and without a word to Redis (which may
    /// be gone already), so that nothing the probe holds keeps the node's
    /// state alive: the node is shutting down.
    pub fn stop(&self) {
        self.state.health.detach();
        let channel = std::slice::from_ref(&self.channel);
        self.state.router.forget(self.sink_id, channel);
        self.entry.close.cancel();
    }
}

impl std::fmt::Debug for DeliveryProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryProbe")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl NodeProbe for DeliveryProbe {
    async fn round_trip(&self) -> Result<(), String> {
        let router = &self.state.router;
        let mut written = self.written.lock().await;
        let (frames, subscribed) = &mut *written;
        if !*subscribed {
            router
                .subscribe(
                    self.sink_id,
                    &self.sink,
                    std::slice::from_ref(&self.channel),
                )
                .await
                .map_err(|e| e.to_string())?;
            *subscribed = true;
        }
        // Echoes of earlier probes that timed out.
        while frames.try_recv().is_ok() {}
        let nonce = crate::message::new_id();
        router
            .publish_raw(&self.channel, Bytes::from(nonce.clone()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match frames.recv().await {
                Some(Message::Text(text)) if text.contains(nonce.as_str()) => return Ok(()),
                Some(_) => continue,
                None if self.entry.close.is_cancelled() => {
                    return Err("the node is shutting down".into());
                }
                None => return Err("the probe's writer has stopped".into()),
            }
        }
    }
}

/// Delivers the probe channel into the probe's outbound queue, as a
/// connection's sink does (the frame built the same way), uncounted.
#[derive(Debug)]
struct ProbeSink {
    outbound: Outbound,
}

impl DeliverySink for ProbeSink {
    fn deliver(&self, dispatched: &Dispatched<'_>) {
        let frame: Utf8Bytes = dispatched.frame(|d| {
            let pattern = d
                .pattern
                .as_deref()
                .map(crate::message::names::wire_pattern);
            Utf8Bytes::from(message_frame(pattern, d.stamp.as_ref(), &d.payload))
        });
        self.outbound.push(Message::Text(frame));
    }
}
