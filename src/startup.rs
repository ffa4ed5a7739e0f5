//! [`Application`]: builds a node from [`Settings`] and runs it. `main` and
//! the tests use the same builder.
//!
//! Start-up order: identity check, listeners bound (so port 0 works and the
//! advertised addresses are real), peer certificates loaded (or the node's
//! own CA made), RocksDB opened, Raft started, cluster bootstrapped or
//! joined, then the servers and the leader's housekeeping tasks run until a
//! shutdown signal.
//!
//! Three listeners: REST and client gRPC for clients (TLS when `tls` is
//! set), and the peer listener, which serves only `RaftService` over mutual
//! TLS with the cluster CA. No client listener serves the peer protocol.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ecommerce_raft::DiskWatch;
use ecommerce_raft::{NodeInfo, NodeOptions, PeerTls, RaftGrpc, RaftNode, Role};
use ecommerce_storage::{Storage, StorageOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api;
use crate::app::{App, Services};
use crate::auth::grpc::{Authenticate, RequireRole};
use crate::config::Settings;
use crate::grpc::{Commerce, PublicGrpc};
use crate::identity::Identity;
use crate::telemetry;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity as TlsIdentity, ServerTlsConfig};

/// Products kept in the in-process cache for stale reads.
const PRODUCT_CACHE_ENTRIES: u64 = 10_000;

/// A built node, ready to run.
pub struct Application {
    http_listener: TcpListener,
    grpc_listener: TcpListener,
    peer_listener: TcpListener,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    peer_addr: SocketAddr,
    /// Client-facing TLS: REST and client gRPC.
    client_tls: Option<ClientTls>,
    peer_tls: PeerTls,
    node: Arc<RaftNode>,
    state: App,
    settings: Settings,
}

/// The certificate clients see, for each client listener.
struct ClientTls {
    rest: Arc<rustls::ServerConfig>,
    /// REST's certificate, reloaded when its files change.
    rest_cert: Arc<crate::tls::ReloadingCert>,
    grpc: ServerTlsConfig,
}

impl ClientTls {
    fn load(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let (Some(cert), Some(key)) = (&settings.tls.cert, &settings.tls.key) else {
            return Ok(None);
        };
        let rest_cert = Arc::new(crate::tls::ReloadingCert::load(cert, key)?);
        let rest = crate::tls::rest_server_config(rest_cert.clone());
        let read = |p: &std::path::Path| {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        };
        let grpc = ServerTlsConfig::new().identity(TlsIdentity::from_pem(read(cert)?, read(key)?));
        Ok(Some(Self {
            rest,
            rest_cert,
            grpc,
        }))
    }
}

/// The peer credentials of this node: its certificate of the cluster, or a
/// private CA of its own for a node that starts a cluster without one.
fn peer_credentials(settings: &Settings, identity: &Identity) -> anyhow::Result<PeerTls> {
    let id = settings.node_id;
    let files = match settings.peer_tls.files(id) {
        Some(files) => files,
        None => {
            if settings.join.is_some() {
                bail!(
                    "joining a cluster needs this node's certificate of it: --certs DIR \
                     (see `ecommerce certs init` and `ecommerce certs issue`)"
                );
            }
            let cluster_id = identity
                .cluster_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            crate::tls::own_ca(&settings.data_dir, id, &cluster_id)?
        }
    };
    files
        .load(id)
        .context("loading this node's peer certificate")
}

/// This node's keys: the KEK (`storage.kek_file`), and the cluster's data
/// keys from `<data_dir>/keys/data-keys`; a node that starts a cluster makes
/// them, a node that joins one fetches them (wrapped) from the member it
/// joins through.
async fn open_vault(
    settings: &Settings,
    data_dir: &std::path::Path,
    fresh: bool,
    storage: &Storage,
    peer_tls: &PeerTls,
) -> anyhow::Result<crate::vault::Vault> {
    use crate::vault::{DataKeys, KeyFile, Vault, DATA_KEYS_FILE};
    let kek = crate::vault::load_kek(settings, data_dir)?;
    tracing::info!(versions = ?kek.versions(), "KEK loaded");
    let path = data_dir.join(DATA_KEYS_FILE);
    let file = match KeyFile::read(&path)? {
        Some(file) => file,
        None => {
            // A store written before encryption, of a cluster of this node
            // alone: it makes the keys. Any other node must share a
            // member's, or it could not read what they send it.
            let lone_upgrade = || -> anyhow::Result<bool> {
                Ok(!storage.is_sealed_at_rest()?
                    && ecommerce_raft::stored_members(storage)?
                        .iter()
                        .all(|id| *id == settings.node_id))
            };
            let file = match &settings.join {
                Some(member) if fresh => fetch_key_file(peer_tls, member).await?,
                None if fresh => DataKeys::generate().wrap(&kek, kek.current())?,
                _ if !fresh && lone_upgrade()? => DataKeys::generate().wrap(&kek, kek.current())?,
                _ => bail!(
                    "{} is missing: every node of a cluster needs the same data keys; copy the \
                     file from another member (a cluster upgraded from a release without \
                     encryption at rest: make it once with `ecommerce keys init-data-keys` and \
                     copy it to every node; a node that joins: start it on an empty data \
                     directory with --join)",
                    path.display()
                ),
            };
            file.write(&path)?;
            file
        }
    };
    Ok(Vault::open(settings, data_dir, kek, file)?)
}

/// The cluster's wrapped data keys from the member at `member`, retried
/// while it starts.
async fn fetch_key_file(peer_tls: &PeerTls, member: &str) -> anyhow::Result<crate::vault::KeyFile> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match ecommerce_raft::fetch_keys(peer_tls.clone(), member).await {
            Ok(bytes) => {
                return Ok(crate::vault::KeyFile::parse(&bytes, member)?);
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, %member, "fetching the data keys failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("fetching the cluster's data keys from {member}")))
            }
        }
    }
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
        crate::identity::create_data_dir(&data_dir)?;
        let mut identity = Identity::load_or_create(&data_dir, settings.node_id)?;
        // Backups are streamed from unlinked files; anything here is a leftover.
        let _ = std::fs::remove_dir_all(data_dir.join("backups"));

        let http_listener = listen(&settings.http_addr)
            .await
            .with_context(|| format!("binding the REST address {}", settings.http_addr))?;
        let grpc_listener = listen(&settings.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC address {}", settings.grpc_addr))?;
        let peer_listener = listen(&settings.peer_addr)
            .await
            .with_context(|| format!("binding the peer address {}", settings.peer_addr))?;
        let http_addr = http_listener.local_addr()?;
        let grpc_addr = grpc_listener.local_addr()?;
        let peer_addr = peer_listener.local_addr()?;
        let info = NodeInfo {
            http_addr: settings
                .advertise_http_addr
                .clone()
                .unwrap_or_else(|| http_addr.to_string()),
            peer_addr: settings
                .advertise_peer_addr
                .clone()
                .unwrap_or_else(|| peer_addr.to_string()),
        };
        let client_tls = ClientTls::load(&settings)?;
        if client_tls.is_none() && settings.insecure_plaintext {
            tracing::warn!(
                http = %http_addr,
                grpc = %grpc_addr,
                "serving clients in plain text (--insecure-plaintext): tokens and personal data cross the network unencrypted"
            );
        }
        let peer_tls = peer_credentials(&settings, &identity)?;
        // A fresh data directory: no cluster yet (a restarted node that
        // joined once has its cluster id, and must not start a new one).
        let fresh = identity.cluster_id.is_none();
        identity.bind_cluster(&data_dir, &peer_tls.cluster_id)?;
        let cluster_id = peer_tls.cluster_id.clone();

        let storage_options = StorageOptions {
            block_cache_bytes: settings.storage.block_cache_mb << 20,
            write_buffer_bytes: settings.storage.write_buffer_mb << 20,
            memtable_budget_bytes: settings.storage.memtable_budget_mb << 20,
        };
        let open_storage = || {
            Storage::open(
                &data_dir.join("db"),
                ecommerce_domains::TABLES,
                &storage_options,
            )
            .with_context(|| format!("opening the database in {}", data_dir.display()))
        };
        let mut storage = open_storage()?;
        let vault = Arc::new(open_vault(&settings, &data_dir, fresh, &storage, &peer_tls).await?);
        let seal = |storage: &Storage| {
            storage
                .seal_at_rest(vault.sealer(), ecommerce_domains::BLIND_TABLES)
                .context("sealing the database at rest")
        };
        let migration = seal(&storage)?;
        if migration.sealed > 0 {
            tracing::warn!(
                values = migration.sealed,
                "sealed a database written before encryption at rest; take new backups and \
                 destroy the old ones, which hold the data in plain text"
            );
            ecommerce_raft::reseal_current_snapshot(&storage, &data_dir.join("snapshots"))
                .context("sealing the current snapshot")?;
            // Reopened, RocksDB writes a new MANIFEST and drops the old logs.
            drop(storage);
            storage = open_storage()?;
            seal(&storage)?;
        }
        let disk = Arc::new(DiskWatch::new(
            &data_dir,
            settings.storage.min_free_bytes,
            settings.storage.min_free_percent,
        ));
        disk.refresh()
            .with_context(|| format!("reading the free space of {}", data_dir.display()))?;
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
                tls: peer_tls.clone(),
                disk: Some(disk.clone()),
            },
        )
        .await?;
        if fresh && settings.join.is_none() && !node.is_initialized().await? {
            node.initialize_single().await?;
            tracing::info!(
                node_id = settings.node_id,
                %cluster_id,
                "initialised a new single-node cluster"
            );
        }

        let media = crate::media::Media::open(&settings, node.clone())
            .with_context(|| format!("opening the blob store in {}", data_dir.display()))?;
        let search_dir = data_dir.join("search");
        let search = crate::search::SearchIndex::open(&search_dir)
            .with_context(|| format!("opening the search index in {}", search_dir.display()))?;
        let state = App::new(
            node.clone(),
            Services {
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
                payments: Arc::new(crate::payments::sandbox::Sandbox {
                    delay: Duration::from_millis(settings.payments.sandbox_delay_ms),
                }),
                guest_limits: crate::auth::limits::GuestLimits::new(&settings.commerce),
                disk: disk.clone(),
                vault: vault.clone(),
                trusted_proxies: settings.http.trusted_proxy_networks()?,
            },
        );
        Ok(Self {
            http_listener,
            grpc_listener,
            peer_listener,
            http_addr,
            grpc_addr,
            peer_addr,
            client_tls,
            peer_tls,
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

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
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
        let rest_tls_on = self.client_tls.is_some();
        let (rest_tls, grpc_tls, rest_cert) = match self.client_tls {
            Some(tls) => (Some(tls.rest), Some(tls.grpc), Some(tls.rest_cert)),
            None => (None, None, None),
        };
        let http = crate::serve::serve_http(
            self.http_listener,
            router,
            crate::serve::HttpOptions {
                tls: rest_tls,
                header_read_timeout: Duration::from_millis(
                    self.settings.http.header_read_timeout_ms,
                ),
            },
            stopped(stop_rx.clone()),
        );

        let public = PublicGrpc {
            state: self.state.clone(),
        };
        let commerce = Commerce::new(self.state.clone());
        // Commerce RPCs learn their caller from the bearer token (if any) that
        // this interceptor verified; each RPC then requires what its REST twin does.
        let signed_in = Authenticate {
            state: self.state.clone(),
        };
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<crate::grpc::proto::cluster_service_server::ClusterServiceServer<PublicGrpc>>().await;
        let mut client_grpc = tonic::transport::Server::builder();
        if let Some(tls) = grpc_tls {
            client_grpc = client_grpc
                .tls_config(tls)
                .context("client gRPC TLS configuration")?;
        }
        let grpc = client_grpc
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
            .serve_with_incoming_shutdown(nodelay(self.grpc_listener), stopped(stop_rx.clone()));

        // The peer protocol: mutual TLS, the cluster CA as the only root a
        // client certificate may chain to; `RaftGrpc` then checks that the
        // certificate names a member.
        let peer_service = RaftGrpc::new(self.node.clone())
            .with_blobs(Arc::new(crate::media::PeerBlobs(
                self.state.media.blobs.clone(),
            )))
            .with_keys(self.state.vault.clone());
        let peer_tls = ServerTlsConfig::new()
            .identity(TlsIdentity::from_pem(
                &self.peer_tls.cert_pem,
                &self.peer_tls.key_pem,
            ))
            .client_ca_root(Certificate::from_pem(&self.peer_tls.ca_pem));
        let peer = tonic::transport::Server::builder()
            .tls_config(peer_tls)
            .context("peer TLS configuration")?
            .add_service(peer_service.into_server())
            .serve_with_incoming_shutdown(nodelay(self.peer_listener), stopped(stop_rx.clone()));

        tracing::info!(
            node_id = self.node.id,
            cluster_id = %self.node.cluster_id,
            http = %format!("{}://{}", crate::serve::scheme(rest_tls_on), self.http_addr),
            grpc = %self.grpc_addr,
            peer = %self.peer_addr,
            "serving"
        );
        // Before serving: no read may cache what the follower would not invalidate.
        let products = self.state.products.clone();
        let product_cache =
            crate::projections::follow(self.node.clone(), move |feed| products.apply(feed));
        let http_task = tokio::spawn(http);
        let grpc_task = tokio::spawn(grpc);
        let peer_task = tokio::spawn(peer);
        let provider = self.state.payments.clone();
        let mut workers = crate::workers::spawn(self.node.clone(), self.settings.clone(), provider);
        workers.push(product_cache);
        if let Some(cert) = rest_cert {
            workers.push(tokio::spawn(cert.watch(crate::tls::RELOAD_CHECK_INTERVAL)));
        }
        workers.push(tokio::spawn(exit_when_raft_stops(self.node.clone())));
        workers.push(tokio::spawn(watch_disk(self.state.disk.clone())));
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
        let join = self.settings.join.clone().map(|member| {
            tokio::spawn(join_cluster(
                self.node.clone(),
                member,
                self.settings.join_as_learner,
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
        let (http_result, grpc_result, peer_result) = tokio::join!(http_task, grpc_task, peer_task);
        http_result?.context("REST server")?;
        grpc_result?.context("gRPC server")?;
        peer_result?.context("peer server")?;
        self.node.shutdown().await;
        Ok(())
    }
}

/// Accepted connections with `TCP_NODELAY` (tonic's own `tcp_nodelay`
/// does not apply to an incoming stream): without it every reply written in
/// more than one segment (append entries, votes, read index, forwarded
/// writes) stalls on the peer's delayed ACK.
fn nodelay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            if let Ok(tcp) = &conn {
                let _ = tcp.set_nodelay(true);
            }
            conn
        },
    )
}

/// Joins through the member at peer address `member` (idempotent): this
/// node presents its certificate, and the cluster adds it as a learner,
/// then promotes it unless `as_learner`. Retries until it is done.
async fn join_cluster(node: Arc<RaftNode>, member: String, as_learner: bool) {
    let mut step = 0;
    loop {
        let role = node
            .status()
            .members
            .iter()
            .find(|m| m.node_id == node.id)
            .map(|m| m.role);
        match role {
            Some(Role::Voter) => return,
            Some(Role::Learner) if as_learner => return,
            _ => {}
        }
        match node.join_via(&member, as_learner).await {
            Ok(()) => tracing::info!(%member, "joined the cluster"),
            Err(ecommerce_raft::Error::NodeIdRemoved(id)) => {
                tracing::error!(
                    node_id = id,
                    "this node id was removed from the cluster; not retrying"
                );
                return;
            }
            Err(e) => tracing::warn!(error = %e, %member, "join attempt failed; retrying"),
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

/// How often the data directory's free space is read.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Reads the data directory's free space every [`DISK_CHECK_INTERVAL`]:
/// writes are refused while it is below the watermark (see
/// `ecommerce_storage::disk`), and resume by themselves once it is back.
async fn watch_disk(disk: Arc<DiskWatch>) {
    let mut was_low = disk.is_low();
    loop {
        match disk.refresh() {
            Ok(space) => {
                metrics::gauge!("storage_free_bytes").set(space.free as f64);
                metrics::gauge!("storage_writes_refused").set(if space.low { 1.0 } else { 0.0 });
                if space.low != was_low {
                    if space.low {
                        tracing::error!(free = space.free, watermark = space.watermark,
                            path = %disk.path().display(),
                            "the data directory is nearly full: refusing writes until space is freed");
                    } else {
                        tracing::warn!(free = space.free, "free space is back: accepting writes");
                    }
                    was_low = space.low;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the data directory's free space"),
        }
        tokio::time::sleep(DISK_CHECK_INTERVAL).await;
    }
}

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
