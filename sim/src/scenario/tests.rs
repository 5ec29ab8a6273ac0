//! One test per class of scenario mistake, each checking file, line:column and field path; plus the example files.

use super::*;
use crate::metrics::Operation;

/// A valid scenario; tests append to it or replace one line. Line numbers:
/// 1 name, 2-5 the phase, 6-9 group `subs`, 10-14 group `pubs`.
const BASE: &str = r#"name = "t"
[[phases]]
name = "all"
kind = "steady"
duration = "10s"
[[groups]]
name = "subs"
count = 5
behaviour = "subscriber"
[[groups]]
name = "pubs"
count = 2
behaviour = "publisher"
rate = 5.0
"#;

/// Every mistake reported, one per line.
fn error_of(text: &str) -> String {
    let err = Scenario::parse(text, "bad.toml").expect_err("the scenario must be rejected");
    assert_eq!(err.exit_code(), 2);
    let all = err.to_string();
    assert_eq!(all.lines().count(), err.all_invalid().len(), "{all}");
    all
}

fn replaced(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

/// Asserts one reported mistake starts with `bad.toml:<at>: <field>: ` and
/// mentions `hint`.
fn assert_error(text: &str, at: &str, field: &str, hint: &str) {
    let all = error_of(text);
    let prefix = format!("bad.toml:{at}: {field}: ");
    assert!(
        all.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(hint)),
        "expected {prefix:?}... with {hint:?}, got {all:?}"
    );
}

#[test]
fn base_is_valid() {
    let s = Scenario::parse(BASE, "base.toml").unwrap();
    assert_eq!(s.seed, 1);
    assert_eq!(s.target.mode, TargetMode::Embedded);
    assert_eq!(s.groups[1].rate, 5.0);
    assert_eq!(
        s.thresholds.for_operation(Operation::Connect).percentile,
        99.0
    );
}

#[test]
fn unknown_key() {
    let text = replaced("rate = 5.0", "rate = 5.0\nrat = 1");
    assert_error(
        &text,
        "15:1",
        "groups[1].rat",
        "unknown key `rat` (did you mean `rate`?)",
    );
}

#[test]
fn wrong_type() {
    let text = replaced("count = 5", "count = \"five\"");
    assert_error(
        &text,
        "8:9",
        "groups[0].count",
        "expected a whole number (0 or more), found the string \"five\"",
    );
}

#[test]
fn missing_required_field() {
    let text = replaced("behaviour = \"subscriber\"\n", "");
    assert_error(
        &text,
        "6:1",
        "groups[0].behaviour",
        "missing required key `behaviour`",
    );
}

#[test]
fn negative_rate() {
    let text = replaced("rate = 5.0", "rate = -5");
    assert_error(&text, "14:8", "groups[1].rate", "must be >= 0, got -5");
}

#[test]
fn publisher_without_rate() {
    let text = replaced("rate = 5.0\n", "");
    assert_error(&text, "10:1", "groups[1].rate", "rate");
}

#[test]
fn zero_agents() {
    let text = replaced("count = 2", "count = 0");
    assert_error(&text, "12:9", "groups[1].count", "at least 1");
}

#[test]
fn warning_above_critical() {
    let text = format!("{BASE}[thresholds]\nwarning = \"300ms\"\ncritical = \"200ms\"\n");
    assert_error(
        &text,
        "16:11",
        "thresholds.warning",
        "must not exceed critical",
    );
}

#[test]
fn warning_above_critical_in_an_override() {
    let text = format!("{BASE}[thresholds.operations.direct_rtt]\ncritical = \"10ms\"\n");
    assert_error(
        &text,
        "16:12",
        "thresholds.operations.direct_rtt.critical",
        "must not exceed critical",
    );
}

#[test]
fn unknown_operation_name() {
    let text = format!("{BASE}[thresholds.operations.teleport]\nwarning = \"1ms\"\n");
    assert_error(
        &text,
        "15:24",
        "thresholds.operations.teleport",
        "`teleport` is not an operation; one of: connect, publish_delivery,",
    );
}

#[test]
fn percentile_out_of_range() {
    let text = format!("{BASE}[thresholds]\npercentile = 100.5\n");
    assert_error(&text, "16:14", "thresholds.percentile", "(0, 100]");
    let text = format!("{BASE}[thresholds]\npercentile = 0\n");
    assert_error(&text, "16:14", "thresholds.percentile", "(0, 100]");
}

#[test]
fn unknown_peer_group() {
    let text = format!(
        "{BASE}[[groups]]\nname = \"chat\"\ncount = 2\nbehaviour = \"direct_chatter\"\npeers = \"nobody\"\n"
    );
    assert_error(&text, "19:9", "groups[2].peers", "unknown group \"nobody\"");
}

#[test]
fn peer_group_of_the_wrong_behaviour() {
    let text = format!(
        "{BASE}[[groups]]\nname = \"chat\"\ncount = 2\nbehaviour = \"direct_chatter\"\npeers = \"subs\"\n"
    );
    assert_error(&text, "19:9", "groups[2].peers", "is a subscriber");
}

#[test]
fn duplicate_group_names() {
    let text = replaced("name = \"pubs\"", "name = \"subs\"");
    assert_error(
        &text,
        "11:8",
        "groups[1].name",
        "duplicate group name \"subs\"",
    );
}

#[test]
fn ratios_not_summing_to_one() {
    let text = format!(
        "{BASE}[[groups]]\nname = \"w\"\ncount = 1\nbehaviour = \"queue_worker\"\nack_ratio = 0.8\nreject_ratio = 0.1\n"
    );
    assert_error(&text, "19:13", "groups[2].ack_ratio", "must sum to 1");
}

#[test]
fn ratios_summing_to_one_within_rounding_pass() {
    let text = format!(
        "{BASE}[[groups]]\nname = \"w\"\ncount = 1\nbehaviour = \"queue_worker\"\nack_ratio = 0.7\nreject_ratio = 0.2\ncrash_ratio = 0.1\n"
    );
    Scenario::parse(&text, "ok.toml").unwrap();
}

#[test]
fn bad_duration_string() {
    let text = replaced("duration = \"10s\"", "duration = \"10 parsecs\"");
    assert_error(
        &text,
        "5:12",
        "phases[0].duration",
        "expected a duration such as \"30s\" or \"500ms\", found the string \"10 parsecs\"",
    );
}

#[test]
fn fault_after_the_end() {
    let text = format!("{BASE}[[faults]]\nkind = \"redis_pause\"\nat = \"10s\"\n");
    assert_error(
        &text,
        "17:6",
        "faults[0].at",
        "before the end of the run (10s)",
    );
}

#[test]
fn fault_on_unknown_group() {
    let text =
        format!("{BASE}[[faults]]\nkind = \"slow_consumers\"\nat = \"1s\"\ngroup = \"ghosts\"\n");
    assert_error(&text, "18:9", "faults[0].group", "unknown group \"ghosts\"");
}

#[test]
fn external_mode_without_urls() {
    let text = format!("{BASE}[target]\nmode = \"external\"\n");
    assert_error(&text, "15:1", "target.urls", "at least one bus URL");
}

#[test]
fn pattern_subscriber_without_patterns() {
    let text = replaced(
        "behaviour = \"subscriber\"",
        "behaviour = \"pattern_subscriber\"",
    );
    assert_error(&text, "6:1", "groups[0].patterns", "glob pattern");
}

#[test]
fn agents_fraction_out_of_range() {
    let text = replaced("duration = \"10s\"", "duration = \"10s\"\nagents = 1.5");
    assert_error(&text, "6:10", "phases[0].agents", "between 0 and 1");
}

#[test]
fn no_phases() {
    let text = "name = \"t\"\nphases = []\n[[groups]]\nname = \"s\"\ncount = 1\nbehaviour = \"subscriber\"\n";
    assert_error(text, "2:10", "phases", "at least one phase");
}

#[test]
fn syntax_error_has_position_without_field() {
    let line = error_of("name = \"t\"\n[[phases]\n");
    assert!(line.starts_with("bad.toml:2:"), "{line}");
}

#[test]
fn missing_file_names_the_path() {
    let err = Scenario::load("/no/such/dir/x.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/no/such/dir/x.toml: cannot read")
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn payload_bytes_accepts_a_number_or_a_range() {
    let text = replaced(
        "rate = 5.0",
        "rate = 5.0\npayload_bytes = { min = 10, max = 20 }",
    );
    let s = Scenario::parse(&text, "ok.toml").unwrap();
    assert_eq!(s.groups[1].payload_bytes.bounds(), (10, 20));
    let text = replaced(
        "rate = 5.0",
        "rate = 5.0\npayload_bytes = { min = 30, max = 20 }",
    );
    assert_error(
        &text,
        "15:17",
        "groups[1].payload_bytes",
        "must not exceed max",
    );
    let text = replaced("rate = 5.0", "rate = 5.0\npayload_bytes = { mn = 30 }");
    assert_error(
        &text,
        "15:19",
        "groups[1].payload_bytes.mn",
        "unknown key `mn`; allowed keys: max, min",
    );
    assert_error(
        &text,
        "15:17",
        "groups[1].payload_bytes.min",
        "missing required key `min`",
    );
}

#[test]
fn content_hash_ignores_formatting_but_not_meaning() {
    let a = Scenario::parse(BASE, "a.toml").unwrap();
    let reformatted = format!("# a comment\n{}", BASE.replace("\"10s\"", "\"10000ms\""));
    let b = Scenario::parse(&reformatted, "b.toml").unwrap();
    assert_eq!(a.content_hash(), b.content_hash());
    assert_eq!(a.content_hash().len(), 64);
    let c = Scenario::parse(&replaced("count = 5", "count = 6"), "c.toml").unwrap();
    assert_ne!(a.content_hash(), c.content_hash());
}

#[test]
fn threshold_overrides_resolve_field_by_field() {
    let text =
        format!("{BASE}[thresholds.operations.connect]\ncritical = \"1s\"\nmax_loss = 0.5\n");
    let s = Scenario::parse(&text, "ok.toml").unwrap();
    let connect = s.thresholds.for_operation(Operation::Connect);
    assert_eq!(connect.critical, std::time::Duration::from_secs(1));
    assert_eq!(connect.warning, std::time::Duration::from_millis(50));
    assert_eq!(connect.max_loss, 0.5);
    let other = s.thresholds.for_operation(Operation::DirectRtt);
    assert_eq!(other.critical, std::time::Duration::from_millis(200));
}

fn scenarios_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn toml_files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

/// Every shipped scenario (`scenarios/**/*.toml`) loads, to exactly what
/// serde alone reads from it: the schema check turns down nothing serde
/// takes.
#[test]
fn every_shipped_scenario_loads() {
    let mut files = Vec::new();
    toml_files_under(&scenarios_dir(), &mut files);
    for path in &files {
        let s = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.total_agents() > 0);
        let text = std::fs::read_to_string(path).unwrap();
        let plain: Scenario = toml::from_str(&text).unwrap();
        assert_eq!(s, plain, "{}", path.display());
    }
    assert!(files.len() >= 24, "found only {} scenarios", files.len());
}

/// The committed schema must be what the code generates. To refresh it:
/// `UPDATE_SCHEMA=1 cargo test --workspace scenario_schema_file`.
#[test]
fn scenario_schema_file_is_current() {
    let path = scenarios_dir().join("scenario.schema.json");
    let generated = json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; run UPDATE_SCHEMA=1 cargo test --workspace scenario_schema_file",
        path.display()
    );
}

/// The annotated example in scenarios/README.md must stay a valid scenario.
#[test]
fn readme_example_loads() {
    let readme = std::fs::read_to_string(scenarios_dir().join("README.md")).unwrap();
    let section = readme
        .split("## Annotated example")
        .nth(1)
        .expect("README has an annotated example");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the example is a toml block");
    let s = Scenario::parse(example, "README.md").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.name, "example");
    assert_eq!(s.total_duration(), std::time::Duration::from_secs(45));
}

/// Found while writing the scenario property tests: phases whose durations
/// add up past `Duration::MAX` panicked in `total_duration` ("overflow when
/// adding durations") instead of failing validation.
#[test]
fn phases_longer_than_the_longest_run_are_rejected() {
    let huge = r#"duration = "18446744073709551615s""#;
    let second = format!("{BASE}[[phases]]\nname = \"more\"\nkind = \"steady\"\n{huge}\n");
    assert_error(
        &second,
        "18:12",
        "phases[1].duration",
        "longer than 30days (the longest run)",
    );
    let one = replaced(r#"duration = "10s""#, r#"duration = "31days""#);
    assert_error(&one, "5:12", "phases[0].duration", "the longest run");
    let exactly = replaced(r#"duration = "10s""#, r#"duration = "30days""#);
    Scenario::parse(&exactly, "ok.toml").unwrap();
}
