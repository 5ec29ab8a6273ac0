//! Bad input gets a precise error and breaks nothing: the connection stays
//! usable where the failure is not fatal, and other connections carry on.

use serde_json::json;

use crate::server::node;
use crate::support::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_codes_and_the_connection_stays_usable() {
    let n = node("memory", |_| {}).await;
    let url = n.server.ws_url();
    let mut a = client::connect(&url, "a", "w1").await;
    let mut other = client::connect(&url, "b", "w1").await;
    other.ok(json!({"op":"subscribe","topics":["t"]})).await;

    let cases: [(&str, &str); 8] = [
        ("{not json", "bad_json"),
        ("[1,2,3]", "bad_json"),
        (r#"{"op":"teleport","id":1}"#, "unknown_op"),
        (r#"{"id":2}"#, "bad_frame"),
        (r#"{"op":"publish","id":3}"#, "bad_frame"),
        (r#"{"op":"subscribe","id":4,"topics":"t"}"#, "bad_frame"),
        (r#"{"op":"ping","id":5,"surprise":true}"#, "bad_frame"),
        (
            r#"{"op":"subscribe","id":6,"topics":["has space"]}"#,
            "invalid_name",
        ),
    ];
    for (text, code) in cases {
        a.send_text(text.to_owned()).await;
        let err = a.expect_op("error").await;
        assert_eq!(err["code"], code, "{text} -> {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    // Ids survive where they could be read.
    a.send_text(r#"{"op":"teleport","id":"keep-me"}"#.into())
        .await;
    assert_eq!(a.expect_op("error").await["id"], "keep-me");
    // Still usable, and the other connection never noticed.
    a.ok(json!({"op":"publish","topic":"t","payload":"still here"}))
        .await;
    assert_eq!(
        other.expect_op("message").await["message"]["payload"],
        "still here"
    );
    assert_eq!(a.request(json!({"op":"ping"})).await["op"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009_and_others_carry_on() {
    let n = node("memory", |c| c.max_frame_bytes = 4096).await;
    let url = n.server.ws_url();
    let mut big = client::connect(&url, "big", "w1").await;
    let mut other = client::connect(&url, "other", "w1").await;
    other.ok(json!({"op":"subscribe","topics":["t"]})).await;

    let payload = "x".repeat(8192);
    big.send(json!({"op":"publish","topic":"t","payload":payload}))
        .await;
    assert_eq!(big.closed().await, Some(1009));

    let mut third = client::connect(&url, "third", "w1").await;
    third
        .ok(json!({"op":"publish","topic":"t","payload":"fine"}))
        .await;
    assert_eq!(
        other.expect_op("message").await["message"]["payload"],
        "fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_and_unknown_queue_ops_are_answered_not_fatal() {
    let n = node("memory", |_| {}).await;
    let mut a = client::connect(&n.server.ws_url(), "a", "w1").await;
    // Ack and reject of messages never claimed, unsubscribe without subscribe.
    let r = a
        .ok(json!({"op":"ack","queue":"jobs","message_id":"nope"}))
        .await;
    assert_eq!(r["acked"], false);
    let r = a
        .ok(json!({"op":"reject","queue":"jobs","message_id":"nope"}))
        .await;
    assert!(r.get("outcome").is_none(), "{r}");
    a.ok(json!({"op":"unsubscribe","topics":["never"]})).await;
    let r = a.request(json!({"op":"enqueue","queue":"jobs"})).await;
    assert_eq!(r["code"], "bad_frame");
    a.ok(json!({"op":"enqueue","queue":"jobs","payload":1}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_with_4001_and_others_are_not() {
    let n = node("memory", |c| c.outbound_queue = 8).await;
    let url = n.server.ws_url();
    let mut slow = client::connect(&url, "slow", "w1").await;
    let mut fast = client::connect(&url, "fast", "w1").await;
    slow.ok(json!({"op":"subscribe","topics":["flood"]})).await;
    fast.ok(json!({"op":"subscribe","topics":["flood"]})).await;
    let mut publisher = client::connect(&url, "pub", "w1").await;

    // The slow client reads nothing while 64 KB messages pile up: once the
    // kernel buffers and its 8-frame queue are full, the bus cuts it off.
    let payload = "y".repeat(64 * 1024);
    let mut fast_got = 0;
    for _ in 0..400 {
        publisher
            .ok(json!({"op":"publish","topic":"flood","payload":payload}))
            .await;
        fast.expect_op("message").await;
        fast_got += 1;
    }
    assert_eq!(fast_got, 400, "the fast consumer got everything");
    assert_eq!(slow.closed().await, Some(4001));
    let metrics = n.server.state.telemetry.render();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("bus_slow_consumers_total") && l.contains(&n.server.state.node))
        .expect("slow consumer counter exported");
    assert!(!line.ends_with(" 0"), "{line}");
}
