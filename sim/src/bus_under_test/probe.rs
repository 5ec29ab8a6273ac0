//! `GET /health` over plain HTTP: how the simulator checks that a bus node
//! answers (external mode) and watches its health during a run (monitor).
//!
//! Uses hyper-util's pooled client with only the HTTP/1 connector: the
//! simulator talks to buses on trusted networks, mostly loopback, so no TLS
//! stack is compiled in.

use std::time::Duration;

use bus::health::HealthReport;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest `/health` body read; a real report is a few kilobytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a health probe got no report.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The node URL does not form a valid HTTP URL.
    #[error("invalid URL: {0}")]
    Url(#[from] hyper::http::uri::InvalidUri),
    /// Connecting or sending failed (refused, reset...).
    #[error("{0}")]
    Request(String),
    /// No complete answer within the probe's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An answer that is not a bus health report.
    #[error("HTTP {status} without a health report: {cause}")]
    NotHealthReport {
        /// The HTTP status received.
        status: u16,
        /// Why the body did not parse.
        cause: String,
    },
}

/// One answer of `GET /health`: 200 with a healthy or degraded report, 503
/// with an unhealthy one.
#[derive(Debug, Clone)]
pub struct HealthResponse {
    /// The HTTP status code.
    pub http_status: u16,
    /// The node's report.
    pub report: HealthReport,
}

/// A reusable `/health` client: keeps connections alive between polls so a
/// monitor does not open a socket per sample.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl HealthProbe {
    /// A probe whose requests give up after `timeout` (connect + answer).
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { client, timeout }
    }

    /// The health URL of the node at `http_url` (`http://host:port`).
    pub fn health_url(http_url: &str) -> String {
        format!("{}/health", http_url.trim_end_matches('/'))
    }

    /// `GET url`: the status and the body (at most 1 MiB).
    pub async fn get(&self, url: &str) -> Result<(u16, Bytes), ProbeError> {
        self.get_with_token(url, None).await
    }

    /// `GET url` with `Authorization: Bearer <token>` when a token is given
    /// (the bus's operator routes want one when it checks tokens).
    pub async fn get_with_token(
        &self,
        url: &str,
        token: Option<&str>,
    ) -> Result<(u16, Bytes), ProbeError> {
        let uri: hyper::Uri = url.parse()?;
        let mut request = hyper::Request::get(uri);
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::new())
            .map_err(|err| ProbeError::Request(err.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| ProbeError::Request(error_chain(&err)))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|err| ProbeError::Request(format!("reading the body: {err}")))?
                .to_bytes();
            Ok::<_, ProbeError>((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProbeError::Timeout(self.timeout))?
    }

    /// Asks the node at `http_url` for its health report.
    pub async fn check(&self, http_url: &str) -> Result<HealthResponse, ProbeError> {
        let (status, body) = self.get(&Self::health_url(http_url)).await?;
        let report = serde_json::from_slice::<HealthReport>(&body).map_err(|err| {
            ProbeError::NotHealthReport {
                status,
                cause: err.to_string(),
            }
        })?;
        Ok(HealthResponse {
            http_status: status,
            report,
        })
    }
}

/// An error and its causes on one line: hyper-util's own message alone
/// ("client error (Connect)") does not say what happened.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
