//! The simulator's own HTTP server while a run runs: the dashboard page
//! (one self-contained page; its chart library, uPlot, is served from here,
//! nothing from elsewhere), the snapshots pushed as server-sent events once
//! a second, the latest snapshot as JSON, and Prometheus metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{LiveBoard, exposition};

const PAGE: &str = include_str!("dashboard.html");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");

/// Longest wait for open event streams once the server is stopped.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Why the live server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the {what}: {source}")]
pub struct ServeError {
    addr: SocketAddr,
    what: &'static str,
    #[source]
    source: std::io::Error,
}

/// A running live server; [`LiveServer::stop`] ends it.
#[derive(Debug)]
pub struct LiveServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LiveServer {
    /// Listens on `addr` (port 0: any free port) and serves `board`; `what`
    /// names it in errors ("dashboard", "metrics").
    pub async fn start(
        addr: SocketAddr,
        board: LiveBoard,
        what: &'static str,
    ) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError { addr, what, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError { addr, what, source })?;
        let stop = CancellationToken::new();
        let app = routes(board);
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(e) = serve.await {
                tracing::warn!(cause = %e, "the live server stopped");
            }
        });
        Ok(Self { addr, stop, task })
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; open event streams get a second to end.
    pub async fn stop(self) {
        self.stop.cancel();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            abort.abort();
        }
    }
}

fn routes(board: LiveBoard) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/uPlot.iife.min.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], UPLOT_JS) }),
        )
        .route(
            "/uPlot.min.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], UPLOT_CSS) }),
        )
        .route("/events", get(events))
        .route("/snapshot.json", get(snapshot))
        .route("/metrics", get(metrics))
        .with_state(board)
}

/// The latest snapshot at once, then each new one.
async fn events(
    State(board): State<LiveBoard>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = board.subscribe();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first {
            rx.changed().await.ok()?;
        }
        let snapshot = rx.borrow_and_update().clone();
        let json = serde_json::to_string(&*snapshot).expect("snapshots serialize");
        let event = Event::default().event("snapshot").data(json);
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn snapshot(State(board): State<LiveBoard>) -> Response {
    axum::Json((*board.snapshot()).clone()).into_response()
}

async fn metrics(State(board): State<LiveBoard>) -> Response {
    let text = exposition::render(&board.snapshot());
    ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response()
}
