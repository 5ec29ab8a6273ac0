//! The validated plan of a run: every agent with its group, workspace, node,
//! source address, connect/leave times and subscriptions, and the table of
//! topics.
//!
//! **Who should receive what is decided here, once.** An agent's
//! [`Subscriptions`] are drawn when the plan is built; the agent writes its
//! subscribe frame from them and the ledger opens its windows from them,
//! so what the ledger expects an agent to receive is exactly what it
//! subscribed to (never a second draw of the same random choice).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

mod subscriptions;

pub use self::subscriptions::{PatternSubscription, Subscriptions, TopicTable};
use self::subscriptions::{patterns_of, topics_of};
use crate::scenario::{Behaviour, Scenario};

/// The topic the REST users (`rest_client` groups) publish to. Agents whose
/// patterns match it ignore it (it carries no measurement stamp), rather
/// than count it misrouted.
pub const REST_TOPIC: &str = "agent:sim-rest";

/// Resolution of the agent-count schedule.
const STEP: Duration = Duration::from_millis(10);

/// One planned stay of an agent on the bus: when it connects and when it
/// leaves (a broken connection is resumed within the same stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    /// When it connects, from the run's start.
    pub connect_at: Duration,
    /// `None`: stays until the run ends.
    pub leave_at: Option<Duration>,
}

/// One simulated agent.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    /// Unique over the run; carried in every message it sends.
    pub id: u32,
    /// Index of its group in the scenario.
    pub group: usize,
    /// Index within the group.
    pub index: u32,
    /// `<group>-<index>`: its agent id on the bus.
    pub name: String,
    /// Workspace number `n` of `ws-n`.
    pub workspace: u32,
    /// Which bus node it connects to.
    pub node: usize,
    /// Local address its sockets bind to; `None`: the operating system picks.
    pub source: Option<IpAddr>,
    /// When it is on the bus, in order (empty: never).
    pub stays: Vec<Stay>,
    /// Seed of its random choices, from the scenario's seed and its id.
    pub seed: u64,
    /// What it subscribes to on every connect (beyond its inbox, workspace
    /// and the global broadcast, which every agent gets).
    pub subscriptions: Subscriptions,
}

impl AgentPlan {
    /// Its workspace's name on the bus, `ws-<n>`.
    pub fn workspace_name(&self) -> String {
        workspace_name(self.workspace)
    }
}

/// The name on the bus of workspace number `n`: `ws-<n>`.
pub fn workspace_name(n: u32) -> String {
    format!("ws-{n}")
}

/// Everything the runner needs before it starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The agents this process runs (its shard's), in id order.
    pub agents: Vec<AgentPlan>,
    /// The topics of the publisher and subscriber groups, by id.
    pub topics: TopicTable,
    /// Topic ids of each group (empty for groups without topics).
    pub group_topics: Vec<Vec<u32>>,
    /// Agents of each (group, workspace), for direct chatters picking peers.
    pub members: HashMap<(usize, u32), Vec<u32>>,
    /// Id of the first agent of each group (agent `i` of group `g` has id
    /// `first_id[g] + i`).
    pub first_id: Vec<u32>,
    /// The scenario's total length (every phase).
    pub run_length: Duration,
}

/// Which agents of a `count`-strong group are connected at each step:
/// agent `i` is connected while `fraction * count > i`.
fn stays_of_group(scenario: &Scenario, count: u32) -> Vec<Vec<Stay>> {
    let mut stays: Vec<Vec<Stay>> = vec![Vec::new(); count as usize];
    let end = scenario.total_duration();
    let steps = (end.as_nanos() / STEP.as_nanos()) as u32;
    let mut active = 0u32;
    for step in 0..=steps {
        let t = STEP * step;
        let (fraction, _) = scenario.schedule_at(t);
        let target = ((fraction * f64::from(count)) + 1e-9)
            .floor()
            .clamp(0.0, f64::from(count)) as u32;
        while active < target {
            stays[active as usize].push(Stay {
                connect_at: t,
                leave_at: None,
            });
            active += 1;
        }
        while active > target {
            active -= 1;
            if let Some(s) = stays[active as usize].last_mut() {
                s.leave_at = Some(t);
            }
        }
    }
    stays
}

/// Builds the plan. `shard` = (index, count) keeps only the agents whose id
/// falls in that slice (`id % count == index`), for sharded runs.
pub fn build(scenario: &Scenario, nodes: usize, sources: &[IpAddr], shard: (u32, u32)) -> Plan {
    let mut topics = TopicTable::default();
    let mut group_topics = Vec::new();
    for group in &scenario.groups {
        let ids = match group.behaviour {
            Behaviour::Publisher | Behaviour::Subscriber => (0..group.topics.count)
                .map(|i| topics.intern(&group.topics.name(i)))
                .collect(),
            _ => Vec::new(),
        };
        group_topics.push(ids);
    }
    let group_patterns: Vec<Arc<[PatternSubscription]>> = scenario
        .groups
        .iter()
        .map(|group| patterns_of(group, &topics))
        .collect();
    let mut agents = Vec::new();
    let mut members: HashMap<(usize, u32), Vec<u32>> = HashMap::new();
    let mut id = 0u32;
    let mut first_id = Vec::with_capacity(scenario.groups.len());
    for (g, group) in scenario.groups.iter().enumerate() {
        first_id.push(id);
        for (index, stays) in stays_of_group(scenario, group.count)
            .into_iter()
            .enumerate()
        {
            let index = index as u32;
            let workspace = index % group.workspaces.max(1);
            members.entry((g, workspace)).or_default().push(id);
            // REST clients are goose users, not WebSocket agents.
            let websocket = group.behaviour != Behaviour::RestClient;
            if websocket && id % shard.1 == shard.0 {
                let seed = scenario.seed ^ (u64::from(id) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let subscriptions = match group.behaviour {
                    Behaviour::Subscriber => {
                        Subscriptions::Topics(topics_of(group, index, seed, &group_topics[g]))
                    }
                    Behaviour::PatternSubscriber | Behaviour::Adversary => {
                        Subscriptions::Patterns(group_patterns[g].clone())
                    }
                    _ => Subscriptions::None,
                };
                agents.push(AgentPlan {
                    id,
                    group: g,
                    index,
                    name: format!("{}-{index}", group.name),
                    workspace,
                    node: id as usize % nodes.max(1),
                    source: (!sources.is_empty()).then(|| sources[id as usize % sources.len()]),
                    stays,
                    seed,
                    subscriptions,
                });
            }
            id += 1;
        }
    }
    Plan {
        agents,
        topics,
        group_topics,
        members,
        first_id,
        run_length: scenario.total_duration(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(phases: &str) -> Scenario {
        let text = format!(
            r#"
name = "t"
{phases}
[[groups]]
name = "subs"
count = 10
behaviour = "subscriber"
workspaces = 2
[[groups]]
name = "pubs"
count = 2
behaviour = "publisher"
rate = 1.0
"#
        );
        Scenario::parse(&text, "t.toml").unwrap()
    }

    #[test]
    fn a_steady_run_connects_everyone_at_zero() {
        let s = scenario("[[phases]]\nname = \"s\"\nkind = \"steady\"\nduration = \"2s\"");
        let plan = build(&s, 2, &[], (0, 1));
        assert_eq!(plan.agents.len(), 12);
        for a in &plan.agents {
            assert_eq!(
                a.stays,
                vec![Stay {
                    connect_at: Duration::ZERO,
                    leave_at: None
                }]
            );
        }
        assert_eq!(plan.agents[3].workspace, 1);
        assert_eq!(plan.agents[3].node, 1);
        assert_eq!(plan.topics.len(), 10, "both groups share agent:topic-0..9");
        assert_eq!(plan.members[&(0, 0)].len(), 5);
    }

    #[test]
    fn ramps_spread_connects_and_leaves() {
        let s = scenario(
            "[[phases]]\nname = \"up\"\nkind = \"ramp\"\nduration = \"1s\"\n\
             [[phases]]\nname = \"down\"\nkind = \"ramp_down\"\nduration = \"1s\"",
        );
        let plan = build(&s, 1, &[], (0, 1));
        let subs: Vec<&AgentPlan> = plan.agents.iter().filter(|a| a.group == 0).collect();
        assert!(subs[0].stays[0].connect_at <= Duration::from_millis(110));
        assert!(subs[9].stays[0].connect_at >= Duration::from_millis(890));
        // The last to come is the first to go.
        assert!(subs[9].stays[0].leave_at.unwrap() < subs[0].stays[0].leave_at.unwrap());
    }

    #[test]
    fn shards_partition_the_agents() {
        let s = scenario("[[phases]]\nname = \"s\"\nkind = \"steady\"\nduration = \"1s\"");
        let all: Vec<u32> = (0..3)
            .flat_map(|i| build(&s, 1, &[], (i, 3)).agents.into_iter().map(|a| a.id))
            .collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..12).collect::<Vec<u32>>());
    }

    #[test]
    fn patterns_match_interned_topics() {
        let s = scenario("[[phases]]\nname = \"s\"\nkind = \"steady\"\nduration = \"1s\"");
        let plan = build(&s, 1, &[], (0, 1));
        assert_eq!(plan.topics.matching("agent:topic-1*").len(), 1);
        assert_eq!(plan.topics.matching("*").len(), 10);
    }

    #[test]
    fn zipf_subscribers_get_distinct_topics_the_hot_ones_most() {
        let s = Scenario::parse(
            r#"
name = "z"
[[phases]]
name = "s"
kind = "steady"
duration = "1s"
[[groups]]
name = "subs"
count = 2000
behaviour = "subscriber"
topics = { count = 20, distribution = "zipf", zipf_exponent = 1.2, per_agent = 3 }
"#,
            "z.toml",
        )
        .unwrap();
        let plan = build(&s, 1, &[], (0, 1));
        let mut hits = vec![0u32; 20];
        for a in &plan.agents {
            let Subscriptions::Topics(ids) = &a.subscriptions else {
                panic!("a subscriber without topics");
            };
            let mut distinct = ids.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{ids:?}");
            for id in ids {
                hits[*id as usize] += 1;
            }
        }
        assert!(hits[0] > hits[5] && hits[5] > hits[19], "{hits:?}");
        let again = build(&s, 1, &[], (0, 1));
        assert_eq!(
            plan.agents[7].subscriptions, again.agents[7].subscriptions,
            "the seed fixes the choice"
        );
    }
}
