//! Property tests of the scenario parser: no text makes it panic, every
//! rejection is located inside the text, and every accepted scenario can be
//! scheduled. (The `scenario_parse` fuzz target of `fuzz/` explores the
//! same ground for longer; see docs/FUZZING.md.)

use std::time::Duration;

use proptest::prelude::*;
use sim::scenario::Scenario;

/// Real scenarios to mutate: every feature of the format appears in one.
const SEEDS: [&str; 6] = [
    include_str!("../../scenarios/quickstart.toml"),
    include_str!("../../scenarios/ci/smoke.toml"),
    include_str!("../../scenarios/ci/queues.toml"),
    include_str!("../../scenarios/chaos/node-kill.toml"),
    include_str!("../../scenarios/security.toml"),
    include_str!("../../scenarios/rest.toml"),
];

const ORIGIN: &str = "props.toml";

/// Parses `text` and checks what must hold whatever it contains.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match Scenario::parse(text, ORIGIN) {
        Ok(scenario) => check_usable(&scenario),
        Err(err) => {
            let all = err.all_invalid();
            prop_assert!(
                !all.is_empty(),
                "parsing text fails only as Invalid: {}",
                err
            );
            let lines: Vec<&str> = text.split('\n').collect();
            for invalid in all {
                prop_assert_eq!(&invalid.file, ORIGIN);
                prop_assert!(
                    invalid.line >= 1 && invalid.line <= lines.len(),
                    "{}",
                    invalid
                );
                let line = lines[invalid.line - 1];
                prop_assert!(
                    invalid.column >= 1 && invalid.column <= line.chars().count() + 1,
                    "{} in line {:?}",
                    invalid,
                    line
                );
                prop_assert!(!invalid.message.is_empty(), "{:?}", invalid);
            }
            // In file order, one per line.
            let order: Vec<_> = all.iter().map(|i| (i.line, i.column)).collect();
            prop_assert!(order.is_sorted(), "{}", err);
            prop_assert_eq!(err.to_string().lines().count(), all.len());
            let prefix = format!("{ORIGIN}:{}:{}: ", all[0].line, all[0].column);
            prop_assert!(err.to_string().starts_with(&prefix), "{}", err);
            Ok(())
        }
    }
}

/// What a run asks of a scenario before it connects anything.
fn check_usable(scenario: &Scenario) -> Result<(), TestCaseError> {
    let total = scenario.total_duration();
    prop_assert!(total > Duration::ZERO);
    for t in [
        Duration::ZERO,
        total / 2,
        total,
        total.saturating_add(Duration::from_secs(1)),
    ] {
        let (agents, rate) = scenario.schedule_at(t);
        prop_assert!(
            (0.0..=1.0).contains(&agents),
            "{} agents at {:?}",
            agents,
            t
        );
        prop_assert!(rate >= 0.0 && rate.is_finite(), "rate {}", rate);
    }
    prop_assert_eq!(scenario.content_hash().len(), 64);
    Ok(())
}

/// Values of every TOML type, at and past the limits of the fields' types.
fn hostile_value() -> impl Strategy<Value = String> {
    let fixed = proptest::sample::select(vec![
        "-1",
        "0",
        "1",
        "65536",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "1e300",
        "-1e300",
        "nan",
        "inf",
        "-inf",
        "-0.0",
        "0.5",
        "1.5",
        "true",
        "\"\"",
        "\" \"",
        "\"0s\"",
        "\"1ns\"",
        "\"-5s\"",
        "\"18446744073709551615s\"",
        "\"584942417355y\"",
        "\"9999999999999999999999s\"",
        "\"1 fortnight\"",
        "[]",
        "[[]]",
        "{}",
        "{ min = 10, max = 1 }",
        "{ count = 0 }",
        "{ count = 4294967295, per_agent = 4294967295 }",
        "1979-05-27T07:32:00Z",
        "\"ramp\"",
        "\"ramp_down\"",
        "\"spike\"",
        "\"spawn\"",
        "\"external\"",
        "\"redis\"",
        "\"node_kill\"",
        "\"redis_pause\"",
        "\"queue_worker\"",
        "\"*\"",
        "[\"[\", \"\\\\\"]",
        "\"\\u0000\"",
        "'''\n'''",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        6 => fixed,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => "\\PC{0,16}".prop_map(|s| format!("{s:?}")),
        1 => (1usize..1000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        1 => (1usize..1000).prop_map(|depth| format!("{}1{}", "{ a = ".repeat(depth), " }".repeat(depth))),
    ]
}

/// Every key and table header the seed scenarios use.
fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = SEEDS
        .iter()
        .flat_map(|seed| seed.lines())
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('[') {
                return Some(line.to_owned());
            }
            let (key, _) = line.split_once(" = ")?;
            (!key.starts_with('#')).then(|| key.to_owned())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// One change to a scenario's lines.
#[derive(Debug, Clone)]
enum Mutation {
    /// Give the line's key a hostile value.
    Revalue(usize, String),
    Delete(usize),
    Duplicate(usize),
    /// Insert `key = value` (or a table header) before the line.
    Insert(usize, String, String),
    /// Cut the text at a byte offset (rounded to a character boundary).
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let line = any::<usize>();
    prop_oneof![
        4 => (line, hostile_value()).prop_map(|(l, v)| Mutation::Revalue(l, v)),
        1 => line.prop_map(Mutation::Delete),
        1 => line.prop_map(Mutation::Duplicate),
        2 => (line, proptest::sample::select(known_keys()), hostile_value())
            .prop_map(|(l, k, v)| Mutation::Insert(l, k, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(seed: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = seed.lines().map(str::to_owned).collect();
    for m in mutations {
        let n = lines.len().max(1);
        match m {
            Mutation::Revalue(l, value) => {
                if let Some(line) = lines.get_mut(l % n)
                    && let Some((key, _)) = line.split_once(" = ")
                {
                    *line = format!("{key} = {value}");
                }
            }
            Mutation::Delete(l) if !lines.is_empty() => {
                lines.remove(l % n);
            }
            Mutation::Duplicate(l) if !lines.is_empty() => {
                let copy = lines[l % n].clone();
                lines.insert(l % n, copy);
            }
            Mutation::Insert(l, key, value) => {
                let new = if key.starts_with('[') {
                    key.clone()
                } else {
                    format!("{key} = {value}")
                };
                lines.insert(l % n, new);
            }
            Mutation::Truncate(at) => {
                let mut text = lines.join("\n");
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.truncate(at);
                lines = text.split('\n').map(str::to_owned).collect();
            }
            _ => {}
        }
    }
    lines.join("\n")
}

/// Lines of table headers and `key = value` pairs from the real schema.
fn toml_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        (proptest::sample::select(known_keys()), hostile_value()).prop_map(|(key, value)| {
            if key.starts_with('[') {
                key
            } else {
                format!("{key} = {value}")
            }
        }),
        "[\\[\\]a-z_.=\" #0-9]{0,30}",
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

/// A duration of any size in any unit humantime reads.
fn duration_text() -> impl Strategy<Value = String> {
    let unit = proptest::sample::select(vec!["ns", "us", "ms", "s", "m", "h", "d", "w", "M", "y"]);
    let amount = prop_oneof![0u64..100, any::<u64>(), Just(u64::MAX)];
    (amount, unit).prop_map(|(n, unit)| format!("\"{n}{unit}\""))
}

/// Gives every duration-valued line of `seed` one of `values`, in turn.
fn with_durations(seed: &str, values: &[String]) -> String {
    let keys = [
        "duration",
        "at",
        "warning",
        "critical",
        "processing_time",
        "think_time",
    ];
    let mut next = values.iter().cycle();
    seed.lines()
        .map(|line| match line.split_once(" = ") {
            Some((key, value)) if keys.contains(&key.trim()) && value.starts_with('"') => {
                format!("{key} = {}", next.next().unwrap())
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Found the overflow in `total_duration` (phases adding up past
    /// `Duration::MAX` panicked).
    #[test]
    fn durations_of_any_size_parse_or_fail_with_a_location(
        seed in proptest::sample::select(SEEDS.to_vec()),
        values in proptest::collection::vec(duration_text(), 1..6),
    ) {
        check_parse(&with_durations(seed, &values))?;
    }

    #[test]
    fn any_text_parses_or_fails_with_a_location(text in any::<String>()) {
        check_parse(&text)?;
    }

    #[test]
    fn toml_like_text_parses_or_fails_with_a_location(text in toml_like()) {
        check_parse(&text)?;
    }

    #[test]
    fn mutated_scenarios_parse_or_fail_with_a_location(
        seed in proptest::sample::select(SEEDS.to_vec()),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        check_parse(&mutate(seed, &mutations))?;
    }
}

/// Every seed is valid as written, so the mutations start from real input.
#[test]
fn the_seed_scenarios_are_valid() {
    for seed in SEEDS {
        Scenario::parse(seed, ORIGIN).unwrap();
    }
}
