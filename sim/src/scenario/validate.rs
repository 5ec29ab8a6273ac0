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

/// What a check returns. Checks never stop at a broken rule: [`fail`]
/// records it and lets the check go on, so that [`validate`] reports every
/// broken rule of a file at once. (The `Result` stays so that a check can
/// still return early with `?` where going on would make no sense.)
type Check = Result<(), Issue>;

thread_local! {
    /// The issues of the [`validate`] running on this thread.
    static ISSUES: std::cell::RefCell<Vec<Issue>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn fail(path: FieldPath, message: impl Into<String>) -> Check {
    let issue = Issue {
        path,
        message: message.into(),
    };
    ISSUES.with(|issues| issues.borrow_mut().push(issue));
    Ok(())
}

/// Fails unless `value` is a finite number in `lo..=hi`.
fn in_range(path: FieldPath, value: f64, lo: f64, hi: f64) -> Check {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        fail(path, format!("must be between {lo} and {hi}, got {value}"))
    }
}

/// Fails unless `value` is a finite number >= 0.
fn non_negative(path: FieldPath, value: f64) -> Check {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        fail(path, format!("must be >= 0, got {value}"))
    }
}

/// Checks every rule and returns every broken one.
pub(super) fn validate(scenario: &Scenario) -> Vec<Issue> {
    ISSUES.with(|issues| issues.borrow_mut().clear());
    let outcome = check_all(scenario);
    let mut issues = ISSUES.with(|issues| std::mem::take(&mut *issues.borrow_mut()));
    if let Err(issue) = outcome {
        issues.push(issue);
    }
    issues
}

fn check_all(scenario: &Scenario) -> Check {
    let root = FieldPath::root();
    if scenario.name.trim().is_empty() {
        fail(root.key("name"), "must not be empty")?;
    }
    check_target(&scenario.target, &root.key("target"))?;
    check_phases(&scenario.phases, &root.key("phases"))?;
    check_groups(&scenario.groups, &root.key("groups"))?;
    check_thresholds(&scenario.thresholds, &root.key("thresholds"))?;
    check_faults(scenario, &root.key("faults"))
}

fn check_target(target: &Target, path: &FieldPath) -> Check {
    if target.nodes == 0 {
        fail(path.key("nodes"), "must be at least 1")?;
    }
    if target.mode == TargetMode::Spawn && target.broker == BrokerKind::Memory && target.nodes > 1 {
        fail(
            path.key("nodes"),
            "several nodes need a shared broker: set broker = \"redis\" or nodes = 1",
        )?;
    }
    if let Some(url) = &target.redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        fail(
            path.key("redis_url"),
            format!("must start with redis:// or rediss://, got {url:?}"),
        )?;
    }
    if target.mode == TargetMode::External && target.urls.is_empty() {
        fail(
            path.key("urls"),
            "external mode needs at least one bus URL (ws://host:port)",
        )?;
    }
    for (i, url) in target.urls.iter().enumerate() {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            fail(
                path.key("urls").index(i),
                format!("must start with ws:// or wss://, got {url:?}"),
            )?;
        }
    }
    if !target.bus_args.is_empty() {
        use clap::Parser;
        let args = std::iter::once("bus").chain(target.bus_args.iter().map(String::as_str));
        if let Err(e) = bus::config::BusConfig::try_parse_from(args) {
            let first = e.to_string().lines().next().unwrap_or_default().to_owned();
            fail(
                path.key("bus_args"),
                format!("not valid bus flags: {first}"),
            )?;
        }
    }
    Ok(())
}

/// The longest run the phases may add up to. Run offsets become instants
/// and 10 ms planning steps, so an unbounded total would overflow (a sum of
/// huge durations used to panic here).
const MAX_RUN_LENGTH: Duration = Duration::from_secs(30 * 24 * 3600);

fn check_phases(phases: &[Phase], path: &FieldPath) -> Check {
    if phases.is_empty() {
        fail(path.clone(), "at least one phase is needed")?;
    }
    let mut total = Duration::ZERO;
    for (i, phase) in phases.iter().enumerate() {
        let at = path.index(i);
        if phase.name.trim().is_empty() {
            fail(at.key("name"), "must not be empty")?;
        }
        if phase.duration.get().is_zero() {
            fail(at.key("duration"), "must be longer than 0s")?;
        }
        match total.checked_add(phase.duration.get()) {
            Some(sum) if sum <= MAX_RUN_LENGTH => total = sum,
            _ => fail(
                at.key("duration"),
                format!(
                    "the phases up to this one last longer than {} (the longest run)",
                    humantime::format_duration(MAX_RUN_LENGTH)
                ),
            )?,
        }
        if let Some(agents) = phase.agents {
            in_range(at.key("agents"), agents, 0.0, 1.0)?;
        }
        non_negative(at.key("rate"), phase.rate)?;
    }
    Ok(())
}

fn check_groups(groups: &[Group], path: &FieldPath) -> Check {
    if groups.is_empty() {
        fail(path.clone(), "at least one agent group is needed")?;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        let at = path.index(i);
        if group.name.trim().is_empty() {
            fail(at.key("name"), "must not be empty")?;
        }
        if let Some(first) = seen.insert(&group.name, i) {
            fail(
                at.key("name"),
                format!(
                    "duplicate group name {:?} (also groups[{first}].name)",
                    group.name
                ),
            )?;
        }
        check_group(group, &at)?;
        check_peers(group, groups, &at)?;
    }
    Ok(())
}

fn check_group(group: &Group, at: &FieldPath) -> Check {
    if group.count == 0 {
        fail(at.key("count"), "must be at least 1 agent, got 0")?;
    }
    if group.workspaces == 0 {
        fail(at.key("workspaces"), "must be at least 1")?;
    }
    non_negative(at.key("rate"), group.rate)?;
    if group.behaviour.requires_rate() && group.rate <= 0.0 {
        fail(
            at.key("rate"),
            format!(
                "a {} sends on its own, so rate (messages per second per agent) must be > 0",
                group.behaviour
            ),
        )?;
    }
    check_topics(group, at)?;
    if let PayloadBytes::Range { min, max } = group.payload_bytes
        && min > max
    {
        fail(
            at.key("payload_bytes"),
            format!("min ({min}) must not exceed max ({max})"),
        )?;
    }
    match group.behaviour {
        Behaviour::PatternSubscriber => check_patterns(group, at),
        Behaviour::QueueProducer => check_producer(group, at),
        Behaviour::QueueWorker => check_worker(group, at),
        _ => Ok(()),
    }
}

fn check_topics(group: &Group, at: &FieldPath) -> Check {
    let topics = &group.topics;
    let path = at.key("topics");
    if topics.count == 0 {
        fail(path.key("count"), "must be at least 1")?;
    }
    if topics.per_agent == 0 || topics.per_agent > topics.count {
        fail(
            path.key("per_agent"),
            format!(
                "must be between 1 and topics.count ({}), got {}",
                topics.count, topics.per_agent
            ),
        )?;
    }
    if !(topics.zipf_exponent.is_finite() && topics.zipf_exponent > 0.0) {
        fail(
            path.key("zipf_exponent"),
            format!("must be > 0, got {}", topics.zipf_exponent),
        )?;
    }
    Ok(())
}

fn check_patterns(group: &Group, at: &FieldPath) -> Check {
    if group.patterns.is_empty() {
        fail(
            at.key("patterns"),
            "a pattern_subscriber needs at least one glob pattern, e.g. [\"agent:topic-*\"]",
        )?;
    }
    for (i, pattern) in group.patterns.iter().enumerate() {
        if pattern.trim().is_empty() {
            fail(at.key("patterns").index(i), "must not be empty")?;
        }
    }
    Ok(())
}

fn check_producer(group: &Group, at: &FieldPath) -> Check {
    if group.queue.trim().is_empty() {
        fail(at.key("queue"), "must not be empty")?;
    }
    if group.priorities.is_empty() {
        fail(
            at.key("priorities"),
            "a queue_producer needs at least one priority",
        )?;
    }
    Ok(())
}

fn check_worker(group: &Group, at: &FieldPath) -> Check {
    if group.queue.trim().is_empty() {
        fail(at.key("queue"), "must not be empty")?;
    }
    if group.batch == 0 {
        fail(at.key("batch"), "must be at least 1")?;
    }
    let ratios = [
        ("ack_ratio", group.ack_ratio),
        ("reject_ratio", group.reject_ratio),
        ("crash_ratio", group.crash_ratio),
    ];
    for (name, value) in ratios {
        in_range(at.key(name), value, 0.0, 1.0)?;
    }
    let sum: f64 = ratios.iter().map(|(_, v)| v).sum();
    if (sum - 1.0).abs() > 1e-9 {
        fail(
            at.key("ack_ratio"),
            format!(
                "ack_ratio + reject_ratio + crash_ratio must sum to 1, got {} + {} + {} = {sum}",
                group.ack_ratio, group.reject_ratio, group.crash_ratio
            ),
        )?;
    }
    Ok(())
}

fn check_peers(group: &Group, groups: &[Group], at: &FieldPath) -> Check {
    let Some(peers) = &group.peers else {
        return Ok(());
    };
    if group.behaviour != Behaviour::DirectChatter {
        return Ok(());
    }
    match groups.iter().find(|g| &g.name == peers) {
        None => fail(at.key("peers"), format!("unknown group {peers:?}")),
        Some(peer) if peer.behaviour != Behaviour::DirectChatter => fail(
            at.key("peers"),
            format!(
                "group {peers:?} is a {}, but requests need direct_chatter peers to answer them",
                peer.behaviour
            ),
        ),
        Some(_) => Ok(()),
    }
}

fn check_thresholds(thresholds: &Thresholds, path: &FieldPath) -> Check {
    check_percentile(path.key("percentile"), thresholds.percentile)?;
    in_range(path.key("max_loss"), thresholds.max_loss, 0.0, 1.0)?;
    if thresholds.warning > thresholds.critical {
        fail(
            path.key("warning"),
            format!(
                "warning ({}) must not exceed critical ({})",
                thresholds.warning, thresholds.critical
            ),
        )?;
    }
    for (op, over) in &thresholds.operations {
        let at = path.key("operations").key(op.as_str());
        let resolved = thresholds.for_operation(*op);
        if let Some(p) = over.percentile {
            check_percentile(at.key("percentile"), p)?;
        }
        if let Some(loss) = over.max_loss {
            in_range(at.key("max_loss"), loss, 0.0, 1.0)?;
        }
        if resolved.warning > resolved.critical {
            let field = if over.warning.is_some() {
                "warning"
            } else {
                "critical"
            };
            fail(
                at.key(field),
                format!(
                    "warning ({}) must not exceed critical ({}) for {op}",
                    humantime::format_duration(resolved.warning),
                    humantime::format_duration(resolved.critical)
                ),
            )?;
        }
    }
    Ok(())
}

/// Percentiles live in (0, 100]: p0 is no latency figure, p100 is the max.
fn check_percentile(path: FieldPath, p: f64) -> Check {
    if p.is_finite() && p > 0.0 && p <= 100.0 {
        Ok(())
    } else {
        fail(path, format!("must be in (0, 100], got {p}"))
    }
}

fn check_faults(scenario: &Scenario, path: &FieldPath) -> Check {
    // Phases too long to add up are their own broken rule (check_phases).
    let Some(total) = scenario
        .phases
        .iter()
        .try_fold(Duration::ZERO, |sum, p| sum.checked_add(p.duration.get()))
    else {
        return Ok(());
    };
    for (i, fault) in scenario.faults.iter().enumerate() {
        let at = path.index(i);
        check_fault(fault, scenario, &at, total)?;
    }
    Ok(())
}

fn check_fault(fault: &Fault, scenario: &Scenario, at: &FieldPath, total: Duration) -> Check {
    if fault.at.get() >= total {
        fail(
            at.key("at"),
            format!(
                "must be before the end of the run ({}), got {}",
                humantime::format_duration(total),
                fault.at
            ),
        )?;
    }
    if fault.count == 0 {
        fail(at.key("count"), "must be at least 1")?;
    }
    if let Some(group) = &fault.group
        && !scenario.groups.iter().any(|g| &g.name == group)
    {
        fail(at.key("group"), format!("unknown group {group:?}"))?;
    }
    let target = &scenario.target;
    match fault.kind {
        FaultKind::RedisRestart | FaultKind::RedisPause
            if target.broker != BrokerKind::Redis
                || target.redis_url.is_some()
                || target.mode == TargetMode::External =>
        {
            fail(
                at.key("kind"),
                "Redis faults need a Redis the simulator starts: broker = \"redis\", no redis_url, not external",
            )?;
        }
        FaultKind::NodeKill if target.mode != TargetMode::Spawn => {
            fail(at.key("kind"), "node_kill needs target.mode = \"spawn\"")?;
        }
        FaultKind::NodeKill if fault.count > target.nodes => {
            fail(
                at.key("count"),
                format!("only {} nodes to kill", target.nodes),
            )?;
        }
        _ => {}
    }
    Ok(())
}
