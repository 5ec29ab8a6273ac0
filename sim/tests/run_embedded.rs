//! A small scenario end to end against an in-process bus.

use std::sync::Arc;

use bus::server::RunningServer;
use sim::drive::{self, Endpoints, RunOptions};
use sim::ledger::MessageClass;
use sim::scenario::Scenario;

pub(crate) fn smoke() -> Scenario {
    Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/ci/smoke.toml"
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_on_the_memory_bus_accounts_for_every_message() {
    let server = RunningServer::start(bus::config::BusConfig::embedded_memory())
        .await
        .unwrap();
    let endpoints = Endpoints {
        ws_urls: vec![server.ws_url()],
        source_addresses: Vec::new(),
    };
    let options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let result = drive::run(Arc::new(smoke()), &endpoints, &options).await;
    let ledger = result.metrics.ledger().clone();
    println!("{ledger:#?}");
    for op in result.metrics.operations() {
        println!("{op}: {:?}", result.metrics.summary(op));
    }
    assert_eq!(ledger.connections.connected, 50);
    for class in [
        MessageClass::Pubsub,
        MessageClass::Pattern,
        MessageClass::Broadcast,
        MessageClass::Direct,
    ] {
        let c = ledger.class(class);
        assert!(c.expected > 0, "{class}: nothing expected");
        assert_eq!(c.lost(), 0, "{class}: {c:?}");
        assert_eq!((c.duplicated, c.misrouted), (0, 0), "{class}: {c:?}");
    }
    assert!(ledger.queue.enqueued > 0);
    assert_eq!(
        ledger.queue.enqueued, ledger.queue.acked,
        "{:?}",
        ledger.queue
    );
    server.stop().await.unwrap();
}
