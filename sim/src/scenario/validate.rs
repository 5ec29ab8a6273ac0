//! The rules of a valid scenario that serde cannot express: ranges, per-behaviour requirements, cross references.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::FieldPath;
use super::group::{Behaviour, Group, PayloadBytes};
use super::schema::{
    BrokerKind, Fault, FaultKind, Phase, Scenario, Target, TargetMode, Thresholds,
};

/// A broken rule: which field and why.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Issue {
    pub path: FieldPath,
    pub message: String,
}

/// The broken rules found so far. Checks record each one here and go on,
/// so that [`validate`] reports every broken rule of a file at once.
#[derive(Debug, Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn fail(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push(Issue {
            path,
            message: message.into(),
        });
    }

    /// Fails unless `value` is a finite number in `lo..=hi`.
    fn in_range(&mut self, path: FieldPath, value: f64, lo: f64, hi: f64) {
        if !(value.is_finite() && (lo..=hi).contains(&value)) {
            self.fail(path, format!("must be between {lo} and {hi}, got {value}"));
        }
    }

    /// Fails unless `value` is a finite number >= 0.
    fn non_negative(&mut self, path: FieldPath, value: f64) {
        if !(value.is_finite() && value >= 0.0) {
            self.fail(path, format!("must be >= 0, got {value}"));
        }
    }

    /// Percentiles live in (0, 100]: p0 is no latency figure, p100 is the
    /// max.
    fn percentile(&mut self, path: FieldPath, p: f64) {
        if !(p.is_finite() && p > 0.0 && p <= 100.0) {
            self.fail(path, format!("must be in (0, 100], got {p}"));
        }
    }
}

/// Checks every rule and returns every broken one.
pub(super) fn validate(scenario: &Scenario) -> Vec<Issue> {
    let mut issues = Issues::default();
    check_all(scenario, &mut issues);
    issues.0
}

fn check_all(scenario: &Scenario, issues: &mut Issues) {
    let root = FieldPath::root();
    if scenario.name.trim().is_empty() {
        issues.fail(root.key("name"), "must not be empty");
    }
    check_target(&scenario.target, &root.key("target"), issues);
    check_phases(&scenario.phases, &root.key("phases"), issues);
    check_groups(&scenario.groups, &root.key("groups"), issues);
    check_thresholds(&scenario.thresholds, &root.key("thresholds"), issues);
    check_faults(scenario, &root.key("faults"), issues);
}

fn check_target(target: &Target, path: &FieldPath, issues: &mut Issues) {
    if target.nodes == 0 {
        issues.fail(path.key("nodes"), "must be at least 1");
    }
    if target.mode == TargetMode::Spawn && target.broker == BrokerKind::Memory && target.nodes > 1 {
        issues.fail(
            path.key("nodes"),
            "several nodes need a shared broker: set broker = \"redis\" or nodes = 1",
        );
    }
    if let Some(url) = &target.redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        issues.fail(
            path.key("redis_url"),
            format!("must start with redis:// or rediss://, got {url:?}"),
        );
    }
    if target.mode == TargetMode::External && target.urls.is_empty() {
        issues.fail(
            path.key("urls"),
            "external mode needs at least one bus URL (ws://host:port)",
        );
    }
    for (i, url) in target.urls.iter().enumerate() {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            issues.fail(
                path.key("urls").index(i),
                format!("must start with ws:// or wss://, got {url:?}"),
            );
        }
    }
    if !target.bus_args.is_empty() {
        use clap::Parser;
        let args = std::iter::once("bus").chain(target.bus_args.iter().map(String::as_str));
        if let Err(e) = bus::config::BusConfig::try_parse_from(args) {
            let first = e.to_string().lines().next().unwrap_or_default().to_owned();
            issues.fail(
                path.key("bus_args"),
                format!("not valid bus flags: {first}"),
            );
        }
    }
}

/// The longest run the phases may add up to. Run offsets become instants
/// and 10 ms planning steps, so an unbounded total would overflow (a sum of
/// huge durations used to panic here).
const MAX_RUN_LENGTH: Duration = Duration::from_secs(30 * 24 * 3600);

fn check_phases(phases: &[Phase], path: &FieldPath, issues: &mut Issues) {
    if phases.is_empty() {
        issues.fail(path.clone(), "at least one phase is needed");
    }
    let mut total = Duration::ZERO;
    for (i, phase) in phases.iter().enumerate() {
        let at = path.index(i);
        if phase.name.trim().is_empty() {
            issues.fail(at.key("name"), "must not be empty");
        }
        if phase.duration.get().is_zero() {
            issues.fail(at.key("duration"), "must be longer than 0s");
        }
        match total.checked_add(phase.duration.get()) {
            Some(sum) if sum <= MAX_RUN_LENGTH => total = sum,
            _ => issues.fail(
                at.key("duration"),
                format!(
                    "the phases up to this one last longer than {} (the longest run)",
                    humantime::format_duration(MAX_RUN_LENGTH)
                ),
            ),
        }
        if let Some(agents) = phase.agents {
            issues.in_range(at.key("agents"), agents, 0.0, 1.0);
        }
        issues.non_negative(at.key("rate"), phase.rate);
    }
}

fn check_groups(groups: &[Group], path: &FieldPath, issues: &mut Issues) {
    if groups.is_empty() {
        issues.fail(path.clone(), "at least one agent group is needed");
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        let at = path.index(i);
        if group.name.trim().is_empty() {
            issues.fail(at.key("name"), "must not be empty");
        }
        if let Some(first) = seen.insert(&group.name, i) {
            issues.fail(
                at.key("name"),
                format!(
                    "duplicate group name {:?} (also groups[{first}].name)",
                    group.name
                ),
            );
        }
        check_group(group, &at, issues);
        check_peers(group, groups, &at, issues);
    }
}

fn check_group(group: &Group, at: &FieldPath, issues: &mut Issues) {
    if group.count == 0 {
        issues.fail(at.key("count"), "must be at least 1 agent, got 0");
    }
    if group.workspaces == 0 {
        issues.fail(at.key("workspaces"), "must be at least 1");
    }
    issues.non_negative(at.key("rate"), group.rate);
    if group.behaviour.requires_rate() && group.rate <= 0.0 {
        issues.fail(
            at.key("rate"),
            format!(
                "a {} sends on its own, so rate (messages per second per agent) must be > 0",
                group.behaviour
            ),
        );
    }
    check_topics(group, at, issues);
    if let PayloadBytes::Range { min, max } = group.payload_bytes
        && min > max
    {
        issues.fail(
            at.key("payload_bytes"),
            format!("min ({min}) must not exceed max ({max})"),
        );
    }
    match group.behaviour {
        Behaviour::PatternSubscriber => check_patterns(group, at, issues),
        Behaviour::QueueProducer => check_producer(group, at, issues),
        Behaviour::QueueWorker => check_worker(group, at, issues),
        _ => {}
    }
}

fn check_topics(group: &Group, at: &FieldPath, issues: &mut Issues) {
    let topics = &group.topics;
    let path = at.key("topics");
    if topics.count == 0 {
        issues.fail(path.key("count"), "must be at least 1");
    }
    if topics.per_agent == 0 || topics.per_agent > topics.count {
        issues.fail(
            path.key("per_agent"),
            format!(
                "must be between 1 and topics.count ({}), got {}",
                topics.count, topics.per_agent
            ),
        );
    }
    if !(topics.zipf_exponent.is_finite() && topics.zipf_exponent > 0.0) {
        issues.fail(
            path.key("zipf_exponent"),
            format!("must be > 0, got {}", topics.zipf_exponent),
        );
    }
}

fn check_patterns(group: &Group, at: &FieldPath, issues: &mut Issues) {
    if group.patterns.is_empty() {
        issues.fail(
            at.key("patterns"),
            "a pattern_subscriber needs at least one glob pattern, e.g. [\"agent:topic-*\"]",
        );
    }
    for (i, pattern) in group.patterns.iter().enumerate() {
        if pattern.trim().is_empty() {
            issues.fail(at.key("patterns").index(i), "must not be empty");
        }
    }
}

fn check_producer(group: &Group, at: &FieldPath, issues: &mut Issues) {
    if group.queue.trim().is_empty() {
        issues.fail(at.key("queue"), "must not be empty");
    }
    if group.priorities.is_empty() {
        issues.fail(
            at.key("priorities"),
            "a queue_producer needs at least one priority",
        );
    }
}

fn check_worker(group: &Group, at: &FieldPath, issues: &mut Issues) {
    if group.queue.trim().is_empty() {
        issues.fail(at.key("queue"), "must not be empty");
    }
    if group.batch == 0 {
        issues.fail(at.key("batch"), "must be at least 1");
    }
    let ratios = [
        ("ack_ratio", group.ack_ratio),
        ("reject_ratio", group.reject_ratio),
        ("crash_ratio", group.crash_ratio),
    ];
    for (name, value) in ratios {
        issues.in_range(at.key(name), value, 0.0, 1.0);
    }
    let sum: f64 = ratios.iter().map(|(_, v)| v).sum();
    if (sum - 1.0).abs() > 1e-9 {
        issues.fail(
            at.key("ack_ratio"),
            format!(
                "ack_ratio + reject_ratio + crash_ratio must sum to 1, got {} + {} + {} = {sum}",
                group.ack_ratio, group.reject_ratio, group.crash_ratio
            ),
        );
    }
}

fn check_peers(group: &Group, groups: &[Group], at: &FieldPath, issues: &mut Issues) {
    let Some(peers) = &group.peers else {
        return;
    };
    if group.behaviour != Behaviour::DirectChatter {
        return;
    }
    match groups.iter().find(|g| &g.name == peers) {
        None => issues.fail(at.key("peers"), format!("unknown group {peers:?}")),
        Some(peer) if peer.behaviour != Behaviour::DirectChatter => issues.fail(
            at.key("peers"),
            format!(
                "group {peers:?} is a {}, but requests need direct_chatter peers to answer them",
                peer.behaviour
            ),
        ),
        Some(_) => {}
    }
}

fn check_thresholds(thresholds: &Thresholds, path: &FieldPath, issues: &mut Issues) {
    issues.percentile(path.key("percentile"), thresholds.percentile);
    issues.in_range(path.key("max_loss"), thresholds.max_loss, 0.0, 1.0);
    if thresholds.warning > thresholds.critical {
        issues.fail(
            path.key("warning"),
            format!(
                "warning ({}) must not exceed critical ({})",
                thresholds.warning, thresholds.critical
            ),
        );
    }
    for (op, over) in &thresholds.operations {
        let at = path.key("operations").key(op.as_str());
        let resolved = thresholds.for_operation(*op);
        if let Some(p) = over.percentile {
            issues.percentile(at.key("percentile"), p);
        }
        if let Some(loss) = over.max_loss {
            issues.in_range(at.key("max_loss"), loss, 0.0, 1.0);
        }
        if resolved.warning > resolved.critical {
            let field = if over.warning.is_some() {
                "warning"
            } else {
                "critical"
            };
            issues.fail(
                at.key(field),
                format!(
                    "warning ({}) must not exceed critical ({}) for {op}",
                    humantime::format_duration(resolved.warning),
                    humantime::format_duration(resolved.critical)
                ),
            );
        }
    }
}

fn check_faults(scenario: &Scenario, path: &FieldPath, issues: &mut Issues) {
    // Phases too long to add up are their own broken rule (check_phases).
    let Some(total) = scenario
        .phases
        .iter()
        .try_fold(Duration::ZERO, |sum, p| sum.checked_add(p.duration.get()))
    else {
        return;
    };
    for (i, fault) in scenario.faults.iter().enumerate() {
        let at = path.index(i);
        check_fault(fault, scenario, &at, total, issues);
    }
}

fn check_fault(
    fault: &Fault,
    scenario: &Scenario,
    at: &FieldPath,
    total: Duration,
    issues: &mut Issues,
) {
    if fault.at.get() >= total {
        issues.fail(
            at.key("at"),
            format!(
                "must be before the end of the run ({}), got {}",
                humantime::format_duration(total),
                fault.at
            ),
        );
    }
    if fault.count == 0 {
        issues.fail(at.key("count"), "must be at least 1");
    }
    if let Some(group) = &fault.group
        && !scenario.groups.iter().any(|g| &g.name == group)
    {
        issues.fail(at.key("group"), format!("unknown group {group:?}"));
    }
    let target = &scenario.target;
    match fault.kind {
        FaultKind::RedisRestart | FaultKind::RedisPause
            if target.broker != BrokerKind::Redis
                || target.redis_url.is_some()
                || target.mode == TargetMode::External =>
        {
            issues.fail(
                at.key("kind"),
                "Redis faults need a Redis the simulator starts: broker = \"redis\", no redis_url, not external",
            );
        }
        FaultKind::NodeKill if target.mode != TargetMode::Spawn => {
            issues.fail(at.key("kind"), "node_kill needs target.mode = \"spawn\"");
        }
        FaultKind::NodeKill if fault.count > target.nodes => {
            issues.fail(
                at.key("count"),
                format!("only {} nodes to kill", target.nodes),
            );
        }
        _ => {}
    }
}
