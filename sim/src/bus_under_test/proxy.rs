//! A TCP proxy in front of a bus node, so a fault can cut the network: on
//! `cut` it drops every proxied connection and refuses new ones until
//! `restore`. Agents connect to the proxy instead of the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One proxy: `addr` forwards to `upstream`. Stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// The proxy's own loopback address, where agents connect.
    pub addr: SocketAddr,
    /// The bus node it forwards to.
    pub upstream: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port, letting
    /// connections through.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let task = tokio::spawn(accept(listener, upstream, cut.clone(), generation.clone()));
        Ok(Self {
            addr,
            upstream,
            cut,
            generation,
            task,
        })
    }

    /// Drops every live connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if cut.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cuts = generation.subscribe();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = client.set_nodelay(true);
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cuts.changed() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_then_cuts_then_restores() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(upstream).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        proxy.cut();
        let mut rest = Vec::new();
        assert_eq!(
            c.read_to_end(&mut rest).await.unwrap_or(0),
            0,
            "the live connection is dropped"
        );
        let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(
            refused.read(&mut buf).await.unwrap_or(0),
            0,
            "new ones are closed at once"
        );

        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        again.write_all(b"back").await.unwrap();
        again.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"back");
    }
}
