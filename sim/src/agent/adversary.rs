//! The adversary: an agent that keeps trying to reach what is not its own
//! (other workspaces' channels and topics, other agents' inboxes) and, when
//! the bus checks tokens, to connect with forged, expired and `alg: none`
//! tokens. Every attempt must be refused; what gets through is a breach in
//! the ledger's security counts. Between attempts it floods the bus with
//! subscriptions to fresh topics and patterns, which the bus must bound
//! (`limit_exceeded`) without anyone else noticing.

use std::fmt::Write;

use super::socket::{self, Endpoint};
use super::{Agent, InFlight};
use crate::plan::workspace_name;

/// The kinds of request an adversary cycles through: seven boundary
/// crossings, then a topic flood and a pattern flood.
const ATTEMPTS: u64 = 9;

/// What every flooded topic and pattern starts with, so the integrity
/// audit can tell them from the subscriptions the plan asked for.
pub const FLOOD_PREFIX: &str = "sim-flood-";

/// Fresh topics per topic flood, and fresh patterns per pattern flood.
const FLOOD_TOPICS: u64 = 250;
const FLOOD_PATTERNS: u64 = 25;

impl Agent<'_> {
    /// Another workspace's name (it need not exist: naming it is the attack).
    fn other_workspace(&self) -> String {
        workspace_name(self.plan.workspace + 1)
    }

    /// Some other agent of the adversary's own workspace.
    fn other_agent(&self) -> String {
        let ctx = self.ctx;
        ctx.plan
            .members
            .iter()
            .filter(|((_, ws), _)| *ws == self.plan.workspace)
            .flat_map(|((g, _), ids)| ids.iter().map(move |id| (*g, *id)))
            .find(|(_, id)| *id != self.plan.id)
            .map(|(g, id)| {
                format!(
                    "{}-{}",
                    ctx.scenario.groups[g].name,
                    id - ctx.plan.first_id[g]
                )
            })
            .unwrap_or_else(|| "someone-else".to_owned())
    }

    /// One attempt to cross a boundary; the reply decides denied or breach.
    pub(super) fn attack(&mut self, seq: u64) {
        if seq % ATTEMPTS >= 7 {
            return self.flood(seq, seq % ATTEMPTS == 8);
        }
        self.sending.next_request += 1;
        let id = self.sending.next_request;
        self.sending.in_flight.insert(id, InFlight::Attack);
        let other_ws = self.other_workspace();
        let peer = self.other_agent();
        let mut f = String::with_capacity(160);
        let _ = match seq % ATTEMPTS {
            0 => write!(
                f,
                r#"{{"op":"subscribe","id":"{id}","topics":["workspace:{other_ws}"]}}"#
            ),
            1 => write!(
                f,
                r#"{{"op":"psubscribe","id":"{id}","patterns":["workspace:*"]}}"#
            ),
            2 => write!(
                f,
                r#"{{"op":"subscribe","id":"{id}","topics":["agent:{peer}:inbox"]}}"#
            ),
            3 => write!(
                f,
                r#"{{"op":"publish","id":"{id}","topic":"workspace:{other_ws}","payload":"x"}}"#
            ),
            4 => write!(
                f,
                r#"{{"op":"broadcast","id":"{id}","workspace":"{other_ws}","payload":"x"}}"#
            ),
            5 => write!(
                f,
                r#"{{"op":"send","id":"{id}","to":"{peer}","workspace":"{other_ws}","payload":"x"}}"#
            ),
            6 => write!(
                f,
                r#"{{"op":"dequeue","id":"{id}","queue":"agent:{peer}:inbox"}}"#
            ),
            _ => unreachable!("floods are sent by `flood`"),
        };
        self.outbox.push(f);
        self.record(|r, _| r.ledger_mut().security.attempts += 1);
    }

    /// Subscribes to a batch of topics (or patterns) nobody else uses and
    /// this agent never asked for before.
    fn flood(&mut self, seq: u64, patterns: bool) {
        self.sending.next_request += 1;
        let id = self.sending.next_request;
        self.sending.in_flight.insert(id, InFlight::Flood);
        let (op, field, count) = if patterns {
            ("psubscribe", "patterns", FLOOD_PATTERNS)
        } else {
            ("subscribe", "topics", FLOOD_TOPICS)
        };
        let star = if patterns { "*" } else { "" };
        let mut f = format!(r#"{{"op":"{op}","id":"{id}","{field}":["#);
        for i in 0..count {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(f, r#"{comma}"{FLOOD_PREFIX}{seq}-{i}{star}""#);
        }
        f.push_str("]}");
        self.outbox.push(f);
        self.record(|r, _| r.ledger_mut().security.floods += 1);
    }

    /// The reply to an attempt: `cross_workspace` or `forbidden` is the bus
    /// doing its job; an `ok` is a breach; anything else is just an error.
    pub(super) fn attack_answered(&mut self, code: Option<&str>) {
        match code {
            None => self.record(|r, _| r.ledger_mut().security.breaches += 1),
            Some("cross_workspace" | "forbidden") => {
                self.record(|r, _| r.ledger_mut().security.denied += 1);
            }
            Some(other) => self.count_error(other),
        }
    }

    /// Tries to connect with a forged, an expired and an `alg: none` token;
    /// each must get HTTP 401 (only meaningful when the bus checks tokens).
    pub(super) async fn try_bad_tokens(&mut self) {
        let Some(secret) = self.ctx.jwt_secret.clone() else {
            return;
        };
        let claims = |exp: u64| bus::auth::Claims {
            sub: self.plan.name.clone(),
            workspace: self.workspace.clone(),
            user: None,
            topics: None,
            global_broadcast: true,
            admin: true,
            exp,
        };
        let now = bus::auth::unix_now();
        let forged = bus::auth::issue_token(&format!("{secret}-forged"), &claims(now + 3600));
        let expired = bus::auth::issue_token(&secret, &claims(now.saturating_sub(3600)));
        let valid = bus::auth::issue_token(&secret, &claims(now + 3600));
        let payload = valid.split('.').nth(1).unwrap_or_default();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        let url = self.ctx.ws_urls[self.plan.node % self.ctx.ws_urls.len()].clone();
        for token in [forged, expired, none] {
            let endpoint = Endpoint {
                url: &url,
                agent: &self.plan.name,
                workspace: &self.workspace,
                token: Some(&token),
                source: self.plan.source,
            };
            let refused = match socket::open(&endpoint).await {
                Ok(_) => false,
                Err(e) => e.contains("401"),
            };
            self.record(|r, _| {
                let s = &mut r.ledger_mut().security;
                s.token_attempts += 1;
                if refused {
                    s.token_denied += 1;
                }
            });
        }
    }
}
