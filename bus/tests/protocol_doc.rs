//! Keeps docs/PROTOCOL.md true: every ```frames block runs against a live
//! bus (alice and bob of workspace w1), every frame an agent receives must
//! match the documented one, and every client op has an example.

use std::collections::{BTreeSet, HashMap};

use bus::protocol::CLIENT_OPS;
use serde_json::Value;

use crate::server::node;
use crate::support::client::{self, Client};

const DOC: &str = include_str!("../../docs/PROTOCOL.md");
const ANY: &str = "…";

/// The ```frames blocks of the document, with their starting line.
fn blocks() -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for (n, line) in DOC.lines().enumerate() {
        match (&mut current, line.trim()) {
            (None, "```frames") => current = Some((n + 1, Vec::new())),
            (Some(_), "```") => out.push(current.take().unwrap()),
            (Some((_, lines)), l) if !l.is_empty() => lines.push(l.to_owned()),
            _ => {}
        }
    }
    out
}

/// Whether `actual` has exactly the documented shape.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == ANY => true,
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y))
        }
        _ => expected == actual,
    }
}

/// Replaces `"$agent.id.path.to.field"` strings with that field of the
/// agent's reply to request `id`.
fn substitute(value: &mut Value, replies: &HashMap<(String, String), Value>) {
    match value {
        Value::String(s) if s.starts_with('$') => {
            let mut parts = s[1..].split('.');
            let agent = parts.next().unwrap().to_owned();
            let id = parts.next().unwrap().to_owned();
            let mut field = &replies[&(agent, id)];
            for p in parts {
                field = match p.parse::<usize>() {
                    Ok(i) => &field[i],
                    Err(_) => &field[p],
                };
            }
            *value = field.clone();
        }
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, replies)),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, replies)),
        _ => {}
    }
}

/// The first frame (backlog first) that matches `expected`; a reply and the
/// agent's own deliveries may arrive in either order, so frames read on the
/// way are kept for the next expectations.
async fn receive_matching(
    client: &mut Client,
    expected: &Value,
    line: usize,
    agent: &str,
) -> Value {
    if let Some(i) = client.backlog.iter().position(|f| matches(expected, f)) {
        return client.backlog.remove(i);
    }
    let mut seen = Vec::new();
    for _ in 0..20 {
        let frame = client.read().await.expect("connection open");
        if matches(expected, &frame) {
            return frame;
        }
        seen.push(frame.to_string());
        client.backlog.push(frame);
    }
    panic!(
        "PROTOCOL.md block at line {line}: {agent} expected\n  {expected}\nbut got\n  {}",
        seen.join("\n  ")
    );
}

async fn run_block(start_line: usize, lines: &[String], ops: &mut BTreeSet<String>) {
    // The topics of the "Topic history" examples keep three messages.
    let n = node("memory", |c| {
        c.history = vec!["w1/orders*=3".parse().unwrap()]
    })
    .await;
    let url = n.server.ws_url();
    let mut agents: HashMap<&str, Client> = HashMap::new();
    agents.insert("alice", client::connect(&url, "alice", "w1").await);
    agents.insert("bob", client::connect(&url, "bob", "w1").await);
    let mut replies = HashMap::new();
    for line in lines {
        let (who, frame) = line
            .split_once(' ')
            .expect("`agent> frame` or `agent< frame`");
        let (agent, dir) = who.split_at(who.len() - 1);
        let mut frame: Value = serde_json::from_str(frame)
            .unwrap_or_else(|e| panic!("PROTOCOL.md line {start_line}: bad JSON {frame}: {e}"));
        substitute(&mut frame, &replies);
        let client = agents.get_mut(agent).expect("alice or bob");
        if dir == ">" {
            ops.insert(frame["op"].as_str().unwrap().to_owned());
            client.send(frame).await;
            continue;
        }
        let actual = if frame["op"] == "welcome" {
            client.welcome.clone()
        } else {
            receive_matching(client, &frame, start_line, agent).await
        };
        if let Some(id) = actual.get("id") {
            let id = id
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| id.to_string());
            replies.insert((agent.to_owned(), id), actual);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_example_holds() {
    let blocks = blocks();
    assert!(
        blocks.len() >= 10,
        "found only {} example blocks",
        blocks.len()
    );
    let mut ops = BTreeSet::new();
    for (line, frames) in &blocks {
        run_block(*line, frames, &mut ops).await;
    }
    let missing: Vec<&str> = CLIENT_OPS
        .iter()
        .copied()
        .filter(|op| !ops.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "ops without an example in PROTOCOL.md: {missing:?}"
    );
}
