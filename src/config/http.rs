//! The `[http]` section: time budgets, body and concurrency limits, the
//! origins browsers may call from, and the proxies trusted to name clients.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Deadline of a request once its body has arrived: the handler's work,
    /// forwarding and waiting for commit included; past it 504 `timeout`.
    /// Routes that wait on purpose have their own budget (see `api::timeouts`).
    pub request_timeout_ms: u64,
    /// Time a request body may take to arrive, whole; past it 408
    /// `request_timeout`. Image uploads have `media.upload_timeout_ms` instead.
    pub body_read_timeout_ms: u64,
    /// Deadline of a membership change (a joining node may need a snapshot).
    pub membership_timeout_ms: u64,
    pub max_body_bytes: usize,
    /// Requests served at once; past it new ones get 503 `overloaded` at
    /// once (operators' routes excepted, see `api::shed`).
    pub max_in_flight: usize,
    /// Longest time a client may take to send a request's line and headers
    /// (HTTP/1.1); a slower one is disconnected.
    pub header_read_timeout_ms: u64,
    /// Browser origins (`https://shop.example.com`) allowed to call the API
    /// from their pages (CORS), or `["*"]` for any origin. Empty (the
    /// default): no cross-origin access.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies (addresses, or networks such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` / `Forwarded` headers name the client. Empty (the
    /// default): the TCP peer is the client, whatever it sends.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl HttpSettings {
    /// What `Settings::validate` checks of this section.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        check_origins(&self.cors_allowed_origins)?;
        self.trusted_proxy_networks()?;
        Ok(())
    }

    /// `trusted_proxies` parsed: addresses (`10.0.0.7`) or networks
    /// (`10.0.0.0/8`, `fd00::/8`).
    pub fn trusted_proxy_networks(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "http.trusted_proxies: {entry:?} is neither an IP address nor a \
                             network (a.b.c.d/n)"
                        )
                    })
            })
            .collect()
    }
}

/// Checks `http.cors_allowed_origins`: `*` alone, or origins written as a
/// browser sends them (`scheme://host[:port]`, no path, no trailing slash).
pub(super) fn check_origins(origins: &[String]) -> anyhow::Result<()> {
    if origins.iter().any(|o| o == "*") {
        anyhow::ensure!(
            origins.len() == 1,
            "http.cors_allowed_origins: \"*\" allows every origin and goes alone"
        );
        return Ok(());
    }
    for origin in origins {
        let url = reqwest::Url::parse(origin).map_err(|e| {
            anyhow::anyhow!("http.cors_allowed_origins: {origin:?} is not an origin: {e}")
        })?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.origin().ascii_serialization() == *origin,
            "http.cors_allowed_origins: {origin:?} is not an origin (write scheme://host[:port], \
             as a browser sends it in `Origin`)"
        );
    }
    Ok(())
}
