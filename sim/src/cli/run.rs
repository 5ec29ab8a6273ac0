//! `sim run`: load the scenario, check the open-file budget, start (or
//! reach) the bus, run the agents while watching the bus, settle the queue
//! ledger from the bus's own counts, judge, write the report, print the
//! summary, and exit with the verdict's code.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{EXIT_SETUP, RunArgs, apply_overrides};
use crate::metrics::{MessageClass, RunMetrics};
use crate::monitor::Monitor;
use crate::procstat;
use crate::report::{self, Report, RunInfo, ScenarioInfo, SimulatorSelf};
use crate::runner::{self, Endpoints, RunOptions, RunResult};
use crate::scenario::{Behaviour, Scenario, TargetMode};
use crate::target::{self, RunningTarget, TargetOptions};
use crate::verdict;

/// Runs `sim run`; returns the exit code.
pub async fn run_command(args: RunArgs) -> i32 {
    let mut scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return e.exit_code();
        }
    };
    apply_overrides(&mut scenario, args.seed, args.duration);
    if args.redis.is_some() {
        scenario.target.broker = crate::scenario::BrokerKind::Redis;
    }
    let mode = if args.targets.is_empty() {
        scenario.target.mode
    } else {
        TargetMode::External
    };
    let agents_here = scenario.total_agents().div_ceil(u64::from(args.shard.1));
    if let Some(problem) = target::descriptor_budget(agents_here, mode).problem() {
        eprintln!("sim: {problem}");
        return EXIT_SETUP;
    }
    let options = TargetOptions {
        redis_url: args.redis.clone(),
        urls: args.targets.clone(),
        bus_binary: args.bus_bin.clone(),
        jwt_secret: args.jwt_secret.clone(),
    };
    let target = match RunningTarget::start(&scenario.target, &options).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sim: cannot start the bus under test: {e}");
            return EXIT_SETUP;
        }
    };
    if !args.quiet {
        eprintln!(
            "sim: {} ({} agents, {:?}) against {}",
            scenario.name,
            agents_here,
            scenario.total_duration(),
            target.description
        );
    }
    let code = run_against(&args, Arc::new(scenario), &target).await;
    if let Err(e) = target.stop().await {
        eprintln!("sim: stopping the bus under test: {e}");
    }
    code
}

async fn run_against(args: &RunArgs, scenario: Arc<Scenario>, target: &RunningTarget) -> i32 {
    let endpoints = Endpoints {
        ws_urls: target.ws_urls.clone(),
        source_addresses: scenario.target.source_addresses.clone(),
    };
    let options = RunOptions {
        shard: args.shard,
        jwt_secret: args.jwt_secret.clone(),
        drain_max: args.drain,
        connect_concurrency: args.connect_concurrency,
        quiet: args.quiet,
        ..RunOptions::default()
    };
    let monitor = Monitor::start(
        target.http_urls.clone(),
        target.redis_url.clone(),
        Instant::now(),
        Duration::from_secs(1),
    );
    let bus_before: Vec<_> = target
        .bus_pids
        .iter()
        .filter_map(|p| procstat::sample(*p))
        .collect();
    let mut result = runner::run(scenario.clone(), &endpoints, &options).await;
    let watched = monitor.stop().await;
    let mut notes = settle_queues(&scenario, target, &mut result.metrics).await;
    notes.extend(bus_cost(target, &bus_before, result.duration));

    let verdicts = verdict::judge(&result.metrics, &scenario.thresholds);
    let mut report = Report::new(
        ScenarioInfo::from_scenario(&scenario, args.scenario.display().to_string()),
        RunInfo::new(
            result.started_at,
            result.duration,
            target.description.clone(),
            target.broker.clone(),
            target.node_count() as u32,
        ),
        &result.metrics,
        verdicts,
    );
    report.health_timeline = watched.health;
    report.redis_samples = watched.redis;
    report.simulator = simulator_self(&result);
    report.notes.extend(notes);
    if args.shard.1 > 1 {
        report.notes.push(format!(
            "shard {}/{} of the agents",
            args.shard.0, args.shard.1
        ));
    }
    let dir = args.out.clone().unwrap_or_else(|| {
        report::default_dir(Path::new("reports"), &scenario.name, SystemTime::now())
    });
    match report::write_all(&report, &result.metrics, &dir) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("sim: writing the report to {}: {e}", dir.display());
            return 1;
        }
    }
    if !args.quiet {
        print_summary(&report, &dir);
    }
    report.verdicts.exit_code()
}

/// Every (workspace, queue) the scenario's queue groups use.
fn queues_of(scenario: &Scenario) -> BTreeSet<(String, String)> {
    scenario
        .groups
        .iter()
        .filter(|g| {
            matches!(
                g.behaviour,
                Behaviour::QueueProducer | Behaviour::QueueWorker
            )
        })
        .flat_map(|g| (0..g.workspaces.max(1)).map(move |w| (format!("ws-{w}"), g.queue.clone())))
        .collect()
}

/// Reads the bus's counts of the scenario's queues and completes the queue
/// ledger: enqueued = acked + dead-lettered + still queued, or the
/// difference is reported lost.
async fn settle_queues(
    scenario: &Scenario,
    target: &RunningTarget,
    metrics: &mut RunMetrics,
) -> Vec<String> {
    let queues = queues_of(scenario);
    if queues.is_empty() {
        return Vec::new();
    }
    let mut still_queued = 0;
    let mut dead = 0;
    let mut notes = Vec::new();
    for (workspace, queue) in &queues {
        match target::queue_stats(target, workspace, queue).await {
            Ok(stats) => {
                still_queued += stats.ready + stats.processing + stats.delayed;
                dead += stats.dead;
            }
            Err(e) => notes.push(format!(
                "could not read the stats of queue {workspace}/{queue}: {e}"
            )),
        }
    }
    let ledger = metrics.ledger_mut();
    ledger.queue.still_queued = still_queued;
    ledger.queue.dead_lettered = ledger.queue.dead_lettered.max(dead);
    let q = ledger.queue;
    let class = ledger.class_mut(MessageClass::Queue);
    class.expected = q.enqueued;
    class.delivered = q.acked + q.dead_lettered + q.still_queued;
    notes.push(format!(
        "queue ledger: {} enqueued = {} acked + {} dead-lettered + {} still queued{}",
        q.enqueued,
        q.acked,
        q.dead_lettered,
        q.still_queued,
        if class.expected == class.delivered {
            " (reconciled)"
        } else {
            " (NOT reconciled)"
        }
    ));
    notes
}

/// CPU and memory of spawned bus nodes over the run.
fn bus_cost(
    target: &RunningTarget,
    before: &[procstat::ProcSample],
    duration: Duration,
) -> Vec<String> {
    target
        .bus_pids
        .iter()
        .zip(before)
        .filter_map(|(pid, b)| {
            let after = procstat::sample(*pid)?;
            let cpu = after.cpu_seconds - b.cpu_seconds;
            Some(format!(
                "bus node pid {pid}: {:.1}% of a core, peak RSS {:.1} MiB",
                100.0 * cpu / duration.as_secs_f64().max(1e-9),
                after.peak_rss_bytes as f64 / (1 << 20) as f64
            ))
        })
        .collect()
}

fn simulator_self(result: &RunResult) -> SimulatorSelf {
    let me = procstat::self_sample();
    let delivered: u64 = result
        .metrics
        .ledger()
        .classes
        .values()
        .map(|c| c.delivered)
        .sum::<u64>()
        + result.metrics.ledger().queue.claimed;
    SimulatorSelf::new(me.cpu_seconds, me.peak_rss_bytes, delivered, result.agents)
}

fn print_summary(report: &Report, dir: &Path) {
    println!();
    println!(
        "{} — {}",
        report.scenario.name,
        report.verdicts.overall.as_str().to_uppercase()
    );
    println!(
        "connections {}/{}   duration {:.1}s   target {}",
        report.connections.achieved,
        report.connections.target,
        report.run.duration_s,
        report.run.target
    );
    println!(
        "{:<18} {:>8} {:>9} {:>9} {:>9}  verdict",
        "operation", "count", "p50 ms", "p99 ms", "max ms"
    );
    for l in &report.latencies {
        let verdict = report
            .verdicts
            .operation(l.operation)
            .map_or("-", |v| v.status.as_str());
        println!(
            "{:<18} {:>8} {:>9.2} {:>9.2} {:>9.2}  {verdict}",
            l.operation.as_str(),
            l.summary.count,
            l.summary.p50_ms,
            l.summary.p99_ms,
            l.summary.max_ms
        );
    }
    for (class, c) in &report.ledger.classes {
        println!(
            "{:<18} expected {} delivered {} lost {} duplicated {} out-of-order {} misrouted {}",
            class.as_str(),
            c.expected,
            c.delivered,
            c.lost(),
            c.duplicated,
            c.out_of_order,
            c.misrouted
        );
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    println!("report: {}", dir.display());
}
