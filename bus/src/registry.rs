//! The connection registry: connection ↔ agent, workspace, user and
//! subscriptions, for operators' listings, per-agent limits and shutdown.
//! (The topic → connections index used for fan-out is the router's
//! subscription index, shared with the health checker.)

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::Identity;

/// One live connection.
#[derive(Debug)]
pub struct ConnectionEntry {
    pub id: u64,
    pub identity: Identity,
    pub connected_at_us: u64,
    pub remote: Option<std::net::SocketAddr>,
    /// Wire names this connection holds.
    pub subscriptions: Mutex<Subscriptions>,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Cancelled to close the connection (shutdown, slow consumer, ...).
    pub close: CancellationToken,
    /// Close code and reason the writer sends; the first one set wins.
    close_reason: Mutex<Option<(u16, String)>>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Subscriptions {
    pub topics: BTreeSet<String>,
    pub patterns: BTreeSet<String>,
}

/// What `/ws/connections` shows of a connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub id: u64,
    pub agent: String,
    pub workspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub connected_at_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    pub topics: Vec<String>,
    pub patterns: Vec<String>,
    pub frames_in: u64,
    pub frames_out: u64,
}

impl ConnectionEntry {
    /// Asks the connection to close with `code`; the first reason wins.
    pub fn close_with(&self, code: u16, reason: &str) {
        let mut slot = self.close_reason.lock().expect("lock");
        if slot.is_none() {
            *slot = Some((code, reason.to_owned()));
        }
        drop(slot);
        self.close.cancel();
    }

    /// The reason chosen for closing, if any.
    pub fn take_close_reason(&self) -> Option<(u16, String)> {
        self.close_reason.lock().expect("lock").take()
    }

    pub fn view(&self) -> ConnectionView {
        let subs = self.subscriptions.lock().expect("lock").clone();
        ConnectionView {
            id: self.id,
            agent: self.identity.agent.clone(),
            workspace: self.identity.workspace.clone(),
            user: self.identity.user.clone(),
            connected_at_us: self.connected_at_us,
            remote: self.remote.map(|r| r.to_string()),
            topics: subs.topics.into_iter().collect(),
            patterns: subs.patterns.into_iter().collect(),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
        }
    }
}

/// Why a connection could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("the node holds its maximum of {0} connections")]
    NodeFull(usize),
    #[error("agent {agent} already holds its maximum of {limit} connections")]
    AgentFull { agent: String, limit: usize },
}

/// All connections of this node.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    inner: RwLock<Inner>,
    /// Signalled whenever the last connection goes.
    emptied: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    connections: HashMap<u64, Arc<ConnectionEntry>>,
    per_agent: HashMap<(String, String), usize>,
}

/// Aggregate figures for `/ws/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStats {
    pub connections: usize,
    pub agents: usize,
    pub workspaces: usize,
    pub topic_subscriptions: usize,
    pub pattern_subscriptions: usize,
}

impl Registry {
    /// Adds a connection unless a limit forbids it (`0` = no per-agent limit).
    pub fn register(
        &self,
        identity: Identity,
        remote: Option<std::net::SocketAddr>,
        max_connections: usize,
        max_per_agent: usize,
    ) -> Result<Arc<ConnectionEntry>, RegisterError> {
        let mut inner = self.inner.write().expect("lock");
        if inner.connections.len() >= max_connections {
            return Err(RegisterError::NodeFull(max_connections));
        }
        let key = (identity.workspace.clone(), identity.agent.clone());
        let held = inner.per_agent.get(&key).copied().unwrap_or(0);
        if max_per_agent > 0 && held >= max_per_agent {
            return Err(RegisterError::AgentFull {
                agent: identity.agent,
                limit: max_per_agent,
            });
        }
        let entry = Arc::new(ConnectionEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            identity,
            connected_at_us: crate::message::now_micros(),
            remote,
            subscriptions: Mutex::default(),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            close: CancellationToken::new(),
            close_reason: Mutex::default(),
        });
        inner.per_agent.insert(key, held + 1);
        inner.connections.insert(entry.id, entry.clone());
        Ok(entry)
    }

    pub fn unregister(&self, id: u64) {
        let mut inner = self.inner.write().expect("lock");
        self.remove(&mut inner, id);
        if inner.connections.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn remove(&self, inner: &mut Inner, id: u64) {
        if let Some(entry) = inner.connections.remove(&id) {
            let key = (
                entry.identity.workspace.clone(),
                entry.identity.agent.clone(),
            );
            if let Some(n) = inner.per_agent.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    inner.per_agent.remove(&key);
                }
            }
        }
    }

    /// Returns once no connection is left.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        self.inner
            .read()
            .expect("lock")
            .connections
            .get(&id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("lock").connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` connections, lowest ids first.
    pub fn list(&self, limit: usize) -> Vec<ConnectionView> {
        let inner = self.inner.read().expect("lock");
        let mut ids: Vec<u64> = inner.connections.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .take(limit)
            .map(|id| inner.connections[id].view())
            .collect()
    }

    pub fn stats(&self) -> RegistryStats {
        let inner = self.inner.read().expect("lock");
        let mut workspaces = BTreeSet::new();
        let (mut topics, mut patterns) = (0, 0);
        for entry in inner.connections.values() {
            workspaces.insert(entry.identity.workspace.as_str());
            let subs = entry.subscriptions.lock().expect("lock");
            topics += subs.topics.len();
            patterns += subs.patterns.len();
        }
        RegistryStats {
            connections: inner.connections.len(),
            agents: inner.per_agent.len(),
            workspaces: workspaces.len(),
            topic_subscriptions: topics,
            pattern_subscriptions: patterns,
        }
    }

    /// Asks every connection to close with `code` (graceful shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for entry in self.inner.read().expect("lock").connections.values() {
            entry.close_with(code, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(agent: &str) -> Identity {
        Identity {
            agent: agent.into(),
            workspace: "w1".into(),
            user: None,
            allowed_topics: None,
            global_broadcast: false,
        }
    }

    #[test]
    fn limits_are_enforced_and_released() {
        let r = Registry::default();
        let a = r.register(identity("a"), None, 2, 1).unwrap();
        assert_eq!(
            r.register(identity("a"), None, 2, 1).unwrap_err(),
            RegisterError::AgentFull {
                agent: "a".into(),
                limit: 1
            }
        );
        r.register(identity("b"), None, 2, 1).unwrap();
        assert_eq!(
            r.register(identity("c"), None, 2, 1).unwrap_err(),
            RegisterError::NodeFull(2)
        );
        r.unregister(a.id);
        assert!(r.register(identity("a"), None, 2, 1).is_ok());
        assert_eq!(r.stats().agents, 2);
    }
}
