//! Tokens at the upgrade, workspace isolation, and operator credentials.

use bus::auth::{Claims, issue_token, unix_now};
use serde_json::json;

use crate::server::node;
use crate::support::client;

const SECRET: &str = "test-secret";

fn token(agent: &str, workspace: &str, exp: u64) -> String {
    issue_token(
        SECRET,
        &Claims {
            sub: agent.into(),
            workspace: workspace.into(),
            user: Some("u1".into()),
            topics: None,
            global_broadcast: false,
            admin: false,
            exp,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_expired_and_wrong_algorithm_tokens_get_401() {
    let n = node("memory", |c| c.jwt_secret = Some(SECRET.into())).await;
    let url = n.server.ws_url();
    let good = token("a1", "w1", unix_now() + 60);
    let expired = token("a1", "w1", unix_now() - 3600);
    let forged = issue_token(
        "wrong-secret",
        &Claims {
            sub: "a1".into(),
            workspace: "w1".into(),
            user: None,
            topics: None,
            global_broadcast: true,
            admin: true,
            exp: unix_now() + 60,
        },
    );
    let payload = good.split('.').nth(1).unwrap();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for (name, t) in [
        ("missing", None),
        ("garbage", Some("not.a.token")),
        ("expired", Some(expired.as_str())),
        ("forged", Some(forged.as_str())),
        ("alg none", Some(alg_none.as_str())),
    ] {
        let status = client::connect_request(&url, t).await.err();
        assert_eq!(status, Some(401), "{name} token");
    }
    // Query-parameter identity is ignored when a secret is set.
    assert_eq!(
        client::connect_request(&format!("{url}?agent=a1&workspace=w1"), None)
            .await
            .err(),
        Some(401)
    );
    let ok = client::connect_request(&url, Some(&good)).await.unwrap();
    assert_eq!(ok.welcome["agent"], "a1");
    let via_query = client::connect_request(&format!("{url}?token={good}"), None)
        .await
        .unwrap();
    assert_eq!(via_query.welcome["workspace"], "w1");
    let metrics = n.server.state.telemetry.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("bus_auth_failures_total")
                && l.contains(&n.server.state.node)
                && l.ends_with(" 6")),
        "six refused upgrades are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_are_isolated_and_attempts_are_counted() {
    let n = node("redis", |c| c.jwt_secret = Some(SECRET.into())).await;
    let url = n.server.ws_url();
    let exp = unix_now() + 60;
    let mut w1 = client::connect_request(&url, Some(&token("a", "w1", exp)))
        .await
        .unwrap();
    let mut w2 = client::connect_request(&url, Some(&token("a", "w2", exp)))
        .await
        .unwrap();
    let mut w2b = client::connect_request(&url, Some(&token("b", "w2", exp)))
        .await
        .unwrap();

    // The same wire names in two workspaces are two different things.
    w1.ok(json!({"op":"subscribe","topics":["agent:news"]}))
        .await;
    w2.ok(json!({"op":"psubscribe","patterns":["*"]})).await;
    let r = w2b
        .ok(json!({"op":"publish","topic":"agent:news","payload":"w2 only"}))
        .await;
    assert_eq!(r["receivers"], 1);
    assert_eq!(w2.expect_op("message").await["message"]["workspace"], "w2");

    let attempts = [
        (
            json!({"op":"subscribe","topics":["workspace:w1"]}),
            "cross_workspace",
        ),
        (
            json!({"op":"psubscribe","patterns":["workspace:*"]}),
            "cross_workspace",
        ),
        (
            json!({"op":"subscribe","topics":["agent:b:inbox"]}),
            "forbidden",
        ),
        (
            json!({"op":"publish","topic":"workspace:w1","payload":1}),
            "cross_workspace",
        ),
        (
            json!({"op":"broadcast","workspace":"w1","payload":1}),
            "cross_workspace",
        ),
        (
            json!({"op":"broadcast","scope":"global","payload":1}),
            "forbidden",
        ),
        (
            json!({"op":"send","to":"a","workspace":"w1","payload":1}),
            "cross_workspace",
        ),
        (json!({"op":"dequeue","queue":"agent:b:inbox"}), "forbidden"),
    ];
    for (frame, code) in &attempts {
        let r = w2.request(frame.clone()).await;
        assert_eq!(r["code"], *code, "{frame} -> {r}");
    }
    // A direct message to "a" from w2 reaches w2's a, never w1's.
    w2b.ok(json!({"op":"send","to":"a","payload":"for w2/a"}))
        .await;
    assert_eq!(
        w2.expect_op("message").await["message"]["payload"],
        "for w2/a"
    );
    w1.ok(json!({"op":"publish","topic":"agent:news","payload":"w1 only"}))
        .await;
    let got = w1.expect_op("message").await;
    assert_eq!(got["message"]["payload"], "w1 only", "w1 saw nothing of w2");

    let metrics = n.server.state.telemetry.render();
    let count = |code: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("bus_errors_total")
                    && l.contains(&format!("code=\"{code}\""))
                    && l.contains(&n.server.state.node)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("cross_workspace"), 5);
    assert_eq!(count("forbidden"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_topic_lists_limit_what_an_agent_touches() {
    let n = node("memory", |c| c.jwt_secret = Some(SECRET.into())).await;
    let limited = issue_token(
        SECRET,
        &Claims {
            sub: "a".into(),
            workspace: "w1".into(),
            user: None,
            topics: Some(vec!["agent:*".into()]),
            global_broadcast: false,
            admin: false,
            exp: unix_now() + 60,
        },
    );
    let mut a = client::connect_request(&n.server.ws_url(), Some(&limited))
        .await
        .unwrap();
    a.ok(json!({"op":"subscribe","topics":["agent:x"]})).await;
    a.ok(json!({"op":"psubscribe","patterns":["agent:x*"]}))
        .await;
    for frame in [
        json!({"op":"subscribe","topics":["other"]}),
        json!({"op":"psubscribe","patterns":["*"]}),
        json!({"op":"publish","topic":"other","payload":1}),
    ] {
        assert_eq!(a.request(frame).await["code"], "forbidden");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_agent_connection_and_rate_limits() {
    let n = node("memory", |c| {
        c.max_connections_per_agent = 1;
        c.max_frames_per_sec = 5;
    })
    .await;
    let url = n.server.ws_url();
    let mut a = client::connect(&url, "a", "w1").await;
    let second = client::connect_request(&format!("{url}?agent=a&workspace=w1"), None).await;
    assert_eq!(second.err(), Some(503));
    // Ten frames sent back to back land in one one-second window.
    for i in 0..10 {
        a.send(json!({"op":"ping","id":i})).await;
    }
    let mut limited = 0;
    for _ in 0..10 {
        let reply = a.next().await;
        if reply["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert_eq!(limited, 5, "frames beyond 5 per second are refused");
}
