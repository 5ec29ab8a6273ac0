//! Who an agent is, and what it may touch.
//!
//! With a secret configured, a connection needs an HS256 JWT (in the
//! `Authorization: Bearer` header or the `token` query parameter) whose claims
//! name the agent, its workspace, optionally the topic patterns it may use,
//! and an expiry. Any other algorithm (including `none`) is refused. Without a
//! secret the bus is in development mode: identity comes from the `agent` and
//! `workspace` query parameters, unchecked.
//!
//! Workspace isolation itself is structural (see `message::names`): an
//! identity can only ever resolve names inside its own workspace.

use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::message::glob;
use crate::message::names::{self, NameError, Scope};

/// The bearer token of an `Authorization` header, if any: how agents
/// (before the upgrade) and operators (on REST) present credentials.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Claims of an agent token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The agent id.
    pub sub: String,
    /// The agent's workspace: every name it uses resolves inside it.
    pub workspace: String,
    /// The human or service the agent acts for, for operators' listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Wire topics (globs) the agent may subscribe and publish to; absent
    /// means every topic of its workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// May send global broadcasts.
    #[serde(default)]
    pub global_broadcast: bool,
    /// May use the REST operator endpoints (when no admin token is set).
    #[serde(default)]
    pub admin: bool,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// An authenticated (or, in development mode, asserted) agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The agent id, unique within its workspace.
    pub agent: String,
    /// The workspace the agent lives in; it can reach nothing outside it.
    pub workspace: String,
    /// The human or service the agent acts for, shown to operators only.
    pub user: Option<String>,
    /// Topic globs from the token, when it restricts topics; `None` allows
    /// every topic of the workspace.
    pub allowed_topics: Option<Vec<String>>,
    /// Whether the agent may broadcast to every workspace (the one reach beyond
    /// its own).
    pub global_broadcast: bool,
}

impl Identity {
    /// The scope the agent's wire names are resolved in.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            workspace: &self.workspace,
            agent: &self.agent,
        }
    }

    /// Whether the token's topic list lets this agent use a wire topic (or,
    /// for patterns, a pattern whose text lies inside an allowed glob).
    /// Reserved names (inbox, workspace, broadcast) are always allowed.
    pub fn may_use(&self, wire: &str) -> bool {
        let reserved = [names::BROADCAST, names::WORKSPACE, names::INBOX];
        match &self.allowed_topics {
            None => true,
            Some(_) if reserved.contains(&wire) => true,
            Some(allowed) => allowed.iter().any(|pattern| glob::matches(pattern, wire)),
        }
    }
}

/// Why a connection was refused before the upgrade (answered with 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A secret is configured and the request carries no token.
    #[error("a token is required (Authorization: Bearer … or ?token=…)")]
    MissingToken,
    /// The token's `exp` has passed (beyond the clock-skew leeway).
    #[error("the token has expired")]
    Expired,
    /// Bad signature, wrong algorithm or malformed claims.
    #[error("the token is not valid: {0}")]
    InvalidToken(String),
    /// Development mode identifies agents by query parameters, so `agent` must
    /// be there.
    #[error("the `agent` query parameter is required in development mode")]
    MissingAgent,
    /// The agent or workspace id is not a valid name.
    #[error(transparent)]
    BadIdentity(#[from] NameError),
}

/// What the upgrade request says about identity.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectParams {
    /// The agent id (development mode only).
    pub agent: Option<String>,
    /// The workspace (development mode only; default `default`).
    pub workspace: Option<String>,
    /// The human or service behind the agent (development mode only).
    pub user: Option<String>,
    /// The token, for clients that cannot set an `Authorization` header
    /// (browsers' WebSocket API).
    pub token: Option<String>,
}

/// The node's authentication settings.
#[derive(Clone)]
pub struct Auth {
    key: Option<DecodingKey>,
    validation: Validation,
    admin_token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("development_mode", &self.key.is_none())
            .field("admin_token", &self.admin_token.is_some())
            .finish()
    }
}

/// Leeway for clock skew when checking `exp`.
const LEEWAY_SECS: u64 = 5;

impl Auth {
    /// Settings of a node: with `secret`, agents need HS256 tokens; without it,
    /// development mode. `admin_token` guards the operator endpoints.
    pub fn new(secret: Option<&str>, admin_token: Option<&str>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        Self {
            key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            validation,
            admin_token: admin_token.map(str::to_owned),
        }
    }

    /// True when agents are not authenticated.
    pub fn development_mode(&self) -> bool {
        self.key.is_none()
    }

    /// Establishes who is connecting. `bearer` is the Authorization header's
    /// token, if any.
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        params: &ConnectParams,
    ) -> Result<Identity, AuthError> {
        let identity = match &self.key {
            Some(key) => {
                let token = bearer
                    .or(params.token.as_deref())
                    .ok_or(AuthError::MissingToken)?;
                let claims = self.verify(key, token)?;
                Identity {
                    agent: claims.sub,
                    workspace: claims.workspace,
                    user: claims.user,
                    allowed_topics: claims.topics,
                    global_broadcast: claims.global_broadcast,
                }
            }
            None => Identity {
                agent: params.agent.clone().ok_or(AuthError::MissingAgent)?,
                workspace: params.workspace.clone().unwrap_or_else(|| "default".into()),
                user: params.user.clone(),
                allowed_topics: None,
                global_broadcast: true,
            },
        };
        names::validate_id("agent id", &identity.agent)?;
        names::validate_id("workspace id", &identity.workspace)?;
        Ok(identity)
    }

    fn verify(&self, key: &DecodingKey, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(e.to_string()),
            })
    }

    /// Whether a REST request may use operator endpoints.
    pub fn is_admin(&self, bearer: Option<&str>) -> bool {
        match (&self.admin_token, &self.key) {
            (Some(expected), _) => bearer.is_some_and(|got| constant_time_eq(got, expected)),
            (None, Some(key)) => bearer
                .and_then(|t| self.verify(key, t).ok())
                .is_some_and(|c| c.admin),
            (None, None) => true,
        }
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Signs claims with `secret` (HS256): for tests, the simulator and
/// operators' tooling.
pub fn issue_token(secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Seconds since the Unix epoch, for `exp`.
pub fn unix_now() -> u64 {
    crate::message::now_micros() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "a1".into(),
            workspace: "w1".into(),
            user: None,
            topics: Some(vec!["agent:*".into()]),
            global_broadcast: false,
            admin: false,
            exp,
        }
    }

    fn no_params() -> ConnectParams {
        ConnectParams::default()
    }

    #[test]
    fn valid_tokens_give_their_identity() {
        let auth = Auth::new(Some("s3cret"), None);
        let token = issue_token("s3cret", &claims(unix_now() + 60));
        let id = auth.authenticate(Some(&token), &no_params()).unwrap();
        assert_eq!((id.agent.as_str(), id.workspace.as_str()), ("a1", "w1"));
        assert!(id.may_use("agent:x"));
        assert!(!id.may_use("other"));
        assert!(id.may_use("broadcast"));
    }

    #[test]
    fn bad_tokens_are_refused() {
        let auth = Auth::new(Some("s3cret"), None);
        assert_eq!(
            auth.authenticate(None, &no_params()),
            Err(AuthError::MissingToken)
        );
        let expired = issue_token("s3cret", &claims(unix_now() - 3600));
        assert_eq!(
            auth.authenticate(Some(&expired), &no_params()),
            Err(AuthError::Expired)
        );
        let forged = issue_token("other", &claims(unix_now() + 60));
        assert!(matches!(
            auth.authenticate(Some(&forged), &no_params()),
            Err(AuthError::InvalidToken(_))
        ));
        // alg: none, the classic forgery.
        let body = issue_token("s3cret", &claims(unix_now() + 60));
        let payload = body.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(matches!(
            auth.authenticate(Some(&none), &no_params()),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn development_mode_takes_query_identity() {
        let auth = Auth::new(None, None);
        assert!(auth.development_mode());
        let params = ConnectParams {
            agent: Some("a9".into()),
            ..Default::default()
        };
        let id = auth.authenticate(None, &params).unwrap();
        assert_eq!(
            (id.agent.as_str(), id.workspace.as_str()),
            ("a9", "default")
        );
        assert_eq!(
            auth.authenticate(None, &no_params()),
            Err(AuthError::MissingAgent)
        );
        let bad = ConnectParams {
            agent: Some("a/b".into()),
            ..Default::default()
        };
        assert!(matches!(
            auth.authenticate(None, &bad),
            Err(AuthError::BadIdentity(_))
        ));
    }

    #[test]
    fn admin_checks() {
        assert!(Auth::new(None, None).is_admin(None));
        let with_token = Auth::new(Some("s"), Some("op-token"));
        assert!(with_token.is_admin(Some("op-token")));
        assert!(!with_token.is_admin(Some("op-tokeN")));
        assert!(!with_token.is_admin(None));
        let jwt_only = Auth::new(Some("s"), None);
        let mut admin = claims(unix_now() + 60);
        admin.admin = true;
        assert!(jwt_only.is_admin(Some(&issue_token("s", &admin))));
        assert!(!jwt_only.is_admin(Some(&issue_token("s", &claims(unix_now() + 60)))));
    }
}
