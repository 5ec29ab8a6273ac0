use std::time::Duration;

use tokio::time::Instant;

use super::session::round_due;

#[test]
fn a_lingering_agent_sleeps_until_its_lingering_ends_not_its_past_leave() {
    let now = Instant::now();
    let left = now - Duration::from_millis(10);
    let linger_end = now + Duration::from_millis(500);
    let idle = now + Duration::from_secs(60);
    assert_eq!(round_due(idle, Some(left), Some(linger_end)), linger_end);
    // Its own earlier timers (answers still owed) still count.
    let answer = now + Duration::from_millis(5);
    assert_eq!(round_due(answer, Some(left), Some(linger_end)), answer);
}

#[test]
fn before_leaving_the_leave_instant_is_a_timer() {
    let now = Instant::now();
    let leave = now + Duration::from_secs(1);
    assert_eq!(
        round_due(now + Duration::from_secs(60), Some(leave), None),
        leave
    );
    let send = now + Duration::from_millis(20);
    assert_eq!(round_due(send, Some(leave), None), send);
}

/// The subscribe frame an agent sends (decoded by the bus's own decoder)
/// and the windows the ledger opens for it name exactly the same topics,
/// for every topic distribution and `per_agent` (up to every topic), and
/// the same patterns for pattern subscribers.
#[test]
fn the_ledger_expects_exactly_what_each_agent_subscribed_to() {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use bus::protocol::ClientFrame;

    use super::Agent;
    use crate::context::{ContextSettings, RunClock, RunContext};
    use crate::ledger::ChannelKey;
    use crate::scenario::Scenario;

    for distribution in ["uniform", "zipf"] {
        for per_agent in [1, 2, 3, 6, 7] {
            let text = format!(
                r#"
name = "subs"
[[phases]]
name = "s"
kind = "steady"
duration = "1s"
[[groups]]
name = "subscribers"
count = 30
behaviour = "subscriber"
workspaces = 3
topics = {{ count = 7, distribution = "{distribution}", per_agent = {per_agent} }}
[[groups]]
name = "auditors"
count = 3
behaviour = "pattern_subscriber"
patterns = ["agent:topic-1*", "agent:topic-?"]
[[groups]]
name = "publishers"
count = 2
behaviour = "publisher"
rate = 1.0
topics = {{ count = 7, distribution = "{distribution}" }}
"#
            );
            let scenario = Arc::new(Scenario::parse(&text, "subs.toml").unwrap());
            let plan = Arc::new(crate::plan::build(&scenario, 1, &[], (0, 1)));
            let settings = ContextSettings {
                ws_urls: vec!["ws://127.0.0.1:9/ws/connect".into()],
                ..ContextSettings::default()
            };
            let ctx = RunContext::new(scenario.clone(), plan, RunClock::new(), settings);
            let case = format!("{distribution}, per_agent {per_agent}");
            for plan in &ctx.plan.agents {
                let group = &scenario.groups[plan.group];
                let mut agent = Agent::new(plan, group, &ctx);
                let Some(frame) = agent.subscribe_frame() else {
                    continue;
                };
                agent.open_subscription_windows(&Default::default());
                let windowed: BTreeSet<String> = agent
                    .listening
                    .windows
                    .iter()
                    .filter(|w| !w.pattern)
                    .flat_map(|w| w.channels.iter())
                    .map(|c| match c {
                        ChannelKey::Topic { topic, .. } => ctx.plan.topics.name(*topic).to_owned(),
                        other => panic!("{case}: a topic window on {other}"),
                    })
                    .collect();
                match bus::protocol::decode(&frame).unwrap() {
                    ClientFrame::Subscribe { topics, .. } => {
                        let subscribed: BTreeSet<String> = topics.into_iter().collect();
                        assert_eq!(subscribed.len(), per_agent.min(7), "{case}: {frame}");
                        assert_eq!(subscribed, windowed, "{case}: agent {}", plan.name);
                    }
                    ClientFrame::Psubscribe { patterns, .. } => {
                        let globs: BTreeSet<&String> = agent.listening.patterns.keys().collect();
                        assert_eq!(globs, patterns.iter().collect(), "{case}");
                        for glob in &patterns {
                            let w = &agent.listening.windows[agent.listening.patterns[glob]];
                            let topics: Vec<u32> = w
                                .channels
                                .iter()
                                .filter_map(|c| match c {
                                    ChannelKey::Topic { topic, .. } => Some(*topic),
                                    _ => None,
                                })
                                .collect();
                            assert_eq!(topics, ctx.plan.topics.matching(glob), "{case}: {glob}");
                        }
                    }
                    other => panic!("{case}: not a subscription: {other:?}"),
                }
            }
        }
    }
}
