//! REST load through goose: `rest_client` groups drive the bus's operator
//! endpoints (publish, enqueue, claim and ack, `/health`) with goose users
//! while the WebSocket agents run. Each call is timed here in µs into its own
//! histogram (`http_health`, `http_publish`, `http_enqueue`,
//! `http_claim_ack`; goose's own figures are whole milliseconds), so the
//! report shows REST percentiles beside the WebSocket ones; goose's
//! per-endpoint counts come back as notes.
//!
//! Goose runs a closed model (each user waits for its reply, then thinks
//! for `1 / rate`), unlike the agents' open model: say so when comparing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::json;

use crate::metrics::{MetricsHub, Operation};
use crate::plan::REST_TOPIC;

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpLoad {
    /// `http://host:port` of one bus node.
    pub base_url: String,
    /// Concurrent goose users.
    pub users: usize,
    /// Pause between a user's requests.
    pub think: Duration,
    /// How long the users run (whole seconds, at least one).
    pub run_time: Duration,
    /// Workspace of the queue and topic the users hit.
    pub workspace: String,
    /// Bearer token for operator endpoints, when the bus wants one.
    pub token: Option<String>,
}

/// Shared by every transaction.
struct Shared {
    hub: MetricsHub,
    workspace: String,
    token: Option<String>,
}

impl Shared {
    /// Sends `method path` (with a JSON body); returns the response's
    /// JSON body, or the error kind (`http_<status>`, `http_failed`).
    async fn call(
        &self,
        user: &mut GooseUser,
        method: GooseMethod,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Result<serde_json::Value, String>, Box<TransactionError>> {
        let mut builder = user.get_request_builder(&method, path)?;
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = &body {
            builder = builder.json(body);
        }
        let request = GooseRequest::builder()
            .method(method)
            .path(path)
            .set_request_builder(builder)
            .build();
        let response = user.request(request).await?;
        Ok(match response.response {
            Ok(r) if r.status().is_success() => Ok(r.json().await.unwrap_or_default()),
            Ok(r) => Err(format!("http_{}", r.status().as_u16())),
            Err(_) => Err("http_failed".to_owned()),
        })
    }

    /// Records one sample of `operation` (and its error, if any).
    fn record(&self, operation: Operation, started: Instant, failure: Option<String>) {
        let latency = started.elapsed();
        let local = self.hub.local();
        let at = local.elapsed();
        local.with(|r| {
            r.record_duration(operation, latency, at);
            if let Some(kind) = &failure {
                r.count_error(at, kind);
            }
        });
    }
}

/// What one transaction does.
#[derive(Debug, Clone, Copy)]
enum Call {
    Health,
    Publish,
    Enqueue,
    ClaimAck,
}

impl Shared {
    async fn run(&self, user: &mut GooseUser, call: Call) -> TransactionResult {
        let ws = &self.workspace;
        let started = Instant::now();
        let (operation, outcome) = match call {
            Call::Health => {
                // 503 means "unhealthy", still a valid answer.
                let outcome = match self.call(user, GooseMethod::Get, "/health", None).await? {
                    Err(kind) if kind == "http_503" => Ok(serde_json::Value::Null),
                    other => other,
                };
                (Operation::HttpHealth, outcome)
            }
            Call::Publish => {
                let body =
                    json!({"workspace": ws, "topic": REST_TOPIC, "payload": {"via": "rest"}});
                (
                    Operation::HttpPublish,
                    self.call(user, GooseMethod::Post, "/publish", Some(body))
                        .await?,
                )
            }
            Call::Enqueue => {
                let path = format!("/queues/{ws}/rest/enqueue");
                let body = json!({"payload": {"via": "rest"}});
                (
                    Operation::HttpEnqueue,
                    self.call(user, GooseMethod::Post, &path, Some(body))
                        .await?,
                )
            }
            Call::ClaimAck => {
                let claim = format!("/queues/{ws}/rest/claim");
                let mut outcome = self
                    .call(user, GooseMethod::Post, &claim, Some(json!({"max": 1})))
                    .await?;
                let id = outcome
                    .as_ref()
                    .ok()
                    .and_then(|b| b["jobs"][0]["message"]["id"].as_str().map(str::to_owned));
                if let Some(id) = id {
                    let ack = format!("/queues/{ws}/rest/ack");
                    outcome = self
                        .call(
                            user,
                            GooseMethod::Post,
                            &ack,
                            Some(json!({"message_id": id})),
                        )
                        .await?;
                    if let Ok(body) = &outcome
                        && body["acked"] != serde_json::Value::Bool(true)
                    {
                        outcome = Err("http_ack_not_found".to_owned());
                    }
                }
                (Operation::HttpClaimAck, outcome)
            }
        };
        self.record(operation, started, outcome.err());
        Ok(())
    }
}

fn transaction(shared: &Arc<Shared>, name: &str, call: Call) -> Transaction {
    let shared = shared.clone();
    let function: TransactionFunction = Arc::new(move |user| {
        let shared = shared.clone();
        Box::pin(async move { shared.run(user, call).await })
    });
    Transaction::new(function).set_name(name)
}

/// Runs the goose attack; returns notes on what goose counted.
pub async fn run(load: HttpLoad, hub: MetricsHub) -> Result<Vec<String>, String> {
    let shared = Arc::new(Shared {
        hub,
        workspace: load.workspace.clone(),
        token: load.token.clone(),
    });
    let scenario = scenario!("RestClient")
        .set_wait_time(load.think, load.think)
        .map_err(|e| e.to_string())?
        .register_transaction(transaction(&shared, "GET /health", Call::Health))
        .register_transaction(transaction(&shared, "POST /publish", Call::Publish))
        .register_transaction(transaction(&shared, "POST enqueue", Call::Enqueue))
        .register_transaction(transaction(&shared, "POST claim + ack", Call::ClaimAck));
    let config = goose::config::GooseConfiguration::default();
    let metrics = GooseAttack::initialize_with_config(config)
        .map_err(|e| e.to_string())?
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, load.base_url.as_str())
        .and_then(|a| a.set_default(GooseDefault::Users, load.users))
        .and_then(|a| a.set_default(GooseDefault::IncreaseRate, "100"))
        .and_then(|a| {
            a.set_default(
                GooseDefault::RunTime,
                load.run_time.as_secs().max(1) as usize,
            )
        })
        .and_then(|a| a.set_default(GooseDefault::Quiet, 1))
        .and_then(|a| a.set_default(GooseDefault::NoPrintMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::NoErrorSummary, true))
        .and_then(|a| a.set_default(GooseDefault::NoTelnet, true))
        .map_err(|e| e.to_string())?
        .execute()
        .await
        .map_err(|e| e.to_string())?;
    let mut requests: Vec<_> = metrics.requests.iter().collect();
    requests.sort_by(|a, b| a.0.cmp(b.0));
    Ok(requests
        .into_iter()
        .map(|(name, r)| {
            format!(
                "rest (goose) {name}: {} ok, {} failed, mean {:.2} ms",
                r.success_count,
                r.fail_count,
                r.raw_data.total_time_us as f64 / 1000.0 / r.raw_data.counter.max(1) as f64
            )
        })
        .collect())
}
