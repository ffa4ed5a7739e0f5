//! How the suite names its callers: the ONE place that knows the credential
//! scheme, so moving from the development header to bearer tokens is a change
//! here and nowhere else.
//!
//! Today (`--auth dev`) every request carries `X-Dev-Actor: <role>:<user id>`.
//! When sign-in lands (`--auth bearer`), a caller is registered once with
//! `POST /auth/register`, signs in with `POST /auth/login`, and sends
//! `Authorization: Bearer <access_token>` (OAuth2 token-response fields); the
//! token is cached per caller. Admins must then be created by whatever the
//! auth branch provides for a first admin; adjust [`Auth::bearer`] then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use serde_json::json;

/// A role the suite acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

/// Who makes a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Actor {
    pub role: Role,
    pub id: String,
}

impl Actor {
    pub fn customer(id: impl Into<String>) -> Actor {
        Actor {
            role: Role::Customer,
            id: id.into(),
        }
    }

    pub fn admin() -> Actor {
        Actor {
            role: Role::Admin,
            id: "jepsen-admin".into(),
        }
    }
}

/// The operator token every node of a run is started with
/// (`ECOMMERCE_AUTH__OPERATOR_TOKEN`): nodes need it to join, and the suite
/// uses it to create its admin and vendor accounts.
pub const OPERATOR_TOKEN: &str = "jepsen-operator-token-0123456789abcdef";

/// The header that names the operator: for the operators' routes
/// (`/cluster/digest`, which a busy node never sheds for the operator), and
/// to create the suite's admin and vendor accounts.
pub fn operator_header() -> (&'static str, &'static str) {
    ("x-operator-token", OPERATOR_TOKEN)
}

/// Access tokens are used this long, then renewed by a new login (they live 15 minutes).
const TOKEN_REUSE: std::time::Duration = std::time::Duration::from_secs(600);

/// The credential scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// `X-Dev-Actor: <role>:<id>` (until sign-in lands).
    Dev,
    /// `Authorization: Bearer <jwt>` from `/auth/register` + `/auth/login`.
    Bearer,
}

/// Produces the credential header of an actor (cheap to clone).
#[derive(Clone)]
pub struct Auth {
    scheme: Scheme,
    tokens: Arc<Mutex<HashMap<Actor, (String, std::time::Instant)>>>,
    /// The node's user id of each signed-in actor, to name the owner of an order.
    names: Arc<Mutex<HashMap<String, String>>>,
}

impl Auth {
    pub fn new(scheme: Scheme) -> Auth {
        Auth {
            scheme,
            tokens: Arc::default(),
            names: Arc::default(),
        }
    }

    /// The suite's name for the node's user id `user_id`: orders carry the
    /// node's id, histories the actor's. Under the development scheme they are
    /// the same; an id the suite never signed in as is returned unchanged.
    pub fn actor_name(&self, user_id: &str) -> String {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user_id)
            .cloned()
            .unwrap_or_else(|| user_id.to_string())
    }

    /// The header (name, value) that names `actor`, obtaining a token through
    /// `base` (a node's REST URL) if the scheme needs one.
    pub async fn header(
        &self,
        http: &reqwest::Client,
        base: &str,
        actor: &Actor,
    ) -> anyhow::Result<(&'static str, String)> {
        match self.scheme {
            Scheme::Dev => Ok((
                "x-dev-actor",
                format!("{}:{}", actor.role.as_str(), actor.id),
            )),
            Scheme::Bearer => {
                let cached = self
                    .tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(actor)
                    .filter(|(_, at)| at.elapsed() < TOKEN_REUSE)
                    .map(|(t, _)| t.clone());
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let t = self.bearer(http, base, actor).await?;
                        self.tokens
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(actor.clone(), (t.clone(), std::time::Instant::now()));
                        t
                    }
                };
                Ok(("authorization", format!("Bearer {token}")))
            }
        }
    }

    async fn bearer(
        &self,
        http: &reqwest::Client,
        base: &str,
        actor: &Actor,
    ) -> anyhow::Result<String> {
        let email = format!("{}@jepsen.invalid", actor.id);
        let password = format!("jepsen-{}-password", actor.id);
        let creds = json!({"email": email, "password": password});
        let account = json!({
            "email": email, "password": password, "name": actor.id, "role": actor.role.as_str()
        });
        // Creating twice is refused; that is fine, the login below decides.
        // Admins and vendors are created with the operator token, customers register.
        let _ = match actor.role {
            Role::Customer => http.post(format!("{base}/auth/register")).json(&json!({
                "email": email, "password": password, "name": actor.id
            })),
            _ => {
                let (name, value) = operator_header();
                http.post(format!("{base}/api/v1/users"))
                    .header(name, value)
                    .json(&account)
            }
        }
        .send()
        .await;
        // The new account may not have reached this node's replica yet: a
        // refused login is retried a few times before it counts.
        let mut attempt = 0;
        let reply = loop {
            let reply = http
                .post(format!("{base}/auth/login"))
                .json(&creds)
                .send()
                .await
                .context("POST /auth/login")?;
            attempt += 1;
            if reply.status().is_success() || attempt >= 10 {
                break reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        if !reply.status().is_success() {
            bail!("login of {} answered {}", actor.id, reply.status());
        }
        let body: serde_json::Value = reply.json().await?;
        let token = body["access_token"]
            .as_str()
            .map(str::to_string)
            .context("no access_token in the login response")?;
        let me: serde_json::Value = http
            .get(format!("{base}/api/v1/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .context("GET /api/v1/users/me")?
            .error_for_status()?
            .json()
            .await?;
        let user_id = me["id"].as_str().context("no id in /api/v1/users/me")?;
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id.to_string(), actor.id.clone());
        Ok(token)
    }
}
