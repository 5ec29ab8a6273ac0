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
    let threshold = ctx
        .scenario
        .thresholds
        .for_operation(Operation::PublishDelivery);
    let limits_ms = (
        threshold.warning.as_secs_f64() * 1000.0,
        threshold.critical.as_secs_f64() * 1000.0,
    );
    let counts = [
        c.online.load(Ordering::Relaxed),
        total_agents,
        c.sent.load(Ordering::Relaxed),
        c.delivered.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
    ];
    let p99 = row.as_ref().and_then(|r| r.p99_ms);
    format_line(elapsed, &phase, counts, p99, limits_ms)
}

/// The line itself: `counts` are agents online, agents planned, sends,
/// deliveries and errors; `p99` the last whole second's delivery p99,
/// judged against the (warning, critical) limits in ms.
fn format_line(
    elapsed: Duration,
    phase: &str,
    [online, total, sent, delivered, errors]: [u64; 5],
    p99: Option<f64>,
    (warning, critical): (f64, f64),
) -> String {
    let latency = match p99 {
        Some(p99) => {
            let status = if p99 > critical {
                Status::Critical
            } else if p99 > warning {
                Status::Warning
            } else {
                Status::Healthy
            };
            format!("delivery p99 {p99:.1} ms  {status}")
        }
        // No pub/sub delivery in the last whole second: nothing to judge.
        None => "delivery p99 –".to_owned(),
    };
    format!(
        "{:>5.1}s {phase:<10} agents {online}/{total}  sent {sent}  delivered {delivered}  errors {errors}  {latency}",
        elapsed.as_secs_f64(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_without_deliveries_shows_no_latency_and_no_verdict() {
        let quiet = format_line(
            Duration::from_secs(3),
            "steady",
            [10, 12, 5, 0, 0],
            None,
            (50.0, 200.0),
        );
        assert_eq!(
            quiet,
            "  3.0s steady     agents 10/12  sent 5  delivered 0  errors 0  delivery p99 –"
        );
        let busy = format_line(
            Duration::from_millis(4500),
            "spike",
            [12, 12, 9, 90, 1],
            Some(75.25),
            (50.0, 200.0),
        );
        assert!(busy.ends_with("delivery p99 75.2 ms  warning"), "{busy}");
    }
}
