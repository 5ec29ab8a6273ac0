//! A local Redis Cluster: three masters (no replicas) on loopback
//! ports, joined with `redis-cli --cluster create`, ready once every node
//! reports `cluster_state:ok`, killed on drop.
//!
//! A cluster takes a second or two to form, so tests share one per process
//! (`testkit::TestRedisCluster` keeps it in a static). A value in a static
//! is never dropped, so every node has a watchdog: a `sh` whose stdin is a
//! pipe from this process and which kills the node when that pipe closes.
//! The kernel closes it however the process ends (normal exit, panic,
//! SIGKILL), so no redis-server outlives it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{RedisServer, free_port};

/// What to tell someone whose machine has no redis-cli.
pub const CLUSTER_INSTALL_HINT: &str = "redis-cli was not found on PATH; it creates the test \
     Redis Cluster. Install it (Debian/Ubuntu: `sudo apt-get install -y redis-tools`, which \
     redis-server also pulls in; macOS: `brew install redis`) or set REDIS_CLUSTER_URLS to the \
     comma-separated node URLs of a running Redis Cluster.";

/// Masters in a test cluster.
const NODES: usize = 3;
/// How long the nodes may take to agree that the cluster is up.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A running three-master Redis Cluster on loopback, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    // Declared first so it is dropped (and disarmed) before the server.
    watchdog: Option<Watchdog>,
    server: RedisServer,
}

impl RedisCluster {
    /// Starts three cluster-enabled redis-servers, creates the cluster and
    /// waits until every node reports it healthy. Panics with install
    /// instructions when redis-server or redis-cli is missing.
    pub fn start() -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => return cluster,
                Err(err) => last_error = err,
            }
        }
        panic!("could not start a Redis Cluster: {last_error}");
    }

    fn try_start() -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            nodes.push(start_node()?);
        }
        let cluster = Self { nodes };
        cluster.create()?;
        cluster.wait_formed()?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create`: slots split evenly, no replicas.
    fn create(&self) -> Result<(), String> {
        let addresses: Vec<String> = self.ports().map(|p| format!("127.0.0.1:{p}")).collect();
        let output = match Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => output,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                panic!("{CLUSTER_INSTALL_HINT}")
            }
            Err(err) => return Err(format!("run redis-cli: {err}")),
        };
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// Polls `CLUSTER INFO` on every node until all report the cluster ok
    /// and know every node (the readiness check; tests never sleep).
    fn wait_formed(&self) -> Result<(), String> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        let known = format!("cluster_known_nodes:{NODES}");
        for port in self.ports() {
            loop {
                let info = cluster_info(port).unwrap_or_else(|e| e.to_string());
                if info.contains("cluster_state:ok") && info.contains(&known) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "node {port} not ready after {FORM_TIMEOUT:?}:\n{info}"
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().map(|n| n.server.port())
    }

    /// `redis://127.0.0.1:PORT/` of every master.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.server.url()).collect()
    }

    /// Kills node `index` and starts it again on the same port and
    /// directory, so it rejoins with its identity and slots; returns once
    /// every node reports the cluster ok again.
    pub fn restart_node(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        // Disarmed first: its pid is about to be reaped and may be reused.
        drop(node.watchdog.take());
        node.server.restart();
        let pid = node.server.pid().expect("restarted");
        node.watchdog = Some(Watchdog::arm(pid).expect("arm a watchdog"));
        self.wait_formed()
            .unwrap_or_else(|e| panic!("cluster after restarting node {index}: {e}"));
    }

    /// The node servers, e.g. to read their process ids.
    pub fn servers(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().map(|n| &n.server)
    }
}

/// A cluster-enabled redis-server on a free port, with its cluster bus on
/// another free port, guarded by a watchdog.
fn start_node() -> Result<Node, String> {
    let bus_port = free_port().to_string();
    let server = RedisServer::try_start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus_port,
        "--cluster-node-timeout",
        "5000",
    ])?;
    let pid = server.pid().ok_or("redis-server has no pid")?;
    Ok(Node {
        watchdog: Some(Watchdog::arm(pid)?),
        server,
    })
}

/// Kills a process when this process goes away: `sh` blocks reading a pipe
/// only we write to, and kills the process once the pipe reaches EOF.
#[derive(Debug)]
struct Watchdog {
    shell: Child,
    /// Our end of the pipe, only ever closed; the kernel closes it when we
    /// exit.
    #[cfg_attr(not(test), expect(dead_code))]
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    fn arm(pid: u32) -> Result<Self, String> {
        let mut shell = Command::new("sh")
            .args(["-c", r#"read _ignored; kill -9 "$0" 2>/dev/null"#])
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn the watchdog shell: {e}"))?;
        let pipe = shell.stdin.take();
        Ok(Self { shell, pipe })
    }

    /// What the kernel does when this process dies: closes the pipe, and
    /// the watchdog fires.
    #[cfg(test)]
    fn fire(&mut self) {
        self.pipe.take();
        let _ = self.shell.wait();
    }
}

impl Drop for Watchdog {
    /// Stops the watchdog without it firing: the node is stopped by its own
    /// guard, which also reaps it (so the watchdog can never signal a
    /// reused pid).
    fn drop(&mut self) {
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

/// `CLUSTER INFO` of the node on `port`, over a plain socket.
fn cluster_info(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"CLUSTER INFO\r\n")?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if bulk_complete(&reply) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Whether `reply` holds a whole RESP reply (a bulk string or an error).
fn bulk_complete(reply: &[u8]) -> bool {
    let Some(header_end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if reply.first() != Some(&b'$') {
        return true;
    }
    let len: usize = std::str::from_utf8(&reply[1..header_end])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    reply.len() >= header_end + 2 + len + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_forms_and_dies_on_drop() {
        let cluster = RedisCluster::start();
        let ports: Vec<u16> = cluster.ports().collect();
        assert_eq!(ports.len(), NODES);
        for port in &ports {
            let info = cluster_info(*port).unwrap();
            assert!(info.contains("cluster_state:ok"), "{info}");
            assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        }
        drop(cluster);
        for port in ports {
            assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        }
    }

    #[test]
    fn a_watchdog_kills_its_process_when_the_pipe_closes() {
        let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
        let mut watchdog = Watchdog::arm(sleeper.id()).unwrap();
        watchdog.fire();
        let status = sleeper.wait().unwrap();
        assert!(!status.success(), "killed by the watchdog: {status}");
    }
}
