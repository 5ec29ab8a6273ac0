//! The life of one WebSocket connection: a reader (this task) that runs the
//! session, and a writer task that drains the bounded outbound queue,
//! coalescing queued frames into one flush, pinging the client, and closing
//! with the reason the session or the node chose. When one ends, the other
//! is stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::outbound::{ConnectionSink, Outbound};
use super::session::Session;
use crate::message::names;
use crate::protocol::{ErrorCode, ServerFrame, close};
use crate::registry::ConnectionEntry;
use crate::router::DeliverySink;
use crate::state::AppState;

/// Frames written per flush at most.
const WRITE_BATCH: usize = 64;

/// Runs a registered connection to its end, then unregisters it.
#[tracing::instrument(skip_all, fields(conn = entry.id, agent = %entry.identity.agent, workspace = %entry.identity.workspace))]
pub(super) async fn run(socket: WebSocket, state: AppState, entry: Arc<ConnectionEntry>) {
    let (ws_tx, ws_rx) = socket.split();
    let (tx, rx) = mpsc::channel(state.config.outbound_queue);
    let outbound = Outbound::new(tx, entry.clone(), state.clone());
    let started = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_loop(
        ws_tx,
        rx,
        entry.clone(),
        Liveness {
            started,
            last_seen: last_seen.clone(),
            interval: state.config.ping_interval,
            timeout: state.config.ping_timeout,
        },
    ));

    let inbox_wake = Arc::new(Notify::new());
    let sink: Arc<dyn DeliverySink> = Arc::new(ConnectionSink {
        outbound: outbound.clone(),
        inbox_channel: names::inbox_channel(&entry.identity.workspace, &entry.identity.agent).key(),
        inbox_wake: inbox_wake.clone(),
    });
    let sink_id = state.router.next_sink_id();
    let mut session = Session::new(
        state.clone(),
        entry.clone(),
        sink_id,
        sink,
        outbound.clone(),
    );
    state.telemetry.connections.increment(1.0);
    state.telemetry.connections_opened.increment(1);
    match session.open().await {
        Ok(()) => {
            session.pump_inbox().await;
            read_loop(ws_rx, &mut session, &inbox_wake, &last_seen, started).await;
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

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

async fn read_loop(
    mut ws_rx: SplitStream<WebSocket>,
    session: &mut Session,
    inbox_wake: &Notify,
    last_seen: &AtomicU64,
    started: Instant,
) {
    let close = session.entry.close.clone();
    let closed = close.cancelled();
    tokio::pin!(closed);
    loop {
        let next = tokio::select! {
            _ = &mut closed => return,
            _ = inbox_wake.notified() => {
                session.pump_inbox().await;
                continue;
            }
            next = ws_rx.next() => next,
        };
        last_seen.store(elapsed_ms(started), Ordering::Relaxed);
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

/// When the client was last heard from, and how often to check.
struct Liveness {
    started: Instant,
    last_seen: Arc<AtomicU64>,
    interval: Duration,
    timeout: Duration,
}

async fn write_loop(
    mut ws_tx: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
    entry: Arc<ConnectionEntry>,
    liveness: Liveness,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut pings = tokio::time::interval_at(Instant::now() + liveness.interval, liveness.interval);
    // One close future for the connection's life, not one per write.
    let closed = entry.close.cancelled();
    tokio::pin!(closed);
    loop {
        tokio::select! {
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
                let n = batch.len();
                if write_batch(&mut ws_tx, &mut batch).await.is_err() {
                    return;
                }
                entry.frames_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            _ = pings.tick() => {
                let silent_ms = elapsed_ms(liveness.started)
                    .saturating_sub(liveness.last_seen.load(Ordering::Relaxed));
                if Duration::from_millis(silent_ms) > liveness.timeout {
                    entry.close_with(close::PING_TIMEOUT, "no answer to pings");
                    break;
                }
                if ws_tx.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
    let (code, reason) = entry
        .take_close_reason()
        .unwrap_or((1000, "bye".to_owned()));
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    // On shutdown, what is already queued still goes out before the close.
    if frame.code == close::GOING_AWAY {
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let _ = write_batch(&mut ws_tx, &mut batch).await;
    }
    let _ = ws_tx.send(Message::Close(Some(frame))).await;
    let _ = ws_tx.close().await;
}

async fn write_batch(
    ws_tx: &mut SplitSink<WebSocket, Message>,
    batch: &mut Vec<Message>,
) -> Result<(), axum::Error> {
    for m in batch.drain(..) {
        ws_tx.feed(m).await?;
    }
    ws_tx.flush().await
}
