//! Local `redis-server` processes on free loopback ports, killed on drop.
//!
//! [`RedisServer::start`] runs a private redis-server, waits for its "Ready
//! to accept connections" line (no sleeps), and kills it on drop;
//! [`RedisCluster::start`] runs a three-master Redis Cluster the same way.
//! The simulator starts one for a run that spawns its own bus without
//! `--redis`; the tests of both crates start theirs through `testkit`.
//!
//! When redis-server is missing, starting one panics with a message that
//! says how to install it ([`INSTALL_HINT`]).

mod cluster;

pub use cluster::{CLUSTER_INSTALL_HINT, RedisCluster};

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What to tell someone whose machine has no redis-server.
pub const INSTALL_HINT: &str = "redis-server was not found on PATH. Install it \
     (Debian/Ubuntu: `sudo apt-get install -y redis-server`, macOS: `brew install redis`) \
     or set REDIS_URL to a running Redis (tests that restart Redis still need redis-server).";

/// How long a starting redis-server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A redis-server child process on a loopback port, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (for example
    /// `["--appendonly", "yes"]`). Its working directory is a fresh temporary
    /// directory removed on drop.
    pub fn start_with(extra_args: &[&str]) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start_with(extra_args) {
                Ok(server) => return server,
                Err(err) => last_error = err,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// One attempt at [`RedisServer::start_with`] on a fresh free port.
    /// Panics only when redis-server is not installed.
    pub fn try_start_with(extra_args: &[&str]) -> Result<Self, String> {
        let mut server = Self {
            child: None,
            port: free_port(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir()
                .map_err(|e| format!("create a temporary directory for redis-server: {e}"))?,
        };
        server.launch()?;
        Ok(server)
    }

    /// Runs redis-server on `self.port` and waits until it accepts
    /// connections.
    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--logfile", ""])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--protected-mode", "no"]);
        if !self.extra_args.iter().any(|a| a == "--appendonly") {
            cmd.args(["--appendonly", "no"]);
        }
        // Its own process group: a Ctrl-C at the terminal reaches the
        // program that started it, which stops it in its own time, and not
        // redis-server directly.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(err) => return Err(format!("spawn redis-server: {err}")),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        // Reads the log until ready, then keeps draining it so the server
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            let mut log = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &ready_tx {
                    log.push_str(&line);
                    log.push('\n');
                    if line.contains("Ready to accept connections") {
                        let _ = tx.send(Ok(()));
                        ready_tx = None;
                    }
                }
            }
            if let Some(tx) = ready_tx {
                let _ = tx.send(Err(log));
            }
        });
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(log)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("redis-server exited before it was ready:\n{log}"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("redis-server not ready after {READY_TIMEOUT:?}"))
            }
        }
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL, `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's working directory (append-only files live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server process id, for pausing it or reading its CPU and memory.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and directory
    /// (so an append-only file is replayed).
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; retry briefly in case the kernel
        // has not released it yet.
        let mut last = String::new();
        for _ in 0..50 {
            match self.launch() {
                Ok(()) => return,
                Err(err) => last = err,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "could not restart redis-server on port {}: {last}",
            self.port
        );
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.pid().expect("server is running");
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn ping(port: u16) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(b"PING\r\n").expect("write");
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn server_answers_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start();
        assert_eq!(ping(server.port()), "+PONG\r\n");
        let port = server.port();
        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(ping(port), "+PONG\r\n");
    }

    #[test]
    fn dropping_the_server_stops_it() {
        let server = RedisServer::start();
        let port = server.port();
        drop(server);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
