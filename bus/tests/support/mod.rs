//! Shared set-up: brokers on every backend (memory, one Redis, a Redis
//! Cluster) with a hand-moved clock.

use std::sync::Arc;
use std::time::Duration;

use bus::broker::memory::MemoryBroker;
use bus::broker::redis::{RedisBroker, RedisOptions};
use bus::broker::{Broker, Delivery, ManualClock};
use testkit::{TestRedis, TestRedisCluster};
use tokio::sync::mpsc;

/// A broker under test, its clock, and the Redis it uses (kept alive; the
/// shared test cluster lives as long as the process).
pub(crate) struct Backend {
    pub broker: Arc<dyn Broker>,
    pub clock: ManualClock,
    pub _redis: Option<TestRedis>,
}

pub(crate) const START_MS: u64 = 1_700_000_000_000;

pub(crate) async fn memory() -> Backend {
    let clock = ManualClock::new(START_MS);
    Backend {
        broker: Arc::new(MemoryBroker::with_clock(Arc::new(clock.clone()))),
        clock,
        _redis: None,
    }
}

pub(crate) async fn redis() -> Backend {
    let redis = TestRedis::new();
    let clock = ManualClock::new(START_MS);
    let options = RedisOptions::new(&redis.url)
        .namespace(&redis.namespace)
        .clock(Arc::new(clock.clone()));
    let broker = RedisBroker::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("connect to Redis at {}: {e}", redis.url));
    Backend {
        broker: Arc::new(broker),
        clock,
        _redis: Some(redis),
    }
}

pub(crate) async fn redis_cluster() -> Backend {
    let cluster = TestRedisCluster::new();
    let clock = ManualClock::new(START_MS);
    let options = RedisOptions::cluster(&cluster.urls)
        .namespace(&cluster.namespace)
        .clock(Arc::new(clock.clone()));
    let broker = RedisBroker::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("connect to the Redis Cluster at {}: {e}", cluster.seeds()));
    assert!(broker.is_cluster());
    Backend {
        broker: Arc::new(broker),
        clock,
        _redis: None,
    }
}

/// Receives the next delivery or fails the test after 10 s.
pub(crate) async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("subscription open")
}

/// A real WebSocket client speaking the bus protocol.
pub(crate) mod client {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

    pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

    /// How long a test waits for any one frame.
    pub(crate) const WAIT: Duration = Duration::from_secs(10);

    pub(crate) struct Client {
        pub socket: Socket,
        next_id: u64,
        /// Frames read while waiting for something else.
        pub backlog: Vec<Value>,
        pub welcome: Value,
    }

    /// Connects in development mode as `agent` of `workspace`.
    pub(crate) async fn connect(ws_url: &str, agent: &str, workspace: &str) -> Client {
        let url = format!("{ws_url}?agent={agent}&workspace={workspace}");
        connect_request(&url, None).await.expect("connect")
    }

    /// Connects with an optional bearer token; Err carries the HTTP status
    /// when the upgrade was refused.
    pub(crate) async fn connect_request(url: &str, token: Option<&str>) -> Result<Client, u16> {
        let mut request = url.into_client_request().expect("request");
        if let Some(t) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        match connect_async(request).await {
            Ok((socket, _)) => {
                let mut client = Client {
                    socket,
                    next_id: 0,
                    backlog: Vec::new(),
                    welcome: Value::Null,
                };
                client.welcome = client.expect_op("welcome").await;
                Ok(client)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    impl Client {
        pub(crate) async fn send_text(&mut self, text: String) {
            self.socket.send(Message::text(text)).await.expect("send");
        }

        pub(crate) async fn send(&mut self, frame: Value) {
            self.send_text(frame.to_string()).await;
        }

        /// Reads the next text frame from the socket (ignores pings).
        pub(crate) async fn read(&mut self) -> Result<Value, Option<(u16, String)>> {
            loop {
                let next = tokio::time::timeout(WAIT, self.socket.next())
                    .await
                    .expect("a frame within the wait");
                match next {
                    Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                    Some(Ok(Message::Close(frame))) => {
                        return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Err(None),
                }
            }
        }

        /// The next frame (backlog first).
        pub(crate) async fn next(&mut self) -> Value {
            if !self.backlog.is_empty() {
                return self.backlog.remove(0);
            }
            self.read().await.expect("connection open")
        }

        /// The next frame with `op`; others go to the backlog.
        pub(crate) async fn expect_op(&mut self, op: &str) -> Value {
            if let Some(i) = self.backlog.iter().position(|f| f["op"] == op) {
                return self.backlog.remove(i);
            }
            loop {
                let frame = self.read().await.expect("connection open");
                if frame["op"] == op {
                    return frame;
                }
                self.backlog.push(frame);
            }
        }

        /// Sends a request with a fresh id; returns the reply (ok or error).
        pub(crate) async fn request(&mut self, mut frame: Value) -> Value {
            self.next_id += 1;
            let id = format!("r{}", self.next_id);
            frame["id"] = json!(id);
            self.send(frame).await;
            if let Some(i) = self.backlog.iter().position(|f| f["id"] == json!(id)) {
                return self.backlog.remove(i);
            }
            loop {
                let frame = self.read().await.expect("connection open");
                if frame["id"] == json!(id) {
                    return frame;
                }
                self.backlog.push(frame);
            }
        }

        /// A request that must succeed; returns the `ok` frame.
        pub(crate) async fn ok(&mut self, frame: Value) -> Value {
            let reply = self.request(frame.clone()).await;
            assert_eq!(reply["op"], "ok", "{frame} failed: {reply}");
            reply
        }

        /// Waits for the server to close; returns the close code.
        pub(crate) async fn closed(&mut self) -> Option<u16> {
            loop {
                match self.read().await {
                    Ok(frame) => self.backlog.push(frame),
                    Err(close) => return close.map(|c| c.0),
                }
            }
        }
    }
}

/// Bus nodes for end-to-end tests, on port 0.
pub(crate) mod nodes {
    use bus::config::{BrokerKind, BusConfig};
    use bus::server::RunningServer;
    use testkit::{TestRedis, TestRedisCluster};

    pub(crate) fn memory_config() -> BusConfig {
        BusConfig::embedded_memory()
    }

    pub(crate) fn redis_config(redis: &TestRedis, node: &str) -> BusConfig {
        BusConfig {
            broker: BrokerKind::Redis,
            redis_url: redis.url.clone(),
            namespace: redis.namespace.clone(),
            node_id: Some(node.to_owned()),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..BusConfig::default()
        }
    }

    /// A node on the test cluster; nodes given the same `cluster` share a
    /// namespace and so form one bus.
    pub(crate) fn redis_cluster_config(cluster: &TestRedisCluster, node: &str) -> BusConfig {
        BusConfig {
            broker: BrokerKind::Redis,
            redis_url: cluster.seeds(),
            redis_cluster: true,
            namespace: cluster.namespace.clone(),
            node_id: Some(node.to_owned()),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..BusConfig::default()
        }
    }

    pub(crate) async fn start(config: BusConfig) -> RunningServer {
        RunningServer::start(config)
            .await
            .expect("start a bus node")
    }
}
