//! Fault actions on what the simulator started: the private Redis (stop,
//! start, pause), spawned nodes (kill, restart) and the TCP proxies in
//! front of the nodes (cut, restore).

use std::sync::{Arc, Mutex};

use localredis::RedisServer;

use super::spawn::BusNode;
use super::{Nodes, Proxy, RunningTarget, TargetError, normalize_url};

impl RunningTarget {
    /// Routes agents through a TCP proxy per node, so the network can be
    /// cut.
    pub(super) async fn with_proxies(mut self, wanted: bool) -> Self {
        if !wanted {
            return self;
        }
        let mut urls = Vec::new();
        for url in &self.ws_urls {
            let Ok(endpoint) = normalize_url(url) else {
                continue;
            };
            let Some(addr) = endpoint
                .http_url
                .strip_prefix("http://")
                .and_then(|a| a.parse().ok())
            else {
                continue;
            };
            match Proxy::start(addr).await {
                Ok(proxy) => {
                    urls.push(format!("ws://{}/ws/connect", proxy.addr));
                    self.proxies.push(proxy);
                }
                Err(e) => tracing::warn!(cause = %e, "no proxy for {url}"),
            }
        }
        if urls.len() == self.ws_urls.len() {
            self.ws_urls = urls;
            self.description.push_str(" behind a TCP proxy");
        }
        self
    }

    fn redis_server(&self) -> Result<Arc<Mutex<RedisServer>>, TargetError> {
        self.redis.clone().ok_or(TargetError::NoFaultControl(
            "the simulator did not start this Redis",
        ))
    }

    /// Kills the private redis-server (it restarts from its append-only file
    /// with [`RunningTarget::start_redis`]).
    pub async fn stop_redis(&self) -> Result<(), TargetError> {
        let server = self.redis_server()?;
        tokio::task::spawn_blocking(move || server.lock().expect("redis lock").stop())
            .await
            .map_err(|e| TargetError::RedisStart(e.to_string()))
    }

    /// Starts the private redis-server again on its port and directory.
    pub async fn start_redis(&self) -> Result<(), TargetError> {
        let server = self.redis_server()?;
        tokio::task::spawn_blocking(move || server.lock().expect("redis lock").restart())
            .await
            .map_err(|e| TargetError::RedisStart(e.to_string()))
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to the private redis-server.
    pub fn pause_redis(&self, pause: bool) -> Result<(), TargetError> {
        let server = self.redis_server()?;
        let server = server.lock().expect("redis lock");
        if pause {
            server.pause()
        } else {
            server.resume()
        }
        Ok(())
    }

    /// Kills spawned node `index` (SIGKILL).
    pub async fn kill_node(&self, index: usize) -> Result<String, TargetError> {
        let Nodes::Spawned(nodes) = &self.nodes else {
            return Err(TargetError::NoFaultControl(
                "only spawned nodes can be killed",
            ));
        };
        let mut nodes = nodes.lock().await;
        let (spec, node) = nodes
            .get_mut(index)
            .ok_or(TargetError::NoFaultControl("no such node"))?;
        if let Some(node) = node.take() {
            node.kill().await;
        }
        Ok(spec.name.clone())
    }

    /// Starts a killed node again where it listened before.
    pub async fn restart_node(&self, index: usize) -> Result<(), TargetError> {
        let Nodes::Spawned(nodes) = &self.nodes else {
            return Err(TargetError::NoFaultControl(
                "only spawned nodes can be restarted",
            ));
        };
        let mut nodes = nodes.lock().await;
        let (spec, node) = nodes
            .get_mut(index)
            .ok_or(TargetError::NoFaultControl("no such node"))?;
        if node.is_none() {
            *node = Some(BusNode::start(spec).await?);
            self.restarted.lock().expect("lock").insert(index);
        }
        Ok(())
    }

    /// Cuts (`true`) or restores (`false`) the network to every node.
    pub fn cut_network(&self, cut: bool) -> Result<(), TargetError> {
        if self.proxies.is_empty() {
            return Err(TargetError::NoFaultControl("no proxy in front of the bus"));
        }
        for proxy in &self.proxies {
            if cut { proxy.cut() } else { proxy.restore() }
        }
        Ok(())
    }
}
