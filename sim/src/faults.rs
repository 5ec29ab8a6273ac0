//! Injecting a scenario's faults while it runs: Redis restarted or frozen,
//! bus nodes killed, the network cut, agents made slow, reconnect storms,
//! workers that crash after claiming. Each fault starts at its time, ends
//! after its duration, and reports what was seen: how long delivery took to
//! resume, how many agent connections broke, and what the bus said about
//! its own health meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;

use crate::bus_under_test::RunningTarget;
use crate::context::RunContext;
use crate::report::{FaultOutcome, HealthSample};
use crate::scenario::{Behaviour, Fault, FaultKind};

/// Longest wait for delivery to resume after a fault ends.
const RESUME_WAIT: Duration = Duration::from_secs(15);
/// How long after a fault's end its effects are still attributed to it.
const AFTERMATH: Duration = Duration::from_secs(2);

/// Runs every fault at its time; returns their outcomes in scenario order.
pub async fn drive(
    faults: Vec<Fault>,
    ctx: Arc<RunContext>,
    target: &RunningTarget,
) -> Vec<FaultOutcome> {
    join_all(faults.iter().map(|f| inject(f, &ctx, target))).await
}

fn name(kind: FaultKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The agents a fault hits: the first `count` of its group (or of the
/// behaviour it is about) that run in this process.
fn agents_of(fault: &Fault, ctx: &RunContext, default: &[Behaviour]) -> Vec<u32> {
    let groups = &ctx.scenario.groups;
    ctx.plan
        .agents
        .iter()
        .filter(|a| match &fault.group {
            Some(g) => &groups[a.group].name == g,
            None => default.contains(&groups[a.group].behaviour),
        })
        .take(fault.count as usize)
        .map(|a| a.id)
        .collect()
}

fn agent_names(ids: &[u32], ctx: &RunContext) -> Vec<String> {
    ctx.plan
        .agents
        .iter()
        .filter(|a| ids.contains(&a.id))
        .map(|a| a.name.clone())
        .collect()
}

async fn inject(fault: &Fault, ctx: &RunContext, target: &RunningTarget) -> FaultOutcome {
    let start = ctx.clock.instant(fault.at.get());
    let duration = fault.duration.get();
    let disconnects_before = ctx.counters.disconnects.load(Ordering::Relaxed);
    let mut outcome = FaultOutcome {
        kind: name(fault.kind),
        at_s: fault.at.get().as_secs_f64(),
        duration_s: duration.as_secs_f64(),
        affected: Vec::new(),
        error: None,
        resumed_after_s: None,
        disconnects: 0,
        bus_health: Vec::new(),
    };
    if !ctx.hold_until(start).await {
        outcome.error = Some("not applied: the run was interrupted before its time".into());
        return outcome;
    }
    let result = apply(fault, ctx, target, duration, &mut outcome).await;
    if let Err(e) = result {
        outcome.error = Some(e);
    }
    if matches!(
        fault.kind,
        FaultKind::RedisRestart
            | FaultKind::RedisPause
            | FaultKind::NodeKill
            | FaultKind::NetworkCut
    ) {
        outcome.resumed_after_s = resume_time(ctx).await;
    }
    ctx.hold_until(start + duration + AFTERMATH).await;
    outcome.disconnects = ctx.counters.disconnects.load(Ordering::Relaxed) - disconnects_before;
    outcome
}

/// Does the fault, waits out its duration (less if the run is
/// interrupted), undoes it.
async fn apply(
    fault: &Fault,
    ctx: &RunContext,
    target: &RunningTarget,
    duration: Duration,
    outcome: &mut FaultOutcome,
) -> Result<(), String> {
    let err = |e: crate::bus_under_test::TargetError| e.to_string();
    match fault.kind {
        FaultKind::RedisRestart => {
            outcome.affected = vec!["redis".into()];
            target.stop_redis().await.map_err(err)?;
            ctx.hold(duration).await;
            target.start_redis().await.map_err(err)?;
        }
        FaultKind::RedisPause => {
            outcome.affected = vec!["redis".into()];
            target.pause_redis(true).map_err(err)?;
            ctx.hold(duration).await;
            target.pause_redis(false).map_err(err)?;
        }
        FaultKind::NodeKill => {
            let nodes: Vec<usize> = (0..fault.count as usize).collect();
            for i in &nodes {
                outcome
                    .affected
                    .push(target.kill_node(*i).await.map_err(err)?);
            }
            ctx.hold(duration).await;
            for i in &nodes {
                target.restart_node(*i).await.map_err(err)?;
            }
        }
        FaultKind::NetworkCut => {
            outcome.affected = vec!["network".into()];
            target.cut_network(true).map_err(err)?;
            ctx.hold(duration).await;
            target.cut_network(false).map_err(err)?;
        }
        FaultKind::SlowConsumers => {
            let agents = agents_of(
                fault,
                ctx,
                &[Behaviour::Subscriber, Behaviour::PatternSubscriber],
            );
            outcome.affected = agent_names(&agents, ctx);
            ctx.faults.set_slow(&agents, true);
            ctx.hold(duration).await;
            ctx.faults.set_slow(&agents, false);
        }
        FaultKind::ReconnectStorm => {
            let all = [
                Behaviour::Publisher,
                Behaviour::Subscriber,
                Behaviour::PatternSubscriber,
                Behaviour::DirectChatter,
                Behaviour::Broadcaster,
                Behaviour::QueueProducer,
                Behaviour::QueueWorker,
            ];
            let agents = agents_of(fault, ctx, &all);
            outcome.affected = agent_names(&agents, ctx);
            ctx.faults.storm(&agents);
        }
        FaultKind::CrashAfterClaim => {
            let agents = agents_of(fault, ctx, &[Behaviour::QueueWorker]);
            outcome.affected = agent_names(&agents, ctx);
            ctx.faults.set_crash(&agents, true);
            ctx.hold(duration).await;
            ctx.faults.set_crash(&agents, false);
        }
    }
    Ok(())
}

/// Seconds from now (the fault's end) until a message sent after it was
/// delivered; `None` if none was within [`RESUME_WAIT`] or the run ended.
async fn resume_time(ctx: &RunContext) -> Option<f64> {
    let ended = ctx.clock.now_us();
    ctx.faults.watch_resume(ended);
    let deadline = tokio::time::Instant::now() + RESUME_WAIT;
    while tokio::time::Instant::now() < deadline && !ctx.stop.is_cancelled() {
        if let Some(first) = ctx.faults.first_delivery_after() {
            return Some(first.saturating_sub(ended) as f64 / 1e6);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Fills each outcome's `bus_health` from the monitor's samples.
pub fn attach_health(outcomes: &mut [FaultOutcome], health: &[HealthSample]) {
    for o in outcomes {
        let end = o.at_s + o.duration_s + AFTERMATH.as_secs_f64();
        for h in health.iter().filter(|h| h.at_s >= o.at_s && h.at_s <= end) {
            if o.bus_health.last() != Some(&h.status) {
                o.bus_health.push(h.status.clone());
            }
        }
    }
}
