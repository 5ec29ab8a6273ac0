//! Names on the wire and in the broker, and the rules that keep workspaces
//! apart.
//!
//! Agents speak in *wire names* relative to their own workspace:
//!
//! | wire name | means | broker channel |
//! | --- | --- | --- |
//! | `broadcast` | the global broadcast | `broadcast` |
//! | `workspace` or `workspace:{own id}` | the agent's workspace broadcast | `workspace:{W}` |
//! | `inbox` or `agent:{own id}:inbox` | the agent's own inbox | `inbox:{W}/{agent}` |
//! | anything else, e.g. `agent:research` | a topic of the agent's workspace | `topic:{W}/{name}` |
//!
//! Because every user topic and pattern is placed under `topic:{W}/`, a pattern
//! such as `*` can only ever match topics of the agent's own workspace, never
//! an inbox, another workspace's topic or a reserved channel. Wire names that
//! *name* something outside the agent's reach (`workspace:{other}`,
//! `agent:{other}:inbox`, patterns starting with `workspace` or `broadcast`)
//! are refused with [`NameError::CrossWorkspace`] or [`NameError::Forbidden`]
//! so that attempts are visible and counted rather than silently re-scoped.

use std::fmt;

/// Channel of the global broadcast (also its wire name).
pub const BROADCAST: &str = "broadcast";
/// Wire name of the caller's own workspace broadcast.
pub const WORKSPACE: &str = "workspace";
/// Wire name of the caller's own inbox.
pub const INBOX: &str = "inbox";

/// Longest agent or workspace id.
pub const MAX_ID_LEN: usize = 64;
/// Longest topic, pattern or queue name.
pub const MAX_NAME_LEN: usize = 200;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid name of its kind.
    #[error("invalid {what} {name:?}: {reason}")]
    Invalid {
        /// The kind of name ("topic", "agent id", ...).
        what: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Names something of another workspace.
    #[error("{name:?} belongs to another workspace")]
    CrossWorkspace {
        /// The name as given.
        name: String,
    },
    /// Valid, but reserved or someone else's (another agent's inbox, a
    /// pattern over broadcasts).
    #[error("{name:?} is not yours to use: {reason}")]
    Forbidden {
        /// The name as given.
        name: String,
        /// Why it is not the caller's.
        reason: &'static str,
    },
}

/// Who is asking: every wire name is resolved relative to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The caller's workspace.
    pub workspace: &'a str,
    /// The calling agent (whose inbox `inbox` means).
    pub agent: &'a str,
}

/// A resolved destination, before the broker adds its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The global broadcast.
    Broadcast,
    /// The broadcast of one workspace.
    Workspace(String),
    /// One agent's inbox, for direct messages.
    Inbox {
        /// The agent's workspace.
        workspace: String,
        /// The agent.
        agent: String,
    },
    /// A user topic of one workspace.
    Topic {
        /// Its workspace.
        workspace: String,
        /// Its wire name inside the workspace.
        name: String,
    },
    /// The bus's own traffic (health probes, wake-ups); never reachable
    /// from an agent's wire names.
    Internal(String),
}

impl Channel {
    /// The broker channel name.
    pub fn key(&self) -> String {
        match self {
            Channel::Broadcast => BROADCAST.to_owned(),
            Channel::Workspace(w) => format!("workspace:{w}"),
            Channel::Inbox { workspace, agent } => format!("inbox:{workspace}/{agent}"),
            Channel::Topic { workspace, name } => format!("topic:{workspace}/{name}"),
            Channel::Internal(name) => format!("internal:{name}"),
        }
    }

    /// The canonical wire name, as put in [`super::AgentMessage::topic`].
    pub fn wire_name(&self) -> String {
        match self {
            Channel::Broadcast => BROADCAST.to_owned(),
            Channel::Workspace(w) => format!("workspace:{w}"),
            Channel::Inbox { agent, .. } => inbox_wire_name(agent),
            Channel::Topic { name, .. } => name.clone(),
            Channel::Internal(name) => format!("internal:{name}"),
        }
    }

    /// The workspace whose members may see this channel; `None` for global.
    pub fn workspace(&self) -> Option<&str> {
        match self {
            Channel::Broadcast | Channel::Internal(_) => None,
            Channel::Workspace(w) => Some(w),
            Channel::Inbox { workspace, .. } | Channel::Topic { workspace, .. } => Some(workspace),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// `agent:{id}:inbox`, the wire name of an agent's inbox.
pub fn inbox_wire_name(agent: &str) -> String {
    format!("agent:{agent}:inbox")
}

/// `agent:{topic}`, the conventional wire name of an agent topic.
pub fn agent_topic(topic: &str) -> String {
    format!("agent:{topic}")
}

/// The broker channel of an agent's inbox.
pub fn inbox_channel(workspace: &str, agent: &str) -> Channel {
    Channel::Inbox {
        workspace: workspace.to_owned(),
        agent: agent.to_owned(),
    }
}

/// The broker channel of a workspace broadcast.
pub fn workspace_channel(workspace: &str) -> Channel {
    Channel::Workspace(workspace.to_owned())
}

/// Checks an agent or workspace id: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn validate_id(what: &'static str, id: &str) -> Result<(), NameError> {
    let invalid = |reason| NameError::Invalid {
        what,
        name: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid("longer than 64 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(invalid("only A-Z a-z 0-9 _ . - are allowed"));
    }
    Ok(())
}

fn is_glob_byte(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b']' | b'\\')
}

fn validate_name(what: &'static str, name: &str, allow_glob: bool) -> Result<(), NameError> {
    let invalid = |reason| NameError::Invalid {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 200 characters"));
    }
    for b in name.bytes() {
        if !b.is_ascii_graphic() || matches!(b, b'{' | b'}' | b'"') {
            return Err(invalid(
                "only printable ASCII without spaces, quotes or braces is allowed",
            ));
        }
        if !allow_glob && is_glob_byte(b) {
            return Err(invalid(
                "glob characters * ? [ ] \\ are only allowed in patterns",
            ));
        }
    }
    Ok(())
}

/// Resolves a wire topic (for subscribe, publish, unsubscribe) in `scope`.
pub fn resolve_topic(scope: Scope<'_>, wire: &str) -> Result<Channel, NameError> {
    validate_name("topic", wire, false)?;
    if wire == BROADCAST {
        return Ok(Channel::Broadcast);
    }
    if wire == WORKSPACE {
        return Ok(workspace_channel(scope.workspace));
    }
    if wire == INBOX {
        return Ok(inbox_channel(scope.workspace, scope.agent));
    }
    if let Some(other) = wire.strip_prefix("workspace:") {
        if other == scope.workspace {
            return Ok(workspace_channel(scope.workspace));
        }
        return Err(NameError::CrossWorkspace {
            name: wire.to_owned(),
        });
    }
    if let Some(agent) = wire
        .strip_prefix("agent:")
        .and_then(|rest| rest.strip_suffix(":inbox"))
    {
        if agent == scope.agent {
            return Ok(inbox_channel(scope.workspace, scope.agent));
        }
        return Err(NameError::Forbidden {
            name: wire.to_owned(),
            reason: "another agent's inbox; use `send` to message it",
        });
    }
    Ok(Channel::Topic {
        workspace: scope.workspace.to_owned(),
        name: wire.to_owned(),
    })
}

/// Resolves a wire pattern (for psubscribe) into a broker channel pattern
/// that can only match topics of the caller's workspace.
pub fn resolve_pattern(scope: Scope<'_>, wire: &str) -> Result<String, NameError> {
    validate_name("pattern", wire, true)?;
    if wire.starts_with("workspace") {
        return Err(NameError::CrossWorkspace {
            name: wire.to_owned(),
        });
    }
    if wire.starts_with(BROADCAST) || wire.starts_with(INBOX) {
        return Err(NameError::Forbidden {
            name: wire.to_owned(),
            reason: "patterns match topics only; inboxes and broadcasts are subscribed on connect",
        });
    }
    if wire.ends_with(":inbox") {
        return Err(NameError::Forbidden {
            name: wire.to_owned(),
            reason: "patterns cannot match inboxes",
        });
    }
    Ok(format!("topic:{}/{}", scope.workspace, wire))
}

/// The wire form of a broker pattern made by [`resolve_pattern`].
pub fn wire_pattern(channel_pattern: &str) -> &str {
    channel_pattern
        .strip_prefix("topic:")
        .and_then(|rest| rest.split_once('/'))
        .map_or(channel_pattern, |(_, wire)| wire)
}

/// Resolves a wire queue name. `inbox` and `agent:{own}:inbox` are the
/// caller's inbox queue; other agents' inboxes are refused.
/// Returns the broker queue name, `{W}/{name}`.
pub fn resolve_queue(scope: Scope<'_>, wire: &str) -> Result<String, NameError> {
    validate_name("queue", wire, false)?;
    if wire == INBOX {
        return Ok(inbox_queue(scope.workspace, scope.agent));
    }
    if let Some(agent) = wire
        .strip_prefix("agent:")
        .and_then(|rest| rest.strip_suffix(":inbox"))
    {
        if agent == scope.agent {
            return Ok(inbox_queue(scope.workspace, scope.agent));
        }
        return Err(NameError::Forbidden {
            name: wire.to_owned(),
            reason: "another agent's inbox queue",
        });
    }
    if wire.starts_with("workspace:") {
        return Err(NameError::CrossWorkspace {
            name: wire.to_owned(),
        });
    }
    Ok(format!("{}/{}", scope.workspace, wire))
}

/// The broker queue that holds an agent's stored direct messages.
pub fn inbox_queue(workspace: &str, agent: &str) -> String {
    format!("{workspace}/{}", inbox_wire_name(agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Scope<'static> = Scope {
        workspace: "w1",
        agent: "a1",
    };

    #[test]
    fn reserved_wire_names_resolve_to_their_channels() {
        assert_eq!(resolve_topic(ME, "broadcast").unwrap(), Channel::Broadcast);
        assert_eq!(
            resolve_topic(ME, "workspace").unwrap().key(),
            "workspace:w1"
        );
        assert_eq!(
            resolve_topic(ME, "workspace:w1").unwrap().key(),
            "workspace:w1"
        );
        assert_eq!(resolve_topic(ME, "inbox").unwrap().key(), "inbox:w1/a1");
        assert_eq!(
            resolve_topic(ME, "agent:a1:inbox").unwrap().key(),
            "inbox:w1/a1"
        );
        assert_eq!(
            resolve_topic(ME, "agent:research").unwrap().key(),
            "topic:w1/agent:research"
        );
    }

    #[test]
    fn other_workspaces_and_inboxes_are_refused() {
        assert!(matches!(
            resolve_topic(ME, "workspace:w2"),
            Err(NameError::CrossWorkspace { .. })
        ));
        assert!(matches!(
            resolve_topic(ME, "agent:a2:inbox"),
            Err(NameError::Forbidden { .. })
        ));
        assert!(matches!(
            resolve_pattern(ME, "workspace:*"),
            Err(NameError::CrossWorkspace { .. })
        ));
        assert!(matches!(
            resolve_pattern(ME, "agent:*:inbox"),
            Err(NameError::Forbidden { .. })
        ));
        assert!(matches!(
            resolve_queue(ME, "agent:a2:inbox"),
            Err(NameError::Forbidden { .. })
        ));
    }

    #[test]
    fn patterns_stay_inside_the_workspace() {
        let p = resolve_pattern(ME, "*").unwrap();
        assert_eq!(p, "topic:w1/*");
        assert_eq!(wire_pattern(&p), "*");
    }

    #[test]
    fn names_are_validated() {
        assert!(resolve_topic(ME, "").is_err());
        assert!(resolve_topic(ME, "a b").is_err());
        assert!(resolve_topic(ME, "a*").is_err());
        assert!(resolve_topic(ME, &"x".repeat(201)).is_err());
        assert!(resolve_queue(ME, "jobs{x}").is_err());
        assert!(validate_id("agent id", "a-1_b.c").is_ok());
        assert!(validate_id("agent id", "a/b").is_err());
        assert!(validate_id("agent id", &"a".repeat(65)).is_err());
    }

    #[test]
    fn queues_are_scoped_by_workspace() {
        assert_eq!(resolve_queue(ME, "jobs").unwrap(), "w1/jobs");
        assert_eq!(resolve_queue(ME, "inbox").unwrap(), "w1/agent:a1:inbox");
        assert_eq!(inbox_queue("w1", "a1"), "w1/agent:a1:inbox");
    }
}
