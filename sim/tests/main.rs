//! Integration tests of the simulator, one binary: real agents against real
//! bus nodes.

mod capacity;
mod chaos;
mod cli;
mod dashboard;
mod deploy;
mod frames;
mod generated;
mod interrupt;
mod layers;
mod ledger_faults;
mod nodes;
mod output;
mod run_embedded;
mod scenario_props;
mod shards;
mod shipped;
mod snapshots;
mod support;
