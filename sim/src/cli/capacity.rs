//! `sim capacity`: sweep or search the load of a scenario on one or more
//! bus set-ups, and write `capacity.json`, `capacity.md`, `capacity.html`.

use crate::exit;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;

use super::watch::Watch;
use crate::capacity::search::{self, Strategy};
use crate::capacity::{self, CapacityReport, PointProber, ProbeSettings, Setup, SetupResult, Vary};
use crate::live::LiveBoard;
use crate::metrics::Operation;
use crate::scenario::{BrokerKind, Scenario};

/// The arguments of `sim capacity`.
#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    /// The scenario whose load is varied.
    pub scenario: PathBuf,
    /// What to vary.
    #[arg(long, value_enum)]
    pub vary: Vary,
    /// First load (default: the scenario's own value).
    #[arg(long)]
    pub from: Option<f64>,
    /// Last load (default: 4× the first for a sweep, 64× for a search).
    #[arg(long)]
    pub to: Option<f64>,
    /// Loads in a sweep.
    #[arg(long, default_value_t = 5)]
    pub steps: u32,
    /// Search instead of sweeping: double until critical, then bisect both
    /// boundaries.
    #[arg(long)]
    pub search: bool,
    /// Bisection steps per boundary in a search.
    #[arg(long, default_value_t = 4)]
    pub refine: u32,
    /// Runs per load (their spread is reported).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Steady-state length of each point.
    #[arg(long, value_parser = super::duration, default_value = "10s")]
    pub point_duration: Duration,
    /// Set-ups to compare, comma-separated: scenario, memory, memory-spawn,
    /// redis (embedded), redis-N (N spawned nodes on one Redis).
    #[arg(long, value_delimiter = ',', default_value = "scenario")]
    pub setups: Vec<String>,
    /// Redis for the redis set-ups (default: a private redis-server).
    #[arg(long)]
    pub redis: Option<String>,
    /// The `bus` executable for spawned set-ups.
    #[arg(long, env = "BUS_BIN")]
    pub bus_bin: Option<PathBuf>,
    /// Output directory (default: reports/capacity/<scenario>/<timestamp>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress lines and no summary (the reports are still written).
    #[arg(long, short)]
    pub quiet: bool,
    /// The live dashboard (each point's run, and the curve as it grows)
    /// and metrics.
    #[command(flatten)]
    pub watch: super::WatchArgs,
}

/// Runs `sim capacity`; returns the exit code: 0 once the reports are
/// written (whatever the points' verdicts), 2 for bad input, 1 when the
/// reports cannot be written.
pub async fn capacity_command(args: CapacityArgs) -> i32 {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return e.exit_code();
        }
    };
    let setups: Result<Vec<Setup>, String> = args
        .setups
        .iter()
        .map(|n| Setup::parse(n, &scenario))
        .collect();
    let setups = match setups {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim: {e}");
            return exit::SETUP;
        }
    };
    let needs_redis = setups.iter().any(|s| s.broker == BrokerKind::Redis);
    let private_redis = (needs_redis && args.redis.is_none()).then(localredis::RedisServer::start);
    let redis_url = args
        .redis
        .clone()
        .or(private_redis.as_ref().map(|r| r.url()));
    let strategy = strategy(&args, &scenario);
    let watch = match Watch::start(&args.watch, args.quiet).await {
        Ok(watch) => watch,
        Err(e) => {
            eprintln!("sim: {e}");
            return exit::SETUP;
        }
    };
    let live = watch.as_ref().map(|w| w.board().clone());
    let (results, notes) = search_setups(&args, &scenario, setups, strategy, redis_url, live).await;
    let threshold = scenario
        .thresholds
        .for_operation(Operation::PublishDelivery);
    let report = CapacityReport {
        scenario: scenario.name.clone(),
        content_hash: scenario.content_hash(),
        vary: args.vary,
        unit: args.vary.unit().to_owned(),
        strategy,
        repeats: args.repeat.max(1),
        point_duration_s: args.point_duration.as_secs_f64(),
        warning_ms: threshold.warning.as_secs_f64() * 1000.0,
        critical_ms: threshold.critical.as_secs_f64() * 1000.0,
        setups: results,
        notes,
    };
    let dir = args.out.clone().unwrap_or_else(|| {
        crate::report::default_dir(
            &Path::new("reports").join("capacity"),
            &scenario.name,
            SystemTime::now(),
        )
    });
    if let Err(e) = capacity::write_all(&report, &dir) {
        eprintln!("sim: {e}");
        return exit::FAILURE;
    }
    if !args.quiet {
        println!("{}", capacity::output_summary(&report));
        println!("capacity report: {}", dir.display());
    }
    if let Some(watch) = watch {
        watch.finish_capacity(&report).await;
    }
    0
}

/// Searches each set-up in turn; their results and the search's notes.
async fn search_setups(
    args: &CapacityArgs,
    scenario: &Scenario,
    setups: Vec<Setup>,
    strategy: Strategy,
    redis_url: Option<String>,
    live: Option<LiveBoard>,
) -> (Vec<SetupResult>, Vec<String>) {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for setup in setups {
        if !args.quiet {
            eprintln!(
                "sim capacity: {} on {}, {}",
                scenario.name, setup.name, strategy
            );
        }
        let mut prober = PointProber::new(ProbeSettings {
            setup: setup.clone(),
            vary: args.vary,
            base: scenario.clone(),
            point_duration: args.point_duration,
            repeats: args.repeat,
            redis_url: redis_url.clone(),
            bus_binary: args.bus_bin.clone(),
            quiet: args.quiet,
            live: live.clone(),
        });
        search::explore(&mut prober, strategy, args.vary.grain()).await;
        notes.append(&mut prober.notes);
        results.push(SetupResult::new(setup, prober.points));
    }
    if results
        .iter()
        .any(|r| r.setup.mode == crate::scenario::TargetMode::Embedded)
    {
        notes.push(
            "embedded set-ups run the bus inside the simulator's process: their bus CPU and memory are not separable; \
             compare with spawned set-ups (memory-spawn, redis-N) for the bus's own cost"
                .into(),
        );
    }
    (results, notes)
}

fn strategy(args: &CapacityArgs, scenario: &Scenario) -> Strategy {
    let from = args.from.unwrap_or_else(|| args.vary.base(scenario));
    if args.search {
        Strategy::Search {
            from,
            to: args.to.unwrap_or(from * 64.0),
            refine: args.refine,
        }
    } else {
        Strategy::Sweep {
            from,
            to: args.to.unwrap_or(from * 4.0),
            steps: args.steps,
        }
    }
}
