//! Bus nodes as child processes: finding the `bus` executable, starting a
//! node and waiting for its `bus listening on ADDR` line, draining its
//! output, and stopping it with SIGTERM (SIGKILL after a grace period).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::TargetError;

/// How long a node may take to print its listening address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Stderr lines kept per node for error messages.
const LOG_TAIL_LINES: usize = 40;
/// The line the `bus` binary prints once it accepts connections.
const READY_PREFIX: &str = "bus listening on ";

/// Everything a node's command line needs.
#[derive(Debug, Clone)]
pub(super) struct NodeSpec {
    pub binary: PathBuf,
    pub name: String,
    /// `"memory"` or `"redis"`.
    pub broker: &'static str,
    pub redis_url: Option<String>,
    pub namespace: String,
    pub jwt_secret: Option<String>,
    /// `--listen`: `127.0.0.1:0` at first; the node's old address when it is
    /// restarted after a kill, so agents find it where it was.
    pub listen: String,
    /// Extra flags from the scenario's `target.bus_args`.
    pub extra_args: Vec<String>,
}

/// A running `bus` child process. Killed (SIGKILL) when dropped without
/// [`BusNode::stop`], so a panicking run leaves no orphans.
#[derive(Debug)]
pub(super) struct BusNode {
    pub name: String,
    pub pid: u32,
    pub addr: SocketAddr,
    child: Child,
}

/// The last lines a node wrote to stderr, for error messages.
type LogTail = Arc<Mutex<VecDeque<String>>>;

impl BusNode {
    /// Starts the node and waits until it listens.
    pub(super) async fn start(spec: &NodeSpec) -> Result<Self, TargetError> {
        let mut child = command(spec).spawn().map_err(|source| TargetError::Spawn {
            node: spec.name.clone(),
            binary: spec.binary.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let tail = LogTail::default();
        let stderr = child.stderr.take().map(|err| {
            let (name, tail) = (spec.name.clone(), tail.clone());
            tokio::spawn(drain(err, move |line| {
                tracing::debug!(node = %name, "{line}");
                let mut tail = tail.lock().expect("log tail lock");
                if tail.len() == LOG_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }))
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.trim().strip_prefix(READY_PREFIX) {
                    return addr.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        match ready {
            Ok(Some(addr)) => {
                // Keep reading so the node never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(Self {
                    name: spec.name.clone(),
                    pid,
                    addr,
                    child,
                })
            }
            Ok(None) => Err(exited_early(spec, child, stderr, &tail).await),
            Err(_) => Err(TargetError::NotReady {
                node: spec.name.clone(),
                timeout_s: READY_TIMEOUT.as_secs(),
                log: render_tail(&tail),
            }),
        }
    }

    /// Kills the node outright (SIGKILL), as a crash would.
    pub(super) async fn kill(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    /// `ws://ADDR/ws/connect`.
    pub(super) fn ws_url(&self) -> String {
        format!("ws://{}/ws/connect", self.addr)
    }

    /// `http://ADDR`.
    pub(super) fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks the node to shut down (SIGTERM: it closes its WebSockets and
    /// drains) and waits; kills it if it is still there after
    /// [`STOP_TIMEOUT`].
    pub(super) async fn stop(mut self) -> Result<ExitStatus, TargetError> {
        let stop_error = |source| TargetError::Stop {
            node: self.name.clone(),
            source,
        };
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        if !send_sigterm(self.pid).await {
            self.child.start_kill().map_err(stop_error)?;
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.map_err(stop_error),
            Err(_) => {
                tracing::warn!(node = %self.name, "still running {STOP_TIMEOUT:?} after SIGTERM: killing it");
                self.child.kill().await.map_err(stop_error)?;
                self.child.wait().await.map_err(stop_error)
            }
        }
    }
}

/// The node's command line. Its JWT secret goes through the environment, so
/// it does not show in `ps`.
fn command(spec: &NodeSpec) -> Command {
    let mut cmd = Command::new(&spec.binary);
    cmd.args(["--listen", &spec.listen, "--broker", spec.broker])
        .args(["--namespace", &spec.namespace, "--node-id", &spec.name])
        // The simulator, not the node, decides how many agents there are.
        .args(["--max-connections", "1000000"]);
    if let Some(url) = &spec.redis_url {
        cmd.args(["--redis", url]);
    }
    cmd.args(&spec.extra_args);
    if let Some(secret) = &spec.jwt_secret {
        cmd.env("BUS_JWT_SECRET", secret);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C at the terminal interrupts the
        // simulator, which drains, reports and then stops its nodes, rather
        // than shutting the nodes down under the agents mid-run.
        .process_group(0);
    cmd
}

/// Reads `stream` line by line until it closes.
async fn drain(stream: impl AsyncRead + Unpin, mut on_line: impl FnMut(String)) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        on_line(line);
    }
}

/// The error for a node whose stdout closed before the ready line: waits
/// for its exit status and the rest of its stderr.
async fn exited_early(
    spec: &NodeSpec,
    mut child: Child,
    stderr: Option<JoinHandle<()>>,
    tail: &LogTail,
) -> TargetError {
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(err)) => format!("exit status unknown: {err}"),
        Err(_) => "closed its stdout but kept running".to_owned(),
    };
    if let Some(stderr) = stderr {
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr).await;
    }
    TargetError::ExitedEarly {
        node: spec.name.clone(),
        status,
        log: render_tail(tail),
    }
}

fn render_tail(tail: &LogTail) -> String {
    let lines = tail.lock().expect("log tail lock");
    if lines.is_empty() {
        return "(nothing on stderr)".to_owned();
    }
    lines.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// Sends SIGTERM through `kill(1)` (the workspace forbids the `unsafe` a
/// direct system call needs); false when that did not work.
async fn send_sigterm(pid: u32) -> bool {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// Finds the `bus` executable: `explicit` (e.g. `--bus-binary`), then
/// `BUS_BIN`, then next to the running executable (or one directory up,
/// where cargo puts binaries when the running one is a test in `deps/`),
/// then `PATH`.
pub fn find_bus_binary(explicit: Option<&Path>) -> Result<PathBuf, TargetError> {
    let name = format!("bus{}", std::env::consts::EXE_SUFFIX);
    let given = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("BUS_BIN")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TargetError::BusBinaryNotFound {
                looked: path.display().to_string(),
            })
        };
    }
    let mut looked = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        looked.push(dir.join(&name));
        if dir.ends_with("deps")
            && let Some(parent) = dir.parent()
        {
            looked.push(parent.join(&name));
        }
    }
    if let Some(found) = looked.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    find_on_path(&name).ok_or_else(|| {
        looked.push(PathBuf::from(format!("{name} on PATH")));
        let looked = looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>();
        TargetError::BusBinaryNotFound {
            looked: looked.join(", "),
        }
    })
}

/// The first file called `name` in a `PATH` directory.
pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
