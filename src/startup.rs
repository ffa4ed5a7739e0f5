//! [`Application`]: builds a node from [`Settings`] and runs it. `main` and
//! the tests use the same builder.
//!
//! Start-up order: identity check, listeners bound (so port 0 works and the
//! advertised addresses are real), RocksDB opened, Raft started, cluster
//! bootstrapped or joined, then the REST and gRPC servers and the leader's
//! housekeeping tasks run until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::http::StatusCode;
use axum::serve::ListenerExt;
use ecommerce_raft::{NodeInfo, NodeOptions, RaftGrpc, RaftNode, Role};
use ecommerce_storage::{Storage, StorageOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, AppState, Inner};
use crate::auth::grpc::{Authenticate, RequireRole};
use crate::config::Settings;
use crate::grpc::{Commerce, PublicGrpc};
use crate::identity::Identity;
use crate::telemetry;
use tonic::service::interceptor::InterceptedService;

/// A built node, ready to run.
/// Products kept in the in-process cache for stale reads.
const PRODUCT_CACHE_ENTRIES: u64 = 10_000;

pub struct Application {
    http_listener: TcpListener,
    grpc_listener: TcpListener,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    node: Arc<RaftNode>,
    state: AppState,
    settings: Settings,
}

/// Connections the kernel may hold for a listener before it accepts them
/// (capped by `net.core.somaxconn`). `TcpListener::bind` asks for 128, which
/// a burst of new clients overflows: their SYNs are dropped and retried
/// after 1, 3, 7... seconds.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (host:port; the first resolved address that binds wins) and
/// listens with [`LISTEN_BACKLOG`].
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for resolved in tokio::net::lookup_host(addr).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted node may rebind its port
        // while old connections are in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(resolved) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let data_dir = settings.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let mut identity = Identity::load_or_create(&data_dir, settings.node_id)?;
        // Backups are streamed from unlinked files; anything here is a leftover.
        let _ = std::fs::remove_dir_all(data_dir.join("backups"));

        let http_listener = listen(&settings.http_addr)
            .await
            .with_context(|| format!("binding the REST address {}", settings.http_addr))?;
        let grpc_listener = listen(&settings.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC address {}", settings.grpc_addr))?;
        let http_addr = http_listener.local_addr()?;
        let grpc_addr = grpc_listener.local_addr()?;
        let info = NodeInfo {
            http_addr: settings
                .advertise_http_addr
                .clone()
                .unwrap_or_else(|| http_addr.to_string()),
            grpc_addr: settings
                .advertise_grpc_addr
                .clone()
                .unwrap_or_else(|| grpc_addr.to_string()),
        };

        let storage_options = StorageOptions {
            block_cache_bytes: settings.storage.block_cache_mb << 20,
            write_buffer_bytes: settings.storage.write_buffer_mb << 20,
            memtable_budget_bytes: settings.storage.memtable_budget_mb << 20,
        };
        let storage = Storage::open(
            &data_dir.join("db"),
            ecommerce_domains::TABLES,
            &storage_options,
        )
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
        let r = &settings.raft;
        let node = RaftNode::start(
            storage,
            NodeOptions {
                node_id: settings.node_id,
                info: info.clone(),
                snapshot_dir: data_dir.join("snapshots"),
                heartbeat_interval_ms: r.heartbeat_interval_ms,
                election_timeout_min_ms: r.election_timeout_min_ms,
                election_timeout_max_ms: r.election_timeout_max_ms,
                snapshot_logs: r.snapshot_logs,
                // Keeping more than one snapshot interval of log buys nothing.
                logs_to_keep: r.logs_to_keep.min(r.snapshot_logs),
                install_snapshot_timeout_ms: r.install_snapshot_timeout_ms,
                proposals_in_flight: r.proposals_in_flight,
            },
        )
        .await?;

        let cluster_id = match (&settings.join, identity.cluster_id.clone()) {
            (_, Some(id)) => id,
            (None, None) => {
                if !node.is_initialized().await? {
                    node.initialize_single().await?;
                    tracing::info!(
                        node_id = settings.node_id,
                        "initialised a new single-node cluster"
                    );
                }
                uuid::Uuid::new_v4().to_string()
            }
            (Some(join), None) => fetch_cluster_id(join).await?,
        };
        identity.bind_cluster(&data_dir, &cluster_id)?;

        let media = crate::media::Media::open(&settings, node.clone())
            .with_context(|| format!("opening the blob store in {}", data_dir.display()))?;
        let search_dir = data_dir.join("search");
        let search = crate::search::SearchIndex::open(&search_dir)
            .with_context(|| format!("opening the search index in {}", search_dir.display()))?;
        let state = AppState::new(Inner {
            node: node.clone(),
            settings: settings.clone(),
            cluster_id,
            prometheus: telemetry::prometheus(),
            auth: Arc::new(crate::auth::Auth::new(&settings.auth)?),
            media: Arc::new(media),
            products: Arc::new(crate::projections::products::ProductCache::new(
                PRODUCT_CACHE_ENTRIES,
            )),
            search: Arc::new(search),
            search_queries: Arc::new(tokio::sync::Semaphore::new(
                settings.search.query_concurrency(),
            )),
        });
        Ok(Self {
            http_listener,
            grpc_listener,
            http_addr,
            grpc_addr,
            node,
            state,
            settings,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Serves until `shutdown` resolves, then stops gracefully.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let router = api::service(self.state.clone());
        // TCP_NODELAY on every accepted connection: without it a response
        // written in two segments waits for the client's delayed ACK (~40 ms).
        let http = axum::serve(
            self.http_listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            // The peer address feeds the per-IP rate limits of the /auth routes.
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()));

        let public = PublicGrpc {
            node: self.node.clone(),
            cluster_id: self.state.cluster_id.clone(),
        };
        let commerce = Commerce::new(self.state.clone());
        // Commerce RPCs learn their caller from the bearer token (if any) that
        // this interceptor verified; each RPC then requires what its REST twin does.
        let signed_in = Authenticate {
            state: self.state.clone(),
        };
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<crate::grpc::proto::cluster_service_server::ClusterServiceServer<PublicGrpc>>().await;
        let grpc = tonic::transport::Server::builder()
            .add_service(RaftGrpc::new(self.node.clone()).into_server())
            .add_service(health_service)
            .add_service(public.cluster_service())
            .add_service(InterceptedService::new(
                public.event_service(),
                RequireRole {
                    state: self.state.clone(),
                    roles: &[ecommerce_domains::Role::Admin],
                },
            ))
            .add_service(InterceptedService::new(
                commerce.cart_service(),
                signed_in.clone(),
            ))
            .add_service(InterceptedService::new(
                commerce.order_service(),
                signed_in.clone(),
            ))
            .add_service(InterceptedService::new(
                commerce.inventory_service(),
                signed_in.clone(),
            ))
            .add_service(InterceptedService::new(
                commerce.listing_service(),
                signed_in,
            ))
            .serve_with_incoming_shutdown(
                // tonic's own `tcp_nodelay` does not apply to an incoming
                // stream: set it here, or every reply to a peer (append
                // entries, votes, read index, forwarded writes) written in
                // more than one segment stalls on the peer's delayed ACK.
                tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(self.grpc_listener),
                    |conn| {
                        if let Ok(tcp) = &conn {
                            let _ = tcp.set_nodelay(true);
                        }
                        conn
                    },
                ),
                stopped(stop_rx.clone()),
            );

        tracing::info!(node_id = self.node.id, http = %self.http_addr, grpc = %self.grpc_addr, "serving");
        // Before serving: no read may cache what the follower would not invalidate.
        let products = self.state.products.clone();
        let product_cache =
            crate::projections::follow(self.node.clone(), move |feed| products.apply(feed));
        let http_task = tokio::spawn(async move { http.await });
        let grpc_task = tokio::spawn(grpc);
        let provider = std::sync::Arc::new(crate::payments::sandbox::Sandbox {
            delay: Duration::from_millis(self.settings.payments.sandbox_delay_ms),
        });
        let mut workers = crate::workers::spawn(self.node.clone(), self.settings.clone(), provider);
        workers.push(product_cache);
        workers.push(tokio::spawn(exit_when_raft_stops(self.node.clone())));
        let m = &self.settings.media;
        workers.push(tokio::spawn(crate::media::fetch::replicate(
            self.state.media.fetcher.clone(),
            Duration::from_millis(m.fetch_retry_ms),
            Duration::from_secs(m.reconcile_interval_secs),
        )));
        workers.push(tokio::spawn(crate::search::indexer::run(
            self.state.search.clone(),
            self.node.clone(),
            Duration::from_millis(self.settings.search.commit_interval_ms),
        )));
        let join = self.settings.join.clone().map(|url| {
            tokio::spawn(join_cluster(
                self.node.clone(),
                url,
                self.settings.join_as_learner,
                self.settings.auth.operator_token.clone(),
            ))
        });

        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        for worker in &workers {
            worker.abort();
        }
        if let Some(join) = join {
            join.abort();
        }
        let (http_result, grpc_result) = tokio::join!(http_task, grpc_task);
        http_result?.context("REST server")?;
        grpc_result?.context("gRPC server")?;
        self.node.shutdown().await;
        Ok(())
    }
}

/// Asks a member for the cluster id (a fresh node joining).
async fn fetch_cluster_id(join: &str) -> anyhow::Result<String> {
    let url = format!("{}/cluster", join.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut last_error = String::new();
    for _ in 0..60 {
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await?;
                if let Some(id) = body["cluster_id"].as_str() {
                    return Ok(id.to_string());
                }
                bail!("{url} answered without a cluster_id");
            }
            Ok(r) => last_error = format!("status {}", r.status()),
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("could not reach {url} to join the cluster: {last_error}")
}

/// Joins through the member at `url` (idempotent): added as learner, then
/// promoted unless `as_learner`. Retries until it is done.
async fn join_cluster(
    node: Arc<RaftNode>,
    url: String,
    as_learner: bool,
    operator_token: Option<crate::config::SecretString>,
) {
    let client = reqwest::Client::new();
    let base = url.trim_end_matches('/').to_string();
    let body = serde_json::json!({
        "node_id": node.id, "http_addr": node.info.http_addr, "grpc_addr": node.info.grpc_addr
    });
    let mut step = 0;
    loop {
        let role = node
            .status()
            .members
            .iter()
            .find(|m| m.node_id == node.id)
            .map(|m| m.role);
        let (path, payload) = match role {
            Some(Role::Voter) => return,
            Some(Role::Learner) if as_learner => return,
            Some(Role::Learner) => ("promote", serde_json::json!({ "node_id": node.id })),
            None => ("learners", body.clone()),
        };
        let mut request = client.post(format!("{base}/cluster/{path}")).json(&payload);
        if let Some(token) = &operator_token {
            request = request.header(crate::api::auth::OPERATOR_TOKEN, &token.0);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => tracing::info!(step = path, "joined the cluster"),
            Ok(r) if r.status() == StatusCode::CONFLICT => {
                let text = r.text().await.unwrap_or_default();
                if text.contains("node_id_removed") {
                    tracing::error!(response = %text, "this node id was removed from the cluster; not retrying");
                    return;
                }
                tracing::warn!(response = %text, step = path, "join attempt refused; retrying");
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), step = path, "join attempt refused; retrying")
            }
            Err(e) => tracing::warn!(error = %e, step = path, "join attempt failed; retrying"),
        }
        step += 1;
        let pause = Duration::from_millis(200 * step.min(10));
        tokio::time::sleep(pause).await;
    }
}

/// On the leader, periodically proposes the expiry of old idempotency records.
/// Time comes from the leader's clock inside the command; every replica
/// applies the same cut-off.
/// Exit code when the Raft core stopped on a fatal error (e.g. a write failed
/// with a full disk): the process exits so a supervisor restarts it, instead of
/// answering `no_leader` for ever.
pub const EXIT_RAFT_STOPPED: i32 = 70;

/// Watches the Raft core; exits the process if it stopped on a fatal error.
/// Everything acknowledged is already durable (fsynced before the
/// acknowledgement), so exiting loses nothing; a restart recovers from disk.
async fn exit_when_raft_stops(node: Arc<RaftNode>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(fatal) = node.metrics().running_state {
            tracing::error!(error = %fatal, "the Raft core stopped; exiting so the node can be restarted");
            std::process::exit(EXIT_RAFT_STOPPED);
        }
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
