//! Opening an agent's WebSocket: from a chosen loopback source address when
//! the plan spreads agents over several, with small buffers, and with retry
//! and backoff on failure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// An agent's open WebSocket to the bus.
pub type Socket = WebSocketStream<TcpStream>;

/// Connection attempts per session before giving up.
pub const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// `ws://host:port/ws/connect`.
    pub url: &'a str,
    /// The agent id, sent as the `agent` query parameter.
    pub agent: &'a str,
    /// The agent's workspace, sent as the `workspace` query parameter.
    pub workspace: &'a str,
    /// The auth token, sent as the `token` query parameter; `None` sends none.
    pub token: Option<&'a str>,
    /// Local address to connect from; `None` lets the kernel choose.
    pub source: Option<IpAddr>,
}

fn host_port(url: &str) -> Result<&str, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
    Ok(rest.split('/').next().unwrap_or(rest))
}

/// Kernel receive buffer of an agent's socket: enough for loopback
/// throughput, small enough that thousands of agents (and a stalled one)
/// do not hide megabytes in the kernel.
const RECEIVE_BUFFER: u32 = 256 * 1024;

async fn tcp(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Small buffers: thousands of mostly idle agents share one process.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
}

/// One attempt.
pub async fn open(endpoint: &Endpoint<'_>) -> Result<Socket, String> {
    let hp = host_port(endpoint.url)?;
    let addr: SocketAddr = tokio::net::lookup_host(hp)
        .await
        .map_err(|e| format!("resolve {hp}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hp} resolves to nothing"))?;
    let stream = tcp(addr, endpoint.source)
        .await
        .map_err(|e| format!("tcp connect {addr}: {e}"))?;
    let mut url = format!(
        "{}?agent={}&workspace={}",
        endpoint.url, endpoint.agent, endpoint.workspace
    );
    if let Some(token) = endpoint.token {
        url.push_str("&token=");
        url.push_str(token);
    }
    let (socket, _) = client_async_with_config(url, stream, Some(config()))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    Ok(socket)
}

/// Up to [`ATTEMPTS`] attempts with doubling backoff; returns the socket and
/// how many retries it took, or the last error.
pub async fn open_with_retry(endpoint: &Endpoint<'_>) -> Result<(Socket, u32), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        match open(endpoint).await {
            Ok(socket) => return Ok((socket, attempt)),
            Err(e) => last = e,
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_ws() {
        assert_eq!(
            host_port("ws://127.0.0.1:80/ws/connect").unwrap(),
            "127.0.0.1:80"
        );
        assert!(host_port("http://x").is_err());
    }
}
