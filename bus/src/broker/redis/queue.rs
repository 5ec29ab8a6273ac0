//! Queue keys and the Lua scripts that move messages between them.
//!
//! Queue `N` in namespace `ns` lives in nine keys sharing the hash tag `{N}`:
//! `ns:q:{N}:ready` (sorted set, score = priority and sequence),
//! `:delayed` and `:processing` (sorted sets, score = due time in ms),
//! `:dead` (sorted set, score = dead-letter time), `:msgs` (hash id → JSON),
//! `:prio` and `:attempts` (hashes id → number), `:reasons` (hash id →
//! dead-letter reason), `:seq` (counter) and `:acked` (sorted set of ids
//! acked in the last few seconds, so repeated acks are idempotent).

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The loaded scripts; each is the prelude plus its body.
#[derive(Debug)]
pub(super) struct Scripts {
    pub enqueue: Script,
    pub claim: Script,
    pub ack: Script,
    pub reject: Script,
    pub reclaim: Script,
    /// Admits a queue into its workspace's budget (no prelude: no queue keys).
    pub admit_queue: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Self {
            enqueue: with_prelude(include_str!("lua/enqueue.lua")),
            claim: with_prelude(include_str!("lua/claim.lua")),
            ack: with_prelude(include_str!("lua/ack.lua")),
            reject: with_prelude(include_str!("lua/reject.lua")),
            reclaim: with_prelude(include_str!("lua/reclaim.lua")),
            admit_queue: Script::new(include_str!("lua/admit_queue.lua")),
        }
    }
}

/// The keys of one queue, in the order every script expects them.
#[derive(Debug, Clone)]
pub(super) struct QueueKeys {
    pub ready: String,
    pub delayed: String,
    pub processing: String,
    pub dead: String,
    pub msgs: String,
    pub prio: String,
    pub attempts: String,
    pub reasons: String,
    pub seq: String,
    /// Recently acked ids (sorted set by ack time), so a repeated ack is
    /// answered like the first.
    pub acked: String,
}

impl QueueKeys {
    /// `prefix` is the namespace with its trailing `:`.
    pub(super) fn new(prefix: &str, queue: &str) -> Self {
        let key = |part: &str| format!("{prefix}q:{{{queue}}}:{part}");
        Self {
            ready: key("ready"),
            delayed: key("delayed"),
            processing: key("processing"),
            dead: key("dead"),
            msgs: key("msgs"),
            prio: key("prio"),
            attempts: key("attempts"),
            reasons: key("reasons"),
            seq: key("seq"),
            acked: key("acked"),
        }
    }

    pub(super) fn all(&self) -> [&str; 10] {
        [
            &self.ready,
            &self.delayed,
            &self.processing,
            &self.dead,
            &self.msgs,
            &self.prio,
            &self.attempts,
            &self.reasons,
            &self.seq,
            &self.acked,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_queue_share_a_hash_tag() {
        let keys = QueueKeys::new("bus:", "w1/jobs");
        for key in keys.all() {
            assert!(key.starts_with("bus:q:{w1/jobs}:"), "{key}");
        }
        assert_eq!(keys.ready, "bus:q:{w1/jobs}:ready");
    }
}
