//! REST endpoints through `app().oneshot(..)`, on both brokers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bus::server::{app, build_state};
use bus::state::AppState;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::TestRedis;
use tower::ServiceExt;

use crate::server::node;
use crate::support::{client, nodes};

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let request = match body {
        Some(b) => request
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn queue_round_trip(state: AppState) {
    let (s, health) = call(&state, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    // A state that is not served has no delivery probe: five checks.
    assert_eq!(health["checks"].as_array().unwrap().len(), 5);

    let (s, r) = call(
        &state,
        "POST",
        "/queues/w1/jobs/enqueue",
        Some(json!({"messages":[{"payload":"a","priority":1},{"payload":"b","priority":5}]})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (_, stats) = call(&state, "GET", "/queues/w1/jobs", None, None).await;
    assert_eq!(stats["stats"]["ready"], 2);
    let (_, claimed) = call(
        &state,
        "POST",
        "/queues/w1/jobs/claim",
        Some(json!({"max":2})),
        None,
    )
    .await;
    let jobs = claimed["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["message"]["payload"], "b");
    let (_, acked) = call(
        &state,
        "POST",
        "/queues/w1/jobs/ack",
        Some(json!({"message_id": jobs[0]["message"]["id"]})),
        None,
    )
    .await;
    assert_eq!(acked["acked"], true);
    let (_, rejected) = call(
        &state,
        "POST",
        "/queues/w1/jobs/reject",
        Some(json!({"message_id": jobs[1]["message"]["id"], "requeue": false, "reason":"bad"})),
        None,
    )
    .await;
    assert_eq!(rejected["outcome"]["outcome"], "dead_lettered");
    let (_, dead) = call(&state, "GET", "/queues/w1/jobs/dead", None, None).await;
    assert_eq!(dead["dead_letters"][0]["reason"], "bad");
    let (s, missing) = call(
        &state,
        "POST",
        "/queues/w1/jobs/reject",
        Some(json!({"message_id":"nope"})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");
    let (_, all) = call(&state, "GET", "/queues", None, None).await;
    assert!(
        all["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["queue"] == "w1/jobs")
    );

    let (s, r) = call(
        &state,
        "POST",
        "/publish",
        Some(json!({"workspace":"w1","topic":"agent:x","payload":1})),
        None,
    )
    .await;
    assert_eq!((s, r["receivers"].clone()), (StatusCode::OK, json!(0)));
    let (s, r) = call(
        &state,
        "POST",
        "/send",
        Some(json!({"workspace":"w1","to":"zed","payload":1,"mode":"queue"})),
        None,
    )
    .await;
    assert_eq!((s, r["stored"].clone()), (StatusCode::OK, json!(true)));
    let (s, _) = call(
        &state,
        "POST",
        "/broadcast",
        Some(json!({"payload":1})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, bad) = call(
        &state,
        "POST",
        "/publish",
        Some(json!({"workspace":"w/1","topic":"x"})),
        None,
    )
    .await;
    assert_eq!(
        (s, bad["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_name"))
    );

    let (_, conns) = call(&state, "GET", "/ws/connections", None, None).await;
    assert_eq!(conns["total"], 0);
    let (s, _) = call(&state, "GET", "/ws/connections/42", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, stats) = call(&state, "GET", "/ws/stats", None, None).await;
    assert_eq!(stats["registry"]["connections"], 0);

    let (s, metrics) = call(&state, "GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("bus_queue_messages"), "queue depths exported");
    assert!(
        text.contains("bus_health_check_latency_seconds"),
        "health latencies exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_publish_endpoints_on_memory() {
    queue_round_trip(build_state(nodes::memory_config()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_publish_endpoints_on_redis() {
    let redis = TestRedis::new();
    queue_round_trip(
        build_state(nodes::redis_config(&redis, "rest"))
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_endpoints_need_the_admin_token() {
    let mut config = nodes::memory_config();
    config.admin_token = Some("op".into());
    config.jwt_secret = Some("s".into());
    let state = build_state(config).await.unwrap();
    let (s, _) = call(&state, "GET", "/queues", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&state, "GET", "/queues", None, Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&state, "GET", "/queues", None, Some("op")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&state, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "health stays open for probes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_redis_is_gone() {
    let mut server = testkit::RedisServer::start();
    let mut config = nodes::memory_config();
    config.broker = bus::config::BrokerKind::Redis;
    config.redis_url = server.url();
    let state = build_state(config).await.unwrap();
    server.stop();
    state.health.check().await;
    let (s, body) = call(&state, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unhealthy");
}

/// A batch one over the shared bound, as REST and WebSocket receive it.
fn batch_of(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"payload": i})).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_websocket_refuse_a_batch_over_the_bound_alike() {
    let n = node("memory", |_| {}).await;
    let state = n.server.state.clone();
    let too_many = batch_of(bus::limits::MAX_BATCH + 1);

    let (status, rest) = call(
        &state,
        "POST",
        "/queues/w1/jobs/enqueue",
        Some(json!({ "messages": too_many })),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{rest}");

    let mut alice = client::connect(&n.server.ws_url(), "alice", "w1").await;
    let ws = alice
        .request(json!({"op":"enqueue","queue":"jobs","messages": too_many}))
        .await;
    assert_eq!(ws["op"], "error", "{ws}");
    assert_eq!(rest["code"], ws["code"], "one code for one refusal");
    assert_eq!(rest["code"], "bad_frame");
    assert_eq!(rest["error"], ws["message"]);

    let (_, stats) = call(&state, "GET", "/queues/w1/jobs", None, None).await;
    assert_eq!(
        stats["stats"]["ready"], 0,
        "nothing of either batch was kept"
    );
    let at_the_bound = batch_of(bus::limits::MAX_BATCH);
    let (status, r) = call(
        &state,
        "POST",
        "/queues/w1/jobs/enqueue",
        Some(json!({ "messages": at_the_bound })),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    alice
        .ok(json!({"op":"enqueue","queue":"jobs","messages": at_the_bound}))
        .await;
    let (_, stats) = call(&state, "GET", "/queues/w1/jobs", None, None).await;
    assert_eq!(stats["stats"]["ready"], 2 * bus::limits::MAX_BATCH);
}

async fn huge_limits_are_clamped(state: AppState) {
    let (s, r) = call(
        &state,
        "POST",
        "/queues/w1/jobs/enqueue",
        Some(json!({"payload": 1})),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let claimed = call(
        &state,
        "POST",
        "/queues/w1/jobs/claim",
        Some(json!({"max": usize::MAX})),
        None,
    )
    .await
    .1;
    let id = claimed["jobs"][0]["message"]["id"].clone();
    call(
        &state,
        "POST",
        "/queues/w1/jobs/reject",
        Some(json!({"message_id": id, "requeue": false})),
        None,
    )
    .await;
    for limit in [
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999999",
    ] {
        let (s, dead) = call(
            &state,
            "GET",
            &format!("/queues/w1/jobs/dead?limit={limit}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "limit={limit}: {dead}");
        assert_eq!(dead["dead_letters"].as_array().unwrap().len(), 1, "{limit}");
        let (s, conns) = call(
            &state,
            "GET",
            &format!("/ws/connections?limit={limit}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "limit={limit}: {conns}");
    }
    let (s, _) = call(&state, "GET", "/ws/connections?limit=-1", None, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "not a count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_limits_are_clamped_on_memory() {
    huge_limits_are_clamped(build_state(nodes::memory_config()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_limits_are_clamped_on_redis() {
    let redis = TestRedis::new();
    huge_limits_are_clamped(
        build_state(nodes::redis_config(&redis, "rest-limits"))
            .await
            .unwrap(),
    )
    .await;
}
