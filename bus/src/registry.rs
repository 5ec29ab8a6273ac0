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
use crate::limits::QuotaError;

/// One live connection.
#[derive(Debug)]
pub struct ConnectionEntry {
    /// The node-local id operators and logs use (`/ws/connections/{id}`).
    pub id: u64,
    /// Who the connection authenticated as.
    pub identity: Identity,
    /// When it was registered (µs since the epoch).
    pub connected_at_us: u64,
    /// The peer address, when the listener knows it.
    pub remote: Option<std::net::SocketAddr>,
    /// Wire names this connection holds.
    pub subscriptions: Mutex<Subscriptions>,
    /// Text frames received, for operators' listings.
    pub frames_in: AtomicU64,
    /// Frames written to the socket, for operators' listings.
    pub frames_out: AtomicU64,
    /// Cancelled to close the connection (shutdown, slow consumer, ...).
    pub close: CancellationToken,
    /// Close code and reason the writer sends; the first one set wins.
    close_reason: Mutex<Option<(u16, String)>>,
}

/// What one connection is subscribed to, in the agent's own wire names (so
/// listings show what the agent asked for, and close can resolve them again).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Subscriptions {
    /// Wire topics, the default inbox, workspace and broadcast included.
    pub topics: BTreeSet<String>,
    /// Wire patterns.
    pub patterns: BTreeSet<String>,
}

/// What `/ws/connections` shows of a connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// The connection id.
    pub id: u64,
    /// The agent id.
    pub agent: String,
    /// The agent's workspace.
    pub workspace: String,
    /// The human or service behind the agent, if the token names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// When the connection was registered (µs since the epoch).
    pub connected_at_us: u64,
    /// The peer address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Subscribed wire topics, sorted.
    pub topics: Vec<String>,
    /// Subscribed wire patterns, sorted.
    pub patterns: Vec<String>,
    /// Text frames received so far.
    pub frames_in: u64,
    /// Frames written so far.
    pub frames_out: u64,
}

impl ConnectionEntry {
    /// An entry the registry does not list or count (id 0): the node's own
    /// health probe, which runs an outbound queue like a connection's.
    pub fn unlisted(identity: Identity) -> Arc<Self> {
        Arc::new(Self {
            id: 0,
            identity,
            connected_at_us: crate::message::now_micros(),
            remote: None,
            subscriptions: Mutex::default(),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            close: CancellationToken::new(),
            close_reason: Mutex::default(),
        })
    }

    /// Asks the connection to close with `code`; the first reason wins.
    pub fn close_with(&self, code: u16, reason: &str) {
        let mut slot = self.close_reason.lock().expect("lock");
        if slot.is_none() {
            *slot = Some((code, reason.to_owned()));
        }
        drop(slot);
        self.close.cancel();
    }

    /// The close code chosen so far, if any (the reason stays for the
    /// writer).
    pub fn close_code(&self) -> Option<u16> {
        self.close_reason
            .lock()
            .expect("lock")
            .as_ref()
            .map(|(code, _)| *code)
    }

    /// The reason chosen for closing, if any.
    pub fn take_close_reason(&self) -> Option<(u16, String)> {
        self.close_reason.lock().expect("lock").take()
    }

    /// A snapshot of the connection for `/ws/connections`.
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
    /// The node holds `--max-connections` already.
    #[error("the node holds its maximum of {0} connections")]
    NodeFull(usize),
    /// The agent holds `--max-connections-per-agent` already.
    #[error("agent {agent} already holds its maximum of {limit} connections")]
    AgentFull {
        /// The agent.
        agent: String,
        /// Its limit.
        limit: usize,
    },
}

/// All connections of this node.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    inner: RwLock<Inner>,
    /// Signalled whenever the last connection goes.
    emptied: tokio::sync::Notify,
    /// Topic and pattern subscriptions (the default channels aside) each
    /// workspace's connections hold on this node.
    workspace_subscriptions: Mutex<HashMap<String, usize>>,
    /// The distinct patterns each workspace's connections hold on this
    /// node, each with the number of its connections that hold it.
    workspace_patterns: Mutex<HashMap<String, HashMap<String, usize>>>,
}

#[derive(Debug, Default)]
struct Inner {
    connections: HashMap<u64, Arc<ConnectionEntry>>,
    per_agent: HashMap<(String, String), usize>,
}

/// Aggregate figures for `/ws/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStats {
    /// Live connections.
    pub connections: usize,
    /// Distinct agents (workspace and id) connected.
    pub agents: usize,
    /// Distinct workspaces with a connection.
    pub workspaces: usize,
    /// Topic subscriptions over all connections.
    pub topic_subscriptions: usize,
    /// Pattern subscriptions over all connections.
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

    /// Removes a connection (its per-agent count too); wakes
    /// [`Registry::wait_empty`] when it was the last.
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

    /// The connection with `id`, if it is live.
    pub fn get(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        self.inner
            .read()
            .expect("lock")
            .connections
            .get(&id)
            .cloned()
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.inner.read().expect("lock").connections.len()
    }

    /// True when no connection is live.
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

    /// Aggregate figures for `/ws/stats`.
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

    /// Charges `n` more subscriptions to `workspace`, refused when the
    /// workspace would then hold more than `max` on this node.
    pub fn charge_subscriptions(
        &self,
        workspace: &str,
        n: usize,
        max: usize,
    ) -> Result<(), QuotaError> {
        if n == 0 {
            return Ok(());
        }
        let mut held = self.workspace_subscriptions.lock().expect("lock");
        let now = held.get(workspace).copied().unwrap_or(0);
        if now + n > max {
            return Err(QuotaError {
                what: "subscriptions",
                per: "workspace on this node",
                max,
            });
        }
        held.insert(workspace.to_owned(), now + n);
        Ok(())
    }

    /// Gives back `n` subscriptions charged to `workspace`.
    pub fn refund_subscriptions(&self, workspace: &str, n: usize) {
        let mut held = self.workspace_subscriptions.lock().expect("lock");
        if let Some(now) = held.get_mut(workspace) {
            *now = now.saturating_sub(n);
            if *now == 0 {
                held.remove(workspace);
            }
        }
    }

    /// Charges `patterns` (distinct, none held yet by the connection asking)
    /// to `workspace`: refused when the workspace would then hold more than
    /// `max` distinct patterns on this node, so that no workspace takes the
    /// whole node's pattern budget.
    pub fn charge_patterns(
        &self,
        workspace: &str,
        patterns: &[String],
        max: usize,
    ) -> Result<(), QuotaError> {
        if patterns.is_empty() {
            return Ok(());
        }
        let mut all = self.workspace_patterns.lock().expect("lock");
        let held = all.get(workspace);
        let now = held.map_or(0, HashMap::len);
        let new = patterns
            .iter()
            .filter(|p| held.is_none_or(|h| !h.contains_key(*p)))
            .count();
        if now + new > max {
            return Err(QuotaError {
                what: "distinct patterns",
                per: "workspace on this node",
                max,
            });
        }
        let held = all.entry(workspace.to_owned()).or_default();
        for pattern in patterns {
            *held.entry(pattern.clone()).or_default() += 1;
        }
        Ok(())
    }

    /// Gives back `patterns` one connection of `workspace` held.
    pub fn refund_patterns(&self, workspace: &str, patterns: &[String]) {
        if patterns.is_empty() {
            return;
        }
        let mut all = self.workspace_patterns.lock().expect("lock");
        let Some(held) = all.get_mut(workspace) else {
            return;
        };
        for pattern in patterns {
            if let Some(n) = held.get_mut(pattern) {
                *n -= 1;
                if *n == 0 {
                    held.remove(pattern);
                }
            }
        }
        if held.is_empty() {
            all.remove(workspace);
        }
    }

    /// Distinct patterns `workspace`'s connections hold on this node.
    pub fn workspace_patterns(&self, workspace: &str) -> usize {
        let all = self.workspace_patterns.lock().expect("lock");
        all.get(workspace).map_or(0, HashMap::len)
    }

    /// Subscriptions charged to `workspace` on this node.
    pub fn workspace_subscriptions(&self, workspace: &str) -> usize {
        let held = self.workspace_subscriptions.lock().expect("lock");
        held.get(workspace).copied().unwrap_or(0)
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
