//! Floods of subscriptions, patterns and queues against real nodes: the
//! first one past each budget is refused with `limit_exceeded`, nothing of
//! the refused request is applied, giving back makes room again, and other
//! workspaces carry on.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::server::{Node, node};
use crate::support::client;

fn topics(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn assert_limited(reply: &Value, what: &str) {
    assert_eq!(reply["op"], "error", "{reply}");
    assert_eq!(reply["code"], "limit_exceeded", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains(what), "{message}");
}

async fn subscription_budgets(backend: &str) {
    let n = node(backend, |c| {
        c.max_topics_per_connection = 50;
        c.max_patterns_per_connection = 5;
        c.max_subscriptions_per_workspace = 120;
        c.max_patterns = 8;
        c.max_patterns_per_workspace = 6;
    })
    .await;
    let url = n.server.ws_url();
    let mut a = client::connect(&url, "a", "w1").await;

    // Per connection: 50 topics (the inbox, workspace and broadcast aside).
    a.ok(json!({"op":"subscribe","topics":topics("t", 0..50)}))
        .await;
    // Topics it holds already cost nothing; one more is refused, and the
    // refused request subscribes none of its topics.
    a.ok(json!({"op":"subscribe","topics":["t3","broadcast"]}))
        .await;
    let r = a
        .request(json!({"op":"subscribe","topics":["t0","t50"]}))
        .await;
    assert_limited(&r, "at most 50 topics per connection");
    let held = &n.server.state.registry.list(10)[0];
    assert_eq!(held.topics.len(), 53, "{:?}", held.topics);
    assert!(!held.topics.contains(&"t50".to_owned()));
    // Giving some back makes room.
    a.ok(json!({"op":"unsubscribe","topics":["t0","t1"]})).await;
    a.ok(json!({"op":"subscribe","topics":["t50","t51"]})).await;

    // Per connection: 5 patterns.
    a.ok(json!({"op":"psubscribe","patterns":topics("p", 0..5).iter().map(|p| format!("{p}*")).collect::<Vec<_>>()}))
        .await;
    let r = a
        .request(json!({"op":"psubscribe","patterns":["q*"]}))
        .await;
    assert_limited(&r, "at most 5 patterns per connection");

    // Per workspace on the node: 120 subscriptions over all of w1's
    // connections (a holds 55).
    let mut b = client::connect(&url, "b", "w1").await;
    b.ok(json!({"op":"subscribe","topics":topics("t", 0..50)}))
        .await;
    let mut c = client::connect(&url, "c", "w1").await;
    let r = c
        .request(json!({"op":"subscribe","topics":topics("u", 0..16)}))
        .await;
    assert_limited(&r, "at most 120 subscriptions per workspace on this node");
    c.ok(json!({"op":"subscribe","topics":topics("u", 0..15)}))
        .await;
    // A closed connection gives its share back.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while n.server.state.registry.workspace_subscriptions("w1") > 70 {
        assert!(
            Instant::now() < deadline,
            "b's subscriptions were not refunded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.ok(json!({"op":"subscribe","topics":topics("u", 15..30)}))
        .await;

    // Per workspace on the node: 6 distinct patterns over all of w1's
    // connections (a holds 5; c may share them, not add two more).
    c.ok(json!({"op":"psubscribe","patterns":["p0*","p1*","z*"]}))
        .await;
    let r = c
        .request(json!({"op":"psubscribe","patterns":["y*"]}))
        .await;
    assert_limited(&r, "at most 6 distinct patterns per workspace on this node");
    assert_eq!(n.server.state.registry.workspace_patterns("w1"), 6);
    c.ok(json!({"op":"unsubscribe","topics":[],"patterns":["z*"]}))
        .await;
    c.ok(json!({"op":"psubscribe","patterns":["y*"]})).await;
    c.ok(json!({"op":"unsubscribe","topics":[],"patterns":["y*"]}))
        .await;

    // Per node: 8 distinct patterns, whichever workspace asks (w1 holds 5).
    let mut other = client::connect(&url, "x", "w2").await;
    other
        .ok(json!({"op":"psubscribe","patterns":["r1*","r2*","r3*"]}))
        .await;
    let r = other
        .request(json!({"op":"psubscribe","patterns":["r4*"]}))
        .await;
    assert_limited(&r, "at most 8 distinct patterns per node");

    // Meanwhile w2 still talks.
    let mut listener = client::connect(&url, "y", "w2").await;
    listener
        .ok(json!({"op":"subscribe","topics":["news"]}))
        .await;
    other
        .ok(json!({"op":"publish","topic":"news","payload":"still here"}))
        .await;
    assert_eq!(
        listener.expect_op("message").await["message"]["payload"],
        "still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_budgets_hold_on_memory() {
    subscription_budgets("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_budgets_hold_on_redis() {
    subscription_budgets("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_flood_stops_at_the_default_cap_and_holds_nothing_beyond() {
    let n = node("redis", |_| {}).await;
    let url = n.server.ws_url();
    let mut flooder = client::connect(&url, "flooder", "w1").await;
    let cap = n.server.state.config.max_topics_per_connection;
    let (before, _) = n.server.state.router.subscription_counts();
    let mut accepted = 0;
    let refused = loop {
        let batch = topics("flood", accepted..accepted + 100);
        let r = flooder
            .request(json!({"op":"subscribe","topics":batch}))
            .await;
        if r["op"] != "ok" {
            break r;
        }
        accepted += 100;
        assert!(accepted <= cap, "took {accepted} topics");
    };
    assert_limited(&refused, "topics per connection");
    assert_eq!(accepted, cap);
    let (channels, _) = n.server.state.router.subscription_counts();
    let held = &n.server.state.registry.list(1)[0];
    assert_eq!(
        held.topics.len(),
        cap + 3,
        "the connection holds what it accepted"
    );
    // At the broker: those, plus the health checker's two probe channels
    // (pub/sub and delivery) if its first check came after `before` was
    // read.
    assert!(
        (before + cap..=before + cap + 2).contains(&channels),
        "the node holds {channels} channels"
    );

    // Another workspace's messages still arrive.
    let mut a = client::connect(&url, "a", "w2").await;
    let mut b = client::connect(&url, "b", "w2").await;
    b.ok(json!({"op":"subscribe","topics":["calm"]})).await;
    a.ok(json!({"op":"publish","topic":"calm","payload":1}))
        .await;
    assert_eq!(b.expect_op("message").await["message"]["payload"], 1);
}

async fn rest(n: &Node, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = bus::server::app(n.server.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn queue_budget(backend: &str) {
    let n = node(backend, |c| c.max_queues_per_workspace = 5).await;
    let mut a = client::connect(&n.server.ws_url(), "a", "w1").await;
    for q in 0..4 {
        a.ok(json!({"op":"enqueue","queue":format!("q{q}"),"payload":q}))
            .await;
    }
    // The fifth queue over REST, then the sixth is refused on both.
    let (s, _) = rest(
        &n,
        "POST",
        "/queues/w1/q4/enqueue",
        Some(json!({"payload":4})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = a
        .request(json!({"op":"enqueue","queue":"q5","payload":5}))
        .await;
    assert_limited(&r, "at most 5 queues (inboxes included) per workspace");
    let (s, r) = rest(
        &n,
        "POST",
        "/queues/w1/q6/enqueue",
        Some(json!({"payload":6})),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{r}");
    assert_eq!(r["code"], "limit_exceeded");
    // Stored direct messages need an inbox queue: refused the same way.
    let r = a
        .request(json!({"op":"send","to":"nobody","payload":1,"mode":"queue"}))
        .await;
    assert_eq!(r["code"], "limit_exceeded", "{r}");
    // Queues it has keep working; other workspaces have their own budget.
    a.ok(json!({"op":"enqueue","queue":"q0","payload":"again"}))
        .await;
    let (s, _) = rest(
        &n,
        "POST",
        "/queues/w2/q0/enqueue",
        Some(json!({"payload":0})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_budget_holds_on_memory() {
    queue_budget("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_budget_holds_on_redis() {
    queue_budget("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_no_queue_names_and_queues_are_listed_a_page_at_a_time() {
    let n = node("redis", |c| {
        c.queue_gauge_interval = Duration::from_millis(100);
    })
    .await;
    let queues = 2_000;
    for q in 0..queues {
        let (s, r) = rest(
            &n,
            "POST",
            &format!("/queues/w{}/secret-agent-{q}/enqueue", q % 7),
            Some(json!({"payload":q})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    // The gauges catch up within a few refreshes.
    let node = &n.server.state.node;
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (s, metrics) = rest(&n, "GET", "/metrics", None).await;
        assert_eq!(s, StatusCode::OK);
        let metrics = metrics.as_str().expect("text").to_owned();
        let refreshed = metrics.lines().any(|l| {
            l.starts_with("bus_queues{") && l.contains(node.as_str()) && l.ends_with(" 2000")
        });
        if refreshed {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "bus_queues never reached 2000: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!metrics.contains("secret-agent"), "queue names leak");
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(node.as_str()))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
            .to_owned()
    };
    assert!(
        line("bus_queues{").ends_with(" 2000"),
        "{}",
        line("bus_queues{")
    );
    assert!(line("bus_queue_messages{").contains("state="));
    let ready = metrics
        .lines()
        .find(|l| {
            l.starts_with("bus_queue_messages{")
                && l.contains("\"ready\"")
                && l.contains(node.as_str())
        })
        .expect("ready total");
    assert!(ready.ends_with(" 2000"), "{ready}");

    // Pages of 700: 700, 700, 600, with a cursor between them.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/queues?limit=700&after={a}"),
            None => "/queues?limit=700".to_owned(),
        };
        let (s, page) = rest(&n, "GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["total"], queues);
        let names: Vec<String> = page["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["queue"].as_str().unwrap().to_owned())
            .collect();
        seen.extend(names);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), queues);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages are in order without repeats");
}
