//! `ecommerce-testkit`: runs the built `ecommerce` binary as real node processes, for the
//! integration tests (`tests/integration/`), the consistency suite (`jepsen/`) and the
//! benchmarks (`bench/`).
//!
//! It owns one job. A [`Node`] (`node.rs`) is one `ecommerce serve` process with its own
//! directory (data dir and `node.log`, the process's stdout and stderr), ports and
//! certificate; it is spawned, polled until up, killed (SIGKILL), paused (SIGSTOP), resumed
//! (SIGCONT) and restarted on the same data, and killed on drop. A [`Cluster`]
//! (`cluster.rs`) lays nodes out in one directory, makes the cluster CA and node certificates
//! with the binary itself (`ecommerce certs init|issue`, `certs.rs`), bootstraps node 1, joins
//! the others through its peer port, and finds the leader. Ports come from `ports.rs`, what a
//! node says about the cluster (`GET /cluster`) from `view.rs`. Readiness is always polled
//! with a deadline ([`poll`]), never assumed after a fixed sleep; how long and how often is a
//! [`Timing`] of the caller's [`Settings`], as are flags, environment and process groups.
//!
//! What must not live here: what only one user needs (the integration tests' typed REST
//! client and sign-in helpers, jepsen's network namespaces, clock skew and nemeses, bench's
//! memory and CPU sampling; each builds on [`Node`] in its own crate), and any dependency on
//! the node's crates: the binary is seen from outside only (flags, environment, signals,
//! `GET /health`, `GET /cluster`). A test tool, so errors are `anyhow` (STYLE.md) and the
//! node binary never links this crate.

mod certs;
mod cluster;
mod node;
mod ports;
mod view;

use std::future::Future;
use std::time::{Duration, Instant};

pub use certs::Certs;
pub use cluster::{Cluster, Layout, Slot};
pub use node::{scrub_env, Keep, Node, NodeSpec, Settings};
pub use ports::{free_addr, free_port, Addrs};
pub use view::{ClusterView, Probe};

/// How long to wait for a node or a cluster, and how often to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Upper bound for a node to come up, a cluster to form or agree on a leader.
    pub timeout: Duration,
    /// Pause between two polls.
    pub interval: Duration,
    /// Bound of one status request (`GET /health`, `GET /cluster`).
    pub request: Duration,
}

impl Default for Timing {
    /// A minute to come up (two clusters may share two cores), a poll every 100 ms, 2 s
    /// per status request.
    fn default() -> Timing {
        Timing {
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(100),
            request: Duration::from_secs(2),
        }
    }
}

/// Calls `probe` every `timing.interval` until it returns `Ok`, or fails once
/// `timing.timeout` has passed, with `what` and the last `Err` (the observation that kept the
/// condition false).
pub async fn poll<T, F, Fut>(what: &str, timing: Timing, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timing.timeout;
    let mut polls = 0u32;
    loop {
        polls += 1;
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => anyhow::bail!(
                "timed out after {:?} ({polls} polls) waiting for {what}; last observation: {last}",
                timing.timeout
            ),
            Err(_) => tokio::time::sleep(timing.interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_returns_the_first_success_and_names_the_last_failure() {
        let timing = Timing {
            timeout: Duration::from_millis(50),
            interval: Duration::from_millis(1),
            request: Duration::from_secs(1),
        };
        let mut calls = 0;
        let third = poll("the third call", timing, || {
            calls += 1;
            let n = calls;
            async move {
                if n == 3 {
                    Ok(n)
                } else {
                    Err(format!("call {n}"))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(third, 3);

        let never = poll("nothing", timing, || async {
            Err::<(), _>("still no".to_string())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(never.contains("waiting for nothing"), "{never}");
        assert!(never.ends_with("last observation: still no"), "{never}");
    }
}
