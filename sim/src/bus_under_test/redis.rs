//! The Redis behind a bus the simulator starts: `--redis`, the scenario's
//! URL, or a private redis-server; a unique key namespace per run, deleted
//! when the run stops; URLs with their credentials hidden for reports.

use std::time::{SystemTime, UNIX_EPOCH};

use localredis::RedisServer;

use super::{TargetError, TargetOptions, spawn};
use crate::scenario::{BrokerKind, Target};

/// The Redis a started bus uses: a URL, and the server if the simulator
/// started it.
#[derive(Debug, Default)]
pub(super) struct RedisChoice {
    pub(super) url: Option<String>,
    pub(super) server: Option<RedisServer>,
}

impl RedisChoice {
    pub(super) fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(RedisServer::pid)
    }

    /// "memory", or the Redis URL without credentials.
    pub(super) fn describe(&self) -> String {
        match &self.url {
            Some(url) => redact_url(url),
            None => "memory".to_owned(),
        }
    }
}

/// The Redis for `broker = "redis"`: `--redis`, else the scenario's URL,
/// else a private redis-server kept until [`RunningTarget::stop`]. Nothing
/// for the memory broker.
pub(super) async fn choose_redis(
    target: &Target,
    options: &TargetOptions,
) -> Result<RedisChoice, TargetError> {
    if target.broker == BrokerKind::Memory {
        return Ok(RedisChoice::default());
    }
    if let Some(url) = options
        .redis_url
        .clone()
        .or_else(|| target.redis_url.clone())
    {
        return Ok(RedisChoice {
            url: Some(url),
            server: None,
        });
    }
    let server = start_private_redis(options.durable_redis).await?;
    Ok(RedisChoice {
        url: Some(server.url()),
        server: Some(server),
    })
}

/// Starts a redis-server on a free loopback port (localredis's guard: it waits
/// for the ready line and kills the server on drop).
pub(super) async fn start_private_redis(durable: bool) -> Result<RedisServer, TargetError> {
    if spawn::find_on_path("redis-server").is_none() {
        return Err(TargetError::RedisServerMissing(localredis::INSTALL_HINT));
    }
    // localredis blocks while waiting and panics when it cannot start one.
    let args: &[&str] = if durable {
        &["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &[]
    };
    tokio::task::spawn_blocking(move || RedisServer::start_with(args))
        .await
        .map_err(|join| {
            let reason = match join.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "it panicked".to_owned()),
                Err(join) => join.to_string(),
            };
            TargetError::RedisStart(reason)
        })
}

/// Deletes every key under `namespace:` (SCAN and UNLINK, a page at a time).
pub(super) async fn forget_namespace(url: &str, namespace: &str) -> redis::RedisResult<u64> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{namespace}:*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len() as u64;
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut con)
                .await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// `sim-<pid>-<nanos>`: a Redis key prefix no other run uses.
pub(super) fn unique_namespace() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("sim-{}-{nanos}", std::process::id())
}

/// `redis://user:secret@host:6379/0` → `redis://***@host:6379/0`, for text
/// that ends up in reports.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}
