//! The live dashboard in a real browser: headless Chromium loads the page a
//! run serves (`--dashboard`), and the test reads the page through the
//! DevTools protocol: its numbers appear, change while the run runs, its
//! charts are drawn, no script error occurs, and after the run it shows the
//! verdict. The run's `/metrics` is scraped too, and every metric the
//! shipped Grafana dashboard queries exists there or in the bus's own
//! `/metrics`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SIM: &str = env!("CARGO_BIN_EXE_sim");
const CHROMIUM_FLAGS: [&str; 6] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
];

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with stderr piped; its stderr lines arrive on the channel.
fn spawn_reading_stderr(cmd: &mut Command) -> (Killed, mpsc::Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {:?} ({e}); for the browser test install Debian's chromium \
             (sudo apt-get install -y chromium) or run scripts/setup.sh",
            cmd.get_program()
        )
    });
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Killed(child), rx)
}

/// The first line on `rx` containing `marker`, within `wait`; every line
/// seen goes to `seen`.
fn line_with(
    rx: &mpsc::Receiver<String>,
    marker: &str,
    wait: Duration,
    seen: &mut String,
) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return line;
                }
            }
            Err(_) => panic!("no line with {marker:?} within {wait:?}; saw:\n{seen}"),
        }
    }
}

/// `GET http://{addr}{path}`'s body (read to its `content-length`: the
/// DevTools server keeps the connection open).
fn get(addr: &str, path: &str) -> String {
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = tcp.try_clone().unwrap();
    write!(
        writer,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(tcp);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
    let mut length = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0; length.unwrap_or_else(|| panic!("{path}: no content-length"))];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// What the page shows, read in the page itself (`null` until it has
/// loaded).
const READ_PAGE: &str = "!document.getElementById('delivered') ? 'null' : JSON.stringify({
    delivered: document.getElementById('delivered').textContent,
    agents: document.getElementById('agents').textContent,
    state: document.getElementById('state').textContent,
    canvases: document.querySelectorAll('canvas').length,
    operations: document.querySelectorAll('#operations tbody tr').length,
    classes: document.querySelectorAll('#classes tbody tr').length,
    nodes: document.querySelectorAll('#nodes tbody tr').length,
    errors: window.__errors
})";

struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn read(&mut self) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({"id": id, "method": "Runtime.evaluate",
            "params": {"expression": READ_PAGE, "returnByValue": true}});
        self.socket
            .send(Message::text(call.to_string()))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("DevTools answers")
                .expect("DevTools socket open")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                let value = reply["result"]["result"]["value"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no value: {reply}"));
                return serde_json::from_str(value).unwrap();
            }
        }
    }
}

fn number(text: &Value) -> u64 {
    text.as_str()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_dashboard_shows_a_run_in_a_real_browser() {
    let _heavy = crate::support::HEAVY.lock().await;
    let out = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/ci/smoke.toml");
    let (_sim, sim_lines) = spawn_reading_stderr(
        Command::new(SIM)
            .args(["run", scenario.to_str().unwrap(), "--duration", "10s"])
            .args([
                "--dashboard",
                "127.0.0.1:0",
                "--live-linger",
                "20s",
                "--out",
            ])
            .arg(out.path().join("report"))
            .env_remove("REDIS_URL")
            .stdout(Stdio::null()),
    );
    let mut sim_log = String::new();
    let line = line_with(
        &sim_lines,
        "sim: dashboard at ",
        Duration::from_secs(60),
        &mut sim_log,
    );
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    let profile = tempfile::tempdir().unwrap();
    let (_browser, browser_lines) = spawn_reading_stderr(
        Command::new("chromium")
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-port=0")
            .arg(&url)
            .stdout(Stdio::null()),
    );
    let mut browser_log = String::new();
    let devtools = line_with(
        &browser_lines,
        "DevTools listening on ws://",
        Duration::from_secs(30),
        &mut browser_log,
    );
    let devtools_addr = devtools
        .split("ws://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let pages: Value = serde_json::from_str(&get(&devtools_addr, "/json/list")).unwrap();
    let page = pages
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "page" && p["url"].as_str().unwrap_or("").starts_with(&url))
        .unwrap_or_else(|| panic!("the dashboard page among {pages}"));
    let (socket, _) =
        tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().unwrap())
            .await
            .unwrap();
    let mut page = Page { socket, next_id: 0 };

    // Live numbers appear, then change while the run runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let shown = page.read().await;
        if shown["delivered"]
            .as_str()
            .is_some_and(|d| d != "–" && d != "0")
        {
            break shown;
        }
        assert!(Instant::now() < deadline, "no deliveries shown: {shown}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let later = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let shown = page.read().await;
        if number(&shown["delivered"]) > number(&first["delivered"]) {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the numbers did not change: {first} then {shown}"
        );
    };
    assert_eq!(later["state"], "running", "{later}");
    assert!(
        later["canvases"].as_u64().unwrap() >= 3,
        "charts drawn: {later}"
    );
    assert!(later["operations"].as_u64().unwrap() >= 2, "{later}");
    assert!(later["classes"].as_u64().unwrap() >= 1, "{later}");
    assert_eq!(later["nodes"], 1, "the embedded node's health: {later}");
    assert_eq!(later["errors"], json!([]), "script errors: {later}");

    // The run's Prometheus metrics, while it runs.
    let metrics = get(&addr, "/metrics");
    assert!(
        metrics.contains("sim_messages_delivered_total{scenario=\"ci-smoke\"}"),
        "{metrics}"
    );

    // After the run: the verdict, still served.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let shown = page.read().await;
        if shown["state"].as_str().unwrap().starts_with("finished: ") {
            assert_eq!(shown["errors"], json!([]), "{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no final state: {shown}\n{sim_log}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every series a Grafana board queries is there: the last second's
    // latencies while the run runs, the losses once it is judged.
    let judged = get(&addr, "/metrics");
    grafana_queries_name_metrics_that_exist(&format!("{metrics}{judged}"));
    let last: Value = serde_json::from_str(&get(&addr, "/snapshot.json")).unwrap();
    assert_eq!(last["finished"], true);
    assert!(
        last["classes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["lost"].is_u64()),
        "{last}"
    );
}

/// Every `sim_*` and `bus_*` metric the shipped Grafana dashboard queries
/// exists: in the run's `/metrics` (the scrapes given) or in a bus node's.
fn grafana_queries_name_metrics_that_exist(sim_metrics: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/sim-and-bus.json");
    let board: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in board["templating"]["list"].as_array().into_iter().flatten() {
        exprs.push(variable["query"].as_str().unwrap().to_owned());
    }
    assert!(exprs.len() >= 6, "{exprs:?}");
    let bus = crate::support::Bus::start();
    // A health check has run, so its series exist.
    get(&bus.addr, "/health");
    let bus_metrics = get(&bus.addr, "/metrics");
    let mut checked = 0;
    for expr in &exprs {
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sim_") || w.starts_with("bus_"));
        for name in names {
            let exposed = if name.starts_with("sim_") {
                sim_metrics
            } else {
                &bus_metrics
            };
            // A sample, or the declaration of a family without samples yet
            // (errors by kind before the first error).
            let family = name.strip_suffix("_total").unwrap_or(name);
            let found = exposed.lines().any(|l| {
                (!l.starts_with('#')
                    && l.starts_with(name)
                    && l[name.len()..].starts_with(['{', ' ']))
                    || l.starts_with(&format!("# TYPE {family} "))
                    || l.starts_with(&format!("# TYPE {name} "))
            });
            assert!(found, "{name} (in {expr}) is not exposed");
            checked += 1;
        }
    }
    assert!(
        checked >= exprs.len(),
        "every query names a metric: {exprs:?}"
    );
}
