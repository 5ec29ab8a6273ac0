//! deploy/ stays valid: every YAML document of `deploy/compose.yaml` and of
//! the Kubernetes manifests (`deploy/k8s/*.yaml`, `deploy/k8s/run/*.yaml`)
//! parses; the shape the README describes is there (services and kinds,
//! ports that agree between a binary's flags, its container and its
//! Service); and every `sim` and `bus` command line in them parses with the
//! binaries' own clap parsers, with the container's environment applied the
//! way the binary reads it (an environment variable neither the binary nor
//! its command line uses is an error: it is a typo or a setting that does
//! nothing).
//!
//! This module holds what both files share: reading YAML, finding the
//! command lines of a container and parsing them.

mod compose;
mod k8s;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bus::config::BusConfig;
use clap::{CommandFactory, FromArgMatches};
use serde::Deserialize;
use sim::cli::Cli;
use yaml_serde::Value;

/// What `$(JOB_COMPLETION_INDEX)` stands for when a command line is checked.
const SAMPLE_INDEX: &str = "0";

/// Placeholders filled in when a manifest is applied (README,
/// "Deployment"), and what they stand for here. `START_AT`: unix seconds
/// (2026-01-01T00:00:00Z).
const APPLY_TIME_PLACEHOLDERS: &[(&str, &str)] = &[("${START_AT}", "1767225600")];

/// What an environment value from `valueFrom` (a pod's name, say) stands
/// for.
const SAMPLE_FIELD_VALUE: &str = "bus-5d8c7b9f4-x2x7q";

/// Characters that would make splitting a script line on whitespace differ
/// from what the shell does.
const SHELL_SPECIAL: &[char] = &[
    '"', '\'', '$', '`', ';', '&', '|', '<', '>', '*', '?', '\\', '(', ')', '{', '}', '~', '#',
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every non-empty document of a YAML file, `<<` merge keys applied.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|document| {
            let mut value =
                Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// A string field, or a panic that names where it was missing.
fn str_at<'a>(value: &'a Value, place: &str, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{place}: `{field}` must be a string, found {value:?}"))
}

/// A list of strings (`command`, `args`, ...); absent is empty.
fn strings(value: &Value, place: &str) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .unwrap_or_else(|| panic!("{place}: {item:?} must be a string"))
                    .to_owned()
            })
            .collect(),
        other => panic!("{place}: expected a list of strings, found {other:?}"),
    }
}

/// `scheme://host:port[/...]` → (host, port).
fn host_port(url: &str, scheme: &str) -> (String, u16) {
    let rest = url
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
        .unwrap_or_else(|| panic!("{url}: expected {scheme}://HOST:PORT"));
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url}: give the port explicitly"));
    (host.to_owned(), port.parse().expect("a port number"))
}

/// What a container runs: its program and arguments (compose's `command`,
/// Kubernetes' `command` + `args`) and its environment.
#[derive(Debug)]
struct Container {
    /// Where it is, for messages: file, object and container name.
    place: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    /// Runs in a pod of an Indexed Job (so `$(JOB_COMPLETION_INDEX)` is set).
    indexed: bool,
}

impl Container {
    /// The `sim` and `bus` command lines it runs, as words: its argv when
    /// that is one, or each `sim`/`bus` line of an `sh -c` script (backslash
    /// continuations joined). Words are as written, before `$(VAR)`
    /// expansion.
    fn raw_command_lines(&self) -> Vec<Vec<String>> {
        let program = self.argv.first().map(String::as_str);
        if matches!(program, Some("sim" | "bus")) {
            return vec![self.argv.clone()];
        }
        if !matches!(program, Some("sh" | "/bin/sh"))
            || self.argv.get(1).map(String::as_str) != Some("-c")
        {
            return Vec::new();
        }
        let script = self.argv.get(2).map(String::as_str).unwrap_or_default();
        script
            .replace("\\\n", " ")
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("sim ") || line.starts_with("bus "))
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    /// The command lines as the program receives them: Kubernetes'
    /// `$(VAR)` expansion done, apply-time placeholders filled in.
    fn command_lines(&self) -> Vec<Vec<String>> {
        self.raw_command_lines()
            .into_iter()
            .map(|line| line.iter().map(|word| self.expand(word)).collect())
            .collect()
    }

    /// Kubernetes' `$(VAR)` expansion of one word, with sample values; the
    /// result must be a plain shell word.
    fn expand(&self, word: &str) -> String {
        let mut out = String::new();
        let mut rest = word;
        while let Some(start) = rest.find("$(") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find(')')
                .unwrap_or_else(|| panic!("{}: unclosed $( in {word}", self.place));
            let name = &after[..end];
            let value = match self.env.get(name) {
                Some(value) => value.as_str(),
                None if name == "JOB_COMPLETION_INDEX" && self.indexed => SAMPLE_INDEX,
                None => panic!(
                    "{}: {word} refers to $({name}), which the container does not define",
                    self.place
                ),
            };
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        assert!(
            !out.contains(SHELL_SPECIAL),
            "{}: `{word}` is `{out}` after expansion: keep command lines to plain words",
            self.place
        );
        out
    }

    /// Whether any command word refers to `$(name)`.
    fn refers_to(&self, name: &str) -> bool {
        let reference = format!("$({name})");
        self.argv.iter().any(|word| word.contains(&reference))
    }

    /// The flags `command` reads from this container's environment (by
    /// clap's `env = ...` names), as words. Every other variable must be used
    /// by the command line itself.
    fn env_flags(&self, command: &clap::Command) -> Vec<String> {
        let mut flags = Vec::new();
        for (name, value) in &self.env {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == name.as_str()));
            match arg {
                Some(arg) => {
                    let long = arg.get_long().expect("env-backed args have a long flag");
                    if arg.get_action().takes_values() {
                        flags.push(format!("--{long}={value}"));
                    } else if !matches!(value.as_str(), "" | "0" | "false" | "no" | "off") {
                        flags.push(format!("--{long}"));
                    }
                }
                None => assert!(
                    self.refers_to(name),
                    "{}: sets {name}, which `{}` does not read (see its --help) \
                     and its command line does not use",
                    self.place,
                    command.get_name()
                ),
            }
        }
        flags
    }
}

/// The environment value a manifest gives, with apply-time placeholders
/// filled in.
fn env_value(value: &str, place: &str) -> String {
    for (placeholder, sample) in APPLY_TIME_PLACEHOLDERS {
        if value == *placeholder {
            return (*sample).to_owned();
        }
    }
    assert!(
        !value.contains('$'),
        "{place}: {value:?} looks like a placeholder this test does not know"
    );
    value.to_owned()
}

/// The parser of a command with every `env = ...` removed, so the test's own
/// environment (REDIS_URL, say) cannot leak into the parse; the container's
/// environment comes in as flags instead.
fn without_env(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| arg.env(None::<&str>))
        .mut_subcommands(|sub| sub.mut_args(|arg| arg.env(None::<&str>)))
}

/// Parses a `bus` command line with `bus`'s own parser, the container's
/// environment applied, and validates it as `bus` does at start-up.
fn parse_bus(container: &Container, line: &[String]) -> BusConfig {
    let mut argv = vec![line[0].clone()];
    argv.extend(container.env_flags(&BusConfig::command()));
    argv.extend_from_slice(&line[1..]);
    let matches = without_env(BusConfig::command())
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| panic!("{}: `{}`:\n{e}", container.place, argv.join(" ")));
    let config = BusConfig::from_arg_matches(&matches).expect("matches of its own command");
    if let Err(e) = config.validate() {
        panic!("{}: `{}`: {e}", container.place, argv.join(" "));
    }
    config
}

/// Parses a `sim` command line with `sim`'s own parser, the container's
/// environment applied (as flags of its subcommand).
fn parse_sim(container: &Container, line: &[String]) -> Cli {
    let subcommand = line.get(1).cloned().unwrap_or_default();
    let mut argv = vec![line[0].clone(), subcommand.clone()];
    match Cli::command().find_subcommand(&subcommand) {
        Some(sub) => argv.extend(container.env_flags(sub)),
        None => assert!(
            container.env.keys().all(|name| container.refers_to(name)),
            "{}: unknown subcommand, and environment it does not use",
            container.place
        ),
    }
    argv.extend_from_slice(line.get(2..).unwrap_or_default());
    let matches = without_env(Cli::command())
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| panic!("{}: `{}`:\n{e}", container.place, argv.join(" ")));
    Cli::from_arg_matches(&matches).expect("matches of its own command")
}

/// The value after `flag` in a command line (the first, if repeated).
fn flag_value<'a>(line: &'a [String], flag: &str) -> Option<&'a str> {
    let at = line.iter().position(|word| word == flag)?;
    line.get(at + 1).map(String::as_str)
}
