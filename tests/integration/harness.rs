//! Process harness: the integration tests' side of `ecommerce-testkit`, which runs the real
//! `ecommerce` binary as 1..N nodes on loopback (temp dir, free ports, certificates, readiness
//! polling, SIGKILL on drop, log tail printed when a test fails; set
//! `ECOMMERCE_TEST_KEEP_DIRS=1` to also keep the temp dirs).
//!
//! What lives here is what only the tests need: the settings every test node gets
//! ([`TEST_OPERATOR_TOKEN`], text logs, [`STARTUP_TIMEOUT`]), panicking wrappers
//! ([`eventually`], [`Cluster`], [`Node`]) that hand out the typed REST client of
//! `client.rs`, retries across elections ([`retry_write`]), the CLI ([`run_cli`]) and
//! sign-in ([`sign_in`]). Nothing here starts or signals a process itself, and nothing here
//! asserts business behaviour.

use std::ffi::OsStr;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecommerce_testkit as testkit;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::client::{Client, Reply, REQUEST_TIMEOUT};

pub use testkit::{scrub_env, ClusterView};

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

/// How the tests wait (testkit's readiness polls and [`eventually`]).
const TIMING: testkit::Timing = testkit::Timing {
    timeout: STARTUP_TIMEOUT,
    interval: POLL_INTERVAL,
    request: REQUEST_TIMEOUT,
};

/// What every test node gets: text logs, the test operator token, `extra_args`.
fn settings(extra_args: &[&str]) -> testkit::Settings {
    let keep = match std::env::var_os("ECOMMERCE_TEST_KEEP_DIRS") {
        Some(_) => testkit::Keep::OnPanic,
        None => testkit::Keep::Never,
    };
    testkit::Settings {
        timing: TIMING,
        keep,
        ..testkit::Settings::new(BIN)
    }
    .args(["--log-format", "text"])
    .args(extra_args.iter().copied())
    .operator_token(TEST_OPERATOR_TOKEN)
    // As in the README: the CLI's variable is in the node's shell too.
    .env("ECOMMERCE_OPERATOR_TOKEN", TEST_OPERATOR_TOKEN)
}

/// A loopback address with a currently free port (never handed out twice in this process).
pub fn free_addr() -> SocketAddr {
    testkit::free_addr().expect("a free loopback port")
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Ok` or `timeout` passes; then panics
/// with `what` and the last `Err` description (the state that kept the condition false).
#[track_caller]
pub fn eventually<T, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    probe: F,
) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let what = what.into();
    let caller = std::panic::Location::caller();
    async move {
        let timing = testkit::Timing { timeout, ..TIMING };
        testkit::poll(&what, timing, probe)
            .await
            .unwrap_or_else(|e| panic!("{e:#} (at {caller})"))
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

/// `GET /cluster` on `client`, as an `Err(description)` unless it answered 200.
pub async fn cluster_view(client: &Client) -> Result<ClusterView, String> {
    match client.cluster().await {
        Ok(reply) if reply.status == StatusCode::OK => Ok(ClusterView::parse(&reply.body)),
        Ok(reply) => Err(format!("GET /cluster on {}: {reply}", client.base())),
        Err(e) => Err(format!("GET /cluster on {}: {e:#}", client.base())),
    }
}

/// A node outside any [`Cluster`] (a restored backup, a node with client TLS, a stranger
/// holding a cluster certificate), with the typed client of its REST API.
pub struct Node {
    node: testkit::Node,
    client: Client,
}

impl Node {
    /// Node `id` with its own temp dir and ports; not started. `extra_args` are appended to
    /// every `serve` command line. Without certificates the node makes its own CA (it can
    /// only be a cluster of its own).
    pub fn new(id: u64, extra_args: &[&str]) -> Node {
        Node::with_certs(id, extra_args, None)
    }

    /// [`Node::new`] with the cluster certificate directory `certs` (`--certs`).
    pub fn with_certs(id: u64, extra_args: &[&str], certs: Option<PathBuf>) -> Node {
        Node::make(settings(extra_args), id, certs, None)
    }

    /// [`Node::with_certs`] keeping its `data/` and `node.log` in `dir` (e.g.
    /// a small filesystem the test mounted).
    pub fn in_dir(id: u64, extra_args: &[&str], dir: PathBuf, certs: Option<PathBuf>) -> Node {
        Node::make(settings(extra_args), id, certs, Some(dir))
    }

    /// [`Node::with_certs`] serving REST and client gRPC over TLS with node `id`'s
    /// certificate from `certs` (which must name 127.0.0.1); its client trusts only
    /// that directory's CA.
    pub fn with_client_tls(id: u64, extra_args: &[&str], certs: PathBuf) -> Node {
        let settings = testkit::Settings {
            client_tls: true,
            ..settings(extra_args)
        };
        Node::make(settings, id, Some(certs), None)
    }

    fn make(
        settings: testkit::Settings,
        id: u64,
        certs: Option<PathBuf>,
        dir: Option<PathBuf>,
    ) -> Node {
        let certs = certs.map(|dir| testkit::Certs::open(settings.bin.as_ref(), &dir));
        // Nodes of one cluster share its KEK, kept beside its certificates.
        if let Some(certs) = certs.as_ref().filter(|c| !c.kek_file().exists()) {
            certs.generate_kek().expect("a KEK for the test cluster");
        }
        let spec = testkit::NodeSpec {
            certs,
            dir,
            ..testkit::NodeSpec::lone(id).expect("node ports")
        };
        let node = testkit::Node::new(Arc::new(settings), spec)
            .unwrap_or_else(|e| panic!("node {id}: {e:#}"));
        let client = match node.certs() {
            Some(certs) if node.url().starts_with("https://") => {
                Client::with_ca(node.url(), &certs.ca_cert())
            }
            _ => Client::new(node.url()),
        };
        Node { node, client }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Starts the node (with `--join PEER_ADDR` and `--join-as-learner` when asked) and waits
    /// until its REST API is up.
    pub async fn start(&mut self, join: Option<&str>, as_learner: bool) {
        let join = join.map(|j| j.parse().expect("a peer address HOST:PORT"));
        let id = self.node.id();
        self.node
            .start(join, as_learner)
            .await
            .unwrap_or_else(|e| panic!("start node {id}: {e:#}"));
    }
}

impl std::ops::Deref for Node {
    type Target = testkit::Node;

    fn deref(&self) -> &testkit::Node {
        &self.node
    }
}

/// A set of nodes forming one Raft cluster (`testkit::Cluster`), with the access token of
/// its test admin.
pub struct Cluster {
    kit: testkit::Cluster,
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
    /// waits until every node agrees on a leader and signs in the test admin. `extra_args`
    /// go to every node.
    pub async fn start_with(size: u64, extra_args: &[&str]) -> Cluster {
        Cluster::start_from(size, settings(extra_args)).await
    }

    /// [`Cluster::start`] with every node logging at `debug` (`RUST_LOG`), for
    /// tests that read what a node logs.
    pub async fn start_logging_debug(size: u64) -> Cluster {
        let mut settings = settings(&[]);
        settings.env.push(("RUST_LOG".into(), "debug".into()));
        Cluster::start_from(size, settings).await
    }

    async fn start_from(size: u64, settings: testkit::Settings) -> Cluster {
        assert!(size >= 1, "a cluster has at least one node");
        let layout = testkit::Layout::loopback(size as usize).expect("cluster ports");
        let kit = testkit::Cluster::start(settings, layout)
            .await
            .unwrap_or_else(|e| panic!("start a {size}-node cluster: {e:#}"));
        let mut cluster = Cluster {
            kit,
            admin_token: String::new(),
        };
        let leader = cluster.leader().await;
        let admin = access_token(&cluster.client(leader), "admin", ADMIN_USER).await;
        cluster.admin_token = admin.token;
        cluster
    }

    /// The directory with the cluster CA (`ca.pem`, `ca.key`) and node certificates.
    pub fn certs_dir(&self) -> PathBuf {
        self.kit.certs().dir().to_path_buf()
    }

    /// The cluster's certificates and KEK file (`certs/kek`).
    pub fn kit_certs(&self) -> &testkit::Certs {
        self.kit.certs()
    }

    /// The password-reset token sealed in a `PasswordResetIssued` event's
    /// `delivery` for user `user_id`, opened as the notification side does
    /// (with node 1's data keys and the cluster's KEK).
    pub fn open_reset_delivery(&self, user_id: &str, delivery: &str) -> String {
        let kek = self.kit.certs().kek_file();
        let vault = ecommerce::vault::Vault::open_offline(&self.kit.node(1).data_dir(), &kek)
            .expect("open node 1's data keys");
        vault
            .open_reset_token(user_id, delivery)
            .expect("a delivery that opens")
    }

    /// Issues node `id`'s certificate (naming 127.0.0.1) unless it exists.
    pub fn issue_cert(&self, id: u64) {
        self.kit
            .certs()
            .ensure(id, &["127.0.0.1".into()])
            .unwrap_or_else(|e| panic!("issue the certificate of node {id}: {e:#}"));
    }

    /// The access token of the cluster's test admin.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A client of node `id` signed in as the cluster's test admin (see [`sign_in`]).
    pub fn admin_client(&self, id: u64) -> Client {
        self.client(id).with_bearer(&self.admin_token)
    }

    /// Node `id`: its addresses, URL, data dir and log.
    pub fn node(&self, id: u64) -> &testkit::Node {
        self.kit.node(id)
    }

    pub fn client(&self, id: u64) -> Client {
        Client::new(self.node(id).url())
    }

    /// Ids of every node the harness knows, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.kit.ids()
    }

    /// Ids of the nodes currently started by the harness (panics if one of them crashed).
    pub fn running_ids(&mut self) -> Vec<u64> {
        self.kit.running_ids().unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Starts a new node `id` joining through member `via`'s peer address (as a learner when
    /// asked) and waits until its REST API is up. Does not wait for the membership change.
    pub async fn add_node(&mut self, id: u64, via: u64, as_learner: bool) {
        self.kit
            .add_node(id, via, as_learner)
            .await
            .unwrap_or_else(|e| panic!("add node {id}: {e:#}"));
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        self.kit.node_mut(id).kill();
    }

    /// SIGKILLs every node, in id order, as fast as possible.
    pub fn kill_all(&mut self) {
        self.kit.kill_all();
    }

    /// Restarts node `id` on its data dir and ports, without `--join` (its persisted Raft
    /// state says which cluster it belongs to), and waits until its REST API is up.
    pub async fn restart(&mut self, id: u64) {
        self.start_node(id, None).await;
    }

    /// Restarts every node at once (spawn all, then wait for each): after a full-cluster
    /// crash no node can have a leader before a quorum is back.
    pub async fn restart_all(&mut self) {
        for node in self.kit.nodes_mut() {
            let id = node.id();
            node.spawn(None, false)
                .unwrap_or_else(|e| panic!("restart node {id}: {e:#}"));
        }
        for node in self.kit.nodes_mut() {
            let id = node.id();
            node.wait_up()
                .await
                .unwrap_or_else(|e| panic!("restart node {id}: {e:#}"));
        }
    }

    /// Restarts node `id` with the same `--join` (member `via`'s peer address) it would be
    /// started with by a supervisor (the contract says joining is idempotent on restart).
    pub async fn restart_with_join(&mut self, id: u64, via: u64) {
        let join = self.node(via).peer_addr();
        self.start_node(id, Some(join)).await;
    }

    async fn start_node(&mut self, id: u64, join: Option<SocketAddr>) {
        self.kit
            .node_mut(id)
            .start(join, false)
            .await
            .unwrap_or_else(|e| panic!("restart node {id}: {e:#}"));
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
        self.kit.leader().await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Waits until node `via` lists exactly `expected` (sorted) as voters.
    pub async fn wait_voters(&self, via: u64, expected: &[u64]) -> ClusterView {
        self.kit
            .wait_voters(via, expected)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        self.kit
            .wait_applied(id, index)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
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
