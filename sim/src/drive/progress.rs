//! What a run shows while it runs: a live line on a terminal (indicatif),
//! or a plain line every few seconds when the output is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::RunContext;
use crate::metrics::{Operation, RunMetrics};
use crate::verdict::Status;

/// One progress reading.
fn line(ctx: &RunContext, total_agents: u64) -> String {
    let elapsed = ctx.clock.start.elapsed();
    let phase = ctx
        .scenario
        .phase_at(elapsed)
        .map(|(_, p, _)| p.name.clone())
        .unwrap_or_default();
    let phase = if ctx.is_draining() {
        "drain".to_owned()
    } else {
        phase
    };
    let c = &ctx.counters;
    let metrics: RunMetrics = ctx.hub.merge();
    let row = metrics.series_rows().into_iter().rev().nth(1);
    let p99 = row.as_ref().and_then(|r| r.p99_ms).unwrap_or(0.0);
    let threshold = ctx
        .scenario
        .thresholds
        .for_operation(Operation::PublishDelivery);
    let status = if p99 > threshold.critical.as_secs_f64() * 1000.0 {
        Status::Critical
    } else if p99 > threshold.warning.as_secs_f64() * 1000.0 {
        Status::Warning
    } else {
        Status::Healthy
    };
    format!(
        "{:>5.1}s {phase:<10} agents {}/{total_agents}  sent {}  delivered {}  errors {}  p99 {p99:.1} ms  {status}",
        elapsed.as_secs_f64(),
        c.connected.load(Ordering::Relaxed),
        c.sent.load(Ordering::Relaxed),
        c.delivered.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
    )
}

/// Shows progress until `stop`; every second on a terminal, every five
/// seconds otherwise (or never when `quiet`).
pub(super) fn spawn(
    ctx: Arc<RunContext>,
    total_agents: u64,
    quiet: bool,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return stop.cancelled().await;
        }
        let tty = std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar
        });
        let every = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => {
                    let text = line(&ctx, total_agents);
                    match &bar {
                        Some(bar) => bar.set_message(text),
                        None => eprintln!("{text}"),
                    }
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    })
}
