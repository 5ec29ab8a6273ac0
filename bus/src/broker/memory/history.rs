//! Topic history on the memory broker: each topic's log of messages with
//! their offsets, trimmed exactly by count and age, and its epoch. The
//! same answers as the Redis scripts (`lua/publish_history.lua`,
//! `lua/read_history.lua`); the conformance suite holds both to them.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::broker::{
    HistoryLimits, HistoryPolicy, HistoryQuery, HistoryRead, Offset, ReadOutcome, Stamp,
};

/// Every topic's history.
#[derive(Debug, Default)]
pub(super) struct Histories {
    topics: HashMap<String, TopicLog>,
}

#[derive(Debug)]
struct TopicLog {
    epoch: String,
    /// The last offset written (`n` 0 before the first message).
    head: Offset,
    entries: VecDeque<(Offset, Bytes)>,
}

impl TopicLog {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            head: Offset { n: 0, ms: 0 },
            entries: VecDeque::new(),
        }
    }

    fn trim(&mut self, policy: HistoryPolicy, now_ms: u64) {
        while self.entries.len() as u64 > policy.max_len {
            self.entries.pop_front();
        }
        if let Some(age) = policy.max_age {
            let oldest = now_ms.saturating_sub(age.as_millis() as u64);
            while self.entries.front().is_some_and(|(o, _)| o.ms < oldest) {
                self.entries.pop_front();
            }
        }
    }
}

/// A fresh epoch id: 16 hex digits.
pub(crate) fn new_epoch() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_owned()
}

impl Histories {
    /// Appends `payload` to `channel`'s history and returns its stamp.
    pub(super) fn append(
        &mut self,
        channel: &str,
        payload: &Bytes,
        policy: HistoryPolicy,
        now_ms: u64,
    ) -> Stamp {
        let log = self
            .topics
            .entry(channel.to_owned())
            .or_insert_with(TopicLog::new);
        let offset = Offset {
            n: log.head.n + 1,
            ms: now_ms.max(log.head.ms),
        };
        log.head = offset;
        log.entries.push_back((offset, payload.clone()));
        log.trim(policy, now_ms);
        Stamp {
            offset,
            epoch: log.epoch.clone(),
        }
    }

    /// Reads `channel`'s history as [`crate::broker::Broker::read_history`]
    /// says.
    pub(super) fn read(
        &mut self,
        channel: &str,
        query: &HistoryQuery,
        limits: HistoryLimits,
    ) -> HistoryRead {
        let log = self
            .topics
            .entry(channel.to_owned())
            .or_insert_with(TopicLog::new);
        let mut read = HistoryRead {
            epoch: log.epoch.clone(),
            head: log.head,
            outcome: ReadOutcome::Complete,
            entries: Vec::new(),
        };
        match query {
            HistoryQuery::Head => {}
            HistoryQuery::After { epoch, offset } => {
                read.outcome = after(log, epoch, *offset, None, limits, &mut read.entries);
            }
            HistoryQuery::Between {
                epoch,
                after: from,
                before,
            } => {
                let until = Some(before.n.saturating_sub(1));
                read.outcome = after(log, epoch, *from, until, limits, &mut read.entries);
            }
            HistoryQuery::Last { count } => {
                let count = (*count).min(limits.max);
                let mut budget = limits.max_bytes;
                for (offset, body) in log.entries.iter().rev().take(count) {
                    if body.len() > budget {
                        read.outcome = ReadOutcome::Truncated;
                        break;
                    }
                    budget -= body.len();
                    read.entries.push((*offset, body.clone()));
                }
                read.entries.reverse();
            }
        }
        read
    }

    /// Loses every topic's history, as a Redis that restarted without its
    /// data would (tests).
    pub(super) fn forget(&mut self) {
        self.topics.clear();
    }
}

/// The messages of `log` after `offset` of `epoch`, up to `n` = `until`
/// when given, all or nothing.
fn after(
    log: &TopicLog,
    epoch: &str,
    offset: Offset,
    until: Option<u64>,
    limits: HistoryLimits,
    out: &mut Vec<(Offset, Bytes)>,
) -> ReadOutcome {
    if epoch != log.epoch {
        return ReadOutcome::EpochChanged;
    }
    let from = offset.n;
    if from > log.head.n {
        return ReadOutcome::UnknownOffset;
    }
    let head = until.map_or(log.head.n, |u| u.min(log.head.n));
    if from >= head {
        return ReadOutcome::Complete;
    }
    let behind = head - from;
    if behind > limits.max as u64 {
        return ReadOutcome::TooFarBehind { behind };
    }
    let first = log.entries.front().map_or(head + 1, |(o, _)| o.n);
    if first > from + 1 {
        return ReadOutcome::WindowExceeded {
            missed: first - from - 1,
        };
    }
    let mut bytes = 0;
    for (o, body) in log
        .entries
        .iter()
        .filter(|(o, _)| o.n > from && o.n <= head)
    {
        bytes += body.len();
        if bytes > limits.max_bytes {
            out.clear();
            return ReadOutcome::TooFarBehind { behind };
        }
        out.push((*o, body.clone()));
    }
    ReadOutcome::Complete
}
