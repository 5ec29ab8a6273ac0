//! How results of the lower layers become replies on the wire, one way for
//! REST and WebSocket alike: [`OpError`] is the one mapping from errors
//! (names, router, limits) to an [`ErrorCode`], and the conversions from
//! broker results to the protocol's own types live here, at the edge, so a
//! broker change is never a protocol change.

use crate::broker::{self, BrokerError, Claimed, HistoryRead, ReadOutcome};
use crate::limits::{LimitError, QuotaError};
use crate::message::AgentMessage;
use crate::message::names::NameError;
use crate::protocol::{DecodeError, ErrorCode, HistoryEntry, Job, RejectOutcome};
use crate::router::RouterError;

/// A failed request: the machine-readable code both front ends answer
/// with, and the text a person reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    /// The wire code (`error` frames, REST `code` fields, the
    /// `bus_errors_total` label).
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl OpError {
    /// An error with a code chosen by the caller (rate limits, permissions,
    /// malformed requests).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<NameError> for OpError {
    fn from(e: NameError) -> Self {
        let code = match e {
            NameError::Invalid { .. } => ErrorCode::InvalidName,
            NameError::CrossWorkspace { .. } => ErrorCode::CrossWorkspace,
            NameError::Forbidden { .. } => ErrorCode::Forbidden,
        };
        Self::new(code, e.to_string())
    }
}

impl From<RouterError> for OpError {
    fn from(e: RouterError) -> Self {
        let code = match &e {
            RouterError::Broker(BrokerError::QueueFull { .. }) => ErrorCode::QueueFull,
            RouterError::Quota(_) => ErrorCode::LimitExceeded,
            RouterError::NoHistory(_) => ErrorCode::NoHistory,
            _ => ErrorCode::BrokerUnavailable,
        };
        Self::new(code, e.to_string())
    }
}

/// A batch over its bound is a malformed request (`bad_frame`), as it has
/// always been on the WebSocket; REST answers with the same code.
impl From<LimitError> for OpError {
    fn from(e: LimitError) -> Self {
        Self::new(ErrorCode::BadFrame, e.to_string())
    }
}

impl From<QuotaError> for OpError {
    fn from(e: QuotaError) -> Self {
        Self::new(ErrorCode::LimitExceeded, e.to_string())
    }
}

impl From<DecodeError> for OpError {
    fn from(e: DecodeError) -> Self {
        Self::new(e.code, e.message)
    }
}

/// Claimed messages of `queue` (its wire name) as the jobs a client acks.
pub fn jobs(queue: &str, claimed: Vec<Claimed>) -> Vec<Job> {
    claimed
        .into_iter()
        .map(|c| Job {
            queue: queue.to_owned(),
            message: c.message,
            deadline_ms: c.deadline_ms,
        })
        .collect()
}

impl From<broker::RejectOutcome> for RejectOutcome {
    fn from(outcome: broker::RejectOutcome) -> Self {
        match outcome {
            broker::RejectOutcome::Requeued { delay_ms, attempts } => {
                RejectOutcome::Requeued { delay_ms, attempts }
            }
            broker::RejectOutcome::DeadLettered { attempts } => {
                RejectOutcome::DeadLettered { attempts }
            }
        }
    }
}

/// A history read's messages as the wire shows them, oldest first. A
/// stored message that no longer parses is left out (and logged), as a
/// corrupt queue message is named rather than served.
pub fn history_entries(read: &HistoryRead) -> Vec<HistoryEntry> {
    read.entries
        .iter()
        .filter_map(
            |(offset, body)| match serde_json::from_slice::<AgentMessage>(body) {
                Ok(message) => Some(HistoryEntry {
                    offset: offset.to_string(),
                    message,
                }),
                Err(err) => {
                    tracing::warn!(%offset, cause = %err, "a message in history is not valid JSON");
                    None
                }
            },
        )
        .collect()
}

/// Why a resume recovered nothing, as the wire says it, and how many
/// messages the agent missed for good when that is known.
pub fn resume_failure(outcome: ReadOutcome) -> (&'static str, Option<u64>) {
    match outcome {
        ReadOutcome::Complete | ReadOutcome::Truncated => ("none", None),
        ReadOutcome::EpochChanged => ("epoch_changed", None),
        ReadOutcome::WindowExceeded { missed } => ("window_exceeded", Some(missed)),
        ReadOutcome::TooFarBehind { .. } => ("too_far_behind", None),
        ReadOutcome::UnknownOffset => ("unknown_offset", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_their_codes() {
        let cross = NameError::CrossWorkspace { name: "w2".into() };
        assert_eq!(OpError::from(cross).code, ErrorCode::CrossWorkspace);
        let full = RouterError::Broker(BrokerError::QueueFull {
            queue: "q".into(),
            limit: 1,
            added: 0,
        });
        assert_eq!(OpError::from(full).code, ErrorCode::QueueFull);
        let closed = RouterError::Broker(BrokerError::Closed);
        assert_eq!(OpError::from(closed).code, ErrorCode::BrokerUnavailable);
    }

    #[test]
    fn reject_outcomes_keep_their_wire_form() {
        let requeued = broker::RejectOutcome::Requeued {
            delay_ms: 100,
            attempts: 1,
        };
        let json = serde_json::to_value(RejectOutcome::from(requeued)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"outcome": "requeued", "delay_ms": 100, "attempts": 1})
        );
        let dead = RejectOutcome::from(broker::RejectOutcome::DeadLettered { attempts: 3 });
        let json = serde_json::to_value(dead).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"outcome": "dead_lettered", "attempts": 3})
        );
    }
}
