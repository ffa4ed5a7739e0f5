//! A REST client that classifies every answer as a Jepsen outcome.
//!
//! - `Ok`: 2xx.
//! - `Fail`: a definite refusal, so the request had no effect: 4xx, or a
//!   connection that was refused (the request never reached a node).
//! - `Info`: unknown outcome: a timeout, a connection dropped after the request
//!   was sent, or any 5xx (`timeout` says "may still take effect"; we do not
//!   assume more of 503 either). A timed-out mutation is NOT a failure.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::auth::{Actor, Auth};

/// How a request ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    Ok {
        body: Value,
        /// The answer replays a stored outcome (`Idempotent-Replayed: true`).
        replayed: bool,
    },
    Fail {
        status: u16,
        code: String,
    },
    Info {
        reason: String,
    },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// The error description recorded in the history.
    pub fn error(&self) -> Option<String> {
        match self {
            Outcome::Ok { .. } => None,
            Outcome::Fail { status, code, .. } => Some(format!("{status} {code}")),
            Outcome::Info { reason } => Some(reason.clone()),
        }
    }
}

/// One HTTP client shared by every worker (cheap to clone).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    auth: Auth,
}

impl Client {
    /// The credentials this client signs in with.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// `ca`: the only root trusted for HTTPS nodes (the cluster CA).
    pub fn new(
        auth: Auth,
        timeout: Duration,
        ca: Option<reqwest::Certificate>,
    ) -> anyhow::Result<Client> {
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            // A paused node keeps sockets open; do not let a stale pooled
            // connection turn every later request into a timeout.
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(5));
        if let Some(ca) = ca {
            http = http.tls_built_in_root_certs(false).add_root_certificate(ca);
        }
        Ok(Client {
            http: http.build()?,
            auth,
        })
    }

    /// Sends one request as `actor` to `base` (a node's REST URL).
    pub async fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Outcome {
        let (name, value) = match self.auth.header(&self.http, base, actor).await {
            Ok(h) => h,
            Err(e) => {
                return Outcome::Info {
                    reason: format!("credentials: {e:#}"),
                }
            }
        };
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .header(name, value);
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        Self::send(req).await
    }

    pub async fn get(&self, base: &str, path: &str, actor: &Actor) -> Outcome {
        self.call(base, Method::GET, path, None, actor, None).await
    }

    /// `GET path` as the operator (see [`crate::auth::operator_header`]),
    /// for the operators' routes (`/cluster/digest`).
    pub async fn get_as_operator(&self, base: &str, path: &str) -> Outcome {
        let (name, value) = crate::auth::operator_header();
        Self::send(self.http.get(format!("{base}{path}")).header(name, value)).await
    }

    async fn send(req: reqwest::RequestBuilder) -> Outcome {
        match req.send().await {
            Err(e) if e.is_connect() && !e.is_timeout() => Outcome::Fail {
                status: 0,
                code: "connection_refused".into(),
            },
            Err(e) => Outcome::Info {
                reason: if e.is_timeout() {
                    "client timeout".into()
                } else {
                    format!("transport: {e}")
                },
            },
            Ok(reply) => {
                let status = reply.status().as_u16();
                let replayed = reply
                    .headers()
                    .get("idempotent-replayed")
                    .is_some_and(|v| v == "true");
                let body: Value = match reply.bytes().await {
                    Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    Err(e) => {
                        return Outcome::Info {
                            reason: format!("reading body of a {status}: {e}"),
                        }
                    }
                };
                let code = body["code"].as_str().unwrap_or("").to_string();
                match status {
                    200..=299 => Outcome::Ok { body, replayed },
                    400..=499 => Outcome::Fail { status, code },
                    _ => Outcome::Info {
                        reason: format!("{status} {code}"),
                    },
                }
            }
        }
    }
}
