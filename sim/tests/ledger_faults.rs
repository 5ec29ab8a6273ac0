//! The ledger tells the truth about a misbehaving bus: drops are counted
//! lost, repeats duplicated, and deliveries to the wrong agent misrouted.
//! The bus's hidden test-only fault flags make it misbehave on purpose.

use std::sync::Arc;

use bus::config::BusConfig;
use bus::server::RunningServer;
use sim::drive::{self, Endpoints, RunOptions};
use sim::ledger::{ClassLedger, MessageClass};
use sim::scenario::Scenario;

fn pubsub_scenario() -> Scenario {
    Scenario::parse(
        r#"
name = "ledger-faults"
seed = 3
[[phases]]
name = "steady"
kind = "steady"
duration = "2s"
[[groups]]
name = "subscribers"
count = 20
behaviour = "subscriber"
workspaces = 2
topics = { count = 2 }
[[groups]]
name = "publishers"
count = 4
behaviour = "publisher"
workspaces = 2
rate = 50.0
topics = { count = 2 }
"#,
        "ledger-faults.toml",
    )
    .unwrap()
}

async fn pubsub_ledger(tweak: impl FnOnce(&mut BusConfig)) -> ClassLedger {
    let mut config = BusConfig::embedded_memory();
    tweak(&mut config);
    let server = RunningServer::start(config).await.unwrap();
    let endpoints = Endpoints {
        ws_urls: vec![server.ws_url()],
        source_addresses: Vec::new(),
    };
    let options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let result = drive::run(Arc::new(pubsub_scenario()), &endpoints, &options).await;
    server.stop().await.unwrap();
    result.metrics.ledger().class(MessageClass::Pubsub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_bus_loses_nothing() {
    let ledger = pubsub_ledger(|_| {}).await;
    assert!(ledger.expected > 1000, "{ledger:?}");
    assert_eq!(ledger.lost(), 0, "{ledger:?}");
    assert_eq!((ledger.duplicated, ledger.misrouted), (0, 0), "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_deliveries_are_counted_lost() {
    let ledger = pubsub_ledger(|c| c.fault_drop_ratio = 0.05).await;
    let ratio = ledger.loss_ratio();
    assert!((0.02..0.10).contains(&ratio), "about 5% lost: {ledger:?}");
    assert_eq!(ledger.duplicated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_deliveries_are_counted_duplicated() {
    let ledger = pubsub_ledger(|c| c.fault_duplicate_ratio = 0.05).await;
    assert_eq!(ledger.lost(), 0, "{ledger:?}");
    let ratio = ledger.duplicated as f64 / ledger.delivered as f64;
    assert!(
        (0.02..0.10).contains(&ratio),
        "about 5% duplicated: {ledger:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_the_wrong_agent_are_counted_misrouted() {
    let ledger = pubsub_ledger(|c| c.fault_misroute_ratio = 0.05).await;
    assert_eq!(ledger.lost(), 0, "{ledger:?}");
    assert!(ledger.misrouted > 0, "{ledger:?}");
}
