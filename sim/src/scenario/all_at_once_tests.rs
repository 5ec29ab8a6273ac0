//! Tests that a scenario's mistakes are reported all at once: every kind in one file, in line order, with suggestions only for close names, and no rule reported that only a stand-in broke.

use super::*;

/// Every line of the error for `text`, checking there is one per mistake.
fn lines_of(text: &str) -> Vec<String> {
    let err = Scenario::parse(text, "bad.toml").expect_err("the scenario must be rejected");
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), err.all_invalid().len(), "{err}");
    assert_eq!(err.invalid(), err.all_invalid().first());
    lines
}

/// The issue's example: four mistakes that used to take four rounds.
#[test]
fn every_mistake_of_a_file_is_reported_at_once_in_line_order() {
    let text = r#"name = "bad"
[[phases]]
name = "all"
kind = "steady"
duration = "30 seconds please"
[[groups]]
name = "publishers"
behaviour = "publisher"
count = "ten"
payload_byts = 10
rate = -1
[[groups]]
name = "listeners"
behaviour = "subscribr"
count = 5
[[groups]]
name = "workers"
count = 2
[thresholds]
max_loss = "some"
"#;
    assert_eq!(
        lines_of(text),
        [
            "bad.toml:5:12: phases[0].duration: expected a duration such as \"30s\" or \"500ms\", found the string \"30 seconds please\"",
            "bad.toml:9:9: groups[0].count: expected a whole number (0 or more), found the string \"ten\"",
            "bad.toml:10:1: groups[0].payload_byts: unknown key `payload_byts` (did you mean `payload_bytes`?)",
            "bad.toml:11:8: groups[0].rate: must be >= 0, got -1",
            "bad.toml:11:8: groups[0].rate: a publisher sends on its own, so rate (messages per second per agent) must be > 0",
            "bad.toml:14:13: groups[1].behaviour: `subscribr` is not a behaviour; one of: publisher, subscriber, pattern_subscriber, direct_chatter, broadcaster, queue_producer, queue_worker, adversary, rest_client (did you mean `subscriber`?)",
            "bad.toml:16:1: groups[2].behaviour: missing required key `behaviour`",
            "bad.toml:20:12: thresholds.max_loss: expected a number, found the string \"some\"",
        ]
    );
}

/// Schema mistakes and broken rules mixed, each with its exact field.
#[test]
fn schema_mistakes_and_broken_rules_come_in_file_order() {
    let text = r#"name = "bad"
[target]
mode = "embeded"
[[phases]]
name = "p"
kind = "steady"
duration = "5s"
[[groups]]
name = "g"
count = "ten"
behaviour = "publishr"
payload_byts = 10
colour = "blue"
[[groups]]
name = "g"
count = 0
behaviour = "subscriber"
"#;
    assert_eq!(
        lines_of(text),
        [
            "bad.toml:3:8: target.mode: `embeded` is not a target mode; one of: embedded, spawn, external (did you mean `embedded`?)",
            "bad.toml:10:9: groups[0].count: expected a whole number (0 or more), found the string \"ten\"",
            "bad.toml:11:13: groups[0].behaviour: `publishr` is not a behaviour; one of: publisher, subscriber, pattern_subscriber, direct_chatter, broadcaster, queue_producer, queue_worker, adversary, rest_client (did you mean `publisher`?)",
            "bad.toml:12:1: groups[0].payload_byts: unknown key `payload_byts` (did you mean `payload_bytes`?)",
            "bad.toml:13:1: groups[0].colour: unknown key `colour`",
            "bad.toml:15:8: groups[1].name: duplicate group name \"g\" (also groups[0].name)",
            "bad.toml:16:9: groups[1].count: must be at least 1 agent, got 0",
        ]
    );
}

const ONE_PHASE: &str =
    "name = \"t\"\n[[phases]]\nname = \"p\"\nkind = \"steady\"\nduration = \"10s\"\n";

#[test]
fn a_misspelt_key_and_a_misspelt_behaviour_get_the_closest_name() {
    let text = format!(
        "{ONE_PHASE}[[groups]]\nname = \"g\"\ncount = 1\nbehaviour = \"publsher\"\nrat = 5.0\n"
    );
    assert_eq!(
        lines_of(&text),
        [
            "bad.toml:9:13: groups[0].behaviour: `publsher` is not a behaviour; one of: publisher, subscriber, pattern_subscriber, direct_chatter, broadcaster, queue_producer, queue_worker, adversary, rest_client (did you mean `publisher`?)",
            "bad.toml:10:1: groups[0].rat: unknown key `rat` (did you mean `rate`?)",
        ]
    );
}

/// Misspelling a required key is one mistake, not also a missing key.
#[test]
fn a_misspelt_required_key_is_reported_once() {
    let text =
        format!("{ONE_PHASE}[[groups]]\nname = \"g\"\ncount = 1\nbehavour = \"subscriber\"\n");
    assert_eq!(
        lines_of(&text),
        ["bad.toml:9:1: groups[0].behavour: unknown key `behavour` (did you mean `behaviour`?)"]
    );
}

#[test]
fn a_far_off_key_gets_no_suggestion() {
    // Twenty keys in a group: too many to list, none close to this one.
    let text = format!(
        "{ONE_PHASE}[[groups]]\nname = \"g\"\ncount = 1\nbehaviour = \"subscriber\"\nxyzzy = 1\n"
    );
    assert_eq!(
        lines_of(&text),
        ["bad.toml:10:1: groups[0].xyzzy: unknown key `xyzzy`"]
    );
    // A fault takes five: they are listed instead.
    let text = format!(
        "{ONE_PHASE}[[groups]]\nname = \"g\"\ncount = 1\nbehaviour = \"subscriber\"\n[[faults]]\nkind = \"network_cut\"\nat = \"1s\"\nxyzzy = 1\n"
    );
    assert_eq!(
        lines_of(&text),
        [
            "bad.toml:13:1: faults[0].xyzzy: unknown key `xyzzy`; allowed keys: at, count, duration, group, kind"
        ]
    );
}

/// A stand-in read past a mistake (here a phase of unknown length, a group
/// of unknown behaviour) must not break rules of its own.
#[test]
fn rules_only_a_stand_in_breaks_are_not_reported() {
    let text = r#"name = "t"
[[phases]]
name = "p"
kind = "steady"
duration = 10
[[groups]]
name = "g"
count = 1
[[faults]]
kind = "network_cut"
at = "5s"
"#;
    assert_eq!(
        lines_of(text),
        [
            "bad.toml:5:12: phases[0].duration: expected a duration such as \"30s\" or \"500ms\", found the number 10",
            "bad.toml:6:1: groups[0].behaviour: missing required key `behaviour`",
        ]
    );
}

#[test]
fn whole_numbers_out_of_range_say_the_range() {
    let text = format!(
        "{ONE_PHASE}[target]\nnodes = 5000000000\n[[groups]]\nname = \"g\"\ncount = -2\nbehaviour = \"queue_producer\"\npriorities = [1, 300]\nrate = 1.0\n"
    );
    assert_eq!(
        lines_of(&text),
        [
            "bad.toml:7:9: target.nodes: expected a whole number from 0 to 4294967295, found the number 5000000000",
            "bad.toml:10:9: groups[0].count: expected a whole number (0 or more), found the number -2",
            "bad.toml:12:18: groups[0].priorities[1]: expected a whole number from 0 to 255, found the number 300",
        ]
    );
}

/// With no schema mistake, every broken rule is reported, not the first.
#[test]
fn every_broken_rule_is_reported() {
    let text = format!(
        "{ONE_PHASE}[[groups]]\nname = \"g\"\ncount = 0\nbehaviour = \"publisher\"\nrate = -1.0\n"
    );
    assert_eq!(
        lines_of(&text),
        [
            "bad.toml:8:9: groups[0].count: must be at least 1 agent, got 0",
            "bad.toml:10:8: groups[0].rate: must be >= 0, got -1",
            "bad.toml:10:8: groups[0].rate: a publisher sends on its own, so rate (messages per second per agent) must be > 0",
        ]
    );
}

/// A syntax error stops the reading: one error, saying so.
#[test]
fn a_syntax_error_is_the_only_one_and_says_why() {
    let lines = lines_of("name = \"t\"\n[[phases]\ncount = \"ten\"\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "bad.toml:2:10: not valid TOML, so nothing else in the file could be checked: "
        ),
        "{lines:?}"
    );
}

/// A file without mistakes reads to exactly what serde alone reads.
#[test]
fn an_error_free_file_parses_to_the_same_scenario() {
    let text = format!(
        "{ONE_PHASE}[target]\nsource_addresses = [\"127.0.0.1\"]\n[[groups]]\nname = \"g\"\ncount = 3\nbehaviour = \"publisher\"\nrate = 2\npayload_bytes = {{ min = 10, max = 20 }}\n[thresholds.operations.connect]\nwarning = \"1ms\"\n"
    );
    let parsed = Scenario::parse(&text, "ok.toml").unwrap();
    let plain: Scenario = toml::from_str(&text).unwrap();
    assert_eq!(parsed, plain);
    assert_eq!(parsed.groups[0].rate, 2.0);
}

/// The example under "## Errors" in scenarios/README.md is what this build
/// says about its file.
#[test]
fn the_readme_error_example_is_real_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let section = readme
        .split("## Errors")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has an Errors section");
    // Fences split it into: text, the file, text, the output, text.
    let blocks: Vec<&str> = section.split("```").collect();
    let file = blocks[1]
        .strip_prefix("toml\n")
        .expect("a toml block first");
    let output = blocks[3].trim_start_matches('\n');
    let err = Scenario::parse(file, "x.toml").unwrap_err();
    assert_eq!(format!("{err}\n"), output);
}
