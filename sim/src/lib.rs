//! The load simulator: synthetic agents against the agent bus, HDR latency, verdicts and reports.
//!
//! Data flow: scenario file → validated plan → runner → agents → per-worker
//! recorders → merged metrics → verdicts → reports.
//!
//! Modules, each using only the ones above it in this list:
//!
//! - [`metrics`]: what is measured and how it is kept: [`metrics::Operation`]
//!   and [`metrics::MessageClass`] names, one [`metrics::Recorder`] per worker
//!   thread (HDR histograms in µs, a per-second series, error kinds and the
//!   delivery [`metrics::Ledger`]), handed out by a [`metrics::MetricsHub`]
//!   and merged losslessly into [`metrics::RunMetrics`]; HDR interval logs.
//! - [`scenario`]: the TOML scenario format ([`scenario::Scenario`]): target,
//!   phases, agent groups, thresholds, faults; loading with errors that name
//!   the file, line, column and field; the load schedule over time; the JSON
//!   Schema for editors.
//! - [`verdict`]: healthy / warning / critical per operation, per message
//!   class (loss) and for connections, from a scenario's thresholds; the exit
//!   codes.
//! - [`report`]: `report.json`, `report.md`, `report.html` (inline SVG plots)
//!   and `hdr/*.hlog` from merged metrics, verdicts and run facts; the
//!   snapshot view (the facts two healthy runs share).
//! - [`check`]: baselines and `sim check`: a report compared with a
//!   committed baseline, counts exactly and latency within a tolerance; a
//!   diff table and JUnit XML.
//!
//! - [`procstat`]: CPU and memory of processes (the simulator, bus nodes).
//! - [`target`]: where the bus under test runs: embedded in this process,
//!   spawned as child processes, or external; the open-file budget.
//! - [`monitor`]: the bus's `/health` and connections and Redis `INFO`
//!   polled during a run.
//! - [`agent`]: one simulated agent, a real WebSocket client: connect,
//!   subscribe, send on its open-model schedule, answer, work, account.
//! - [`runner`]: the plan (who connects when and where), the agents' shared
//!   context and clock, phases and drain, the ledger's evidence and its
//!   reconciliation, and the record a shard writes for `sim merge`.
//! - [`faults`]: a scenario's faults injected while it runs.
//! - [`http_load`]: REST load through goose (`rest_client` groups).
//! - [`execute`]: one scenario against a running bus, watched, faults
//!   injected, with the queue ledger settled from the bus's counts and
//!   per-node figures.
//! - [`merge`]: the shards of a sharded run (`sim run --shard i/n`) merged
//!   into one report: histograms added, the ledger reconciled over every
//!   shard's sends and windows, verdicts judged once.
//! - [`capacity`]: load sweeps and searches for the highest healthy load.
//! - [`cli`]: the `sim` command line.

pub mod agent;
pub mod bus_under_test;
pub mod capacity;
pub mod check;
pub mod cli;
pub mod context;
pub mod drive;
pub mod exit;
pub mod faults;
pub mod http_load;
pub mod ledger;
pub mod merge;
pub mod metrics;
pub mod monitor;
pub mod orchestrate;
pub mod plan;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod verdict;
