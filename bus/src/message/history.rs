//! Topic history's names and rules: where a message sits in its topic's
//! history ([`Offset`], [`Stamp`]) and which topics keep one
//! ([`HistoryRule`], set per node with `--history GLOB=N[,T]`).
//!
//! An offset is `"<ms>-<n>"`: `n` counts the topic's messages within its
//! epoch with no gap (1, 2, 3, ...), so two offsets say whether anything
//! lies between them; `ms` is the broker's clock when it was written,
//! never decreasing, which is what trims history by age. The epoch is an
//! id of the topic's history; a new one means the history was lost (Redis
//! restarted without its data, the keys were evicted) and offsets of the
//! old one say nothing any more.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::glob;

/// Most messages one topic's history may keep.
pub const MAX_HISTORY_LEN: u64 = 100_000;

/// Longest a topic's history may keep a message.
pub const MAX_HISTORY_AGE: Duration = Duration::from_secs(24 * 3600);

/// Most history rules one node may have.
pub const MAX_HISTORY_RULES: usize = 64;

/// Where a message sits in its topic's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offset {
    /// The position within the epoch: 1 for the first message, no gaps.
    pub n: u64,
    /// When it was written (broker clock, ms since the epoch).
    pub ms: u64,
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

/// An offset that is not `"<ms>-<n>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an offset (\"<ms>-<n>\", as message pushes carry it)")]
pub struct BadOffset(pub String);

impl FromStr for Offset {
    type Err = BadOffset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadOffset(s.chars().take(64).collect());
        let (ms, n) = s.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(n) {
            return Err(bad());
        }
        Ok(Offset {
            ms: ms.parse().map_err(|_| bad())?,
            n: n.parse().map_err(|_| bad())?,
        })
    }
}

/// A message's place in its topic's history: its offset and the epoch it
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Where the message is.
    pub offset: Offset,
    /// The topic's history it is in.
    pub epoch: String,
}

/// How much of a topic's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPolicy {
    /// The last this many messages (trimmed approximately on Redis: a few
    /// more may stay, never fewer).
    pub max_len: u64,
    /// And, when set, nothing older than this.
    pub max_age: Option<Duration>,
}

/// Which topics keep history, and how much: `GLOB=N[,T]`, the glob over
/// `workspace/topic` (e.g. `acme/orders.*=1000,10m`: the last 1,000
/// messages, at most ten minutes old, of acme's topics starting with
/// `orders.`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HistoryRule {
    /// The glob over `workspace/topic`.
    pub glob: String,
    /// What matching topics keep.
    pub policy: HistoryPolicy,
}

/// A history rule that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history rule {rule:?}: {reason} (expected GLOB=N[,T], e.g. `acme/orders.*=1000,10m`)")]
pub struct BadRule {
    /// The rule as given.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for HistoryRule {
    type Err = BadRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| BadRule {
            rule: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (glob, keep) = s.rsplit_once('=').ok_or_else(|| bad("no `=`"))?;
        if glob.is_empty() || !glob.contains('/') {
            return Err(bad("the glob must be over workspace/topic, e.g. `acme/*`"));
        }
        let (len, age) = match keep.split_once(',') {
            Some((len, age)) => (len, Some(age)),
            None => (keep, None),
        };
        let max_len: u64 = len
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if max_len == 0 || max_len > MAX_HISTORY_LEN {
            return Err(bad(&format!("N must be 1 to {MAX_HISTORY_LEN}")));
        }
        let max_age = match age {
            None => None,
            Some(age) => {
                let age = humantime::parse_duration(age.trim())
                    .map_err(|e| bad(&format!("T is not a duration: {e}")))?;
                if age.is_zero() || age > MAX_HISTORY_AGE {
                    return Err(bad("T must be more than 0 and at most 24h"));
                }
                Some(age)
            }
        };
        Ok(HistoryRule {
            glob: glob.to_owned(),
            policy: HistoryPolicy { max_len, max_age },
        })
    }
}

impl TryFrom<String> for HistoryRule {
    type Error = BadRule;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HistoryRule> for String {
    fn from(rule: HistoryRule) -> String {
        rule.to_string()
    }
}

impl fmt::Display for HistoryRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.glob, self.policy.max_len)?;
        if let Some(age) = self.policy.max_age {
            write!(f, ",{}", humantime::format_duration(age))?;
        }
        Ok(())
    }
}

/// The policy of the first rule matching topic `name` of `workspace`.
pub fn policy_for(rules: &[HistoryRule], workspace: &str, name: &str) -> Option<HistoryPolicy> {
    if rules.is_empty() {
        return None;
    }
    let subject = format!("{workspace}/{name}");
    rules
        .iter()
        .find(|r| glob::matches(&r.glob, &subject))
        .map(|r| r.policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_and_write_as_ms_dash_n() {
        let o: Offset = "1733155200123-42".parse().unwrap();
        assert_eq!(
            o,
            Offset {
                n: 42,
                ms: 1_733_155_200_123
            }
        );
        assert_eq!(o.to_string(), "1733155200123-42");
        for bad in [
            "",
            "12",
            "-1",
            "1-",
            "a-1",
            "1-2-3",
            "1 -2",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<Offset>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_read_and_pick_the_first_match() {
        let rules: Vec<HistoryRule> = ["acme/orders.*=1000,10m", "*/audit:*=500"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        assert_eq!(
            rules[0].policy,
            HistoryPolicy {
                max_len: 1000,
                max_age: Some(Duration::from_secs(600))
            }
        );
        assert_eq!(rules[0].to_string(), "acme/orders.*=1000,10m");
        assert_eq!(
            policy_for(&rules, "acme", "orders.eu").unwrap().max_len,
            1000
        );
        assert_eq!(policy_for(&rules, "beta", "audit:x").unwrap().max_len, 500);
        assert_eq!(policy_for(&rules, "beta", "orders.eu"), None);
        for bad in [
            "orders=10",
            "a/b",
            "a/b=0",
            "a/b=x",
            "a/b=100001",
            "a/b=1,0s",
            "a/b=1,2d",
            "a/b=1,soon",
        ] {
            assert!(bad.parse::<HistoryRule>().is_err(), "{bad:?}");
        }
    }
}
