//! Agent groups: how many agents, which behaviour, and the knobs each behaviour reads.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::duration::HumanDuration;

/// A set of agents that behave alike.
///
/// One struct for every behaviour keeps the file format flat: fields a
/// behaviour does not read are allowed and ignored, and the fields it needs
/// are checked by validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique within the scenario; agents are named `<group>-<index>`.
    pub name: String,
    /// Number of agents (at least 1).
    pub count: u32,
    /// What the agents do.
    pub behaviour: Behaviour,
    /// Agents are spread round-robin over this many workspaces, named
    /// `ws-0`, `ws-1`, ...
    #[serde(default = "one")]
    pub workspaces: u32,
    /// The topics publishers pick from and subscribers subscribe to.
    #[serde(default)]
    pub topics: Topics,
    /// Glob patterns for pattern subscribers (e.g. "agent:topic-*").
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Messages per second per agent for sending behaviours, before the
    /// phase's rate multiplier.
    #[serde(default)]
    pub rate: f64,
    /// How send instants are spaced.
    #[serde(default)]
    pub arrival: Arrival,
    /// Payload size of sent messages, in bytes.
    #[serde(default)]
    pub payload_bytes: PayloadBytes,
    /// Simulated work per job (queue workers) or per answered request
    /// (direct chatters).
    #[serde(default)]
    pub processing_time: HumanDuration,
    /// Queue that producers fill and workers drain.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Priorities queue producers pick from, uniformly.
    #[serde(default = "default_priorities")]
    pub priorities: Vec<u8>,
    /// Fraction of claimed jobs a queue worker acks.
    #[serde(default = "default_ack_ratio")]
    pub ack_ratio: f64,
    /// Fraction of claimed jobs a queue worker rejects.
    #[serde(default)]
    pub reject_ratio: f64,
    /// Fraction of claimed jobs a queue worker drops without an answer, as
    /// if it crashed (the bus must reclaim them).
    #[serde(default)]
    pub crash_ratio: f64,
    /// Whether rejected jobs ask to be requeued (true) or dead-lettered.
    #[serde(default = "yes")]
    pub requeue: bool,
    /// Jobs a queue worker claims per dequeue.
    #[serde(default = "one")]
    pub batch: u32,
    /// The direct-chatter group this group sends requests to (default: its
    /// own group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<String>,
    /// How direct chatters' requests are delivered.
    #[serde(default)]
    pub delivery: Delivery,
    /// Where broadcasters broadcast.
    #[serde(default)]
    pub scope: BroadcastScope,
    /// Subscribers: after a reconnect, resume each topic from the last
    /// offset seen on it (topics the bus keeps history of, `--history` in
    /// `bus_args`). A recovered resume keeps the subscription window open
    /// across the outage, so every message sent meanwhile is owed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resume: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn default_queue() -> String {
    "jobs".to_owned()
}

fn default_priorities() -> Vec<u8> {
    vec![0]
}

fn default_ack_ratio() -> f64 {
    1.0
}

impl Group {
    /// The group direct requests go to: `peers`, or the group itself.
    pub fn peer_group(&self) -> &str {
        self.peers.as_deref().unwrap_or(&self.name)
    }

    /// The workspace of the agent with this index in the group.
    pub fn workspace_of(&self, agent_index: u32) -> String {
        format!("ws-{}", agent_index % self.workspaces.max(1))
    }
}

/// What an agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Publishes to topics at `rate`.
    Publisher,
    /// Subscribes to `topics.per_agent` topics and receives.
    Subscriber,
    /// Subscribes to `patterns` and receives.
    PatternSubscriber,
    /// Sends direct requests to agents of `peers` at `rate` and answers the
    /// requests it gets (rate 0: answers only).
    DirectChatter,
    /// Broadcasts to its workspace or globally at `rate`.
    Broadcaster,
    /// Enqueues jobs on `queue` at `rate` with one of `priorities`.
    QueueProducer,
    /// Claims jobs from `queue` and acks, rejects or crashes.
    QueueWorker,
    /// Tries at `rate` to reach what is not its own: other workspaces'
    /// channels and topics, other agents' inboxes, and (when the bus checks
    /// tokens) forged, expired and `alg: none` tokens. Every attempt must be
    /// refused; it also pattern-subscribes to `*` and reports anything from
    /// another workspace as misrouted.
    Adversary,
    /// A goose user on the bus's REST endpoints (publish, enqueue, claim,
    /// `/health`), a request every `1 / rate` seconds; no WebSocket.
    RestClient,
}

impl Behaviour {
    /// The snake_case name, as written in scenario files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Behaviour::Publisher => "publisher",
            Behaviour::Subscriber => "subscriber",
            Behaviour::PatternSubscriber => "pattern_subscriber",
            Behaviour::DirectChatter => "direct_chatter",
            Behaviour::Broadcaster => "broadcaster",
            Behaviour::QueueProducer => "queue_producer",
            Behaviour::QueueWorker => "queue_worker",
            Behaviour::Adversary => "adversary",
            Behaviour::RestClient => "rest_client",
        }
    }

    /// Whether agents of this behaviour must send on their own (so need a
    /// positive `rate`). Direct chatters may only answer, so are not here.
    pub const fn requires_rate(self) -> bool {
        matches!(
            self,
            Behaviour::Publisher
                | Behaviour::Broadcaster
                | Behaviour::QueueProducer
                | Behaviour::Adversary
                | Behaviour::RestClient
        )
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The topic set of a group: `<prefix>0` .. `<prefix><count - 1>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// How many topics.
    #[serde(default = "default_topic_count")]
    pub count: u32,
    /// Topic names are this prefix followed by the topic's index.
    #[serde(default = "default_topic_prefix")]
    pub prefix: String,
    /// How popular each topic is.
    #[serde(default)]
    pub distribution: TopicDistribution,
    /// Exponent `s` of the Zipf distribution (topic k has weight 1/k^s).
    #[serde(default = "default_zipf_exponent")]
    pub zipf_exponent: f64,
    /// Topics each subscriber subscribes to (publishers pick one from the
    /// whole set per message).
    #[serde(default = "one")]
    pub per_agent: u32,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            count: default_topic_count(),
            prefix: default_topic_prefix(),
            distribution: TopicDistribution::default(),
            zipf_exponent: default_zipf_exponent(),
            per_agent: 1,
        }
    }
}

impl Topics {
    /// The name of topic `index`.
    pub fn name(&self, index: u32) -> String {
        format!("{}{index}", self.prefix)
    }
}

fn default_topic_count() -> u32 {
    10
}

fn default_topic_prefix() -> String {
    "agent:topic-".to_owned()
}

fn default_zipf_exponent() -> f64 {
    1.0
}

/// How popular each topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopicDistribution {
    /// Every topic equally likely.
    #[default]
    Uniform,
    /// A few hot topics, a long tail (see `zipf_exponent`).
    Zipf,
}

/// How send instants are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced at 1/rate.
    #[default]
    Constant,
    /// Exponentially distributed gaps with mean 1/rate (bursty, like many
    /// independent clients).
    Poisson,
}

/// How direct chatters' requests are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Live push only (at most once).
    #[default]
    Pubsub,
    /// Stored in the recipient's inbox queue (at least once).
    Queue,
    /// Both; recipients dedupe by id.
    Both,
}

/// Where broadcasters broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastScope {
    /// To every agent of the broadcaster's workspace.
    #[default]
    Workspace,
    /// To every connected agent.
    Global,
}

/// Payload size: a fixed byte count or a uniform range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PayloadBytes {
    /// Every message has this many bytes.
    Fixed(u32),
    /// Sizes drawn uniformly from `min..=max`.
    Range {
        /// Smallest size.
        min: u32,
        /// Largest size (>= min).
        max: u32,
    },
}

impl Default for PayloadBytes {
    fn default() -> Self {
        PayloadBytes::Fixed(64)
    }
}

impl PayloadBytes {
    /// The inclusive size range.
    pub const fn bounds(self) -> (u32, u32) {
        match self {
            PayloadBytes::Fixed(n) => (n, n),
            PayloadBytes::Range { min, max } => (min, max),
        }
    }
}

impl<'de> Deserialize<'de> for PayloadBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PayloadVisitor)
    }
}

/// Hand-written instead of `untagged` so a mistake gets a precise message
/// rather than "did not match any variant".
struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = PayloadBytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte count or a table { min = .., max = .. }")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u32::try_from(v)
            .map(PayloadBytes::Fixed)
            .map_err(|_| E::custom(format!("must be between 0 and {}, got {v}", u32::MAX)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut min, mut max) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "min" => min = Some(map.next_value::<u32>()?),
                "max" => max = Some(map.next_value::<u32>()?),
                other => return Err(de::Error::unknown_field(other, &["min", "max"])),
            }
        }
        let min = min.ok_or_else(|| de::Error::missing_field("min"))?;
        let max = max.ok_or_else(|| de::Error::missing_field("max"))?;
        Ok(PayloadBytes::Range { min, max })
    }
}

impl JsonSchema for PayloadBytes {
    fn schema_name() -> Cow<'static, str> {
        "PayloadBytes".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A byte count, or a uniform range { min, max }.",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                {
                    "type": "object",
                    "properties": {
                        "min": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                        "max": { "type": "integer", "minimum": 0, "maximum": u32::MAX }
                    },
                    "required": ["min", "max"],
                    "additionalProperties": false
                }
            ]
        })
    }
}
