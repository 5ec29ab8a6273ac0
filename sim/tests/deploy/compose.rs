//! `deploy/compose.yaml`: Redis with an append-only file, two bus nodes on
//! it with health checks on `/health`, and a simulator run against both
//! nodes that waits for them to be healthy and writes to a volume.

use std::collections::BTreeMap;

use bus::config::{BrokerKind, BusConfig};
use sim::cli::Command;
use sim::scenario::Scenario;
use yaml_serde::Value;

use super::{
    Container, deploy_dir, documents, env_value, host_port, parse_bus, parse_sim, repo_dir, strings,
};

const BUS_NODES: [&str; 2] = ["bus-1", "bus-2"];

fn compose() -> Value {
    let mut documents = documents(&deploy_dir().join("compose.yaml"));
    assert_eq!(documents.len(), 1, "compose.yaml is one document");
    documents.remove(0)
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "compose.yaml has no service {name}");
    service
}

/// A service's container: `command` (a list, so no shell word splitting is
/// involved) and `environment` (a map or `NAME=value` list). The file uses
/// no compose interpolation.
fn container(compose: &Value, name: &str) -> Container {
    let service = service(compose, name);
    let place = format!("compose.yaml: service {name}");
    let argv = strings(&service["command"], &place);
    let mut env = BTreeMap::new();
    match &service["environment"] {
        Value::Null => {}
        Value::Mapping(map) => {
            for (key, value) in map {
                let key = key.as_str().expect("variable names are strings");
                let value = value
                    .as_str()
                    .unwrap_or_else(|| panic!("{place}: quote {key}'s value"));
                env.insert(key.to_owned(), env_value(value, &place));
            }
        }
        list => {
            for item in strings(list, &place) {
                let (key, value) = item.split_once('=').expect("NAME=value");
                env.insert(key.to_owned(), env_value(value, &place));
            }
        }
    }
    assert!(
        argv.iter().all(|word| !word.contains('$')),
        "{place}: no interpolation in command lines"
    );
    Container {
        place,
        argv,
        env,
        indexed: false,
    }
}

/// The bus node's configuration, from its one `bus` command line.
fn bus_config(compose: &Value, name: &str) -> BusConfig {
    let container = container(compose, name);
    let lines = container.command_lines();
    assert_eq!(lines.len(), 1, "{}: one `bus` command", container.place);
    assert_eq!(lines[0][0], "bus", "{}: runs bus", container.place);
    parse_bus(&container, &lines[0])
}

#[test]
fn compose_runs_redis_with_an_append_only_file() {
    let compose = compose();
    let redis = service(&compose, "redis");
    let command = strings(&redis["command"], "compose.yaml: service redis");
    assert!(
        command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "redis runs with --appendonly yes: {command:?}"
    );
    let mounts = strings(&redis["volumes"], "redis volumes");
    assert!(
        mounts.iter().any(|m| m.ends_with(":/data")),
        "the AOF is on a volume"
    );
}

#[test]
fn compose_bus_nodes_share_redis_and_check_their_health() {
    let compose = compose();
    let mut node_ids = Vec::new();
    for name in BUS_NODES {
        let config = bus_config(&compose, name);
        let service = service(&compose, name);
        assert_eq!(config.broker, BrokerKind::Redis, "{name}: on Redis");
        let (host, _) = host_port(&config.redis_url, "redis");
        assert_eq!(host, "redis", "{name}: on the redis service");
        assert!(
            service["depends_on"]["redis"].is_mapping(),
            "{name} waits for redis"
        );
        assert!(
            !config.listen.ip().is_loopback(),
            "{name}: reachable from the sim"
        );
        let check = strings(&service["healthcheck"]["test"], name).join(" ");
        let url = format!("http://127.0.0.1:{}/health", config.listen.port());
        assert!(
            check.contains(&url),
            "{name}: health check {check:?} asks {url}"
        );
        node_ids.push(config.node_id.clone().expect("a node id per node"));
    }
    assert_ne!(node_ids[0], node_ids[1], "two distinct nodes");
}

#[test]
fn compose_sim_drives_both_nodes_once_they_are_healthy() {
    let compose = compose();
    let sim = service(&compose, "sim");
    let expected_targets: Vec<String> = BUS_NODES
        .iter()
        .map(|name| format!("ws://{name}:{}", bus_config(&compose, name).listen.port()))
        .collect();
    for name in BUS_NODES {
        assert_eq!(
            sim["depends_on"][name]["condition"].as_str(),
            Some("service_healthy"),
            "sim waits until {name} is healthy"
        );
    }
    let container = container(&compose, "sim");
    let lines = container.command_lines();
    assert_eq!(lines.len(), 1, "sim runs one command");
    let Command::Run(args) = parse_sim(&container, &lines[0]).command else {
        panic!("the sim service runs `sim run`");
    };
    assert_eq!(args.targets, expected_targets);
    let out = args.out.expect("--out: the report goes to a volume");
    let mounts = strings(&sim["volumes"], "sim volumes");
    let volume = mounts
        .iter()
        .find_map(|m| m.split_once(':').filter(|(_, at)| out.starts_with(at)))
        .unwrap_or_else(|| panic!("--out {} is on none of {mounts:?}", out.display()))
        .0;
    assert!(
        compose["volumes"].get(volume).is_some(),
        "{volume} is a named volume"
    );
    // The image copies scenarios/ to /app/scenarios and works in /app.
    assert!(
        args.scenario.is_relative(),
        "a scenario shipped in the image"
    );
    Scenario::load(repo_dir().join(&args.scenario)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_image_ships_both_binaries_and_the_scenarios() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    for needed in [
        "cargo build --release --locked -p bus -p sim",
        "COPY scenarios /app/scenarios",
        "WORKDIR /app",
        "CMD [\"bus\"]",
    ] {
        assert!(dockerfile.contains(needed), "deploy/Dockerfile: {needed}");
    }
}
