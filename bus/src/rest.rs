//! REST endpoints for operators: health, metrics, connections, publishing
//! and queues. `/health` and `/metrics` are open (for probes and scrapers);
//! every other route needs the admin credentials when any are configured.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tower_http::timeout::TimeoutLayer;

use crate::broker::{HistoryLimits, HistoryQuery, ReadOutcome};
use crate::health::HealthStatus;
use crate::limits::{self, LimitError};
use crate::message::names::{self, Channel, NameError, Scope};
use crate::message::{AgentMessage, DeliveryMode, MessageKind};
use crate::protocol::{ErrorCode, QueueItem, RejectOutcome};
use crate::reply::{self, OpError};
use crate::router::RouterError;
use crate::state::AppState;

/// Errors of REST handlers, turned into JSON responses in one place.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A failure REST shares with the WebSocket: its code comes from the
    /// one mapping in [`reply`].
    #[error(transparent)]
    Op(#[from] OpError),
    /// No such connection, or no such claimed message.
    #[error("{0}")]
    NotFound(String),
    /// A request body REST cannot act on.
    #[error("{0}")]
    BadRequest(String),
    /// The operator endpoints need the admin credentials.
    #[error("operator credentials required")]
    Unauthorized,
}

impl From<NameError> for AppError {
    fn from(e: NameError) -> Self {
        Self::Op(e.into())
    }
}

impl From<RouterError> for AppError {
    fn from(e: RouterError) -> Self {
        Self::Op(e.into())
    }
}

impl From<LimitError> for AppError {
    fn from(e: LimitError) -> Self {
        Self::Op(e.into())
    }
}

/// The HTTP status of a shared error code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Forbidden | ErrorCode::CrossWorkspace => StatusCode::FORBIDDEN,
        ErrorCode::QueueFull
        | ErrorCode::RateLimited
        | ErrorCode::Busy
        | ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::BrokerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NoHistory => StatusCode::NOT_FOUND,
        ErrorCode::BadJson
        | ErrorCode::UnknownOp
        | ErrorCode::BadFrame
        | ErrorCode::InvalidName => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AppError::Op(e) => (status_of(e.code), e.code.as_str()),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        };
        let body = Json(json!({ "error": self.to_string(), "code": code }));
        (status, body).into_response()
    }
}

type ApiResult = Result<Json<Value>, AppError>;

/// How long before `--request-timeout` a waiting claim gives up, so that
/// it answers with what it has rather than with 408.
const REPLY_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// All REST routes of a node.
pub fn routes(state: AppState) -> Router<AppState> {
    let deadline = state.config.request_timeout;
    let operator = Router::new()
        .route("/ws/connections", get(connections))
        .route("/ws/connections/{id}", get(connection))
        .route("/ws/stats", get(ws_stats))
        .route("/publish", post(publish))
        .route("/send", post(send))
        .route("/broadcast", post(broadcast))
        .route("/queues", get(all_queues))
        .route("/queues/{workspace}/{queue}", get(queue_stats))
        .route("/queues/{workspace}/{queue}/enqueue", post(enqueue))
        .route("/queues/{workspace}/{queue}/claim", post(claim))
        .route("/queues/{workspace}/{queue}/ack", post(ack))
        .route("/queues/{workspace}/{queue}/reject", post(reject))
        .route("/queues/{workspace}/{queue}/dead", get(dead_letters))
        .route("/history/{workspace}/{*topic}", get(history))
        .route_layer(middleware::from_fn_with_state(state, require_admin));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(operator)
        // Every request, its body included, within `--request-timeout`.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            deadline,
        ))
}

async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.auth.is_admin(crate::auth::bearer(request.headers())) {
        next.run(request).await
    } else {
        AppError::Unauthorized.into_response()
    }
}

/// `GET /health`: the latest check (run now if none ran yet); 503 when
/// unhealthy.
async fn health(State(state): State<AppState>) -> Response {
    let report = match state.health.current_report() {
        Some(r) => r,
        None => state.health.check().await,
    };
    let status = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(report)).into_response()
}

/// `GET /metrics`: the exposition as it stands; the queue gauges are
/// refreshed in the background (`--queue-gauge-interval`), so a scrape
/// costs the broker nothing however many queues there are.
async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(report) = state.health.last_report() {
        let checks = report.checks.iter();
        state.telemetry.health(
            report.status.level(),
            checks.map(|c| (c.check.as_str(), c.latency_ms / 1000.0)),
        );
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.telemetry.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ListParams {
    /// Clamped to [`limits::MAX_LIST`] where it is used.
    #[serde(default = "default_limit", deserialize_with = "saturating_count")]
    limit: u64,
}

fn default_limit() -> u64 {
    limits::DEFAULT_LIST as u64
}

/// A count from a query string: any run of digits, a count too large for a
/// `u64` read as `u64::MAX` (so clamping, not parsing, decides what a huge
/// `limit` means).
fn saturating_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom(format!(
            "expected a whole number, not {text:?}"
        )));
    }
    // Only digits: the one way parsing fails is overflow.
    Ok(text.parse().unwrap_or(u64::MAX))
}

async fn connections(State(state): State<AppState>, Query(p): Query<ListParams>) -> ApiResult {
    Ok(Json(json!({
        "node": state.node,
        "total": state.registry.len(),
        "connections": state.registry.list(limits::list_limit(p.limit)),
    })))
}

async fn connection(State(state): State<AppState>, Path(id): Path<u64>) -> ApiResult {
    let entry = state
        .registry
        .get(id)
        .ok_or_else(|| AppError::NotFound(format!("no connection {id} on this node")))?;
    Ok(Json(
        serde_json::to_value(entry.view()).expect("views serialize"),
    ))
}

async fn ws_stats(State(state): State<AppState>) -> ApiResult {
    let (channels, patterns) = state.router.subscription_counts();
    Ok(Json(json!({
        "node": state.node,
        "registry": state.registry.stats(),
        "broker_subscriptions": { "channels": channels, "patterns": patterns },
    })))
}

/// The scope operators act in: a workspace, as a pseudo-agent.
fn operator_scope(workspace: &str) -> Result<Scope<'_>, AppError> {
    names::validate_id("workspace id", workspace)?;
    Ok(Scope {
        workspace,
        agent: "operator",
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    workspace: String,
    topic: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    kind: MessageKind,
}

async fn publish(State(state): State<AppState>, Json(body): Json<PublishBody>) -> ApiResult {
    let scope = operator_scope(&body.workspace)?;
    let channel = names::resolve_topic(scope, &body.topic)?;
    if !matches!(channel, Channel::Topic { .. } | Channel::Workspace(_)) {
        return Err(AppError::BadRequest(
            "publish to a topic or the workspace; use /send and /broadcast otherwise".into(),
        ));
    }
    let message = AgentMessage::new(&body.topic, body.payload).with_kind(body.kind);
    let id = message.id.clone();
    let receivers = state.router.publish(&channel, message).await?;
    Ok(Json(json!({ "receivers": receivers, "message_id": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    workspace: String,
    to: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    mode: DeliveryMode,
    #[serde(default)]
    kind: MessageKind,
    #[serde(default)]
    priority: u8,
}

async fn send(State(state): State<AppState>, Json(body): Json<SendBody>) -> ApiResult {
    operator_scope(&body.workspace)?;
    names::validate_id("agent id", &body.to)?;
    let message = AgentMessage::new("", body.payload)
        .with_kind(body.kind)
        .with_priority(body.priority);
    let id = message.id.clone();
    let outcome = state
        .router
        .send_direct(&body.workspace, &body.to, message, body.mode)
        .await?;
    Ok(Json(
        json!({ "receivers": outcome.live, "stored": outcome.stored, "message_id": id }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    /// Absent: a global broadcast.
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    payload: Value,
}

async fn broadcast(State(state): State<AppState>, Json(body): Json<BroadcastBody>) -> ApiResult {
    let message = AgentMessage::new("", body.payload);
    let id = message.id.clone();
    let receivers = match &body.workspace {
        Some(w) => {
            operator_scope(w)?;
            state.router.broadcast_workspace(w, message).await?
        }
        None => state.router.broadcast_global(message).await?,
    };
    Ok(Json(json!({ "receivers": receivers, "message_id": id })))
}

fn queue_name(workspace: &str, queue: &str) -> Result<String, AppError> {
    Ok(names::resolve_queue(operator_scope(workspace)?, queue)?)
}

#[derive(Deserialize)]
struct QueuePage {
    /// Clamped to [`limits::MAX_LIST`].
    #[serde(default = "default_limit", deserialize_with = "saturating_count")]
    limit: u64,
    /// Only queues whose name sorts after this one (the previous page's
    /// `next`).
    #[serde(default)]
    after: Option<String>,
}

/// `GET /queues?limit=N&after=NAME`: queues in name order with their
/// depths, a page at a time; `total` counts them all, `next` is the
/// `after` of the following page (absent on the last).
async fn all_queues(State(state): State<AppState>, Query(p): Query<QueuePage>) -> ApiResult {
    let limit = limits::list_limit(p.limit);
    let (total, page) = state.router.queue_page(p.after.as_deref(), limit).await?;
    let next = (page.len() == limit && limit > 0)
        .then(|| page.last().map(|(q, _)| q.clone()))
        .flatten();
    let queues: Vec<Value> = page
        .into_iter()
        .map(|(queue, stats)| json!({ "queue": queue, "stats": stats }))
        .collect();
    Ok(Json(
        json!({ "queues": queues, "total": total, "next": next }),
    ))
}

async fn queue_stats(
    State(state): State<AppState>,
    Path((workspace, queue)): Path<(String, String)>,
) -> ApiResult {
    let name = queue_name(&workspace, &queue)?;
    let stats = state.router.queue_stats(&name).await?;
    Ok(Json(
        json!({ "queue": queue, "workspace": workspace, "stats": stats }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    priority: u8,
    #[serde(default)]
    messages: Vec<QueueItem>,
}

async fn enqueue(
    State(state): State<AppState>,
    Path((workspace, queue)): Path<(String, String)>,
    Json(body): Json<EnqueueBody>,
) -> ApiResult {
    let name = queue_name(&workspace, &queue)?;
    let items = match (body.payload, body.messages.is_empty()) {
        (Some(payload), true) => vec![QueueItem {
            payload,
            priority: body.priority,
        }],
        (None, false) => {
            limits::check_batch(body.messages.len(), "messages", "enqueue")?;
            body.messages
        }
        _ => {
            return Err(AppError::BadRequest(
                "send either `payload` or `messages`".into(),
            ));
        }
    };
    let messages: Vec<AgentMessage> = items
        .into_iter()
        .map(|i| {
            AgentMessage::new(&queue, i.payload)
                .in_workspace(&workspace)
                .with_priority(i.priority)
        })
        .collect();
    state.router.enqueue(&name, &messages).await?;
    let ids: Vec<String> = messages.into_iter().map(|m| m.id).collect();
    Ok(Json(json!({ "message_ids": ids })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    #[serde(default)]
    max: Option<usize>,
    #[serde(default)]
    wait_ms: u64,
}

async fn claim(
    State(state): State<AppState>,
    Path((workspace, queue)): Path<(String, String)>,
    body: Option<Json<ClaimBody>>,
) -> ApiResult {
    let name = queue_name(&workspace, &queue)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    let max = limits::claim_max(body.max.unwrap_or(1));
    // A waiting claim answers a second before the request's deadline.
    let deadline = state.config.request_timeout.saturating_sub(REPLY_MARGIN);
    let wait = limits::claim_wait(body.wait_ms).min(deadline);
    let claimed = state.router.dequeue(&name, max, wait).await?;
    Ok(Json(json!({ "jobs": reply::jobs(&queue, claimed) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    message_id: String,
}

async fn ack(
    State(state): State<AppState>,
    Path((workspace, queue)): Path<(String, String)>,
    Json(body): Json<AckBody>,
) -> ApiResult {
    let name = queue_name(&workspace, &queue)?;
    let acked = state.router.ack(&name, &body.message_id).await?;
    Ok(Json(json!({ "acked": acked })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    message_id: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default = "default_requeue")]
    requeue: bool,
}

fn default_requeue() -> bool {
    true
}

async fn reject(
    State(state): State<AppState>,
    Path((workspace, queue)): Path<(String, String)>,
    Json(body): Json<RejectBody>,
) -> ApiResult {
    let name = queue_name(&workspace, &queue)?;
    let reason = body.reason.unwrap_or_else(|| "rejected by operator".into());
    let outcome = state
        .router
        .reject(&name, &body.message_id, &reason, body.requeue)
        .await?;
    match outcome {
        Some(outcome) => Ok(Json(json!({ "outcome": RejectOutcome::from(outcome) }))),
        None => Err(AppError::NotFound(format!(
            "message {} is not claimed in {queue}",
            body.message_id
        ))),
    }
}

async fn dead_letters(
    State(state): State<AppState>,
    Path((workspace, queue)): Path<(String, String)>,
    Query(p): Query<ListParams>,
) -> ApiResult {
    let name = queue_name(&workspace, &queue)?;
    let limit = limits::list_limit(p.limit);
    let dead = state.router.dead_letters(&name, limit).await?;
    Ok(Json(json!({ "dead_letters": dead })))
}

#[derive(Debug, Deserialize)]
struct HistoryParams {
    /// How many of the topic's last messages (default 100, at most 1,000).
    last: Option<u64>,
}

/// `GET /history/{workspace}/{topic}?last=N`: the last messages of a topic
/// that keeps history, oldest first, bounded as the `history` op is.
async fn history(
    State(state): State<AppState>,
    Path((workspace, topic)): Path<(String, String)>,
    Query(p): Query<HistoryParams>,
) -> ApiResult {
    names::validate_id("workspace", &workspace)?;
    let scope = Scope {
        workspace: &workspace,
        agent: "",
    };
    let channel = names::resolve_topic(scope, &topic)?;
    if !matches!(channel, Channel::Topic { .. }) {
        return Err(AppError::BadRequest(format!(
            "{topic:?} is not a topic: only topics keep history"
        )));
    }
    let count = limits::history_count(p.last);
    let bounds = HistoryLimits {
        max: count,
        max_bytes: limits::MAX_HISTORY_BYTES,
    };
    let read = state
        .router
        .read_history(&channel, &HistoryQuery::Last { count }, bounds)
        .await?;
    Ok(Json(json!({
        "workspace": workspace,
        "topic": topic,
        "epoch": read.epoch,
        "offset": read.head.to_string(),
        "truncated": read.outcome == ReadOutcome::Truncated,
        "messages": reply::history_entries(&read),
    })))
}
