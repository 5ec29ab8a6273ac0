//! A run's `--dashboard` and `--metrics` servers: started before the run
//! (their URLs printed), told its verdict once it is judged, and kept up
//! for `--live-linger` so the final state can still be read and scraped.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::WatchArgs;
use crate::capacity::CapacityReport;
use crate::live::{ClassNow, Finale, LiveBoard, LiveServer, ServeError};
use crate::report::{Report, headline};

/// The live servers of one run.
pub(super) struct Watch {
    board: LiveBoard,
    servers: Vec<LiveServer>,
    linger: Duration,
    quiet: bool,
}

impl Watch {
    /// Starts what `args` asks for (nothing: `None`), printing each URL.
    pub(super) async fn start(args: &WatchArgs, quiet: bool) -> Result<Option<Self>, ServeError> {
        let mut wanted: Vec<(SocketAddr, &'static str)> = Vec::new();
        if let Some(addr) = args.dashboard {
            wanted.push((addr, "dashboard"));
        }
        match args.metrics {
            // One server answers both when they share an address.
            Some(addr) if Some(addr) != args.dashboard => wanted.push((addr, "metrics")),
            _ => {}
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let board = LiveBoard::default();
        let mut servers = Vec::new();
        for (addr, what) in wanted {
            let server = LiveServer::start(addr, board.clone(), what).await?;
            let url = server.url();
            if what == "dashboard" {
                eprintln!("sim: dashboard at {url}/ (metrics at {url}/metrics)");
            } else {
                eprintln!("sim: metrics at {url}/metrics");
            }
            servers.push(server);
        }
        if args.metrics.is_some() && args.metrics == args.dashboard {
            eprintln!("sim: metrics at {}/metrics", servers[0].url());
        }
        Ok(Some(Self {
            board,
            servers,
            linger: args.live_linger,
            quiet,
        }))
    }

    /// The board the run publishes its snapshots on.
    pub(super) fn board(&self) -> &LiveBoard {
        &self.board
    }

    /// Shows a capacity search's answer, stays up for the linger (or until
    /// ctrl-c), then stops.
    pub(super) async fn finish_capacity(self, report: &CapacityReport) {
        let answer = report
            .setups
            .iter()
            .map(|s| {
                let load = s
                    .highest_healthy
                    .map_or("none".to_owned(), |l| format!("{l:.0}"));
                let reached = s
                    .points
                    .last()
                    .is_some_and(|p| p.status == crate::verdict::Status::Critical);
                let limit = if reached { "" } else { " (limit not reached)" };
                format!("{}: highest healthy {load}{limit}", s.setup.name)
            })
            .collect::<Vec<_>>()
            .join("; ");
        self.board.finish(Finale {
            verdict: format!("capacity {answer}"),
            classes: Vec::new(),
        });
        let interrupt = CancellationToken::new();
        let cancel = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
        self.linger_then_stop(&interrupt).await;
    }

    /// Shows the run's verdict and losses, stays up for the linger (or
    /// until `interrupt`), then stops.
    pub(super) async fn finish(self, report: &Report, interrupt: &CancellationToken) {
        let classes = report
            .ledger
            .classes
            .iter()
            .map(|(class, counts)| ClassNow {
                class: class.as_str().to_owned(),
                delivered: counts.delivered,
                duplicated: counts.duplicated,
                misrouted: counts.misrouted,
                out_of_order: counts.out_of_order,
                lost: Some(counts.lost()),
            })
            .collect();
        self.board.finish(Finale {
            verdict: headline(report).to_lowercase(),
            classes,
        });
        self.linger_then_stop(interrupt).await;
    }

    async fn linger_then_stop(self, interrupt: &CancellationToken) {
        if !self.linger.is_zero() {
            if !self.quiet {
                eprintln!(
                    "sim: the dashboard and metrics show the final state for {} more (ctrl-c to leave now)",
                    humantime::format_duration(self.linger)
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(self.linger) => {}
                _ = interrupt.cancelled() => {}
            }
        }
        for server in self.servers {
            server.stop().await;
        }
    }
}
