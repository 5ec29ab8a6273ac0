//! The load simulator: synthetic agents against the agent bus, HDR latency,
//! verdicts and reports.
//!
//! Data flow: scenario file → [`plan`] → [`drive`] spawns the [`agent`]s,
//! which share a [`context`] → per-worker recorders ([`metrics`]) and the
//! agents' evidence ([`ledger`]) → merged metrics → [`verdict`]s (and the
//! run's [`verdict::trust`]) → [`report`]s. [`orchestrate`] runs all of that
//! against a [`bus_under_test`] while [`monitor`] watches it and [`faults`]
//! disturb it.
//!
//! Layers, lowest first. A module uses only modules of the layers before
//! its own, never one of its own layer (`tests/layers.rs` checks this very
//! list against the sources):
//!
//! 1. [`exit`]: every exit code; [`ledger`]: the delivery ledger (counts,
//!    subscription windows, evidence, reconciliation); [`procstat`]: CPU
//!    and memory of processes and of the machine.
//! 2. [`metrics`]: operations, per-worker HDR recorders merged into
//!    `RunMetrics`, per-second series, HDR interval logs.
//! 3. [`scenario`]: the TOML scenario format, loading with located errors,
//!    validation, scaling, the load profile, the JSON Schema.
//! 4. [`verdict`]: healthy / warning / critical per operation, class and
//!    connections; whether a run's numbers can be trusted.
//! 5. [`report`]: `report.json`, `report.md`, `report.html`, the snapshot
//!    view.
//! 6. [`check`]: baselines and `sim check`; [`plan`]: who connects when,
//!    where, subscribed to what; [`bus_under_test`]: the bus the agents
//!    load (embedded, spawned or external), its Redis, fault actuators.
//! 7. [`context`]: what a run's agents share (clock, hub, counters, fault
//!    switches, signals); [`monitor`]: the bus's health, connections and
//!    Redis polled during a run.
//! 8. [`agent`]: one simulated agent, a real WebSocket client.
//! 9. [`drive`]: spawning the agents, phases, drain, completing the
//!    ledger, the simulator watching itself, shard records.
//! 10. [`faults`]: a scenario's faults injected while it runs;
//!     [`http_load`]: REST load through goose; [`live`]: the run watched
//!     while it runs (dashboard page, server-sent snapshots, Prometheus
//!     metrics).
//! 11. [`orchestrate`]: one scenario against a running bus, watched,
//!     faults injected, witnessed by the bus's own counts, judged and
//!     reported.
//! 12. [`merge`]: the shards of a run merged into one report.
//! 13. [`capacity`]: load sweeps and searches for the highest healthy load.
//! 14. [`cli`]: the `sim` command line.

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
pub mod live;
pub mod merge;
pub mod metrics;
pub mod monitor;
pub mod orchestrate;
pub mod plan;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod verdict;
