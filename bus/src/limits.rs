//! The bounds of a request, one set for REST and WebSocket alike: how many
//! messages one enqueue or ack carries, how many jobs one claim takes, how
//! long a claim may wait, how long a listing may be. Each bound keeps one
//! request from holding a broker connection, a node's memory or a client's
//! reply for longer than the others get.

use std::time::Duration;

/// Most messages in one batch enqueue, and most ids in one batched ack. A
/// batch is one broker round trip (one Lua call on Redis), so it must stay
/// small enough not to stall every other command on the node's connection.
pub const MAX_BATCH: usize = 1000;

/// Most messages one dequeue (WebSocket) or claim (REST) takes.
pub const MAX_CLAIM: usize = 100;

/// Longest wait of a dequeue or claim: a waiting request holds a permit
/// and a task, so it must end even if no work ever arrives.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Most dequeue waits one WebSocket connection may have in progress, so a
/// client cannot park an unbounded number of tasks on the node.
pub const MAX_WAITS: usize = 8;

/// Most requests one WebSocket connection may have on their way at once
/// (publishes handed to the node's publish pipeline whose replies have not
/// gone out yet). At the bound the node stops reading that connection until
/// replies come back, so a client that publishes faster than the broker
/// answers is slowed down by TCP, not buffered without end.
pub const MAX_IN_FLIGHT: usize = 256;

/// Most payload bytes of those requests at once, per connection: a client
/// publishing large messages reaches this before [`MAX_IN_FLIGHT`].
pub const MAX_IN_FLIGHT_BYTES: usize = 4 << 20;

/// Messages a `history` request (WebSocket or REST) returns when it names
/// no `last`.
pub const DEFAULT_HISTORY: usize = 100;

/// Most messages one `history` request returns, however many it asks for.
pub const MAX_HISTORY: usize = 1000;

/// Most message bytes one `history` reply holds (the oldest asked for are
/// left out beyond it, and the reply says `truncated`).
pub const MAX_HISTORY_BYTES: usize = 4 << 20;

/// Most messages one resume replays. Everything replayed goes to the
/// connection's outbound queue at once, so this stays under half its frames
/// (`--outbound-queue`, 4,096 by default); the bytes replayed stay under
/// half its byte budget (`--outbound-bytes`). A resume further behind is
/// answered `recovered: false`, `too_far_behind`.
pub const MAX_REPLAY: usize = 2000;

/// `last` of a `history` request as it is served: 1 to [`MAX_HISTORY`],
/// [`DEFAULT_HISTORY`] when not given.
pub fn history_count(requested: Option<u64>) -> usize {
    let wanted = requested.unwrap_or(DEFAULT_HISTORY as u64);
    usize::try_from(wanted)
        .unwrap_or(MAX_HISTORY)
        .clamp(1, MAX_HISTORY)
}

/// Entries of a REST listing (connections, dead letters) when the request
/// names no `limit`.
pub const DEFAULT_LIST: usize = 1000;

/// Most entries of one REST listing, whatever `limit` asks for: a listing
/// is built in memory and serialized whole.
pub const MAX_LIST: usize = 10_000;

/// A request beyond a bound that cannot be clamped (clamping a batch would
/// drop messages the client sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at most {max} {what} per {op}")]
pub struct LimitError {
    /// What was counted, e.g. "messages".
    pub what: &'static str,
    /// The request, e.g. "enqueue".
    pub op: &'static str,
    /// The bound it exceeded.
    pub max: usize,
}

/// A budget that is used up: the request would hold more of something
/// (subscriptions, patterns, queues) than its connection, workspace or node
/// may. Answered with `limit_exceeded`; nothing of the request is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at most {max} {what} per {per}")]
pub struct QuotaError {
    /// What was counted, e.g. "patterns".
    pub what: &'static str,
    /// Whose budget, e.g. "connection", "workspace on this node".
    pub per: &'static str,
    /// The budget.
    pub max: usize,
}

/// Refuses a batch of more than [`MAX_BATCH`] items.
pub fn check_batch(len: usize, what: &'static str, op: &'static str) -> Result<(), LimitError> {
    if len > MAX_BATCH {
        return Err(LimitError {
            what,
            op,
            max: MAX_BATCH,
        });
    }
    Ok(())
}

/// The number of jobs a claim takes: at least one, at most [`MAX_CLAIM`].
pub fn claim_max(requested: usize) -> usize {
    requested.clamp(1, MAX_CLAIM)
}

/// How long a claim waits: `wait_ms`, at most [`MAX_WAIT`].
pub fn claim_wait(wait_ms: u64) -> Duration {
    Duration::from_millis(wait_ms).min(MAX_WAIT)
}

/// The length of a listing: `requested`, at most [`MAX_LIST`]. Takes a
/// `u64` so that any count a client can write is clamped, not wrapped.
pub fn list_limit(requested: u64) -> usize {
    usize::try_from(requested).map_or(MAX_LIST, |n| n.min(MAX_LIST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_up_to_the_bound_pass() {
        assert!(check_batch(MAX_BATCH, "messages", "enqueue").is_ok());
        let err = check_batch(MAX_BATCH + 1, "messages", "enqueue").unwrap_err();
        assert_eq!(err.to_string(), "at most 1000 messages per enqueue");
    }

    #[test]
    fn claims_and_waits_are_clamped() {
        assert_eq!(claim_max(0), 1);
        assert_eq!(claim_max(usize::MAX), MAX_CLAIM);
        assert_eq!(claim_wait(u64::MAX), MAX_WAIT);
        assert_eq!(claim_wait(5), Duration::from_millis(5));
    }

    #[test]
    fn huge_list_limits_are_clamped() {
        assert_eq!(list_limit(0), 0);
        assert_eq!(list_limit(7), 7);
        assert_eq!(list_limit(1 << 63), MAX_LIST);
        assert_eq!(list_limit(u64::MAX), MAX_LIST);
    }
}
