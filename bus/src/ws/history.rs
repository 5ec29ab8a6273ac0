//! The history ops of a session: where each subscribed topic's history
//! stands, resuming from an agent's offset (the replay and the switch to
//! live through [`super::gate`]), and `history` reads.
//!
//! A resume replays everything after the agent's offset or nothing: the
//! read is all-or-nothing and bounded ([`limits::MAX_REPLAY`] messages, half
//! the outbound byte budget), so a `recovered: true` is never contradicted
//! by a message trimmed meanwhile, and the replay fits the connection's
//! outbound queue at once.

use std::collections::BTreeMap;

use axum::extract::ws::Utf8Bytes;

use super::session::{OpResult, Resume, Session};
use crate::broker::{HistoryLimits, HistoryQuery, HistoryRead, Offset, ReadOutcome, Stamp};
use crate::limits;
use crate::message::history::BadOffset;
use crate::message::names::{self, Channel};
use crate::protocol::{ErrorCode, OkResult, ResumePoint, TopicHistory, message_frame};
use crate::reply::{self, OpError};

/// Longest epoch a resume may name (the bus's own are 16 characters).
const MAX_EPOCH_LEN: usize = 64;

/// Where an agent asks to resume a topic: its last offset and epoch.
pub(super) type Point = Option<(Offset, String)>;

impl Session {
    /// Checks `resume` against the subscribe's `topics` (every key one of
    /// them, offsets and epochs well formed) and lines its points up with
    /// `channels`.
    pub(super) fn resume_points(
        &self,
        topics: &[String],
        channels: &[Channel],
        mut resume: BTreeMap<String, ResumePoint>,
    ) -> Result<Vec<Point>, OpError> {
        if let Some(stray) = resume.keys().find(|k| !topics.contains(k)) {
            return Err(OpError::new(
                ErrorCode::BadFrame,
                format!("resume names {stray:?}, which this subscribe does not"),
            ));
        }
        let bad = |e: BadOffset| OpError::new(ErrorCode::BadFrame, e.to_string());
        let mut points = Vec::with_capacity(channels.len());
        for (topic, _) in topics.iter().zip(channels) {
            let Some(point) = resume.remove(topic) else {
                points.push(None);
                continue;
            };
            if point.epoch.is_empty() || point.epoch.len() > MAX_EPOCH_LEN {
                return Err(OpError::new(
                    ErrorCode::BadFrame,
                    format!(
                        "the epoch to resume {topic:?} from must be 1 to {MAX_EPOCH_LEN} characters"
                    ),
                ));
            }
            points.push(Some((point.offset.parse().map_err(bad)?, point.epoch)));
        }
        Ok(points)
    }

    /// Gates the resumed topics that keep history, before they are
    /// subscribed; returns their channels.
    pub(super) fn hold_resumed(&self, channels: &[Channel], points: &[Point]) -> Vec<String> {
        let router = &self.state.router;
        let mut gated = Vec::new();
        for (channel, point) in channels.iter().zip(points) {
            if point.is_some() && router.history_policy(channel).is_some() {
                let key = channel.key();
                self.gates.hold(&key);
                gated.push(key);
            }
        }
        gated
    }

    /// For every subscribed topic that keeps history: where it stands, or,
    /// resumed, what was recovered (the replays are queued in
    /// `self.resumes`, to follow the reply).
    pub(super) async fn histories(
        &mut self,
        channels: &[Channel],
        points: Vec<Point>,
    ) -> BTreeMap<String, TopicHistory> {
        let mut out = BTreeMap::new();
        for (channel, point) in channels.iter().zip(points) {
            let wire = channel.wire_name();
            if self.state.router.history_policy(channel).is_none() {
                if point.is_some() {
                    out.insert(wire, not_kept());
                }
                continue;
            }
            let entry = match point {
                None => self.head(channel).await,
                Some((offset, epoch)) => self.resume(channel, offset, epoch).await,
            };
            out.insert(wire, entry);
        }
        out
    }

    /// Where `channel`'s history stands.
    async fn head(&self, channel: &Channel) -> TopicHistory {
        let limits = HistoryLimits {
            max: 0,
            max_bytes: 0,
        };
        match self
            .state
            .router
            .read_history(channel, &HistoryQuery::Head, limits)
            .await
        {
            Ok(read) => TopicHistory {
                epoch: read.epoch,
                offset: read.head.to_string(),
                ..TopicHistory::default()
            },
            Err(err) => TopicHistory {
                recovered: None,
                replayed: None,
                ..unavailable(&err.to_string())
            },
        }
    }

    /// Reads `channel`'s history after `offset` of `epoch` and queues its
    /// replay (or, when it cannot be recovered, the release of the held
    /// messages).
    async fn resume(&mut self, channel: &Channel, offset: Offset, epoch: String) -> TopicHistory {
        let config = &self.state.config;
        let limits = HistoryLimits {
            max: limits::MAX_REPLAY.min(config.outbound_queue / 2),
            max_bytes: config.outbound_bytes / 2,
        };
        let query = HistoryQuery::After { epoch, offset };
        let read = self
            .state
            .router
            .read_history(channel, &query, limits)
            .await;
        let key = channel.key();
        let (entry, resume) = match read {
            Ok(read) if read.outcome == ReadOutcome::Complete => recovered(&key, offset, read),
            Ok(read) => {
                let (reason, missed) = reply::resume_failure(read.outcome);
                let entry = TopicHistory {
                    epoch: read.epoch,
                    offset: read.head.to_string(),
                    recovered: Some(false),
                    replayed: Some(0),
                    reason: Some(reason.to_owned()),
                    missed,
                };
                (entry, release(&key))
            }
            Err(err) => (unavailable(&err.to_string()), release(&key)),
        };
        self.resumes.push(resume);
        entry
    }

    /// The `history` op: the last messages of a topic that keeps history.
    pub(super) async fn history(&mut self, topic: String, last: Option<usize>) -> OpResult {
        self.allowed(&topic)?;
        let channel = names::resolve_topic(self.identity().scope(), &topic)?;
        let count = limits::history_count(last.map(|n| n as u64));
        let limits = HistoryLimits {
            max: count,
            max_bytes: limits::MAX_HISTORY_BYTES,
        };
        let read = self
            .state
            .router
            .read_history(&channel, &HistoryQuery::Last { count }, limits)
            .await?;
        Ok(OkResult {
            topic: Some(topic),
            epoch: Some(read.epoch.clone()),
            offset: Some(read.head.to_string()),
            truncated: Some(read.outcome == ReadOutcome::Truncated),
            messages: Some(reply::history_entries(&read)),
            ..OkResult::default()
        })
    }
}

/// A resume that recovered everything after `offset`: the replay, and
/// live copies up to its last offset dropped.
fn recovered(key: &str, offset: Offset, read: HistoryRead) -> (TopicHistory, Resume) {
    let hi = read.entries.last().map_or(offset, |(o, _)| *o);
    let replay: Vec<Utf8Bytes> = read
        .entries
        .iter()
        .map(|(o, body)| {
            let stamp = Stamp {
                offset: *o,
                epoch: read.epoch.clone(),
            };
            Utf8Bytes::from(message_frame(None, Some(&stamp), body))
        })
        .collect();
    let entry = TopicHistory {
        epoch: read.epoch,
        offset: hi.to_string(),
        recovered: Some(true),
        replayed: Some(replay.len() as u64),
        reason: None,
        missed: None,
    };
    let resume = Resume {
        channel: key.to_owned(),
        replay,
        floor: Some(hi.n),
    };
    (entry, resume)
}

/// A resume that recovered nothing: what was held goes out as it is.
fn release(key: &str) -> Resume {
    Resume {
        channel: key.to_owned(),
        replay: Vec::new(),
        floor: None,
    }
}

/// The answer for a resumed topic that keeps no history.
fn not_kept() -> TopicHistory {
    TopicHistory {
        recovered: Some(false),
        replayed: Some(0),
        reason: Some("no_history".to_owned()),
        ..TopicHistory::default()
    }
}

/// The answer when the history could not be read.
fn unavailable(why: &str) -> TopicHistory {
    tracing::warn!(cause = why, "history read failed");
    TopicHistory {
        recovered: Some(false),
        replayed: Some(0),
        reason: Some("unavailable".to_owned()),
        ..TopicHistory::default()
    }
}
