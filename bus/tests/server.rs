//! End-to-end: real WebSocket clients against real bus nodes on port 0, on
//! the memory broker, on Redis and on a Redis Cluster.

use bus::config::BusConfig;
use bus::server::RunningServer;
use serde_json::json;
use testkit::{TestRedis, TestRedisCluster};

use crate::support::client;
use crate::support::nodes;

/// A node on the named backend, with the Redis kept alive beside it.
pub(crate) struct Node {
    pub server: RunningServer,
    pub _redis: Option<TestRedis>,
}

pub(crate) async fn node(backend: &str, tweak: impl FnOnce(&mut BusConfig)) -> Node {
    let (mut config, redis) = match backend {
        "memory" => (nodes::memory_config(), None),
        _ => {
            let redis = TestRedis::new();
            (nodes::redis_config(&redis, "n1"), Some(redis))
        }
    };
    tweak(&mut config);
    Node {
        server: nodes::start(config).await,
        _redis: redis,
    }
}

async fn every_op(backend: &str) {
    let n = node(backend, |_| {}).await;
    let url = n.server.ws_url();
    let mut alice = client::connect(&url, "alice", "w1").await;
    let mut bob = client::connect(&url, "bob", "w1").await;
    assert_eq!(alice.welcome["agent"], "alice");
    assert_eq!(
        alice.welcome["subscribed"],
        json!(["agent:alice:inbox", "workspace:w1", "broadcast"])
    );

    // subscribe / publish / message
    let r = bob
        .ok(json!({"op":"subscribe","topics":["agent:news"]}))
        .await;
    assert_eq!(r["topics"], json!(["agent:news"]));
    let r = alice
        .ok(json!({"op":"publish","topic":"agent:news","payload":{"n":1}}))
        .await;
    assert_eq!(r["receivers"], 1);
    let m = bob.expect_op("message").await;
    assert_eq!(m["message"]["payload"], json!({"n":1}));
    assert_eq!(m["message"]["from"], "alice");
    assert_eq!(m["message"]["topic"], "agent:news");

    // psubscribe
    bob.ok(json!({"op":"psubscribe","patterns":["agent:n*"]}))
        .await;
    alice
        .ok(json!({"op":"publish","topic":"agent:now","payload":2}))
        .await;
    let m = bob.expect_op("message").await;
    assert_eq!(m["pattern"], "agent:n*");
    assert_eq!(m["message"]["topic"], "agent:now");

    // unsubscribe
    bob.ok(json!({"op":"unsubscribe","topics":["agent:news"],"patterns":["agent:n*"]}))
        .await;
    let r = alice
        .ok(json!({"op":"publish","topic":"agent:news","payload":3}))
        .await;
    assert_eq!(r["receivers"], 0);

    // send: pubsub live, then queue (a job), then both (message and stored)
    let r = alice
        .ok(json!({"op":"send","to":"bob","payload":"hi","kind":"request","correlation_id":"c1"}))
        .await;
    assert_eq!(
        (r["receivers"].clone(), r["stored"].clone()),
        (json!(1), json!(false))
    );
    let m = bob.expect_op("message").await;
    assert_eq!(m["message"]["correlation_id"], "c1");
    assert_eq!(m["message"]["kind"], "request");
    assert_eq!(m["message"]["topic"], "agent:bob:inbox");
    alice
        .ok(json!({"op":"send","to":"bob","payload":"job","mode":"queue"}))
        .await;
    let job = bob.expect_op("job").await;
    assert_eq!(job["queue"], "inbox");
    assert_eq!(job["message"]["payload"], "job");
    let acked = bob
        .ok(json!({"op":"ack","queue":"inbox","message_id":job["message"]["id"]}))
        .await;
    assert_eq!(acked["acked"], true);

    // broadcast: workspace and global
    let r = alice
        .ok(json!({"op":"broadcast","payload":"all of w1"}))
        .await;
    assert_eq!(r["receivers"], 1);
    let m = bob.expect_op("message").await;
    assert_eq!(m["message"]["topic"], "workspace:w1");
    alice
        .ok(json!({"op":"broadcast","scope":"global","payload":"everyone"}))
        .await;
    assert_eq!(
        bob.expect_op("message").await["message"]["topic"],
        "broadcast"
    );
    assert_eq!(
        alice.expect_op("message").await["message"]["payload"],
        "all of w1"
    );

    // enqueue / dequeue / ack / reject
    let r = alice
        .ok(json!({"op":"enqueue","queue":"jobs","messages":[{"payload":1,"priority":1},{"payload":2,"priority":9}]}))
        .await;
    assert_eq!(r["message_ids"].as_array().unwrap().len(), 2);
    let r = bob
        .ok(json!({"op":"dequeue","queue":"jobs","max":10}))
        .await;
    let jobs = r["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["message"]["payload"], 2, "higher priority first");
    let r = bob
        .ok(json!({"op":"ack","queue":"jobs","message_id":jobs[0]["message"]["id"]}))
        .await;
    assert_eq!(r["acked"], true);
    let r = bob
        .ok(json!({"op":"reject","queue":"jobs","message_id":jobs[1]["message"]["id"],"reason":"nope","requeue":false}))
        .await;
    assert_eq!(
        r["outcome"],
        json!({"outcome":"dead_lettered","attempts":1})
    );

    // dequeue with wait: answered when a message arrives
    bob.send(json!({"op":"dequeue","id":"w","queue":"later","wait_ms":10000}))
        .await;
    assert_eq!(
        bob.request(json!({"op":"ping"})).await["op"],
        "pong",
        "the reader is not blocked"
    );
    alice
        .ok(json!({"op":"enqueue","queue":"later","payload":"now"}))
        .await;
    let waited = loop {
        let f = bob.next().await;
        if f["id"] == "w" {
            break f;
        }
    };
    assert_eq!(waited["jobs"][0]["message"]["payload"], "now");

    // ping
    alice.send(json!({"op":"ping","id":7,"data":"x"})).await;
    let pong = alice.expect_op("pong").await;
    assert_eq!(
        (pong["id"].clone(), pong["data"].clone()),
        (json!(7), json!("x"))
    );
    n.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_on_memory() {
    every_op("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_on_redis() {
    every_op("redis").await;
}

async fn pending_delivered_on_connect(backend: &str) {
    let n = node(backend, |_| {}).await;
    let url = n.server.ws_url();
    let mut alice = client::connect(&url, "alice", "w1").await;
    for (mode, payload) in [("pubsub", "p"), ("queue", "q"), ("both", "b")] {
        let r = alice
            .ok(json!({"op":"send","to":"carol","mode":mode,"payload":payload}))
            .await;
        assert_eq!(r["stored"], true, "{mode}: carol is offline");
    }
    let mut carol = client::connect(&url, "carol", "w1").await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let job = carol.expect_op("job").await;
        got.push(job["message"]["payload"].as_str().unwrap().to_owned());
        carol
            .ok(json!({"op":"ack","queue":"inbox","message_id":job["message"]["id"]}))
            .await;
    }
    assert_eq!(got, ["p", "q", "b"]);
    // Acked: a reconnect delivers nothing more.
    drop(carol);
    let mut carol = client::connect(&url, "carol", "w1").await;
    let r = carol.ok(json!({"op":"dequeue","queue":"inbox"})).await;
    assert_eq!(r["jobs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_delivered_on_connect_on_memory() {
    pending_delivered_on_connect("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_delivered_on_connect_on_redis() {
    pending_delivered_on_connect("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_are_one_bus() {
    let redis = TestRedis::new();
    let a = nodes::start(nodes::redis_config(&redis, "a")).await;
    let b = nodes::start(nodes::redis_config(&redis, "b")).await;
    let mut on_a = client::connect(&a.ws_url(), "alice", "w1").await;
    let mut on_b = client::connect(&b.ws_url(), "bob", "w1").await;
    assert_eq!(on_a.welcome["node"], "a");
    assert_eq!(on_b.welcome["node"], "b");

    on_a.ok(json!({"op":"subscribe","topics":["agent:x"]}))
        .await;
    let r = on_b
        .ok(json!({"op":"publish","topic":"agent:x","payload":"across"}))
        .await;
    assert_eq!(r["receivers"], 1);
    assert_eq!(
        on_a.expect_op("message").await["message"]["payload"],
        "across"
    );

    on_b.ok(json!({"op":"send","to":"alice","payload":"direct"}))
        .await;
    assert_eq!(
        on_a.expect_op("message").await["message"]["payload"],
        "direct"
    );

    // Offline on both nodes: waits in the inbox, delivered where it connects.
    on_a.ok(json!({"op":"send","to":"dave","payload":"later"}))
        .await;
    let mut dave = client::connect(&b.ws_url(), "dave", "w1").await;
    assert_eq!(dave.expect_op("job").await["message"]["payload"], "later");

    // Queues are shared: enqueue on one node, claim on the other.
    on_a.ok(json!({"op":"enqueue","queue":"jobs","payload":1}))
        .await;
    let r = on_b.ok(json!({"op":"dequeue","queue":"jobs"})).await;
    assert_eq!(r["jobs"][0]["message"]["payload"], 1);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_a_redis_cluster_are_one_bus() {
    let cluster = TestRedisCluster::new();
    let a = nodes::start(nodes::redis_cluster_config(&cluster, "a")).await;
    let b = nodes::start(nodes::redis_cluster_config(&cluster, "b")).await;
    let mut on_a = client::connect(&a.ws_url(), "alice", "w1").await;
    let mut on_b = client::connect(&b.ws_url(), "bob", "w1").await;

    // An exact topic (sharded pub/sub) across nodes.
    on_a.ok(json!({"op":"subscribe","topics":["news"]})).await;
    let r = on_b
        .ok(json!({"op":"publish","topic":"news","payload":"sharded"}))
        .await;
    assert_eq!(r["receivers"], 1);
    let m = on_a.expect_op("message").await;
    assert_eq!(m["message"]["payload"], "sharded");

    // A pattern subscriber on B receives a publish made on A.
    on_b.ok(json!({"op":"psubscribe","patterns":["agent:*"]}))
        .await;
    let r = on_a
        .ok(json!({"op":"publish","topic":"agent:y","payload":"matched"}))
        .await;
    assert_eq!(r["receivers"], 1);
    let m = on_b.expect_op("message").await;
    assert_eq!(
        (m["pattern"].clone(), m["message"]["payload"].clone()),
        (json!("agent:*"), json!("matched"))
    );

    // Direct messages and workspace broadcasts reach the other node.
    on_b.ok(json!({"op":"send","to":"alice","payload":"direct"}))
        .await;
    assert_eq!(
        on_a.expect_op("message").await["message"]["payload"],
        "direct"
    );
    let r = on_a.ok(json!({"op":"broadcast","payload":"all"})).await;
    assert_eq!(r["receivers"], 2, "both nodes have a w1 agent");
    assert_eq!(on_b.expect_op("message").await["message"]["payload"], "all");
    assert_eq!(on_a.expect_op("message").await["message"]["payload"], "all");

    // Offline: kept in the inbox, delivered on the node where it connects.
    on_a.ok(json!({"op":"send","to":"dave","payload":"later"}))
        .await;
    let mut dave = client::connect(&b.ws_url(), "dave", "w1").await;
    assert_eq!(dave.expect_op("job").await["message"]["payload"], "later");

    // Queues are shared, and a waiting dequeue on B is woken by A.
    on_a.ok(json!({"op":"enqueue","queue":"jobs","payload":1}))
        .await;
    let r = on_b.ok(json!({"op":"dequeue","queue":"jobs"})).await;
    assert_eq!(r["jobs"][0]["message"]["payload"], 1);
    on_b.send(json!({"op":"dequeue","id":"w","queue":"later","wait_ms":10000}))
        .await;
    assert_eq!(on_b.request(json!({"op":"ping"})).await["op"], "pong");
    on_a.ok(json!({"op":"enqueue","queue":"later","payload":"now"}))
        .await;
    let waited = loop {
        let f = on_b.next().await;
        if f["id"] == "w" {
            break f;
        }
    };
    assert_eq!(waited["jobs"][0]["message"]["payload"], "now");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_clients_with_1001() {
    let n = node("memory", |_| {}).await;
    let mut alice = client::connect(&n.server.ws_url(), "alice", "w1").await;
    let stop = tokio::spawn(n.server.stop());
    assert_eq!(alice.closed().await, Some(1001));
    stop.await.unwrap().unwrap();
}
