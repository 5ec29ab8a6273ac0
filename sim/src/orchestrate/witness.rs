//! The bus as a second witness: the node's own counts (from its
//! `/metrics`) and the subscriptions it holds (from `/ws/connections`),
//! read beside what the agents did, so a run can tell when its ledger and
//! the bus disagree (see [`crate::verdict::trust`]).
//!
//! Only for nodes the simulator started (embedded or spawned): an external
//! bus may serve other clients, whose traffic the agents cannot account
//! for.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use crate::agent::FLOOD_PREFIX;
use crate::bus_under_test::{HealthProbe, RunningTarget};
use crate::context::{RunContext, TrafficTotals};
use crate::plan::{AgentPlan, Plan, Subscriptions};
use crate::verdict::trust::NodeWitness;

/// How long a witness read waits for a node.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections audited per node (one `/ws/connections` page).
const AUDIT_LIMIT: usize = 1000;
/// How long after the last connect the audit waits for subscriptions to
/// settle, at most.
const AUDIT_SETTLE: Duration = Duration::from_millis(1500);
/// How long the end reading waits for a node's connections to close.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A node's own counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BusCounts {
    /// `bus_frames_in_total`, every op.
    pub frames_in: u64,
    /// `bus_deliveries_total`.
    pub deliveries: u64,
    /// `bus_connections`.
    pub connections: u64,
}

/// Reads the node's name from `/health`, then its counters from
/// `/metrics` (only the series labelled with its name: nodes embedded in
/// one process share one registry).
pub(super) async fn read_counts(probe: &HealthProbe, http_url: &str) -> Result<BusCounts, String> {
    let node = probe
        .check(http_url)
        .await
        .map_err(|e| format!("/health: {e}"))?
        .report
        .node;
    let url = format!("{}/metrics", http_url.trim_end_matches('/'));
    let (status, body) = probe
        .get(&url)
        .await
        .map_err(|e| format!("/metrics: {e}"))?;
    if status != 200 {
        return Err(format!("/metrics answered HTTP {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    parse_counts(&text, &node)
}

/// The node's counters in a Prometheus text exposition.
fn parse_counts(text: &str, node: &str) -> Result<BusCounts, String> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| format!("/metrics: {e}"))?;
    let mut counts = BusCounts::default();
    for sample in &scrape.samples {
        if sample.labels.get("node") != Some(node) {
            continue;
        }
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v.max(0.0) as u64,
            _ => continue,
        };
        match sample.metric.as_str() {
            "bus_frames_in_total" => counts.frames_in += value,
            "bus_deliveries_total" => counts.deliveries += value,
            "bus_connections" => counts.connections += value,
            _ => {}
        }
    }
    Ok(counts)
}

/// Whether the witness applies to `target` (nodes the simulator started).
pub(super) fn applies(target: &RunningTarget) -> bool {
    target.namespace.is_some()
}

/// Every node's counters before the run.
pub(super) async fn read_all(target: &RunningTarget) -> Result<Vec<BusCounts>, String> {
    let probe = HealthProbe::new(READ_TIMEOUT);
    let mut all = Vec::with_capacity(target.http_urls.len());
    for url in &target.http_urls {
        all.push(read_counts(&probe, url).await?);
    }
    Ok(all)
}

/// Every node's counters after the run, once its connections have closed
/// (its readers have counted every frame), or after [`CLOSE_WAIT`].
pub(super) async fn read_all_closed(
    target: &RunningTarget,
    before: &[BusCounts],
) -> Result<Vec<BusCounts>, String> {
    let probe = HealthProbe::new(READ_TIMEOUT);
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    let mut all = Vec::with_capacity(target.http_urls.len());
    for (url, start) in target.http_urls.iter().zip(before) {
        let mut counts = read_counts(&probe, url).await?;
        while counts.connections > start.connections && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            counts = read_counts(&probe, url).await?;
        }
        all.push(counts);
    }
    Ok(all)
}

/// One row per node: the bus's counts over the run beside the agents'.
pub(super) fn rows(
    labels: &[String],
    before: &[BusCounts],
    after: &[BusCounts],
    traffic: &[TrafficTotals],
    audits: &[Audit],
) -> Vec<NodeWitness> {
    labels
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let (b, a) = (
                before.get(i).copied().unwrap_or_default(),
                after.get(i).copied().unwrap_or_default(),
            );
            let t = traffic.get(i).copied().unwrap_or_default();
            let audit = audits.get(i).cloned().unwrap_or_default();
            NodeWitness {
                node: node.clone(),
                bus_frames_in: a.frames_in.saturating_sub(b.frames_in),
                agents_frames_sent: t.frames_sent,
                bus_deliveries: a.deliveries.saturating_sub(b.deliveries),
                agents_messages_received: t.messages_received,
                audited: audit.audited,
                audit_mismatches: audit.mismatches,
                first_mismatch: audit.first,
                restarted: false,
            }
        })
        .collect()
}

/// The subscriptions one node held for the agents, compared with the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Audit {
    /// Connections compared.
    pub audited: u64,
    /// Connections whose subscriptions differ from the plan.
    pub mismatches: u64,
    /// The first difference, described.
    pub first: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Listing {
    connections: Vec<Listed>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    agent: String,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
}

/// When to audit: once the most agents are connected (plus a moment for
/// their subscriptions to be confirmed), inside that stretch.
pub(super) fn audit_instant(plan: &Plan) -> Option<Duration> {
    let mut edges: Vec<(Duration, i64)> = Vec::new();
    for agent in &plan.agents {
        for s in &agent.stays {
            edges.push((s.connect_at, 1));
            edges.push((s.leave_at.unwrap_or(plan.run_length), -1));
        }
    }
    edges.sort();
    let (mut online, mut best, mut best_span) = (0i64, 0i64, None);
    for (i, (at, step)) in edges.iter().enumerate() {
        online += step;
        let until = edges.get(i + 1).map_or(plan.run_length, |e| e.0);
        let longer = best_span.is_none_or(|(a, b): (Duration, Duration)| until - *at > b - a);
        if online > best || (online == best && online > 0 && longer) {
            best = online;
            best_span = Some((*at, until));
        }
    }
    let (from, until) = best_span?;
    Some(from + AUDIT_SETTLE.min((until.saturating_sub(from)) / 2))
}

/// Audits every node at `at` (run offset): which subscriptions the bus
/// holds for each listed agent of this run whose subscriptions were
/// confirmed, against the plan.
pub(super) async fn audit(
    ctx: &RunContext,
    target: &RunningTarget,
    token: Option<&str>,
    at: Duration,
) -> Vec<Audit> {
    if !ctx.hold_until(ctx.clock.instant(at)).await {
        return Vec::new();
    }
    let probe = HealthProbe::new(READ_TIMEOUT);
    let by_name: HashMap<&str, &AgentPlan> = ctx
        .plan
        .agents
        .iter()
        .map(|a| (a.name.as_str(), a))
        .collect();
    let mut audits = Vec::new();
    for url in &target.http_urls {
        // Compared: agents subscribed before the listing and still after it.
        let settled: HashSet<u32> = ctx
            .plan
            .agents
            .iter()
            .map(|a| a.id)
            .filter(|id| ctx.is_subscribed(*id))
            .collect();
        let listing = format!(
            "{}/ws/connections?limit={AUDIT_LIMIT}",
            url.trim_end_matches('/')
        );
        let listed = match probe.get_with_token(&listing, token).await {
            Ok((200, body)) => serde_json::from_slice::<Listing>(&body).ok(),
            _ => None,
        };
        let mut audit = Audit::default();
        for c in listed.map(|l| l.connections).unwrap_or_default() {
            let Some(plan) = by_name.get(c.agent.as_str()) else {
                continue;
            };
            if !(settled.contains(&plan.id) && ctx.is_subscribed(plan.id)) {
                continue;
            }
            audit.audited += 1;
            if let Some(difference) = compare(&ctx.plan, plan, &c) {
                audit.mismatches += 1;
                audit.first.get_or_insert(difference);
            }
        }
        audits.push(audit);
    }
    audits
}

/// How the bus's subscriptions of one connection differ from its plan.
fn compare(plan: &Plan, agent: &AgentPlan, listed: &Listed) -> Option<String> {
    let on_bus: BTreeSet<&str> = listed
        .topics
        .iter()
        .map(String::as_str)
        .filter(|t| plan.topics.id(t).is_some())
        .collect();
    // An adversary's floods are its own doing, not the plan's.
    let bus_patterns: BTreeSet<&str> = listed
        .patterns
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with(FLOOD_PREFIX))
        .collect();
    let (topics, patterns): (BTreeSet<&str>, BTreeSet<&str>) = match &agent.subscriptions {
        Subscriptions::None => (BTreeSet::new(), BTreeSet::new()),
        Subscriptions::Topics(ids) => (
            ids.iter().map(|id| plan.topics.name(*id)).collect(),
            BTreeSet::new(),
        ),
        Subscriptions::Patterns(p) => {
            (BTreeSet::new(), p.iter().map(|p| p.glob.as_str()).collect())
        }
    };
    (on_bus != topics || bus_patterns != patterns).then(|| {
        format!(
            "{}: the bus holds topics {on_bus:?} and patterns {bus_patterns:?}, the ledger expects topics {topics:?} and patterns {patterns:?}",
            agent.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_for_one_node_only() {
        let text = "\
# TYPE bus_frames_in_total counter
bus_frames_in_total{node=\"a\",op=\"publish\"} 10
bus_frames_in_total{node=\"a\",op=\"ack\"} 5
bus_frames_in_total{node=\"b\",op=\"publish\"} 99
bus_deliveries_total{node=\"a\"} 42
bus_connections{node=\"a\"} 3
";
        let counts = parse_counts(text, "a").unwrap();
        assert_eq!(
            counts,
            BusCounts {
                frames_in: 15,
                deliveries: 42,
                connections: 3
            }
        );
        assert_eq!(parse_counts(text, "c").unwrap(), BusCounts::default());
    }

    #[test]
    fn an_agent_holding_other_topics_than_its_plan_is_a_mismatch() {
        let scenario = crate::scenario::Scenario::parse(
            r#"
name = "w"
[[phases]]
name = "s"
kind = "steady"
duration = "1s"
[[groups]]
name = "subs"
count = 2
behaviour = "subscriber"
topics = { count = 4, per_agent = 2 }
[[groups]]
name = "auditors"
count = 1
behaviour = "pattern_subscriber"
patterns = ["agent:topic-1*"]
"#,
            "w.toml",
        )
        .unwrap();
        let plan = crate::plan::build(&scenario, 1, &[], (0, 1));
        let sub = &plan.agents[0];
        let Subscriptions::Topics(ids) = &sub.subscriptions else {
            panic!("a subscriber");
        };
        let names: Vec<String> = ids
            .iter()
            .map(|i| plan.topics.name(*i).to_owned())
            .collect();
        let listed = |topics: Vec<String>, patterns: Vec<String>| Listed {
            agent: sub.name.clone(),
            // The bus also lists defaults the plan has no topic for.
            topics: topics
                .into_iter()
                .chain(["workspace:ws-0".to_owned()])
                .collect(),
            patterns,
        };
        assert_eq!(
            compare(&plan, sub, &listed(names.clone(), Vec::new())),
            None
        );
        let other = vec![names[0].clone(), "agent:topic-3".to_owned()];
        let found = compare(&plan, sub, &listed(other, Vec::new())).unwrap();
        assert!(found.starts_with("subs-0: the bus holds"), "{found}");
        let auditor = &plan.agents[2];
        let held = Listed {
            agent: auditor.name.clone(),
            topics: Vec::new(),
            patterns: vec!["agent:topic-1*".into()],
        };
        assert_eq!(compare(&plan, auditor, &held), None);
        assert!(
            compare(&plan, sub, &held).is_some(),
            "patterns it never asked for"
        );
    }
}
