//! Process harness: runs the real `ecommerce` binary as 1..N nodes on loopback.
//!
//! Each [`Node`] owns a temp dir (data dir + `node.log` with the process's stdout and stderr),
//! a free HTTP, gRPC and peer port picked by binding port 0, and at most one child process.
//! Nodes are SIGKILLed on drop; when the test is panicking, the tail of every node's log is
//! printed (set `ECOMMERCE_TEST_KEEP_DIRS=1` to also keep the temp dirs). [`Cluster`] makes a
//! cluster CA and node certificates (what `ecommerce certs init` does), starts node 1 alone (it
//! bootstraps a single-node cluster), joins the others with `--join <node 1's peer address>`,
//! and offers kill/restart/leader lookup. A lone [`Node`] without certificates makes its own CA. Readiness is always polled with a deadline ([`eventually`]),
//! never assumed after a fixed sleep. REST calls go through `client.rs`; nothing here asserts
//! business behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::client::{Client, Reply};

/// The binary under test, built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_ecommerce");

/// Upper bound for a node to come up, a cluster to form, a leader to be elected or a replica
/// to catch up. Generous because two test clusters may share two CPU cores.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The operator token every test node is started with (`ECOMMERCE_AUTH__OPERATOR_TOKEN`) and
/// every CLI command run by [`run_cli`] presents (`ECOMMERCE_OPERATOR_TOKEN`).
pub const TEST_OPERATOR_TOKEN: &str = "test-operator-token-0123456789abcdef";

/// Lines of a node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

/// Ports already handed out in this test process, so two nodes never get the same one even if
/// the OS recycles a just-released ephemeral port.
static USED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback address with a currently free port: bind port 0, read it, drop the listener.
pub fn free_addr() -> SocketAddr {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        let fresh = USED_PORTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr.port());
        if fresh {
            return addr;
        }
    }
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Ok` or `timeout` passes; then panics
/// with `what` and the last `Err` description (the state that kept the condition false).
#[track_caller]
pub fn eventually<T, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    mut probe: F,
) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let what = what.into();
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + timeout;
        let mut polls = 0u32;
        loop {
            polls += 1;
            match probe().await {
                Ok(value) => return value,
                Err(last) if Instant::now() >= deadline => panic!(
                    "timed out after {timeout:?} ({polls} polls) waiting for {what} \
                     (at {caller}); last observation: {last}"
                ),
                Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }
}

/// Sends a write until it gets a non-transient answer, for use across leader elections.
/// Transient: the node could not be reached, 503 (must be `no_leader` with `Retry-After`),
/// or 504 `timeout`. Use an absolute write or an `Idempotency-Key` so a retry of a write
/// whose first attempt timed out cannot apply twice.
#[track_caller]
pub fn retry_write<F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    mut send: F,
) -> impl Future<Output = Reply>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = anyhow::Result<Reply>>,
{
    let what = what.into();
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        loop {
            let last = match send(attempt).await {
                Ok(reply) if reply.status == StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(
                        reply.code(),
                        "no_leader",
                        "{what}: a 503 must carry code no_leader, got {reply}"
                    );
                    assert!(
                        reply.header("retry-after").is_some(),
                        "{what}: a 503 no_leader must carry Retry-After, got {reply}"
                    );
                    reply.to_string()
                }
                Ok(reply) if reply.status == StatusCode::GATEWAY_TIMEOUT => {
                    assert_eq!(
                        reply.code(),
                        "timeout",
                        "{what}: a 504 must carry code timeout, got {reply}"
                    );
                    reply.to_string()
                }
                Ok(reply) => return reply,
                Err(e) => format!("{e:#}"),
            };
            attempt += 1;
            if Instant::now() >= deadline {
                panic!(
                    "{what} (at {caller}): no definite answer within {timeout:?} \
                     ({attempt} attempts); last: {last}"
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Runs the binary as a one-shot CLI command (e.g. `backup`, `restore`) with a 60 s bound.
pub async fn run_cli<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let mut command = tokio::process::Command::new(BIN);
    command.args(&args).kill_on_drop(true);
    scrub_env(command.as_std_mut());
    command.env("ECOMMERCE_OPERATOR_TOKEN", TEST_OPERATOR_TOKEN);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("`ecommerce {args:?}` did not finish within 60 s"))
        .unwrap_or_else(|e| panic!("could not run `ecommerce {args:?}`: {e}"));
    output
}

/// Removes `ECOMMERCE_*` variables inherited from the developer's shell: the node must be
/// configured by the flags the test passes, nothing else.
pub fn scrub_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ECOMMERCE_") {
            command.env_remove(key);
        }
    }
}

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

/// `GET /cluster` on `client`, as an `Err(description)` unless it answered 200.
pub async fn cluster_view(client: &Client) -> Result<ClusterView, String> {
    match client.cluster().await {
        Ok(reply) if reply.status == StatusCode::OK => Ok(ClusterView::parse(&reply.body)),
        Ok(reply) => Err(format!("GET /cluster on {}: {reply}", client.base())),
        Err(e) => Err(format!("GET /cluster on {}: {e:#}", client.base())),
    }
}

/// One `ecommerce serve` process with its own temp dir and ports; restartable on both.
pub struct Node {
    pub id: u64,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    /// The cluster's certificate directory (`--certs`), if any.
    certs: Option<PathBuf>,
    extra_args: Vec<String>,
    child: Option<Child>,
    client: Client,
    /// `Option` only so `Drop` can keep it on request.
    dir: Option<TempDir>,
}

impl Node {
    /// Allocates a temp dir and three free ports for node `id`; does not start anything.
    /// `extra_args` are appended to every `serve` command line of this node. Without
    /// certificates the node makes its own CA (it can only be a cluster of its own).
    pub fn new(id: u64, extra_args: &[&str]) -> Node {
        Node::with_certs(id, extra_args, None)
    }

    /// [`Node::new`] with the cluster certificate directory `certs` (`--certs`).
    pub fn with_certs(id: u64, extra_args: &[&str], certs: Option<PathBuf>) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ecommerce-node{id}-"))
            .tempdir()
            .expect("create node temp dir");
        let http_addr = free_addr();
        let grpc_addr = free_addr();
        let peer_addr = free_addr();
        Node {
            id,
            http_addr,
            grpc_addr,
            peer_addr,
            certs,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            client: Client::new(format!("http://{http_addr}")),
            dir: Some(dir),
        }
    }

    /// [`Node::with_certs`] serving REST and client gRPC over TLS with node `id`'s
    /// certificate from `certs` (which must name 127.0.0.1); its client trusts only
    /// that directory's CA.
    pub fn with_client_tls(id: u64, extra_args: &[&str], certs: PathBuf) -> Node {
        let cert = certs.join(ecommerce::tls::node_cert_file(id));
        let key = certs.join(ecommerce::tls::node_key_file(id));
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
        args.extend_from_slice(extra_args);
        let mut node = Node::with_certs(id, &args, Some(certs.clone()));
        node.client = Client::with_ca(
            format!("https://{}", node.http_addr),
            &certs.join(ecommerce::tls::CA_CERT),
        );
        node
    }

    fn dir(&self) -> PathBuf {
        self.dir.as_ref().expect("node dir").path().to_path_buf()
    }

    /// The node's data dir (`<tempdir>/data`, created by the node itself).
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("node.log")
    }

    /// Base URL of the REST API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.client.base().to_string()
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }

    /// Starts `ecommerce serve` for this node (same data dir and ports every time), with
    /// `--join PEER_ADDR` and `--join-as-learner` when asked. Output is appended to `node.log`.
    pub fn spawn(&mut self, join: Option<&str>, as_learner: bool) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--node-id".into(),
            self.id.to_string(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--http-addr".into(),
            self.http_addr.to_string(),
            "--grpc-addr".into(),
            self.grpc_addr.to_string(),
            "--peer-addr".into(),
            self.peer_addr.to_string(),
            "--log-format".into(),
            "text".into(),
        ];
        if let Some(certs) = &self.certs {
            args.push("--certs".into());
            args.push(certs.display().to_string());
        }
        if let Some(join) = join {
            args.push("--join".into());
            args.push(join.into());
        }
        if as_learner {
            args.push("--join-as-learner".into());
        }
        args.extend(self.extra_args.iter().cloned());

        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open node log");
        writeln!(
            log,
            "=== harness: starting node {}: {BIN} {}",
            self.id,
            args.join(" ")
        )
        .expect("write node log");
        let stderr = log.try_clone().expect("clone node log handle");
        let mut command = Command::new(BIN);
        command
            .args(&args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            // Plain log files: no ANSI colour codes.
            .env("NO_COLOR", "1");
        scrub_env(&mut command);
        command.env("ECOMMERCE_AUTH__OPERATOR_TOKEN", TEST_OPERATOR_TOKEN);
        // As in the README: the CLI's variable is in the node's shell too.
        command.env("ECOMMERCE_OPERATOR_TOKEN", TEST_OPERATOR_TOKEN);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node {}: {BIN} {args:?}: {e}", self.id));
        self.child = Some(child);
    }

    /// [`Node::spawn`] then [`Node::wait_up`].
    pub async fn start(&mut self, join: Option<&str>, as_learner: bool) {
        self.spawn(join, as_learner);
        self.wait_up().await;
    }

    /// Panics (with the log tail) if the process was started and has exited on its own.
    pub fn assert_alive(&mut self) {
        let id = self.id;
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                panic!(
                    "node {id} exited unexpectedly with {status}; log tail:\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
        }
    }

    /// Polls until `GET /health` and `GET /cluster` both answer 200, failing fast if the
    /// process dies.
    pub async fn wait_up(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last = String::from("no poll yet");
        while Instant::now() < deadline {
            self.assert_alive();
            match (self.client.health().await, self.client.cluster().await) {
                (Ok(h), Ok(c)) if h.status == StatusCode::OK && c.status == StatusCode::OK => {
                    return;
                }
                (h, c) => last = format!("/health: {h:?}; /cluster: {c:?}"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!(
            "node {} at {} not up within {STARTUP_TIMEOUT:?}; last: {last}",
            self.id,
            self.url()
        );
    }

    /// SIGKILLs the process (no graceful shutdown) and reaps it. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(mut log) = OpenOptions::new().append(true).open(self.log_path()) {
                let _ = writeln!(log, "=== harness: node {} SIGKILLed", self.id);
            }
        }
    }

    /// The last `lines` lines of the node's combined stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(no log at {}: {e})", self.log_path().display()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- node {} ({}) log tail, {} -----\n{}\n----- end of node {} log -----",
                self.id,
                self.url(),
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES),
                self.id
            );
            if std::env::var_os("ECOMMERCE_TEST_KEEP_DIRS").is_some() {
                if let Some(dir) = self.dir.take() {
                    eprintln!("kept node {} dir {}", self.id, dir.keep().display());
                }
            }
        }
    }
}

/// A set of nodes forming one Raft cluster, keyed by node id.
pub struct Cluster {
    nodes: BTreeMap<u64, Node>,
    extra_args: Vec<String>,
    /// The cluster CA and node certificates (`ecommerce certs init`).
    certs: TempDir,
    /// Access token of the cluster's test admin (signed in once the cluster is up).
    admin_token: String,
}

impl Cluster {
    /// Starts a `size`-node cluster with default flags.
    pub async fn start(size: u64) -> Cluster {
        Cluster::start_with(size, &[]).await
    }

    /// Starts node 1 alone (it bootstraps and becomes leader), then nodes 2..=size one by one
    /// with `--join <node 1>`, waiting each time until node 1 lists it as a voter; finally
    /// waits until every node agrees on a leader. `extra_args` go to every node.
    pub async fn start_with(size: u64, extra_args: &[&str]) -> Cluster {
        assert!(size >= 1, "a cluster has at least one node");
        let certs = tempfile::Builder::new()
            .prefix("ecommerce-certs-")
            .tempdir()
            .expect("create certs temp dir");
        ecommerce::tls::init_dir(certs.path(), None, &[1], &["127.0.0.1".into()])
            .expect("make the cluster CA");
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            certs,
            admin_token: String::new(),
        };
        let mut first = Node::with_certs(1, extra_args, Some(cluster.certs_dir()));
        first.start(None, false).await;
        let first_client = first.client();
        cluster.nodes.insert(1, first);
        eventually(
            "node 1 to bootstrap as the leader of a single-node cluster",
            STARTUP_TIMEOUT,
            || {
                let c = first_client.clone();
                async move {
                    let view = cluster_view(&c).await?;
                    if view.leader_id == Some(1) && view.voters() == [1] {
                        Ok(())
                    } else {
                        Err(view.raw.to_string())
                    }
                }
            },
        )
        .await;
        for id in 2..=size {
            cluster.add_node(id, 1, false).await;
            let expected: Vec<u64> = (1..=id).collect();
            cluster.wait_voters(1, &expected).await;
        }
        let leader = cluster.leader().await;
        let admin = access_token(&cluster.client(leader), "admin", ADMIN_USER).await;
        cluster.admin_token = admin.token;
        cluster
    }

    /// The directory with the cluster CA (`ca.pem`, `ca.key`) and node certificates.
    pub fn certs_dir(&self) -> PathBuf {
        self.certs.path().to_path_buf()
    }

    /// Issues node `id`'s certificate unless it exists (`ecommerce certs issue`).
    pub fn issue_cert(&self, id: u64) {
        let dir = self.certs_dir();
        if !dir.join(ecommerce::tls::node_cert_file(id)).exists() {
            ecommerce::tls::issue_node(&dir, id, &["127.0.0.1".into()])
                .unwrap_or_else(|e| panic!("issue the certificate of node {id}: {e:#}"));
        }
    }

    /// The access token of the cluster's test admin.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A client of node `id` signed in as the cluster's test admin (see [`sign_in`]).
    pub fn admin_client(&self, id: u64) -> Client {
        self.client(id).with_bearer(&self.admin_token)
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    pub fn client(&self, id: u64) -> Client {
        self.node(id).client()
    }

    /// Ids of every node the harness knows, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of the nodes currently started by the harness (panics if one of them crashed).
    pub fn running_ids(&mut self) -> Vec<u64> {
        let mut ids = Vec::new();
        for (id, node) in self.nodes.iter_mut() {
            node.assert_alive();
            if node.is_started() {
                ids.push(*id);
            }
        }
        ids
    }

    /// Starts a new node `id` joining through member `via`'s peer address (as a learner when
    /// asked) and waits until its REST API is up. Does not wait for the membership change.
    pub async fn add_node(&mut self, id: u64, via: u64, as_learner: bool) {
        assert!(!self.nodes.contains_key(&id), "node {id} already exists");
        self.issue_cert(id);
        let join = self.node(via).peer_addr.to_string();
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        let mut node = Node::with_certs(id, &extra, Some(self.certs_dir()));
        node.start(Some(&join), as_learner).await;
        self.nodes.insert(id, node);
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// SIGKILLs every node, in id order, as fast as possible.
    pub fn kill_all(&mut self) {
        for node in self.nodes.values_mut() {
            node.kill();
        }
    }

    /// Restarts node `id` on its data dir and ports, without `--join` (its persisted Raft
    /// state says which cluster it belongs to), and waits until its REST API is up.
    pub async fn restart(&mut self, id: u64) {
        self.node_mut(id).start(None, false).await;
    }

    /// Restarts every node at once (spawn all, then wait for each): after a full-cluster
    /// crash no node can have a leader before a quorum is back.
    pub async fn restart_all(&mut self) {
        for node in self.nodes.values_mut() {
            node.spawn(None, false);
        }
        for node in self.nodes.values_mut() {
            node.wait_up().await;
        }
    }

    /// Restarts node `id` with the same `--join` (member `via`'s peer address) it would be
    /// started with by a supervisor (the contract says joining is idempotent on restart).
    pub async fn restart_with_join(&mut self, id: u64, via: u64) {
        let join = self.node(via).peer_addr.to_string();
        self.node_mut(id).start(Some(&join), false).await;
    }

    /// `GET /cluster` of node `id`, panicking unless 200.
    pub async fn view(&self, id: u64) -> ClusterView {
        cluster_view(&self.client(id))
            .await
            .unwrap_or_else(|e| panic!("cluster view of node {id}: {e}"))
    }

    /// Waits until every running node reports the same leader, that leader is running and
    /// reports itself as leader; returns its id.
    pub async fn leader(&mut self) -> u64 {
        let clients: Vec<(u64, Client)> = self
            .running_ids()
            .into_iter()
            .map(|id| (id, self.client(id)))
            .collect();
        eventually(
            "all running nodes to agree on a running leader",
            STARTUP_TIMEOUT,
            || {
                let clients = clients.clone();
                async move {
                    let mut views = Vec::new();
                    for (id, client) in &clients {
                        views.push((*id, cluster_view(client).await?));
                    }
                    let leaders: BTreeSet<Option<u64>> =
                        views.iter().map(|(_, v)| v.leader_id).collect();
                    let describe = || {
                        views
                            .iter()
                            .map(|(id, v)| {
                                format!("node {id}: leader {:?} term {:?}", v.leader_id, v.term)
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                        [Some(leader)] if views.iter().any(|(id, _)| id == leader) => Ok(*leader),
                        _ => Err(describe()),
                    }
                }
            },
        )
        .await
    }

    /// Waits until node `via` lists exactly `expected` (sorted) as voters.
    pub async fn wait_voters(&self, via: u64, expected: &[u64]) -> ClusterView {
        let client = self.client(via);
        let expected = expected.to_vec();
        eventually(
            format!("node {via} to list voters {expected:?}"),
            STARTUP_TIMEOUT,
            || {
                let (client, expected) = (client.clone(), expected.clone());
                async move {
                    let view = cluster_view(&client).await?;
                    if view.voters() == expected {
                        Ok(view)
                    } else {
                        Err(format!("members {:?}", view.members))
                    }
                }
            },
        )
        .await
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        let client = self.client(id);
        eventually(
            format!("node {id} to apply log index {index}"),
            STARTUP_TIMEOUT,
            || {
                let client = client.clone();
                async move {
                    let view = cluster_view(&client).await?;
                    match view.applied_index {
                        Some(applied) if applied >= index => Ok(()),
                        other => Err(format!("applied_index {other:?}")),
                    }
                }
            },
        )
        .await
    }

    /// The leader's `applied_index` after waiting for a leader.
    pub async fn leader_applied(&mut self) -> (u64, u64) {
        let leader = self.leader().await;
        let view = self.view(leader).await;
        let applied = view
            .applied_index
            .unwrap_or_else(|| panic!("leader {leader} reports no applied_index: {}", view.raw));
        (leader, applied)
    }
}

/// A node config file (TOML) in a temp dir, for `--config`: keep the dir alive while nodes
/// run. Returns (dir, path).
pub fn config_file(toml: &str) -> (TempDir, String) {
    let dir = tempfile::tempdir().expect("config temp dir");
    let path = dir.path().join("node.toml");
    std::fs::write(&path, toml).expect("write config file");
    let path = path.display().to_string();
    (dir, path)
}

/// Name of the admin every [`Cluster`] signs in as when it starts.
pub const ADMIN_USER: &str = "cluster-admin";

/// A signed-in test user.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub token: String,
    pub refresh_token: String,
    pub user_id: String,
}

/// The e-mail address and password `sign_in` uses for (`role`, `user`).
pub fn test_account(role: &str, user: &str) -> (String, String) {
    (
        format!("{user}.{role}@example.test"),
        format!("pw-{user}-{role}-long-enough"),
    )
}

/// Sends `POST path` with `body` until a definite answer (elections in between are retried).
async fn post_definite(client: &Client, what: &str, path: &str, body: &Value) -> Reply {
    retry_write(what, STARTUP_TIMEOUT, |_| client.post(path, body)).await
}

/// Signs in as (`role`, `user`), creating the account on first use: customers register
/// themselves at `/auth/register`; vendors and admins are created at `POST /api/v1/users`
/// with the operator token (what `ecommerce user create` does). Login is the real
/// `/auth/login`, so each call starts a new session.
pub async fn access_token(client: &Client, role: &str, user: &str) -> Credentials {
    let (email, password) = test_account(role, user);
    let login_body = serde_json::json!({ "email": email, "password": password });
    let mut reply = post_definite(client, "sign-in login", "/auth/login", &login_body).await;
    if reply.status == StatusCode::UNAUTHORIZED {
        let body = serde_json::json!({
            "email": email, "password": password, "name": user, "role": role
        });
        let created = if role == "customer" {
            let mut body = body;
            body.as_object_mut().expect("object").remove("role");
            post_definite(client, "sign-in register", "/auth/register", &body).await
        } else {
            let operator = client
                .clone()
                .with_header("x-operator-token", TEST_OPERATOR_TOKEN);
            post_definite(&operator, "sign-in create user", "/api/v1/users", &body).await
        };
        assert!(
            created.status == StatusCode::CREATED || created.code() == "email_taken",
            "sign_in({role}, {user}): creating the account: {created}"
        );
        reply = post_definite(client, "sign-in login", "/auth/login", &login_body).await;
    }
    let body = reply.ok(&format!("sign_in({role}, {user}): login"));
    let token = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {body}"))
        .to_string();
    let refresh_token = body["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh_token in {body}"))
        .to_string();
    let me = client
        .clone()
        .with_bearer(&token)
        .get("/api/v1/users/me")
        .await
        .expect("GET /api/v1/users/me")
        .ok(&format!("sign_in({role}, {user}): GET /api/v1/users/me"));
    assert_eq!(me["role"], serde_json::json!(role), "sign_in role of {me}");
    let user_id = me["id"].as_str().expect("user id").to_string();
    Credentials {
        token,
        refresh_token,
        user_id,
    }
}

/// The one place tests obtain credentials: a copy of `client` that acts as the user named
/// `user` with `role` (`customer`, `vendor` or `admin`), and that user's id. The same name
/// and role give the same account again (in the same cluster); see [`access_token`].
pub async fn sign_in(client: &Client, role: &str, user: &str) -> (Client, String) {
    let credentials = access_token(client, role, user).await;
    (
        client.clone().with_bearer(&credentials.token),
        credentials.user_id,
    )
}
