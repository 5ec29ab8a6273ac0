//! Topic history on Redis: a stream per topic (`ns:hs:` + its channel)
//! whose entry ids are the offsets, and a hash (`ns:hm:` + its channel)
//! with the epoch and the last offset; both carry the channel's hash tag,
//! so on a cluster they live in the topic's slot with its channel. Written
//! by `lua/publish_history.lua` in the same step as the publish, read by
//! `lua/read_history.lua`.

use std::sync::LazyLock;

use bytes::Bytes;
use redis::{Script, Value};

use super::channels::ChannelNames;
use super::compress;
use crate::broker::memory::new_epoch;
use crate::broker::{
    BrokerError, HistoryLimits, HistoryPolicy, HistoryQuery, HistoryRead, Offset, Published,
    ReadOutcome, Result, Stamp,
};

/// The publishing script (pipelines run it by hash, and load it when Redis
/// answers that it lost it).
pub(super) static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/publish_history.lua")));

static READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/read_history.lua")));

/// The stream and meta keys of topic channel `name`.
pub(super) fn keys(names: &ChannelNames, name: &str) -> (String, String) {
    let channel = names.channel(name);
    let rest = channel.strip_prefix(names.prefix()).unwrap_or(&channel);
    (
        format!("{}hs:{rest}", names.prefix()),
        format!("{}hm:{rest}", names.prefix()),
    )
}

/// The publishing script's arguments after its keys: the bounds, a fresh
/// epoch in case the topic has none, the publish mode, then the messages
/// (of one topic, in order).
pub(super) fn publish_args<'a>(
    payloads: impl IntoIterator<Item = &'a Bytes>,
    policy: HistoryPolicy,
    cluster: bool,
) -> Vec<Vec<u8>> {
    let age_ms = policy.max_age.map_or(0, |a| a.as_millis() as u64);
    let mut args = vec![
        policy.max_len.to_string().into_bytes(),
        age_ms.to_string().into_bytes(),
        new_epoch().into_bytes(),
        if cluster {
            b"c".to_vec()
        } else {
            b"s".to_vec()
        },
    ];
    args.extend(payloads.into_iter().map(|p| p.to_vec()));
    args
}

/// What the publishing script answered for `count` messages:
/// `{epoch, receivers1, offset1, ...}`.
pub(super) fn published(value: Value, count: usize) -> Result<Vec<Published>> {
    let bad = || BrokerError::Unsupported("the history script answered in an unknown shape".into());
    let values: Vec<Value> = parse(value)?;
    let mut values = values.into_iter();
    let epoch: String = parse(values.next().ok_or_else(bad)?)?;
    let mut out = Vec::with_capacity(count);
    while let (Some(receivers), Some(offset)) = (values.next(), values.next()) {
        let offset: String = parse(offset)?;
        out.push(Published {
            receivers: parse(receivers)?,
            stamp: Some(Stamp {
                offset: parse_offset(&offset)?,
                epoch: epoch.clone(),
            }),
        });
    }
    if out.len() != count {
        return Err(bad());
    }
    Ok(out)
}

/// A reply value as `T`.
pub(super) fn parse<T: redis::FromRedisValue>(value: Value) -> Result<T> {
    redis::from_redis_value(value).map_err(|e| BrokerError::Redis(e.into()))
}

fn parse_offset(text: &str) -> Result<Offset> {
    text.parse()
        .map_err(|e| BrokerError::Unsupported(format!("history answered a bad offset: {e}")))
}

/// Reads `channel`'s history (see [`crate::broker::Broker::read_history`]).
pub(super) async fn read(
    conn: &mut impl redis::aio::ConnectionLike,
    names: &ChannelNames,
    channel: &str,
    query: &HistoryQuery,
    limits: HistoryLimits,
) -> Result<HistoryRead> {
    let (stream, meta) = keys(names, channel);
    let mut invocation = READ.prepare_invoke();
    invocation
        .key(stream)
        .key(meta)
        .arg(new_epoch())
        .arg(match query {
            HistoryQuery::Head => "head",
            HistoryQuery::After { .. } => "after",
            HistoryQuery::Between { .. } => "between",
            HistoryQuery::Last { .. } => "last",
        })
        .arg(limits.max)
        .arg(limits.max_bytes);
    match query {
        HistoryQuery::Head => {}
        HistoryQuery::After { epoch, offset } => {
            invocation
                .arg(epoch.as_str())
                .arg(offset.to_string())
                .arg(offset.n);
        }
        HistoryQuery::Between {
            epoch,
            after,
            before,
        } => {
            invocation
                .arg(epoch.as_str())
                .arg(after.to_string())
                .arg(after.n)
                .arg(before.to_string())
                .arg(before.n);
        }
        HistoryQuery::Last { count } => {
            invocation.arg(*count);
        }
    }
    let values: Vec<Value> = invocation.invoke_async(conn).await?;
    parse_read(values)
}

/// `{epoch, head, outcome, count, id1, msg1, ...}` as a [`HistoryRead`].
fn parse_read(values: Vec<Value>) -> Result<HistoryRead> {
    let bad = || BrokerError::Unsupported("history answered in an unknown shape".into());
    let mut values = values.into_iter();
    let text = |v: Option<Value>| -> Result<String> { parse(v.ok_or_else(bad)?) };
    let epoch = text(values.next())?;
    let head = parse_offset(&text(values.next())?)?;
    let outcome = text(values.next())?;
    let count: u64 = parse(values.next().ok_or_else(bad)?)?;
    let outcome = match outcome.as_str() {
        "complete" => ReadOutcome::Complete,
        "epoch_changed" => ReadOutcome::EpochChanged,
        "window_exceeded" => ReadOutcome::WindowExceeded { missed: count },
        "too_far_behind" => ReadOutcome::TooFarBehind { behind: count },
        "unknown_offset" => ReadOutcome::UnknownOffset,
        "truncated" => ReadOutcome::Truncated,
        _ => return Err(bad()),
    };
    let mut entries = Vec::new();
    while let Some(id) = values.next() {
        let id: String = parse(id)?;
        let body: Vec<u8> = parse(values.next().ok_or_else(bad)?)?;
        let body =
            compress::unpack(Bytes::from(body)).map_err(|reason| BrokerError::Unreadable {
                what: format!("history entry {id}"),
                reason,
            })?;
        entries.push((parse_offset(&id)?, body));
    }
    Ok(HistoryRead {
        epoch,
        head,
        outcome,
        entries,
    })
}
