//! `sim run`: load the scenario, check the open-file budget, start (or
//! reach) the bus, run the agents while watching the bus, settle the queue
//! ledger from the bus's own counts, judge, write the report, print the
//! summary, and exit with the verdict's code.

use crate::exit;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::watch::Watch;
use super::{RunArgs, apply_overrides, check_start_at};
use crate::bus_under_test::{self, RunningTarget, TargetOptions};
use crate::drive::RunOptions;
use crate::orchestrate::{self, FinishedRun};
use crate::report::{self, Report};
use crate::scenario::{FaultKind, LoadScale, Scenario, TargetMode};
use crate::verdict::trust;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Runs `sim run`; returns the exit code.
pub async fn run_command(args: RunArgs) -> i32 {
    let (scenario, scale, args) = match prepare(args) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let args = &args;
    let mode = if args.targets.is_empty() {
        scenario.target.mode
    } else {
        TargetMode::External
    };
    let agents_here = scenario.total_agents().div_ceil(u64::from(args.shard.1));
    if args.shard.1 > 1 && mode != TargetMode::External {
        eprintln!(
            "sim: warning: shard {}/{} starts a bus of its own ({} mode); the shards' agents reach each other only when every shard drives one bus (--target)",
            args.shard.0,
            args.shard.1,
            mode.as_str()
        );
    }
    if let Some(problem) = bus_under_test::descriptor_budget(agents_here, mode).problem() {
        eprintln!("sim: {problem}");
        return exit::SETUP;
    }
    let target =
        match RunningTarget::start(&scenario.target, &target_options(args, &scenario)).await {
            Ok(t) => t,
            Err(e) => {
                // External mode starts nothing: it only checks the nodes.
                let what = match mode {
                    TargetMode::External => "cannot use the bus under test",
                    _ => "cannot start the bus under test",
                };
                eprintln!("sim: {what}: {e}");
                return exit::SETUP;
            }
        };
    if let Some(Err(e)) = args
        .start_at
        .map(|at| check_start_at(at, SystemTime::now()))
    {
        eprintln!("sim: the bus under test started too late: {e}");
        if let Err(e) = target.stop().await {
            eprintln!("sim: stopping the bus under test: {e}");
        }
        return exit::SETUP;
    }
    if !args.quiet {
        announce(args, &scenario, agents_here, &target);
    }
    let code = run_against(args, Arc::new(scenario), scale, &target).await;
    if let Err(e) = target.stop().await {
        eprintln!("sim: stopping the bus under test: {e}");
    }
    code
}

/// The scenario with the command line's overrides applied, its load scale,
/// and the arguments completed from the scenario (the JWT secret); or the
/// exit code of a setup error, already reported.
fn prepare(args: RunArgs) -> Result<(Scenario, Option<LoadScale>, RunArgs), i32> {
    let mut scenario = Scenario::load(&args.scenario).map_err(|e| {
        eprintln!("{e}");
        e.exit_code()
    })?;
    let scale = apply_overrides(
        &mut scenario,
        args.seed,
        args.duration,
        args.scale_agents,
        args.scale_rate,
    )
    .map_err(|e| {
        eprintln!("sim: {e}");
        exit::SETUP
    })?;
    if let Some(Err(e)) = args
        .start_at
        .map(|at| check_start_at(at, SystemTime::now()))
    {
        eprintln!("sim: {e}");
        return Err(exit::SETUP);
    }
    let args = RunArgs {
        jwt_secret: args
            .jwt_secret
            .clone()
            .or_else(|| scenario.target.jwt_secret.clone()),
        ..args
    };
    if args.redis.is_some() {
        scenario.target.broker = crate::scenario::BrokerKind::Redis;
    }
    Ok((scenario, scale, args))
}

/// What the bus under test needs from the command line and the scenario's
/// faults (a durable Redis to restart, a proxy to cut).
fn target_options(args: &RunArgs, scenario: &Scenario) -> TargetOptions {
    let has = |kind| scenario.faults.iter().any(|f| f.kind == kind);
    TargetOptions {
        redis_url: args.redis.clone(),
        urls: args.targets.clone(),
        bus_binary: args.bus_bin.clone(),
        jwt_secret: args.jwt_secret.clone(),
        durable_redis: has(FaultKind::RedisRestart),
        network_proxy: has(FaultKind::NetworkCut),
        ..TargetOptions::default()
    }
}

/// The run's first line on stderr (and when it starts, if scheduled).
fn announce(args: &RunArgs, scenario: &Scenario, agents: u64, target: &RunningTarget) {
    // The drain is said up front: a 10 s run takes up to `--drain` longer.
    eprintln!(
        "sim: {} ({} agents, {} of phases, then a drain of up to {}) against {}",
        scenario.name,
        agents,
        humantime::format_duration(scenario.total_duration()),
        humantime::format_duration(args.drain),
        target.description
    );
    if let Some(at) = args.start_at {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        eprintln!(
            "sim: starting at {} (in {:.1} s)",
            humantime::format_rfc3339_millis(at),
            wait.as_secs_f64()
        );
    }
}

async fn run_against(
    args: &RunArgs,
    scenario: Arc<Scenario>,
    scale: Option<LoadScale>,
    target: &RunningTarget,
) -> i32 {
    let options = RunOptions {
        scale,
        interrupt: interrupt_on_signals(args.quiet),
        shard: args.shard,
        jwt_secret: args.jwt_secret.clone(),
        drain_max: args.drain,
        connect_concurrency: args.connect_concurrency,
        quiet: args.quiet,
        start_at: args.start_at,
        ..RunOptions::default()
    };
    let watch = match Watch::start(&args.watch, args.quiet).await {
        Ok(watch) => watch,
        Err(e) => {
            eprintln!("sim: {e}");
            return exit::SETUP;
        }
    };
    let file = args.scenario.display().to_string();
    let board = watch.as_ref().map(Watch::board);
    let FinishedRun {
        report,
        metrics,
        shard,
    } = orchestrate::run_to_report(scenario.clone(), &file, target, &options, board).await;
    let dir = args.out.clone().unwrap_or_else(|| {
        report::default_dir(Path::new("reports"), &scenario.name, SystemTime::now())
    });
    if let Err(e) = report::write_all(&report, &metrics, &dir) {
        eprintln!("sim: writing the report to {}: {e}", dir.display());
        return exit::FAILURE;
    }
    if let Some(Err(e)) = shard.map(|record| record.write(&dir)) {
        eprintln!("sim: {e}");
        return exit::FAILURE;
    }
    if !args.quiet {
        print_summary(&report, &dir);
    }
    if let Some(watch) = watch {
        watch.finish(&report, &options.interrupt).await;
    }
    trust::exit_code(&report.verdicts, &report.integrity)
}

/// A token cancelled on the first SIGINT or SIGTERM: the run stops its
/// schedule, drains briefly and reports what it measured. Later signals
/// only say that it is stopping.
pub(super) fn interrupt_on_signals(quiet: bool) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            return;
        };
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            if first || !quiet {
                eprintln!(
                    "\nsim: {name}: stopping the schedule, draining for at most {}, then writing the report of what was measured",
                    humantime::format_duration(crate::drive::INTERRUPTED_DRAIN)
                );
            }
            first = false;
            cancel.cancel();
        }
    });
    token
}

/// Prints the verdict, the latency and delivery figures and the notes.
pub(super) fn print_summary(report: &Report, dir: &Path) {
    println!();
    println!("{} — {}", report.scenario.name, report::headline(report));
    println!(
        "connections {}/{}   duration {:.1}s   target {}",
        report.connections.achieved,
        report.connections.target,
        report.run.duration_s,
        report.run.target
    );
    // Rates are over the phases, the drain left out.
    let window = report.window_s();
    println!(
        "{:<18} {:>8} {:>9} {:>9} {:>9} {:>9}  verdict",
        "operation", "count", "per s", "p50 ms", "p99 ms", "max ms"
    );
    for l in &report.latencies {
        let verdict = report
            .verdicts
            .operation(l.operation)
            .map_or("-".to_owned(), report::verdict_label);
        println!(
            "{:<18} {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.2}  {verdict}",
            l.operation.as_str(),
            l.summary.count,
            l.summary.count as f64 / window,
            l.summary.p50_ms,
            l.summary.p99_ms,
            l.summary.max_ms
        );
    }
    for (class, c) in &report.ledger.classes {
        println!(
            "{:<18} expected {} delivered {} ({:.1}/s) lost {} duplicated {} out-of-order {} misrouted {}",
            class.as_str(),
            c.expected,
            c.delivered,
            c.delivered as f64 / window,
            c.lost(),
            c.duplicated,
            c.out_of_order,
            c.misrouted
        );
    }
    for p in &report.phases {
        let verdict = match (&p.status, &p.not_judged) {
            (Some(status), _) => status.to_string(),
            (None, Some(why)) => format!("not judged ({why})"),
            (None, None) => "-".to_owned(),
        };
        let latency = match (p.p50_ms, p.judged_ms) {
            (Some(p50), Some(judged)) => {
                format!("delivery p50 {p50:.2} ms p{} {judged:.2} ms", p.percentile)
            }
            _ => "no deliveries".to_owned(),
        };
        println!(
            "phase {:<12} {:>5.1}-{:<5.1}s sent {} delivered {} ({:.1}/s) {latency}  {verdict}",
            p.name, p.start_s, p.end_s, p.sent, p.delivered, p.delivered_per_s
        );
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for line in report::integrity_lines(report) {
        println!("{line}");
    }
    println!("report: {}", dir.display());
}
