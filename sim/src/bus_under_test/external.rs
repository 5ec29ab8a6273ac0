//! External mode: bus URLs given by the user, normalized to a WebSocket and
//! an HTTP URL per node and checked with `GET /health` before the run.

use std::time::Duration;

use futures_util::future::try_join_all;

use super::TargetError;
use super::probe::{HealthProbe, HealthResponse};

/// How long a node may take to answer the reachability check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One bus node's two addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host:port/ws/connect`.
    pub ws_url: String,
    /// `http://host:port`.
    pub http_url: String,
}

/// Accepts `ws://host:port`, `ws://host:port/ws/connect` and
/// `http://host:port` (a trailing `/` is fine) and gives both forms.
pub fn normalize_url(url: &str) -> Result<Endpoint, TargetError> {
    let invalid = |reason: &str| TargetError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .trim()
        .split_once("://")
        .ok_or_else(|| invalid("no scheme"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => {}
        "wss" | "https" => return Err(invalid("TLS (wss://, https://) is not supported")),
        _ => return Err(invalid("the scheme must be ws:// or http://")),
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid("it needs a host[:port] and no user name"));
    }
    if !matches!(path, "" | "/" | "/ws/connect" | "/ws/connect/") {
        return Err(invalid("the path must be empty or /ws/connect"));
    }
    Ok(Endpoint {
        ws_url: format!("ws://{authority}/ws/connect"),
        http_url: format!("http://{authority}"),
    })
}

/// Normalizes every URL and checks that each node answers `/health`;
/// returns the endpoints and the broker kind the first node reports.
pub(super) async fn connect(urls: &[String]) -> Result<(Vec<Endpoint>, String), TargetError> {
    if urls.is_empty() {
        return Err(TargetError::NoUrls);
    }
    let endpoints = urls
        .iter()
        .map(|url| normalize_url(url))
        .collect::<Result<Vec<_>, _>>()?;
    let probe = HealthProbe::new(CHECK_TIMEOUT);
    let answers = try_join_all(
        urls.iter()
            .zip(&endpoints)
            .map(|(url, endpoint)| check(&probe, url, endpoint)),
    )
    .await?;
    let broker = answers
        .first()
        .map(|answer| answer.report.broker.clone())
        .unwrap_or_else(|| "unknown".to_owned());
    Ok((endpoints, broker))
}

async fn check(
    probe: &HealthProbe,
    url: &str,
    endpoint: &Endpoint,
) -> Result<HealthResponse, TargetError> {
    probe
        .check(&endpoint.http_url)
        .await
        .map_err(|err| TargetError::Unreachable {
            url: url.to_owned(),
            health_url: HealthProbe::health_url(&endpoint.http_url),
            reason: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_gives_both_urls() {
        let expected = Endpoint {
            ws_url: "ws://10.0.0.5:8080/ws/connect".to_owned(),
            http_url: "http://10.0.0.5:8080".to_owned(),
        };
        for url in [
            "ws://10.0.0.5:8080",
            "ws://10.0.0.5:8080/",
            "ws://10.0.0.5:8080/ws/connect",
            " http://10.0.0.5:8080/ ",
            "HTTP://10.0.0.5:8080",
        ] {
            assert_eq!(normalize_url(url).unwrap(), expected, "{url}");
        }
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, reason) in [
            ("10.0.0.5:8080", "no scheme"),
            ("wss://bus.example:443", "TLS"),
            ("ftp://bus", "ws:// or http://"),
            ("ws:///ws/connect", "host"),
            ("http://bus:8080/metrics", "path"),
        ] {
            let err = normalize_url(url).unwrap_err().to_string();
            assert!(err.contains(url) && err.contains(reason), "{err}");
        }
    }
}
