//! The requests of one connection that are on their way: handed to the
//! node (a publish in the publish pipeline) while the session reads on,
//! their replies still to come. Replies leave in request order, as the
//! protocol promises, whatever order the work finishes in.
//!
//! Bounded by [`limits::MAX_IN_FLIGHT`] requests and
//! [`limits::MAX_IN_FLIGHT_BYTES`] payload bytes: at either bound the
//! reader stops reading the socket until replies come back.

use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use crate::limits;
use crate::protocol::ServerFrame;

/// A reply to come, and the payload bytes its request holds until then
/// (`Sync` because the session is shared by reference across awaits).
type Pending = Pin<Box<dyn Future<Output = (ServerFrame, usize)> + Send + Sync>>;

/// Replies to come, in request order.
#[derive(Default)]
pub(super) struct InFlight {
    replies: FuturesOrdered<Pending>,
    /// Payload bytes of the requests in `replies`.
    bytes: usize,
}

impl InFlight {
    /// Whether no reply is to come.
    pub(super) fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// Whether the connection has as much on its way as it may: read no
    /// more of it until a reply goes out.
    pub(super) fn is_full(&self) -> bool {
        self.replies.len() >= limits::MAX_IN_FLIGHT || self.bytes >= limits::MAX_IN_FLIGHT_BYTES
    }

    /// Adds the reply to a request of `bytes` payload bytes, to go out after
    /// every reply added before it.
    pub(super) fn push(
        &mut self,
        bytes: usize,
        reply: impl Future<Output = ServerFrame> + Send + Sync + 'static,
    ) {
        self.bytes += bytes;
        self.replies
            .push_back(Box::pin(async move { (reply.await, bytes) }));
    }

    /// A reply already known, kept behind those still to come so the order
    /// holds.
    pub(super) fn push_ready(&mut self, frame: ServerFrame) {
        self.push(0, std::future::ready(frame));
    }

    /// The next reply in request order, once it is ready; pending for ever
    /// when none is to come (select on it only when not empty).
    pub(super) async fn next(&mut self) -> ServerFrame {
        match self.replies.next().await {
            Some((frame, bytes)) => {
                self.bytes -= bytes;
                frame
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    fn frame(n: u64) -> ServerFrame {
        ServerFrame::error(Some(serde_json::json!(n)), ErrorCode::BadFrame, "x")
    }

    #[tokio::test]
    async fn replies_leave_in_request_order_whatever_finishes_first() {
        let mut in_flight = InFlight::default();
        let (slow_tx, slow_rx) = tokio::sync::oneshot::channel::<()>();
        in_flight.push(10, async move {
            let _ = slow_rx.await;
            frame(1)
        });
        in_flight.push_ready(frame(2));
        assert!(!in_flight.is_full());
        slow_tx.send(()).unwrap();
        assert_eq!(in_flight.next().await, frame(1));
        assert_eq!(in_flight.next().await, frame(2));
        assert!(in_flight.is_empty());
        assert_eq!(in_flight.bytes, 0);
    }

    #[test]
    fn full_by_count_or_by_bytes() {
        let mut in_flight = InFlight::default();
        in_flight.push(limits::MAX_IN_FLIGHT_BYTES, std::future::ready(frame(1)));
        assert!(in_flight.is_full(), "the byte bound");
        let mut in_flight = InFlight::default();
        for n in 0..limits::MAX_IN_FLIGHT as u64 {
            assert!(!in_flight.is_full());
            in_flight.push_ready(frame(n));
        }
        assert!(in_flight.is_full(), "the count bound");
    }
}
