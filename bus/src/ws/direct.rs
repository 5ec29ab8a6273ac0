//! The ops of a session that reach agents rather than topics: `send` (a
//! direct message to one agent of the sender's workspace) and `broadcast`
//! (to the sender's workspace, or to every agent when its token allows).

use super::session::{OpResult, Session};
use crate::message::names::{self, NameError};
use crate::message::{AgentMessage, DeliveryMode, MessageKind};
use crate::protocol::{BroadcastScope, ErrorCode, OkResult};
use crate::reply::OpError;

impl Session {
    /// Sends `message` to agent `to`; `workspace`, when given, must be the
    /// sender's own (agents cannot message across workspaces).
    pub(super) async fn send(
        &mut self,
        to: String,
        workspace: Option<String>,
        message: AgentMessage,
        mode: DeliveryMode,
    ) -> OpResult {
        let own = &self.identity().workspace;
        if let Some(w) = workspace.filter(|w| w != own) {
            return Err(NameError::CrossWorkspace {
                name: format!("agent {to} of workspace {w}"),
            }
            .into());
        }
        names::validate_id("agent id", &to)?;
        let id = message.id.clone();
        let outcome = self
            .state
            .router
            .send_direct(own, &to, message, mode)
            .await?;
        Ok(OkResult {
            receivers: Some(outcome.live),
            stored: Some(outcome.stored),
            message_ids: vec![id],
            ..Default::default()
        })
    }

    /// Broadcasts to the sender's workspace (`workspace`, when given, must
    /// be its own) or, with a token that allows it, to every agent.
    pub(super) async fn broadcast(
        &mut self,
        scope: BroadcastScope,
        workspace: Option<String>,
        payload: serde_json::Value,
        kind: MessageKind,
    ) -> OpResult {
        let router = &self.state.router;
        let (id, receivers) = match scope {
            BroadcastScope::Workspace => {
                let own = &self.identity().workspace;
                if let Some(w) = workspace.filter(|w| w != own) {
                    return Err(NameError::CrossWorkspace {
                        name: format!("workspace:{w}"),
                    }
                    .into());
                }
                let message = self.new_message(names::WORKSPACE, payload, kind);
                let id = message.id.clone();
                (id, router.broadcast_workspace(own, message).await?)
            }
            BroadcastScope::Global => {
                if !self.identity().global_broadcast {
                    return Err(OpError::new(
                        ErrorCode::Forbidden,
                        "your token does not allow global broadcasts",
                    ));
                }
                let message = self.new_message(names::BROADCAST, payload, kind);
                let id = message.id.clone();
                (id, router.broadcast_global(message).await?)
            }
        };
        Ok(OkResult {
            receivers: Some(receivers),
            message_ids: vec![id],
            ..Default::default()
        })
    }
}
