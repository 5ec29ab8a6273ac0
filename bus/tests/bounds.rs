//! Attacks on the node's resources, each against a real bus on real
//! sockets: a reader that never reads, a client that goes silent, raw TCP
//! that never finishes a request, oversized frames. Each asserts the bound
//! the docs promise (docs/PROTOCOL.md, Bounds).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use testkit::TestRedis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::server::node;
use crate::support::client;

/// A `bus` binary of this build, in its own process (so its memory can be
/// read from /proc), on `redis`; killed on drop.
struct BusProcess {
    child: Child,
    addr: String,
}

impl BusProcess {
    fn start(redis: &TestRedis, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bus"))
            .args(["--listen", "127.0.0.1:0", "--redis", &redis.url])
            .args(["--namespace", &redis.namespace])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the bus binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the bus prints its address");
        let addr = line
            .trim()
            .strip_prefix("bus listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws/connect", self.addr)
    }

    /// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`).
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} in /proc status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("a number of kB");
        kib * 1024
    }

    /// `GET path` over a fresh connection, the body as JSON.
    fn get(&self, path: &str) -> Value {
        let mut tcp = StdTcpStream::connect(&self.addr).expect("connect for REST");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response)
            .expect("read the response");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .expect("a body");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
    }

    fn connections(&self) -> u64 {
        self.get("/ws/stats")["registry"]["connections"]
            .as_u64()
            .expect("connections")
    }
}

impl Drop for BusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `count` messages of `size` bytes to `topic`, each after the
/// previous one was acknowledged, while `fast` reads them all.
async fn flood(
    publisher: &mut client::Client,
    fast: &mut client::Client,
    topic: &str,
    size: usize,
    count: usize,
) {
    let payload = "z".repeat(size);
    for _ in 0..count {
        publisher
            .ok(json!({"op":"publish","topic":topic,"payload":payload}))
            .await;
        fast.expect_op("message").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_is_reaped_and_holds_no_more_than_its_budget() {
    let redis = TestRedis::new();
    let bus = BusProcess::start(&redis, &["--write-timeout", "2s"]);
    let url = bus.ws_url();
    let mut slow = client::connect(&url, "slow", "w1").await;
    let mut fast = client::connect(&url, "fast", "w1").await;
    let mut publisher = client::connect(&url, "pub", "w1").await;
    slow.ok(json!({"op":"subscribe","topics":["flood"]})).await;
    fast.ok(json!({"op":"subscribe","topics":["flood"]})).await;
    let baseline = bus.memory("VmRSS");

    // `slow` never reads again while 500 KB messages go by: 100 MB in all,
    // which a frame-counted queue of 4,096 would have held whole.
    let started = Instant::now();
    flood(&mut publisher, &mut fast, "flood", 500_000, 200).await;
    let mut reaped = None;
    for _ in 0..300 {
        if bus.connections() == 2 {
            reaped = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = bus.memory("VmHWM");
    let reaped = reaped.expect("the slow reader is disconnected within 30 s");
    let over = peak.saturating_sub(baseline);
    eprintln!(
        "slow reader reaped after {reaped:?} (flood started then); RSS baseline {} MiB, peak {} MiB",
        baseline >> 20,
        peak >> 20
    );
    // The budget is 4 MiB per connection (plus one frame); the margin
    // covers the frames in flight through the publish path and the
    // allocator's slack. An unbounded queue would hold the whole 100 MB.
    assert!(
        over < 32 << 20,
        "peak RSS {peak} is {over} bytes over the baseline {baseline}"
    );
    // The others never noticed.
    assert_eq!(fast.request(json!({"op":"ping"})).await["op"], "pong");
    flood(&mut publisher, &mut fast, "flood", 10, 5).await;
    // When `slow` reads at last, the bus has long dropped it: what the
    // kernel buffered, then the end of the connection.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.read().await {
                Ok(_) => continue,
                Err(close) => return close,
            }
        }
    })
    .await
    .expect("the dropped connection ends");
    assert!(
        matches!(ended, None | Some((4001, _))),
        "ended with {ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_at_the_ping_timeout_even_while_a_write_is_stuck() {
    let n = node("memory", |c| {
        c.ping_interval = Duration::from_millis(200);
        c.ping_timeout = Duration::from_secs(1);
        // Neither slow-consumer bound may fire first.
        c.write_timeout = Duration::from_secs(600);
        c.outbound_bytes = 1 << 30;
        c.outbound_queue = 1 << 20;
    })
    .await;
    let url = n.server.ws_url();
    let mut silent = client::connect(&url, "silent", "w1").await;
    let mut fast = client::connect(&url, "fast", "w1").await;
    let mut publisher = client::connect(&url, "pub", "w1").await;
    silent.ok(json!({"op":"subscribe","topics":["t"]})).await;
    fast.ok(json!({"op":"subscribe","topics":["t"]})).await;
    // `silent` neither reads (its writer blocks once the kernel buffers
    // are full) nor answers pings.
    flood(&mut publisher, &mut fast, "t", 64 * 1024, 400).await;
    let registry = &n.server.state.registry;
    let deadline = Instant::now() + Duration::from_secs(20);
    while registry.len() > 2 {
        assert!(
            Instant::now() < deadline,
            "the silent client is still registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_requests_are_closed_after_the_handshake_deadline() {
    let n = node("memory", |c| c.handshake_timeout = Duration::from_secs(1)).await;
    let addr = n.server.addr;
    let mut sockets = Vec::new();
    for i in 0..200 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        match i % 3 {
            0 => {}
            1 => tcp
                .write_all(b"GET /ws/connect?agent=a&workspace=w HTTP/1.1\r\nHost: bus\r\n")
                .await
                .unwrap(),
            _ => tcp.write_all(b"GE").await.unwrap(),
        }
        sockets.push(tcp);
    }
    // A kept-alive REST connection that goes idle after one request.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: bus\r\n\r\n")
        .await
        .unwrap();
    sockets.push(kept);
    let started = Instant::now();
    for mut tcp in sockets {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            // A 408 or nothing, then the end.
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "a socket still open after {:?}",
            started.elapsed()
        );
    }
    // A well-behaved client is not affected.
    let mut ok = client::connect(&n.server.ws_url(), "ok", "w").await;
    assert_eq!(ok.request(json!({"op":"ping"})).await["op"], "pong");
}

/// An inbox backlog four times the byte budget reaches an agent that reads
/// normally: the pump queues it half a budget at a time, so the agent is
/// never taken for a slow consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_backlog_larger_than_the_byte_budget_is_handed_over_in_full() {
    let n = node("memory", |c| c.outbound_bytes = 1 << 20).await;
    let url = n.server.ws_url();
    let mut sender = client::connect(&url, "sender", "w1").await;
    let payload = "b".repeat(150_000);
    for i in 0..28 {
        sender
            .ok(json!({"op":"send","to":"bob","payload":{"i":i,"pad":payload},"mode":"queue"}))
            .await;
    }
    let mut bob = client::connect(&url, "bob", "w1").await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 28 {
        let job = bob.expect_op("job").await;
        seen.insert(job["message"]["payload"]["i"].as_u64().unwrap());
    }
    assert_eq!(seen, (0..28).collect());
    assert_eq!(bob.request(json!({"op":"ping"})).await["op"], "pong");
    let slow = crate::exposition::metric_value(&n, "bus_slow_consumers_total").await;
    assert_eq!(slow, 0.0, "nobody was a slow consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_body_trickled_past_the_request_timeout_gets_408_and_the_end() {
    let n = node("memory", |c| {
        c.request_timeout = Duration::from_secs(1);
        c.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let mut tcp = TcpStream::connect(n.server.addr).await.expect("connect");
    tcp.write_all(
        b"POST /queues/w1/jobs/enqueue HTTP/1.1\r\nHost: bus\r\n\
          content-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            // One byte of body every 200 ms: never idle long, never done.
            tokio::select! {
                read = tcp.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => response.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    let _ = tcp.write_all(b" ").await;
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    assert!(ended.is_ok(), "the trickling request still open after 10 s");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "after {elapsed:?}: {response}"
    );
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    // The queue got nothing from the half-sent body.
    let stats = n
        .server
        .state
        .router
        .broker()
        .stats("w1/jobs")
        .await
        .unwrap();
    assert_eq!(stats.ready, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_oversized_frame_gets_close_1009() {
    let n = node("memory", |c| c.max_frame_bytes = 4096).await;
    let url = n.server.ws_url();
    for (i, size) in [8 * 1024, 64 * 1024, 1 << 20]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        let mut big = client::connect(&url, &format!("big{i}"), "w1").await;
        let frame = json!({"op":"publish","topic":"t","payload":"x".repeat(*size)});
        // A client that goes on sending after its oversized frame: its bytes
        // are unread when the bus closes. Its writes must not fail (the
        // socket reset under it) before it can read the close, or a client
        // that stops at a failed write never learns the code. (A write may
        // block while the bus holds the socket unread: that is fine.)
        for n in 0..4 {
            let send = big.socket.send(Message::text(frame.to_string()));
            match tokio::time::timeout(Duration::from_millis(500), send).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => panic!("attempt {i}: write {n} failed before the close arrived: {e}"),
                Err(_blocked) => break,
            }
        }
        assert_eq!(big.closed().await, Some(1009), "attempt {i}, {size} bytes");
    }
}
