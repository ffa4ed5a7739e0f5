//! Login throughput on the same cluster as the checkout: each client signs
//! in again and again as its own customer (`POST /auth/login`: an argon2id
//! verification, then a new session written through Raft), talking to node
//! `c % 3` as the checkout clients do.

use std::time::Duration;

use serde_json::json;

use crate::api;
use crate::load::{self, timed, Recorder, Step};

struct Login {
    http: reqwest::Client,
    url: String,
    body: serde_json::Value,
}

impl load::Worker for Login {
    async fn iteration(&mut self, rec: &mut Recorder) {
        let req = self
            .http
            .post(format!("{}/auth/login", self.url))
            .json(&self.body);
        timed(rec, "login", req).await;
    }
}

/// Logins per second of `clients` customers (`0..clients`, registered by
/// [`api::customer_tokens`]) over `duration`.
pub async fn measure(
    http: &reqwest::Client,
    urls: &[String],
    clients: usize,
    duration: Duration,
) -> Step {
    let workers = (0..clients)
        .map(|c| {
            let email = api::customer_email(c);
            Login {
                http: http.clone(),
                url: urls[c % urls.len()].clone(),
                body: json!({"email": email, "password": api::password(&email)}),
            }
        })
        .collect();
    let (_, step) = load::run(workers, duration).await;
    step
}
