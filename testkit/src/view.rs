//! What a node says about the cluster: [`ClusterView`], the parsed body of `GET /cluster`, and
//! [`Probe`], the handle that asks one node for it (and for `GET /health`). Nothing here
//! asserts business behaviour; a probe only reads status routes, without credentials.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{poll, Timing};

/// Parsed view of a `GET /cluster` body.
#[derive(Clone, Debug)]
pub struct ClusterView {
    pub node_id: Option<u64>,
    pub leader_id: Option<u64>,
    pub term: Option<u64>,
    pub applied_index: Option<u64>,
    /// (node_id, role) of every member, sorted by id.
    pub members: Vec<(u64, String)>,
    pub raw: Value,
}

impl ClusterView {
    pub fn parse(body: &Value) -> ClusterView {
        let u = |key: &str| body.get(key).and_then(Value::as_u64);
        let mut members: Vec<(u64, String)> = body
            .get("members")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| {
                        let id = m.get("node_id")?.as_u64()?;
                        let role = m.get("role")?.as_str()?.to_owned();
                        Some((id, role))
                    })
                    .collect()
            })
            .unwrap_or_default();
        members.sort();
        ClusterView {
            node_id: u("node_id"),
            leader_id: u("leader_id"),
            term: u("term"),
            applied_index: u("applied_index"),
            members,
            raw: body.clone(),
        }
    }

    /// Ids of the members with `role`, sorted.
    pub fn with_role(&self, role: &str) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, r)| r == role)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn voters(&self) -> Vec<u64> {
        self.with_role("voter")
    }

    pub fn learners(&self) -> Vec<u64> {
        self.with_role("learner")
    }
}

/// Asks one node for its status; cheap to clone, so it can leave a lock behind.
#[derive(Clone, Debug)]
pub struct Probe {
    url: String,
    http: reqwest::Client,
}

impl Probe {
    /// A probe of the REST API at `url`, trusting only the CA in `ca` when given (HTTPS), each
    /// request bounded by `request_timeout`.
    pub fn new(url: String, ca: Option<&Path>, request_timeout: Duration) -> anyhow::Result<Probe> {
        let mut http = reqwest::Client::builder().timeout(request_timeout);
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            http = http
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(Probe {
            url,
            http: http.build()?,
        })
    }

    /// Base URL of the REST API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /health`, an error unless it answered 200.
    pub async fn health(&self) -> anyhow::Result<()> {
        let reply = self.http.get(format!("{}/health", self.url)).send().await?;
        if !reply.status().is_success() {
            bail!("GET /health: HTTP {}", reply.status());
        }
        Ok(())
    }

    /// `GET /cluster`, an error unless it answered 200 with JSON.
    pub async fn view(&self) -> anyhow::Result<ClusterView> {
        let reply = self
            .http
            .get(format!("{}/cluster", self.url))
            .send()
            .await?;
        let status = reply.status();
        let body: Value = reply.json().await.context("GET /cluster: not JSON")?;
        if !status.is_success() {
            bail!("GET /cluster: HTTP {status} {body}");
        }
        Ok(ClusterView::parse(&body))
    }

    /// Polls `GET /cluster` until `ok` holds for the view (returned), or `timing.timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timing: Timing,
        ok: impl Fn(&ClusterView) -> bool,
    ) -> anyhow::Result<ClusterView> {
        let what = format!("{what} (GET {}/cluster)", self.url);
        poll(&what, timing, || async {
            match self.view().await {
                Ok(view) if ok(&view) => Ok(view),
                Ok(view) => Err(view.raw.to_string()),
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterView;

    #[test]
    fn a_view_sorts_members_and_splits_them_by_role() {
        let body = serde_json::json!({
            "node_id": 2, "leader_id": 1, "term": 3, "applied_index": 17,
            "members": [
                {"node_id": 3, "role": "learner"},
                {"node_id": 2, "role": "voter"},
                {"node_id": 1, "role": "voter"},
            ],
        });
        let view = ClusterView::parse(&body);
        assert_eq!(view.voters(), [1, 2]);
        assert_eq!(view.learners(), [3]);
        assert_eq!(view.leader_id, Some(1));
        assert_eq!(view.applied_index, Some(17));
        assert_eq!(ClusterView::parse(&serde_json::json!({})).leader_id, None);
    }
}
