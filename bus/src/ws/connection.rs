//! The life of one WebSocket connection: a reader (this task) that runs the
//! session and closes clients silent past the ping timeout, and a writer
//! task that drains the bounded outbound queue, coalescing queued frames
//! into one flush, pinging the client, and closing with the reason the
//! session or the node chose. Every write has a deadline: a client whose
//! socket takes nothing for `--write-timeout` is a slow consumer, and a
//! slow consumer's socket is dropped after at most [`CLOSE_DEADLINE`] more,
//! whether or not it ever reads again. When one task ends, the other is
//! stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::{Sink, SinkExt, StreamExt};
use metrics::Counter;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFuture;

use super::gate::Gates;
use super::outbound::{ConnectionSink, DrainSignal, Outbound, frame_bytes};
use super::session::Session;
use crate::message::names;
use crate::protocol::{ErrorCode, ServerFrame, close};
use crate::registry::ConnectionEntry;
use crate::router::DeliverySink;
use crate::state::AppState;

/// How long the socket of a client closed for an oversized frame is held
/// after the close frame, so the close reaches it before the socket goes.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Frames written per flush at most.
const WRITE_BATCH: usize = 64;

/// Longest wait for the close frame to go out, after which the socket is
/// dropped without it.
pub(super) const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// Runs a registered connection to its end, then unregisters it.
#[tracing::instrument(skip_all, fields(conn = entry.id, agent = %entry.identity.agent, workspace = %entry.identity.workspace))]
pub(super) async fn run(socket: WebSocket, state: AppState, entry: Arc<ConnectionEntry>) {
    let (ws_tx, ws_rx) = socket.split();
    let (outbound, rx, writer) = outbound(&entry, &state, true);
    let drain = writer.drain.clone();
    let writer = tokio::spawn(write_loop(ws_tx, rx, entry.clone(), writer));

    let inbox_wake = Arc::new(Notify::new());
    let gates = Arc::new(Gates::default());
    let sink: Arc<dyn DeliverySink> = Arc::new(ConnectionSink {
        outbound: outbound.clone(),
        inbox_channel: names::inbox_channel(&entry.identity.workspace, &entry.identity.agent).key(),
        inbox_wake: inbox_wake.clone(),
        gates: gates.clone(),
    });
    let sink_id = state.router.next_sink_id();
    let mut session = Session::new(
        state.clone(),
        entry.clone(),
        sink_id,
        sink,
        outbound.clone(),
        gates,
    );
    state.telemetry.connections.increment(1.0);
    state.telemetry.connections_opened.increment(1);
    match session.open().await {
        Ok(()) => {
            session.pump_inbox().await;
            let silence = state.config.ping_timeout;
            read_loop(ws_rx, &mut session, [&inbox_wake, &drain.drained], silence).await;
        }
        Err(e) => {
            tracing::warn!(?e, "could not subscribe the connection's default channels");
            outbound.push_frame(&ServerFrame::error(
                None,
                ErrorCode::BrokerUnavailable,
                "the bus could not set up your subscriptions; try again",
            ));
            outbound.close_with(1011, "broker unavailable");
        }
    }
    session.close().await;
    entry.close.cancel();
    let _ = writer.await;
    state.registry.unregister(entry.id);
    state.telemetry.connections.decrement(1.0);
}

/// Reads and handles the client's frames until it closes, fails, or is
/// silent (no frame, pong included) for longer than `silence`.
async fn read_loop(
    mut ws_rx: SplitStream<WebSocket>,
    session: &mut Session,
    [inbox_wake, drained]: [&Notify; 2],
    silence: Duration,
) {
    let close = session.entry.close.clone();
    let closed = close.cancelled();
    tokio::pin!(closed);
    // Checked a few times per timeout rather than a timer reset per frame.
    let mut checks = tokio::time::interval(silence / 4);
    let mut last_seen = Instant::now();
    loop {
        let next = tokio::select! {
            _ = &mut closed => return,
            // A stored direct message arrived, or the writer made room for
            // the rest of a backlog.
            _ = inbox_wake.notified() => {
                session.pump_inbox().await;
                continue;
            }
            _ = drained.notified() => {
                session.pump_inbox().await;
                continue;
            }
            _ = checks.tick() => {
                if last_seen.elapsed() > silence {
                    session.entry.close_with(close::PING_TIMEOUT, "no answer to pings");
                    return;
                }
                continue;
            }
            // A reply whose work finished (a publish the broker took).
            reply = session.in_flight.next(), if !session.in_flight.is_empty() => {
                session.outbound.push_frame(&reply);
                continue;
            }
            // At its in-flight bound the connection is not read until
            // replies go out: TCP slows the client down.
            next = ws_rx.next(), if !session.in_flight.is_full() => next,
        };
        last_seen = Instant::now();
        match next {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) => {
                session.entry.frames_in.fetch_add(1, Ordering::Relaxed);
                session.handle(&text).await;
            }
            Some(Ok(Message::Binary(_))) => {
                session.state.telemetry.frame_in("invalid");
                session.state.telemetry.error(ErrorCode::BadJson);
                session.outbound.push_frame(&ServerFrame::error(
                    None,
                    ErrorCode::BadJson,
                    "binary frames are not supported; send JSON text frames",
                ));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(err)) => {
                if is_too_big(&err) {
                    let max = session.state.config.max_frame_bytes;
                    session.outbound.close_with(
                        close::MESSAGE_TOO_BIG,
                        &format!("frame larger than {max} bytes"),
                    );
                } else {
                    tracing::debug!(cause = %err, "websocket read failed");
                }
                return;
            }
        }
    }
}

fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The writer's settings and its share of the outbound byte count.
pub(super) struct Writer {
    /// Bytes queued and not yet flushed (shared with [`Outbound`]).
    pub(super) queued: Arc<AtomicUsize>,
    /// Told after each flush, for a producer waiting for room.
    pub(super) drain: Arc<DrainSignal>,
    pub(super) ping_interval: Duration,
    /// Longest time one batch may take to reach the socket.
    pub(super) deadline: Duration,
    pub(super) slow_consumers: Counter,
    /// `bus_frames_out_total`.
    pub(super) frames_out: Counter,
}

/// A connection's bounded outbound queue and the [`Writer`] that drains
/// it (run it with [`write_loop`]). With `counted`, the writer counts its
/// frames and slow consumers in the node's metrics (an agent's
/// connection); without, not (the node's own health probe).
pub(super) fn outbound(
    entry: &Arc<ConnectionEntry>,
    state: &AppState,
    counted: bool,
) -> (Outbound, mpsc::Receiver<Message>, Writer) {
    let (tx, rx) = mpsc::channel(state.config.outbound_queue);
    let queued = Arc::new(AtomicUsize::new(0));
    let drain = Arc::new(DrainSignal::default());
    let outbound = Outbound::new(
        tx,
        queued.clone(),
        drain.clone(),
        entry.clone(),
        state.clone(),
    );
    let (slow_consumers, frames_out) = if counted {
        let t = &state.telemetry;
        (t.slow_consumers.clone(), t.frames_out.clone())
    } else {
        (Counter::noop(), Counter::noop())
    };
    let writer = Writer {
        queued,
        drain,
        ping_interval: state.config.ping_interval,
        deadline: state.config.write_timeout,
        slow_consumers,
        frames_out,
    };
    (outbound, rx, writer)
}

/// How a write of a batch ended.
enum Written {
    Done,
    /// The socket failed: the client is gone.
    Failed,
    /// Past the deadline, or the connection was closed as a slow consumer
    /// or a silent client while the write waited: give up on it.
    Abandoned,
}

/// Drains the outbound queue `rx` into `ws_tx` (an agent's socket, or the
/// health probe's channel) until the connection closes.
pub(super) async fn write_loop<S>(
    mut ws_tx: S,
    mut rx: mpsc::Receiver<Message>,
    entry: Arc<ConnectionEntry>,
    writer: Writer,
) where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let interval = writer.ping_interval;
    let mut pings = tokio::time::interval_at(Instant::now() + interval, interval);
    // One close future for the connection's life, not one per write.
    let closed = entry.close.cancelled();
    tokio::pin!(closed);
    loop {
        let written = tokio::select! {
            biased;
            _ = &mut closed => break,
            n = rx.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break;
                }
                if n < WRITE_BATCH {
                    // Let the fan-out that woke this writer finish its round
                    // and take what it added since: more frames per write
                    // under load, next to no delay when idle.
                    tokio::task::yield_now().await;
                    while batch.len() < WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                }
                let (n, bytes) = (batch.len(), batch.iter().map(frame_bytes).sum::<usize>());
                let written = write_within(&mut ws_tx, &mut batch, &writer, &entry, closed.as_mut()).await;
                if let Written::Done = written {
                    writer.queued.fetch_sub(bytes, Ordering::AcqRel);
                    writer.drain.flushed();
                    entry.frames_out.fetch_add(n as u64, Ordering::Relaxed);
                    writer.frames_out.increment(n as u64);
                }
                written
            }
            _ = pings.tick() => {
                batch.push(Message::Ping(Default::default()));
                let written = write_within(&mut ws_tx, &mut batch, &writer, &entry, closed.as_mut()).await;
                if let Written::Done = written {
                    writer.frames_out.increment(1);
                }
                written
            }
        };
        match written {
            Written::Done => {}
            Written::Failed => return,
            Written::Abandoned => break,
        }
    }
    // What a slow consumer held is freed now, not when its socket goes.
    rx.close();
    let (code, reason) = entry
        .take_close_reason()
        .unwrap_or((1000, "bye".to_owned()));
    // On shutdown, what is already queued still goes out before the close.
    if code == close::GOING_AWAY {
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let n = batch.len() as u64;
        let flushed =
            tokio::time::timeout(CLOSE_DEADLINE, write_batch(&mut ws_tx, &mut batch)).await;
        if matches!(flushed, Ok(Ok(()))) {
            writer.frames_out.increment(n);
        }
    }
    drop(rx);
    batch.clear();
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let sent = tokio::time::timeout(CLOSE_DEADLINE, async {
        ws_tx.send(Message::Close(Some(frame))).await?;
        ws_tx.close().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        writer.frames_out.increment(1);
    }
    // A client cut off mid-frame is still sending: dropping the socket now,
    // with its bytes unread, would send a reset that can overtake the close
    // frame. Holding the socket a moment lets the client read the 1009.
    if code == close::MESSAGE_TOO_BIG && matches!(sent, Ok(Ok(()))) {
        tokio::time::sleep(CLOSE_LINGER).await;
    }
}

/// Writes `batch` within the writer's deadline. A write past the deadline
/// makes the client a slow consumer; a write under way when the connection
/// is closed for not reading (slow consumer, silent client) is given up.
async fn write_within<S: Sink<Message, Error = axum::Error> + Unpin>(
    ws_tx: &mut S,
    batch: &mut Vec<Message>,
    writer: &Writer,
    entry: &ConnectionEntry,
    mut closed: std::pin::Pin<&mut WaitForCancellationFuture<'_>>,
) -> Written {
    let write = tokio::time::timeout(writer.deadline, write_batch(ws_tx, batch));
    tokio::pin!(write);
    let result = tokio::select! {
        biased;
        result = &mut write => result,
        // Closed while writing: a close for not reading gives up at once;
        // any other close lets the write finish (its deadline still holds).
        _ = closed.as_mut() => {
            if matches!(entry.close_code(), Some(close::SLOW_CONSUMER | close::PING_TIMEOUT)) {
                return Written::Abandoned;
            }
            (&mut write).await
        }
    };
    match result {
        Ok(Ok(())) => Written::Done,
        Ok(Err(_)) => Written::Failed,
        Err(_elapsed) => {
            if !entry.close.is_cancelled() {
                writer.slow_consumers.increment(1);
            }
            let secs = writer.deadline.as_secs_f64();
            entry.close_with(
                close::SLOW_CONSUMER,
                &format!("slow consumer: no write went through in {secs}s"),
            );
            Written::Abandoned
        }
    }
}

async fn write_batch<S: Sink<Message, Error = axum::Error> + Unpin>(
    ws_tx: &mut S,
    batch: &mut Vec<Message>,
) -> Result<(), axum::Error> {
    for m in batch.drain(..) {
        ws_tx.feed(m).await?;
    }
    ws_tx.flush().await
}
