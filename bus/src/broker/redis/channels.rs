//! The names Redis sees for broker channels and patterns: the namespace in
//! front and, on a Redis Cluster, hash tags that choose each channel's shard.
//!
//! | broker name | single Redis | cluster |
//! | --- | --- | --- |
//! | `topic:W/name` | `ns:topic:W/name` | `ns:topic:{W}/name` |
//! | pattern `topic:W/a*` | `ns:topic:W/a*` | `ns:topic:{W}/a*` |
//! | `wake:Q` (queue wake-ups) | `ns:wake:Q` | `ns:wake:{Q}` |
//! | anything else | `ns:name` | `ns:name` |
//!
//! On a cluster every topic and every pattern of workspace `W` hash to the
//! slot of `W`, so one shard holds a workspace's exact topic subscriptions
//! *and* its pattern subscriptions; a topic publish runs there and counts
//! both exactly. A wake channel shares the hash tag of its queue's keys, so
//! the enqueue script may `SPUBLISH` it. Broker names never contain braces
//! (see [`crate::message::names`]), so the tags can be stripped again on
//! delivery without ambiguity.

use std::borrow::Cow;

use crate::broker::{BrokerError, Result};

const TOPIC: &str = "topic:";
const WAKE: &str = "wake:";

/// Maps broker-level names to Redis names and back for one broker.
#[derive(Debug, Clone)]
pub(super) struct ChannelNames {
    /// The namespace with its trailing `:`.
    prefix: String,
    /// Whether to add hash tags (only a cluster needs them).
    cluster: bool,
}

impl ChannelNames {
    pub(super) fn new(prefix: String, cluster: bool) -> Self {
        Self { prefix, cluster }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis channel of a broker channel.
    pub(super) fn channel(&self, name: &str) -> String {
        if !self.cluster {
            return format!("{}{name}", self.prefix);
        }
        if let Some((workspace, rest)) = topic_parts(name) {
            return format!("{}{TOPIC}{{{workspace}}}/{rest}", self.prefix);
        }
        if let Some(queue) = name.strip_prefix(WAKE) {
            return format!("{}{WAKE}{{{queue}}}", self.prefix);
        }
        format!("{}{name}", self.prefix)
    }

    /// The Redis pattern of a broker pattern. A cluster routes a pattern to
    /// one shard, so there it must name its workspace literally
    /// (`topic:W/...`); any other pattern is refused rather than silently
    /// missing messages published on other shards.
    pub(super) fn pattern(&self, pattern: &str) -> Result<String> {
        if !self.cluster {
            return Ok(format!("{}{pattern}", self.prefix));
        }
        match topic_parts(pattern) {
            Some((workspace, rest)) if !workspace.bytes().any(is_glob_byte) => {
                Ok(format!("{}{TOPIC}{{{workspace}}}/{rest}", self.prefix))
            }
            _ => Err(BrokerError::Unsupported(format!(
                "pattern {pattern:?} on a Redis Cluster: patterns must start with \
                 `topic:<workspace>/` and name the workspace without glob characters"
            ))),
        }
    }

    /// The broker name of a channel or pattern that Redis delivered.
    pub(super) fn broker_name<'a>(&self, redis_name: &'a str) -> Cow<'a, str> {
        let name = redis_name
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(redis_name);
        if !self.cluster {
            return Cow::Borrowed(name);
        }
        if let Some(tagged) = name.strip_prefix(TOPIC).and_then(|r| r.strip_prefix('{'))
            && let Some((workspace, rest)) = tagged.split_once("}/")
        {
            return Cow::Owned(format!("{TOPIC}{workspace}/{rest}"));
        }
        if let Some(queue) = name
            .strip_prefix(WAKE)
            .and_then(|r| r.strip_prefix('{'))
            .and_then(|r| r.strip_suffix('}'))
        {
            return Cow::Owned(format!("{WAKE}{queue}"));
        }
        Cow::Borrowed(name)
    }

    /// Whether a publish to this broker channel may have to reach pattern
    /// subscribers. Patterns only ever match topics (names resolve every
    /// pattern under `topic:W/`), and on a cluster only topics are routed so
    /// that a pattern can see them.
    pub(super) fn is_topic(name: &str) -> bool {
        name.starts_with(TOPIC)
    }
}

/// `topic:W/rest` split into `W` and `rest`, when `W` is not empty.
fn topic_parts(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(TOPIC)?
        .split_once('/')
        .filter(|(workspace, _)| !workspace.is_empty())
}

fn is_glob_byte(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b']' | b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ChannelNames {
        ChannelNames::new("ns:".into(), true)
    }

    #[test]
    fn a_single_redis_only_adds_the_namespace() {
        let names = ChannelNames::new("ns:".into(), false);
        assert_eq!(names.channel("topic:w1/a"), "ns:topic:w1/a");
        assert_eq!(names.pattern("*").unwrap(), "ns:*");
        assert_eq!(names.broker_name("ns:wake:w1/q"), "wake:w1/q");
    }

    #[test]
    fn cluster_topics_and_patterns_share_their_workspace_tag() {
        let names = cluster();
        assert_eq!(names.channel("topic:w1/agent:x"), "ns:topic:{w1}/agent:x");
        assert_eq!(
            names.pattern("topic:w1/agent:*").unwrap(),
            "ns:topic:{w1}/agent:*"
        );
        assert_eq!(names.channel("inbox:w1/a1"), "ns:inbox:w1/a1");
        assert_eq!(names.channel("broadcast"), "ns:broadcast");
        assert_eq!(names.channel("wake:w1/jobs"), "ns:wake:{w1/jobs}");
    }

    #[test]
    fn cluster_names_round_trip() {
        let names = cluster();
        for name in [
            "topic:w1/agent:x",
            "topic:w1/a/b",
            "wake:w1/agent:a1:inbox",
            "inbox:w1/a1",
            "workspace:w1",
            "internal:health:n1",
            "topic:nowhere",
        ] {
            assert_eq!(names.broker_name(&names.channel(name)), name);
        }
        let pattern = "topic:w1/agent:*";
        assert_eq!(names.broker_name(&names.pattern(pattern).unwrap()), pattern);
    }

    #[test]
    fn cluster_patterns_must_name_their_workspace() {
        let names = cluster();
        for pattern in ["*", "topic:*", "topic:w*/x", "inbox:w1/*", "topic:/x"] {
            assert!(
                matches!(names.pattern(pattern), Err(BrokerError::Unsupported(_))),
                "{pattern}"
            );
        }
    }
}
