//! Shared by the integration tests.

use std::process::{Child, Command, Stdio};

/// Held by the tests that run real load and judge its latency (the shipped
/// and generated scenarios, the snapshots), so they never share the CPU
/// with each other.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `bus` process on the memory broker, killed on drop.
pub(crate) struct Bus {
    child: Child,
    /// `ws://HOST:PORT`.
    pub url: String,
    /// `HOST:PORT` it listens on.
    pub addr: String,
}

impl Bus {
    pub(crate) fn start() -> Bus {
        let bus = sim::bus_under_test::find_bus_binary(None)
            .expect("the bus binary (cargo build -p bus)");
        let mut child = Command::new(bus)
            .args(["--broker", "memory", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let addr = line
            .trim()
            .strip_prefix("bus listening on ")
            .expect("the ready line")
            .to_owned();
        Bus {
            child,
            url: format!("ws://{addr}"),
            addr,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
