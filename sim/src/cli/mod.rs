//! The `sim` command line: parsing (clap) and the commands. Each command
//! returns its process exit code; `main.rs` only sets up logging and exits.
//!
//! Exit codes: 0 healthy, 10 warning, 11 critical, 12 inconclusive, 13
//! interrupted, 1 integrity check failed (see [`crate::verdict`]), 2 for
//! setup errors (invalid scenario, unreachable bus, bad flags), 1 for
//! anything else that went wrong too. `sim check` exits 0 when nothing
//! regressed, 3 on a regression and 2 on bad input (see [`crate::check`]).

mod baseline;
mod capacity;
mod check;
mod merge;
mod run;
mod start_at;
mod watch;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

pub use self::baseline::baseline_command;
pub use self::capacity::{CapacityArgs, capacity_command};
pub use self::check::check_command;
pub use self::merge::merge_command;
pub use self::run::run_command;
pub use self::start_at::{MAX_LEAD, START_GRACE, check_start_at, parse_start_at};
use crate::scenario::{LoadScale, Scenario};

/// Load-tests an agent message bus from scenario files.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `sim` commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a scenario and writes its report.
    Run(RunArgs),
    /// Merges the reports of the shards of one run (`sim run --shard i/n`)
    /// into one report, with one set of verdicts. Exits with the merged
    /// verdict's code, 2 when the directories are not every shard of one
    /// run.
    Merge(MergeArgs),
    /// Finds the highest load that stays healthy (and below critical).
    Capacity(CapacityArgs),
    /// Checks a scenario file and prints what it would run.
    Validate {
        /// The scenario file.
        scenario: PathBuf,
    },
    /// Prints the JSON Schema of scenario files.
    Schema,
    /// Compares a report with a baseline: counts and verdicts exactly,
    /// latency and throughput within a tolerance. Exits 0 when nothing
    /// regressed, 3 on a regression, 2 on bad input.
    Check(CheckArgs),
    /// Records the figures of one or more reports as a baseline for `sim
    /// check`.
    Baseline(BaselineArgs),
}

/// The arguments of `sim check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The report: a `report.json`, or the run directory holding it.
    pub report: PathBuf,
    /// The baseline file (e.g. reports/baselines/ci-smoke@memory.json).
    #[arg(long)]
    pub baseline: PathBuf,
    /// Latency percentiles may grow to baseline × (1 + RATIO), throughput
    /// may fall to baseline × (1 − RATIO).
    #[arg(long, value_name = "RATIO", default_value_t = 0.5)]
    pub tolerance: f64,
    /// Latency may always grow by this many ms, so sub-millisecond figures
    /// do not flag on noise.
    #[arg(long, value_name = "MS", default_value_t = 1.0)]
    pub latency_floor_ms: f64,
    /// Also write the comparison as JUnit XML (one testcase per metric).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// The arguments of `sim merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The shards' report directories (`sim run --shard i/n --out DIR`),
    /// one per shard, in any order.
    #[arg(required = true, value_name = "DIR")]
    pub shards: Vec<PathBuf>,
    /// Where to write the merged report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// No summary (the report is still written).
    #[arg(long, short)]
    pub quiet: bool,
}

/// The arguments of `sim baseline`.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// The report(s): `report.json` files or run directories. With several
    /// runs of one scenario, their counts and verdicts must agree, and the
    /// baseline keeps the highest percentiles and the lowest throughput.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Where to write the baseline (e.g. reports/baselines/ci-smoke@memory.json).
    #[arg(long)]
    pub out: PathBuf,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 500ms, 30s, 2m)"))
}

fn shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| "use i/n, e.g. 0/4".to_owned())?;
    let i: u32 = i.parse().map_err(|_| format!("bad shard index {i:?}"))?;
    let n: u32 = n.parse().map_err(|_| format!("bad shard count {n:?}"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= i < n"));
    }
    Ok((i, n))
}

/// Watching a run while it runs (`sim run` and `sim capacity`).
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Serve a live dashboard at this address (default 127.0.0.1:8089;
    /// port 0 picks a free one): latency per operation, throughput,
    /// agents, loss by class, the bus nodes' health, pushed once a second
    /// (and, for capacity, the curve point by point). Its URL is printed at
    /// the start.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8089")]
    pub dashboard: Option<std::net::SocketAddr>,
    /// Serve the run's figures as Prometheus metrics at ADDR/metrics
    /// (`sim_*` series, labelled by scenario), for a Grafana board beside
    /// the bus's own `/metrics` (deploy/grafana/).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// How long the dashboard and metrics stay up after the run, showing
    /// its final state and verdict.
    #[arg(long, value_parser = duration, default_value = "15s")]
    pub live_linger: Duration,
}

/// The arguments of `sim run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; see scenarios/README.md).
    pub scenario: PathBuf,
    /// Run the embedded bus (or spawned nodes) on this Redis (switches the
    /// scenario's broker to redis).
    #[arg(long)]
    pub redis: Option<String>,
    /// Drive these external bus nodes (ws://HOST:PORT, repeatable) and start
    /// nothing.
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// Report directory (default: reports/<scenario>/<UTC timestamp>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stretch or shrink the phases (and the faults' instants) to this
    /// total length. The run then drains for up to `--drain` (5 s by
    /// default, less once deliveries go quiet), so it takes a little
    /// longer than this.
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Multiply every group's agent count by F (rounded, at least one agent
    /// per group), e.g. 0.1 for a tenth of the agents.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub scale_agents: f64,
    /// Multiply every group's message rate by F.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub scale_rate: f64,
    /// Run only the i-th of n slices of the agents (those whose number
    /// modulo n is i); `sim merge` combines the shards' reports.
    #[arg(long, value_parser = shard, default_value = "0/1")]
    pub shard: (u32, u32),
    /// Begin the run (its connects and phases) at this wall-clock time, so
    /// shards launched separately run together: Unix seconds (e.g.
    /// 1767225600) or RFC 3339 in UTC (e.g. 2026-01-01T00:00:00Z). The bus
    /// under test starts first, then the run waits; a time more than 2 s
    /// past is an error.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<SystemTime>,
    /// The `bus` executable for spawn mode (default: next to `sim`, then
    /// PATH; or BUS_BIN).
    #[arg(long, env = "BUS_BIN")]
    pub bus_bin: Option<PathBuf>,
    /// Secret of the bus's agent tokens (started nodes require tokens, and
    /// agents sign theirs with it).
    #[arg(long, env = "BUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Longest wait for deliveries to settle after the last phase.
    #[arg(long, value_parser = duration, default_value = "5s")]
    pub drain: Duration,
    /// Concurrent WebSocket handshakes at most.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// The live dashboard and metrics.
    #[command(flatten)]
    pub watch: WatchArgs,
    /// No progress display and no summary (the report is still written).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Applies `--seed`, `--duration`, `--scale-agents` and `--scale-rate` to
/// a loaded scenario; returns how its load was changed (for the report),
/// or why the changed scenario is not valid.
pub fn apply_overrides(
    scenario: &mut Scenario,
    seed: Option<u64>,
    length: Option<Duration>,
    agents: f64,
    rate: f64,
) -> Result<Option<LoadScale>, String> {
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    let scale = LoadScale {
        agents,
        rate,
        duration_s: length.map(|l| l.as_secs_f64()),
    };
    if scale.is_identity() {
        return Ok(None);
    }
    scenario.scale(&scale)?;
    Ok(Some(scale))
}

/// Runs the parsed command line; returns the exit code.
pub async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run_command(args).await,
        Command::Merge(args) => merge_command(&args),
        Command::Capacity(args) => capacity_command(args).await,
        Command::Validate { scenario } => validate(&scenario),
        Command::Schema => {
            println!("{}", crate::scenario::json_schema());
            0
        }
        Command::Check(args) => check_command(&args),
        Command::Baseline(args) => baseline_command(&args),
    }
}

fn validate(path: &std::path::Path) -> i32 {
    match Scenario::load(path) {
        Ok(s) => {
            println!(
                "{}: ok: {} agents in {} groups, {} phases, {} in all",
                path.display(),
                s.total_agents(),
                s.groups.len(),
                s.phases.len(),
                humantime::format_duration(s.total_duration())
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse() {
        assert_eq!(shard("1/4").unwrap(), (1, 4));
        assert!(shard("4/4").is_err());
        assert!(shard("x").is_err());
    }

    #[test]
    fn duration_override_scales_every_phase() {
        let mut s = Scenario::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/quickstart.toml"
        ))
        .unwrap();
        let scale = apply_overrides(&mut s, Some(9), Some(Duration::from_secs(10)), 0.5, 2.0)
            .unwrap()
            .unwrap();
        assert_eq!(scale.duration_s, Some(10.0));
        assert_eq!(s.seed, 9);
        assert_eq!(s.groups[0].count, 450, "900 subscribers halved");
        assert_eq!(s.groups[1].rate, 4.0, "publishers at twice 2/s");
        let total = s.total_duration().as_secs_f64();
        assert!((total - 10.0).abs() < 0.01, "{total}");
    }
}
