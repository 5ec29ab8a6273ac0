//! Generated scenarios: random valid scenarios (every behaviour in random
//! mixes, every topic distribution, `per_agent`, workspaces, patterns,
//! phases with ramps and spikes; a few hundred agents for a few seconds)
//! run against the embedded bus, and the ledger must reconcile with
//! nothing lost, misrouted or duplicated, and the integrity check must not
//! fail. A class of simulator bug where the ledger expects something other
//! than what the agents did (zipf subscribers once drew their topics twice)
//! cannot hide from random mixes.
//!
//! `PROPTEST_CASES` sets how many scenarios run (default below, sized for
//! CI); e.g. `PROPTEST_CASES=100 cargo test --test integration generated`
//! runs a hundred. A failure prints the scenario's TOML.

use std::fmt::Write;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use sim::bus_under_test::{RunningTarget, TargetOptions};
use sim::drive::RunOptions;
use sim::scenario::Scenario;

use crate::support::HEAVY;

/// Scenarios one CI run draws (each runs ~3-6 s).
const CI_CASES: u32 = 8;

fn phase() -> impl Strategy<Value = String> {
    prop_oneof![
        (5u32..15).prop_map(|d| format!("kind = \"ramp\"\nduration = \"{}ms\"", d * 100)),
        (10u32..25).prop_map(|d| format!("kind = \"steady\"\nduration = \"{}ms\"", d * 100)),
        (3u32..8, 2u32..5).prop_map(|(d, r)| format!(
            "kind = \"spike\"\nduration = \"{}ms\"\nrate = {r}.0",
            d * 100
        )),
        (3u32..8).prop_map(|d| format!("kind = \"ramp_down\"\nduration = \"{}ms\"", d * 100)),
    ]
}

fn topics(subscriber: bool) -> impl Strategy<Value = String> {
    (1u32..12, prop::bool::ANY, 5u32..20, 1u32..5).prop_map(move |(count, zipf, s, per)| {
        let distribution = if zipf { "zipf" } else { "uniform" };
        let per_agent = if subscriber { per.min(count) } else { 1 };
        format!(
            "topics = {{ count = {count}, distribution = \"{distribution}\", zipf_exponent = {:.1}, per_agent = {per_agent} }}",
            f64::from(s) / 10.0
        )
    })
}

/// One `[[groups]]` table of behaviour `kind`.
fn group(kind: u8, index: usize) -> BoxedStrategy<String> {
    let head = move |behaviour: &str, count: u32, workspaces: u32| {
        format!(
            "[[groups]]\nname = \"g{index}\"\nbehaviour = \"{behaviour}\"\ncount = {count}\nworkspaces = {workspaces}\n"
        )
    };
    match kind {
        0 => (20u32..150, 1u32..4, topics(true))
            .prop_map(move |(c, w, t)| head("subscriber", c, w) + &t)
            .boxed(),
        1 => (1u32..8, 1u32..4, 1u32..20, prop::bool::ANY, topics(false))
            .prop_map(move |(c, w, rate, poisson, t)| {
                let arrival = if poisson { "poisson" } else { "constant" };
                head("publisher", c, w)
                    + &format!("rate = {rate}.0\narrival = \"{arrival}\"\n{t}")
            })
            .boxed(),
        2 => (1u32..10, 1u32..4, prop::sample::subsequence(vec!["agent:topic-1*", "agent:topic-?", "agent:*", "agent:topic-[0-3]"], 1..3))
            .prop_map(move |(c, w, p)| {
                let patterns: Vec<String> = p.iter().map(|g| format!("\"{g}\"")).collect();
                head("pattern_subscriber", c, w) + &format!("patterns = [{}]\n", patterns.join(", "))
            })
            .boxed(),
        3 => (2u32..30, 1u32..3, 1u32..4, 0usize..3)
            .prop_map(move |(c, w, rate, mode)| {
                let delivery = ["pubsub", "queue", "both"][mode];
                head("direct_chatter", c, w)
                    + &format!("rate = {rate}.0\ndelivery = \"{delivery}\"\nprocessing_time = \"1ms\"\n")
            })
            .boxed(),
        4 => (1u32..3, 1u32..3, 1u32..3, prop::bool::ANY)
            .prop_map(move |(c, w, rate, global)| {
                let scope = if global { "global" } else { "workspace" };
                head("broadcaster", c, w) + &format!("rate = {rate}.0\nscope = \"{scope}\"\n")
            })
            .boxed(),
        _ => (1u32..4, 1u32..4, 1u32..10, 1u32..4)
            .prop_map(move |(producers, workers, rate, batch)| {
                head("queue_producer", producers, 1)
                    + &format!("rate = {rate}.0\nqueue = \"q{index}\"\npriorities = [0, 5]\n\n")
                    + &format!(
                        "[[groups]]\nname = \"g{index}w\"\nbehaviour = \"queue_worker\"\ncount = {workers}\nqueue = \"q{index}\"\nbatch = {batch}\nprocessing_time = \"1ms\"\n"
                    )
            })
            .boxed(),
    }
}

/// A whole scenario: a first phase that connects, one to three more, and a
/// subscriber and a publisher group plus up to four others.
fn scenario() -> impl Strategy<Value = String> {
    let phases = (
        prop_oneof![
            Just("kind = \"ramp\"\nduration = \"800ms\"".to_owned()),
            Just("kind = \"steady\"\nduration = \"1s\"".to_owned())
        ],
        prop::collection::vec(phase(), 1..4),
    );
    let kinds = prop::collection::vec(0u8..6, 0..5);
    (phases, kinds, any::<u32>())
        .prop_flat_map(|((first, more), kinds, seed)| {
            let mut all = vec![0u8, 1];
            all.extend(kinds);
            let groups: Vec<BoxedStrategy<String>> =
                all.iter().enumerate().map(|(i, k)| group(*k, i)).collect();
            (Just(first), Just(more), groups, Just(seed))
        })
        .prop_map(|(first, more, groups, seed)| {
            let mut text = format!("name = \"generated\"\nseed = {seed}\n\n");
            for (i, phase) in std::iter::once(&first).chain(&more).enumerate() {
                let _ = write!(text, "[[phases]]\nname = \"p{i}\"\n{phase}\n\n");
            }
            for g in groups {
                text.push_str(&g);
                text.push('\n');
            }
            // Latency is not what this test is about: a shared CI machine.
            text.push_str("[thresholds]\nwarning = \"2s\"\ncritical = \"10s\"\n");
            text
        })
}

/// Runs one generated scenario on the embedded bus; returns its report.
fn run(text: &str) -> Value {
    let scenario = Scenario::parse(text, "generated.toml")
        .unwrap_or_else(|e| panic!("a generated scenario is invalid: {e}\n{text}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let target = RunningTarget::start(&scenario.target, &TargetOptions::default())
            .await
            .unwrap();
        let options = RunOptions {
            quiet: true,
            ..RunOptions::default()
        };
        let finished = sim::orchestrate::run_to_report(
            Arc::new(scenario),
            "generated.toml",
            &target,
            &options,
            None,
        )
        .await;
        target.stop().await.unwrap();
        serde_json::to_value(&finished.report).unwrap()
    })
}

fn check(report: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    if report["integrity"]["status"] == "failed" {
        problems.push(format!("integrity: {}", report["integrity"]["findings"]));
    }
    for (class, c) in report["ledger"]["classes"].as_object().unwrap() {
        let (expected, delivered) = (
            c["expected"].as_u64().unwrap(),
            c["delivered"].as_u64().unwrap(),
        );
        if expected != delivered || c["misrouted"] != 0 || c["duplicated"] != 0 {
            problems.push(format!("{class}: {c}"));
        }
    }
    if report["verdicts"]["connections"]["status"] != "healthy" {
        problems.push(format!(
            "connections: {}",
            report["verdicts"]["connections"]
        ));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("; ")),
    }
}

#[test]
fn generated_scenarios_reconcile_with_nothing_lost() {
    let _heavy = HEAVY.blocking_lock();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CI_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        // Shrinking reruns whole scenarios: a few steps say enough.
        max_shrink_iters: 8,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&scenario(), |text| {
        let report = run(&text);
        check(&report).map_err(|p| TestCaseError::fail(format!("{p}\n--- scenario ---\n{text}")))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
