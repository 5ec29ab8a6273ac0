//! Topic history over real WebSockets: offsets on deliveries, resuming on
//! another node with nothing lost and nothing doubled (also while messages
//! keep coming during the switch), the honest `recovered: false`, the
//! `history` op and its REST twin with their bounds, bad resumes refused,
//! and a node filling what its dropped Redis subscription missed.

use std::collections::BTreeMap;

use bus::config::BusConfig;
use bus::server::RunningServer;
use serde_json::{Value, json};
use testkit::TestRedis;

use crate::support::client::{self, Client};
use crate::support::nodes;

/// Two nodes of one bus with `rule`: on one memory broker, or on a Redis.
async fn two_nodes(backend: &str, rule: &str) -> (RunningServer, RunningServer, Option<TestRedis>) {
    let with_rule = |mut c: BusConfig| {
        c.history = vec![rule.parse().unwrap()];
        c
    };
    match backend {
        "memory" => {
            let broker = std::sync::Arc::new(bus::broker::memory::MemoryBroker::new());
            let mut nodes = Vec::new();
            for _ in 0..2 {
                let state =
                    bus::server::build_state_on(with_rule(nodes::memory_config()), broker.clone())
                        .await
                        .unwrap();
                nodes.push(RunningServer::start_with_state(state).await.unwrap());
            }
            let b = nodes.pop().unwrap();
            (nodes.pop().unwrap(), b, None)
        }
        _ => {
            let redis = TestRedis::new();
            let a = nodes::start(with_rule(nodes::redis_config(&redis, "a"))).await;
            let b = nodes::start(with_rule(nodes::redis_config(&redis, "b"))).await;
            (a, b, Some(redis))
        }
    }
}

/// The `n` of an offset `"<ms>-<n>"`.
fn n(offset: &Value) -> u64 {
    offset
        .as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// The next `message` frame's payload `i`, offset `n` and epoch.
async fn next_message(c: &mut Client) -> (u64, u64, String) {
    let (i, offset, epoch) = next_stamped(c).await;
    (i, n(&offset), epoch)
}

/// The next `message` frame's payload `i`, offset and epoch.
async fn next_stamped(c: &mut Client) -> (u64, Value, String) {
    let m = c.expect_op("message").await;
    let epoch = m["epoch"].as_str().unwrap_or_default().to_owned();
    (
        m["message"]["payload"]["i"].as_u64().unwrap(),
        m["offset"].clone(),
        epoch,
    )
}

async fn publish(p: &mut Client, i: u64) -> Value {
    p.ok(json!({"op":"publish","topic":"orders","payload":{"i":i}}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_another_node_replays_what_was_missed_then_goes_live() {
    for backend in ["memory", "redis"] {
        let (a, b, _redis) = two_nodes(backend, "w1/orders*=100").await;
        let mut bob = client::connect(&a.ws_url(), "bob", "w1").await;
        let reply = bob
            .ok(json!({"op":"subscribe","topics":["orders","plain"]}))
            .await;
        // A topic with history says where it stands; one without says nothing.
        assert_eq!(
            n(&reply["history"]["orders"]["offset"]),
            0,
            "{backend}: {reply}"
        );
        assert!(reply["history"].get("plain").is_none());
        let mut alice = client::connect(&b.ws_url(), "alice", "w1").await;
        for i in 1..=3 {
            let r = publish(&mut alice, i).await;
            assert_eq!(n(&r["offset"]), i, "{backend}: {r}");
        }
        let mut last = (0, String::new(), Value::Null);
        for i in 1..=3 {
            let m = bob.expect_op("message").await;
            assert_eq!(
                (m["message"]["payload"]["i"].as_u64(), n(&m["offset"])),
                (Some(i), i)
            );
            last = (
                i,
                m["epoch"].as_str().unwrap().to_owned(),
                m["offset"].clone(),
            );
        }
        drop(bob);
        for i in 4..=8 {
            publish(&mut alice, i).await;
        }
        // Back on the other node, from the last offset seen.
        let mut bob = client::connect(&b.ws_url(), "bob", "w1").await;
        let reply = bob
            .ok(json!({"op":"subscribe","topics":["orders"],
                "resume":{"orders":{"offset":last.2,"epoch":last.1}}}))
            .await;
        let history = &reply["history"]["orders"];
        assert_eq!(history["recovered"], true, "{backend}: {reply}");
        assert_eq!(history["replayed"], 5);
        assert_eq!(n(&history["offset"]), 8);
        for i in 4..=8 {
            assert_eq!(
                next_message(&mut bob).await.0,
                i,
                "{backend}: replay in order"
            );
        }
        publish(&mut alice, 9).await;
        let (i, offset, epoch) = next_message(&mut bob).await;
        assert_eq!(
            (i, offset, epoch.as_str()),
            (9, 9, last.1.as_str()),
            "{backend}: then live"
        );
        assert!(
            bob.backlog.iter().all(|f| f["op"] != "message"),
            "{backend}: nothing twice: {:?}",
            bob.backlog
        );
    }
}

/// A node whose Redis subscription drops (here: Redis kills every pub/sub
/// connection and takes no new one for a while) misses what is published
/// until it has subscribed again; its agent stayed connected and resumes
/// nothing. When its subscription is back the node reads what it missed
/// from the history (the last of it too, although nothing follows): the
/// agent gets every message once, in order. (A jump seen on a live message
/// is filled the same way: `router::gaps` unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fills_what_its_dropped_subscription_missed() {
    // A private Redis: killing its pub/sub connections touches no other test.
    let server = testkit::RedisServer::start();
    let config = |node: &str| BusConfig {
        broker: bus::config::BrokerKind::Redis,
        redis_url: server.url(),
        namespace: "gaps".into(),
        node_id: Some(node.to_owned()),
        listen: "127.0.0.1:0".parse().unwrap(),
        history: vec!["w1/orders=1000".parse().unwrap()],
        ..BusConfig::default()
    };
    let a = nodes::start(config("a")).await;
    let b = nodes::start(config("b")).await;
    let mut bob = client::connect(&a.ws_url(), "bob", "w1").await;
    bob.ok(json!({"op":"subscribe","topics":["orders"]})).await;
    let mut alice = client::connect(&b.ws_url(), "alice", "w1").await;
    for i in 1..=20 {
        publish(&mut alice, i).await;
    }
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Redis takes no new connection until told otherwise, so the nodes'
    // subscriptions stay down while alice publishes on her open one.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let subscribers = clients.lines().filter(|l| l.contains("flags=P")).count();
    assert!(subscribers >= 2, "{clients}");
    let cmd = |args: &[&str]| {
        let mut c = redis::cmd(args[0]);
        c.arg(&args[1..]);
        c
    };
    let full = (clients.lines().count() - subscribers).to_string();
    let () = cmd(&["CONFIG", "SET", "maxclients", &full])
        .query_async(&mut conn)
        .await
        .unwrap();
    let killed: i64 = cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed as usize, subscribers);
    // Published while node a cannot subscribe again: the last of them
    // too, although nothing follows it for a while.
    for i in 21..=200 {
        publish(&mut alice, i).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let () = cmd(&["CONFIG", "SET", "maxclients", "10000"])
        .query_async(&mut conn)
        .await
        .unwrap();
    for i in 1..=200 {
        let (got, offset, _) = next_message(&mut bob).await;
        assert_eq!((got, offset), (i, i), "every message once, in order");
    }
    publish(&mut alice, 201).await;
    assert_eq!(next_message(&mut bob).await.0, 201, "then live, no copy");
}

/// Messages keep coming while the agent resumes: whatever the timing, it
/// sees every offset once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_while_messages_keep_coming_has_no_gap_and_no_duplicate() {
    for backend in ["memory", "redis"] {
        let (a, b, _redis) = two_nodes(backend, "w1/orders=10000").await;
        let mut bob = client::connect(&a.ws_url(), "bob", "w1").await;
        bob.ok(json!({"op":"subscribe","topics":["orders"]})).await;
        let mut alice = client::connect(&b.ws_url(), "alice", "w1").await;
        publish(&mut alice, 1).await;
        let (_, mut offset, epoch) = next_stamped(&mut bob).await;
        let mut seen = n(&offset);
        let total = 400;
        let publisher = tokio::spawn(async move {
            for i in 2..=total {
                alice
                    .send(json!({"op":"publish","topic":"orders","payload":{"i":i}}))
                    .await;
            }
            alice
        });
        for round in 0..5 {
            drop(bob);
            bob = client::connect(&[&a, &b][round % 2].ws_url(), "bob", "w1").await;
            let reply = bob
                .ok(json!({"op":"subscribe","topics":["orders"],
                    "resume":{"orders":{"offset":offset,"epoch":epoch}}}))
                .await;
            assert_eq!(
                reply["history"]["orders"]["recovered"], true,
                "{backend}: {reply}"
            );
            // Read a little, then drop again mid-stream.
            for _ in 0..20 {
                if seen == total {
                    break;
                }
                let (_, next_offset, _) = next_stamped(&mut bob).await;
                let next = n(&next_offset);
                assert_eq!(
                    next,
                    seen + 1,
                    "{backend} round {round}: after {seen} came {next}"
                );
                (seen, offset) = (next, next_offset);
            }
        }
        let _alice = publisher.await.unwrap();
        while seen < total {
            let (_, next, _) = next_message(&mut bob).await;
            assert_eq!(next, seen + 1, "{backend}: after {seen} came {next}");
            seen = next;
        }
    }
}

/// A resume from beyond the window, or into another epoch, says so and
/// goes live; it does not pretend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_cannot_recover_says_why() {
    for backend in ["memory", "redis"] {
        let (a, _b, _redis) = two_nodes(backend, "w1/orders=3").await;
        let mut alice = client::connect(&a.ws_url(), "alice", "w1").await;
        let first = publish(&mut alice, 1).await;
        let epoch = first["epoch"].as_str().unwrap().to_owned();
        // Enough that even Redis's approximate trimming drops the start.
        for i in 2..=400 {
            alice
                .send(json!({"op":"publish","topic":"orders","payload":{"i":i}}))
                .await;
        }
        let last = publish(&mut alice, 401).await;
        assert_eq!(n(&last["offset"]), 401);
        let mut bob = client::connect(&a.ws_url(), "bob", "w1").await;
        let reply = bob
            .ok(json!({"op":"subscribe","topics":["orders"],
                "resume":{"orders":{"offset":first["offset"],"epoch":epoch}}}))
            .await;
        let h = &reply["history"]["orders"];
        assert_eq!(h["recovered"], false, "{backend}: {reply}");
        assert_eq!(h["reason"], "window_exceeded");
        assert!(h["missed"].as_u64().unwrap() >= 1, "{reply}");
        assert_eq!(n(&h["offset"]), 401);
        publish(&mut alice, 402).await;
        assert_eq!(next_message(&mut bob).await.0, 402, "{backend}: then live");

        let mut carol = client::connect(&a.ws_url(), "carol", "w1").await;
        let reply = carol
            .ok(json!({"op":"subscribe","topics":["orders"],
                "resume":{"orders":{"offset":"1-1","epoch":"another"}}}))
            .await;
        assert_eq!(
            reply["history"]["orders"]["reason"], "epoch_changed",
            "{reply}"
        );
        assert_eq!(reply["history"]["orders"]["epoch"], epoch.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_are_bounded_and_stay_in_their_workspace() {
    let (a, _b, _redis) = two_nodes("memory", "*/orders=2000").await;
    let mut alice = client::connect(&a.ws_url(), "alice", "w1").await;
    for i in 1..=1500 {
        alice
            .send(json!({"op":"publish","topic":"orders","payload":{"i":i}}))
            .await;
    }
    publish(&mut alice, 1501).await;
    let r = alice
        .ok(json!({"op":"history","topic":"orders","last":2}))
        .await;
    let ns: Vec<u64> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| n(&m["offset"]))
        .collect();
    assert_eq!(ns, [1500, 1501], "{r}");
    assert_eq!(r["messages"][1]["message"]["payload"]["i"], 1501);
    assert_eq!(r["truncated"], false);
    let many = alice
        .ok(json!({"op":"history","topic":"orders","last":100000}))
        .await;
    assert_eq!(
        many["messages"].as_array().unwrap().len(),
        bus::limits::MAX_HISTORY
    );
    let default = alice.ok(json!({"op":"history","topic":"orders"})).await;
    assert_eq!(
        default["messages"].as_array().unwrap().len(),
        bus::limits::DEFAULT_HISTORY
    );
    // Another workspace's history is its own; a topic without history has none.
    let mut eve = client::connect(&a.ws_url(), "eve", "w2").await;
    let theirs = eve.ok(json!({"op":"history","topic":"orders"})).await;
    assert!(theirs["messages"].as_array().unwrap().is_empty());
    let cross = eve
        .request(json!({"op":"history","topic":"workspace:w1"}))
        .await;
    assert_eq!(cross["code"], "cross_workspace", "{cross}");
    let none = eve.request(json!({"op":"history","topic":"chat"})).await;
    assert_eq!(none["code"], "no_history", "{none}");
    // The REST twin answers the same, for operators only.
    let url = format!("{}/history/w1/orders?last=2", a.http_url());
    let body: Value = reqwest_get(&url).await;
    let ns: Vec<u64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| n(&m["offset"]))
        .collect();
    assert_eq!(ns, [1500, 1501], "{body}");
    let missing: Value = reqwest_get(&format!("{}/history/w1/chat", a.http_url())).await;
    assert_eq!(missing["code"], "no_history", "{missing}");
}

/// A GET with no client library: the body as JSON.
async fn reqwest_get(url: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, path) = url
        .strip_prefix("http://")
        .and_then(|u| u.split_once('/'))
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET /{path} HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resumes_are_refused_and_change_nothing() {
    let (a, _b, _redis) = two_nodes("memory", "w1/orders=10").await;
    let mut bob = client::connect(&a.ws_url(), "bob", "w1").await;
    let good = json!({"offset":"1-1","epoch":"e"});
    for (resume, why) in [
        (json!({"other": good}), "which this subscribe does not"),
        (
            json!({"orders": {"offset":"soon","epoch":"e"}}),
            "is not an offset",
        ),
        (
            json!({"orders": {"offset":"1-1","epoch":"x".repeat(65)}}),
            "1 to 64 characters",
        ),
        (json!({"orders": {"offset":"1-1"}}), "epoch"),
    ] {
        let r = bob
            .request(json!({"op":"subscribe","topics":["orders"],"resume":resume}))
            .await;
        assert_eq!(r["code"], "bad_frame", "{r}");
        assert!(r["message"].as_str().unwrap().contains(why), "{r}");
    }
    let held = a.state.registry.list(1)[0].topics.clone();
    assert!(!held.iter().any(|t| t == "orders"), "{held:?}");
    // Resuming a topic without history says it keeps none.
    let r = bob
        .ok(json!({"op":"subscribe","topics":["chat"],"resume":{"chat":good}}))
        .await;
    let expected: BTreeMap<String, Value> = [(
        "chat".to_owned(),
        json!({"epoch":"","offset":"","recovered":false,"replayed":0,"reason":"no_history"}),
    )]
    .into_iter()
    .collect();
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, Value>>(r["history"].clone()).unwrap(),
        expected
    );
}
