//! Test helpers: a real local HTTP server (axum on port 0) standing in for a node, and
//! [`NodeOpts`] pointing at it. Only compiled for tests.

use axum::Router;

use crate::NodeOpts;

/// Serves `router` on an ephemeral loopback port and returns its base URL.
pub(crate) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// Options that talk to `base` with a `timeout_secs` budget.
pub(crate) fn node_opts(base: &str, timeout_secs: u64) -> NodeOpts {
    NodeOpts {
        node: base.to_owned(),
        timeout: timeout_secs,
        operator_token: None,
        access_token: None,
        ca_cert: None,
    }
}
