//! What operators and scrapers read: `/metrics` passes Prometheus's own
//! checker (`promtool check metrics`: help text, types, names), its
//! counters count, and `/health` prints figures to the microsecond with
//! labelled thresholds.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::server::{Node, node};
use crate::support::client;

async fn get(url: &str) -> String {
    let (host, path) = url
        .strip_prefix("http://")
        .and_then(|u| u.split_once('/'))
        .expect("an http URL");
    let mut tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /{path} HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    body.to_owned()
}

/// The value of the unlabelled-but-for-`node` series `name` of `node` in
/// an exposition.
fn series_value(text: &str, node: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{");
    text.lines()
        .find(|l| l.starts_with(&prefix) && l.contains(node))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} for {node} in {text}"))
}

/// The current value of series `name` on node `n`, read from its `/metrics`.
pub(crate) async fn metric_value(n: &Node, name: &str) -> f64 {
    let text = get(&format!("{}/metrics", n.server.http_url())).await;
    series_value(&text, &n.server.state.node, name)
}

fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is needed to check /metrics ({e}): install Debian's prometheus package \
                 (sudo apt-get install -y prometheus), or run scripts/setup.sh"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_frames_out_counts() {
    let n = node("memory", |c| {
        c.queue_gauge_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let url = n.server.ws_url();
    let mut a = client::connect(&url, "a", "w1").await;
    a.ok(json!({"op":"subscribe","topics":["t"]})).await;
    a.ok(json!({"op":"publish","topic":"t","payload":1})).await;
    a.expect_op("message").await;
    let r = a.request(json!({"op":"teleport"})).await;
    assert_eq!(r["code"], "unknown_op");
    // A health check and a queue gauge refresh have run.
    n.server.state.health.check().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = get(&format!("{}/health", n.server.http_url())).await;

    let text = get(&format!("{}/metrics", n.server.http_url())).await;
    let problems = promtool_check(&text);
    assert!(problems.trim().is_empty(), "promtool: {problems}\n{text}");
    let value = |name: &str| series_value(&text, &n.server.state.node, name);
    // welcome, two oks, the message, the error: five frames at least.
    assert!(value("bus_frames_out_total") >= 5.0, "{text}");
    assert!(value("bus_deliveries_total") >= 1.0);
    for series in [
        "bus_connections",
        "bus_frames_in_total",
        "bus_health_status",
    ] {
        assert!(
            text.contains(&format!("# HELP {series} ")),
            "{series} has no help: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_prints_microseconds_and_labelled_thresholds() {
    let n = node("memory", |_| {}).await;
    n.server.state.health.check().await;
    let body = get(&format!("{}/health", n.server.http_url())).await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["thresholds"],
        json!({"warning_ms": 50.0, "critical_ms": 200.0}),
        "{body}"
    );
    // Every figure in ms has at most three decimals (whole microseconds).
    let mut figures = 0;
    for check in report["checks"].as_array().unwrap() {
        let history = check["history"].as_object().unwrap();
        let values = std::iter::once(&check["latency_ms"]).chain(
            history
                .iter()
                .filter(|(k, _)| k.ends_with("_ms"))
                .map(|(_, v)| v),
        );
        for v in values {
            let text = v.to_string();
            let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 3, "{text} in {body}");
            figures += 1;
        }
    }
    assert!(figures >= 4 * 6, "{body}");
}
