//! What each agent subscribes to, decided once when the plan is built: the
//! topic table, each subscriber's topics (round-robin, or drawn by Zipf
//! popularity from its own seed) and each pattern group's globs with the
//! topics they match. The agents' subscribe frames and the ledger's
//! windows are both made from these.

use std::sync::Arc;

use foldhash::HashMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::scenario::{Behaviour, Group, TopicDistribution};

/// What an agent subscribes to on connect: the one record its subscribe
/// frame and its ledger windows are both made from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Subscriptions {
    /// Nothing beyond the defaults.
    #[default]
    None,
    /// These topics (ids in the plan's [`TopicTable`]), distinct.
    Topics(Vec<u32>),
    /// These glob patterns, shared by the agents of a group.
    Patterns(Arc<[PatternSubscription]>),
}

/// One `psubscribe` pattern and the plan's topics it matches (with the
/// bus's own matcher), which its window expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSubscription {
    /// The wire glob, as sent.
    pub glob: String,
    /// Ids of the plan's topics it matches.
    pub topics: Vec<u32>,
}

/// Topic names interned to small ids carried in messages.
#[derive(Debug, Clone, Default)]
pub struct TopicTable {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl TopicTable {
    /// The id of topic `name`, given the next free id if it has none yet.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// The id of topic `name`; `None` when it is not in the table.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of topic `id`; panics when there is none.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// How many topics the table holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the table holds no topic.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Ids of the topics whose names match a (wire) glob.
    pub fn matching(&self, pattern: &str) -> Vec<u32> {
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| bus::message::glob::matches(pattern, n))
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// Salt of the topic choice's generator, so it draws apart from the
/// agent's own generator (same seed, other numbers).
const TOPIC_CHOICE_SALT: u64 = 0x7091_C5E1_EC70_0001;

/// The `per_agent` distinct topics (of the group's `ids`) agent `index`
/// subscribes to: round-robin for uniform popularity; for Zipf, drawn by
/// popularity without replacement (Efraimidis–Spirakis: each topic gets
/// the key `u^(1/weight)`, the highest keys win), so an agent always gets
/// exactly `per_agent` topics, the hot ones more often.
pub(super) fn topics_of(group: &Group, index: u32, seed: u64, ids: &[u32]) -> Vec<u32> {
    if ids.is_empty() {
        return Vec::new();
    }
    let per_agent = (group.topics.per_agent as usize).clamp(1, ids.len());
    match group.topics.distribution {
        TopicDistribution::Uniform => (0..per_agent)
            .map(|j| ids[(index as usize * per_agent + j) % ids.len()])
            .collect(),
        TopicDistribution::Zipf => {
            let mut rng = SmallRng::seed_from_u64(seed ^ TOPIC_CHOICE_SALT);
            let s = group.topics.zipf_exponent;
            let mut keyed: Vec<(f64, u32)> = ids
                .iter()
                .enumerate()
                .map(|(rank, id)| {
                    let weight = 1.0 / ((rank + 1) as f64).powf(s);
                    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                    (u.powf(1.0 / weight), *id)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            keyed
                .into_iter()
                .take(per_agent)
                .map(|(_, id)| id)
                .collect()
        }
    }
}

/// The patterns a group's agents psubscribe to, each with the topics it
/// matches: the group's `patterns` for pattern subscribers, `*` for
/// adversaries (who try to see everything), none for the others.
pub(super) fn patterns_of(group: &Group, topics: &TopicTable) -> Arc<[PatternSubscription]> {
    let globs: Vec<String> = match group.behaviour {
        Behaviour::PatternSubscriber => group.patterns.clone(),
        Behaviour::Adversary => vec!["*".to_owned()],
        _ => Vec::new(),
    };
    globs
        .into_iter()
        .map(|glob| PatternSubscription {
            topics: topics.matching(&glob),
            glob,
        })
        .collect()
}
