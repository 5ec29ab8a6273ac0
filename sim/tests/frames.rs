//! Every frame the simulator's agents write decodes with the bus's own
//! decoder (`bus::protocol::decode`, strict: unknown fields are refused),
//! for agents of every behaviour: the agents hand-write their frames for
//! speed, and this is what keeps them in step with the protocol.

use std::collections::BTreeSet;
use std::sync::Arc;

use bus::protocol::{ClientFrame, decode};
use bus::server::RunningServer;
use sim::context::FrameLog;
use sim::drive::{self, Endpoints, RunOptions};
use sim::scenario::Scenario;

/// Every behaviour that writes frames, each in its variants: topics and
/// patterns, direct requests over pub/sub and over inboxes (and their
/// answers), workspace and global broadcasts, enqueues, dequeues, single
/// and batched acks (jobs claimed together with no processing time are
/// acked together), rejects, and an adversary's attempts.
const EVERY_BEHAVIOUR: &str = r#"
name = "every-frame"
seed = 5

[[phases]]
name = "connect"
kind = "ramp"
duration = "1s"
rate = 0.0

[[phases]]
name = "steady"
kind = "steady"
duration = "3s"

[[groups]]
name = "subscribers"
count = 3
behaviour = "subscriber"
topics = { count = 3, per_agent = 2 }

[[groups]]
name = "watchers"
count = 2
behaviour = "pattern_subscriber"
patterns = ["agent:topic-*"]

[[groups]]
name = "publishers"
count = 2
behaviour = "publisher"
rate = 10.0
topics = { count = 3 }

[[groups]]
name = "chatters"
count = 3
behaviour = "direct_chatter"
rate = 3.0

[[groups]]
name = "inboxers"
count = 3
behaviour = "direct_chatter"
rate = 3.0
delivery = "queue"

[[groups]]
name = "announcer"
count = 1
behaviour = "broadcaster"
rate = 2.0

[[groups]]
name = "herald"
count = 1
behaviour = "broadcaster"
rate = 2.0
scope = "global"

[[groups]]
name = "producers"
count = 2
behaviour = "queue_producer"
rate = 50.0
priorities = [0, 5, 9]

[[groups]]
name = "workers"
count = 1
behaviour = "queue_worker"
batch = 10
ack_ratio = 0.8
reject_ratio = 0.2

[[groups]]
name = "intruder"
count = 1
behaviour = "adversary"
rate = 5.0
"#;

/// What a frame is, finer than its op: the variants the scenario must show.
fn label(frame: &ClientFrame) -> String {
    match frame {
        ClientFrame::Send { kind, mode, .. } => format!("send {kind:?} {mode:?}"),
        ClientFrame::Broadcast { scope, .. } => format!("broadcast {scope:?}"),
        ClientFrame::Ack { message_ids, .. } if !message_ids.is_empty() => "ack batch".into(),
        other => other.op().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_agents_write_decodes_with_the_bus_decoder() {
    let _heavy = crate::support::HEAVY.lock().await;
    let scenario = Scenario::parse(EVERY_BEHAVIOUR, "every-frame.toml").unwrap();
    let server = RunningServer::start(bus::config::BusConfig::embedded_memory())
        .await
        .unwrap();
    let endpoints = Endpoints {
        ws_urls: vec![server.ws_url()],
        source_addresses: Vec::new(),
    };
    let log = Arc::new(FrameLog::new(200_000, 64 << 20));
    let options = RunOptions {
        quiet: true,
        frame_log: Some(log.clone()),
        ..RunOptions::default()
    };
    let result = drive::run(Arc::new(scenario), &endpoints, &options).await;
    server.stop().await.unwrap();
    let (frames, dropped) = log.take();
    assert_eq!(dropped, 0, "the log kept every frame");
    let written: u64 = result.node_traffic.iter().map(|n| n.frames_sent).sum();
    assert_eq!(
        frames.len() as u64,
        written,
        "the log saw every frame written"
    );

    let mut labels = BTreeSet::new();
    let mut refused = Vec::new();
    for frame in &frames {
        match decode(frame) {
            Ok(decoded) => {
                labels.insert(label(&decoded));
            }
            Err(e) => refused.push(format!("{frame}\n  -> {e:?}")),
        }
    }
    assert!(
        refused.is_empty(),
        "{} of {} frames do not decode:\n{}",
        refused.len(),
        frames.len(),
        refused
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let wanted = [
        "subscribe",
        "psubscribe",
        "publish",
        "send Request Pubsub",
        "send Request Queue",
        "send Response Pubsub",
        "broadcast Workspace",
        "broadcast Global",
        "enqueue",
        "dequeue",
        "ack",
        "ack batch",
        "reject",
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !labels.contains(*w))
        .collect();
    assert!(
        missing.is_empty(),
        "no frame of {missing:?} was written (seen: {labels:?})"
    );
}
