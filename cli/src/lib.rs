//! Command-line surface of the `ecommerce` binary.
//!
//! This file holds only the clap types ([`Cli`] and the per-subcommand argument structs).
//! The operator commands that talk REST to a running node live in [`cluster`] and
//! [`backup`]; `serve` and `restore` are parsed here but executed by the binary, because
//! they need the storage and Raft crates, which this crate must not depend on.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueHint};

pub mod backup;
pub mod catalog;
mod client;
pub mod cluster;
pub mod keys;
#[cfg(test)]
mod testing;
pub mod user;

pub use backup::run_backup;
pub use catalog::run_catalog;
pub use client::ApiError;
pub use cluster::run_cluster;
pub use keys::run_keys;
pub use user::run_user;

/// Default REST address of the node that operator commands talk to.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:8080";

/// The `ecommerce` command line.
#[derive(Debug, Parser)]
#[command(
    name = "ecommerce",
    version,
    about = "E-commerce backend node: a replicated store with a REST API",
    long_about = "E-commerce backend node.\n\n\
        One binary runs a node of a replicated e-commerce backend: every write is a Raft \
        log entry (openraft) applied to a RocksDB state machine on each node, and the \
        REST API (inventory, warehouses, events, cluster administration) is served by \
        every node; writes sent to a follower are forwarded to the leader.\n\n\
        `serve` runs a node. `cluster`, `backup` and `restore` are operator commands: the \
        first two talk REST to a running node, `restore` works offline on a data directory."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (REST + gRPC). With no arguments: node 1, ./data, a single-node cluster.
    #[command(
        long_about = "Run a node: the REST API, the Raft gRPC endpoint and the replicated state machine.\n\n\
            With no arguments the node is node 1 with data in ./data, REST on 127.0.0.1:8080, \
            client gRPC on 127.0.0.1:50051 and the peer protocol on 127.0.0.1:50052. A fresh data \
            directory without --join initialises a single-node cluster, which elects itself leader.\n\n\
            Three listeners: REST and client gRPC serve clients (HTTPS with --tls-cert/--tls-key; \
            plain text only on loopback unless --insecure-plaintext); the peer listener serves \
            only other nodes, always over mutual TLS with the cluster's CA (--certs DIR, made by \
            `ecommerce certs init`). A node started without --certs makes a private CA of its \
            own in DATA_DIR/tls, so its peer port accepts nobody else."
    )]
    Serve(ServeArgs),
    /// Inspect and change the cluster membership through a running node.
    #[command(
        long_about = "Inspect and change the cluster membership through any running node.\n\n\
            Changes sent to a follower are forwarded to the leader. While the cluster has no \
            leader (an election is running) requests are retried until --timeout. A removed \
            node id can never be added again: start a replacement with a new id."
    )]
    Cluster(ClusterArgs),
    /// Download a consistent snapshot of the state machine from a running node.
    #[command(
        long_about = "Download a consistent snapshot of the state machine from a running node.\n\n\
            The file is written to FILE.tmp, synced to disk and renamed to FILE, so FILE is \
            either the previous content or a complete backup. It holds every record of the shop \
            and the token signing keys, so it is created readable by its owner only (0600): keep \
            it as secret as the cluster itself. Restore it with `ecommerce restore`."
    )]
    Backup(BackupArgs),
    /// Seed a fresh data directory of a NEW cluster from a backup file (offline).
    #[command(
        long_about = "Seed a fresh data directory of a NEW cluster from a backup file (offline).\n\n\
            Then `ecommerce serve --data-dir DIR` with the same node id and addresses starts a \
            single-node cluster holding the restored state; add more nodes with --join."
    )]
    Restore(RestoreArgs),
    /// Make the cluster CA and node certificates for the peer protocol (offline).
    #[command(
        long_about = "Make the cluster's CA and node certificates (offline).\n\n\
            `certs init --dir certs --nodes 1,2,3` creates a new cluster id, its CA (ca.pem, \
            ca.key) and a certificate per node (node-<id>.pem, node-<id>.key). `certs issue \
            --dir certs --node-id 4` adds one for a new node later. A node certificate names its \
            node id and cluster: it is what lets a process speak the peer protocol as that node, \
            and a node id removed from the cluster is refused whatever it presents. Keep ca.key \
            with the operator; give each node ca.pem and its own two files. --hosts adds DNS \
            names or IP addresses so that the same certificate can serve HTTPS to clients."
    )]
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Manage the key-encryption key (KEK) that wraps the data keys (offline).
    #[command(long_about = "Manage the key-encryption key (offline).\n\n\
            `keys generate-kek --file kek` appends a new random 32-byte key version to FILE \
            (creating it readable by its owner only): one `<version> <base64 key>` per line. \
            Every node of a cluster needs the same file (storage.kek_file); keep a copy with \
            the backups' keeper, apart from the backups: without the KEK version that wrapped \
            them, backups cannot be read.")]
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage user accounts through a running node (e.g. bootstrap the first admin).
    #[command(long_about = "Manage user accounts through a running node.\n\n\
            `user create --email E --role admin` bootstraps the first admin: the request \
            carries the node's operator token (--operator-token or ECOMMERCE_OPERATOR_TOKEN, \
            the value of the node's auth.operator_token). The password is read from \
            --password-file, or else from the first line of standard input.")]
    User(UserArgs),
    /// Bulk-load products from a JSON-lines file, or generate a demo catalogue.
    #[command(long_about = "Bulk-load products, or generate a demo catalogue.\n\n\
            `catalog generate --products 10000 --out demo.jsonl` writes a realistic catalogue \
            (categories, products with colour and size variants); `catalog import demo.jsonl` \
            loads it through a running node in batches, with a progress bar. An interrupted \
            import resumes where it stopped (FILE.import-state), and a batch sent twice is \
            applied once. Import needs an admin's credentials.")]
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

/// Arguments of `ecommerce user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub node: NodeOpts,

    #[command(subcommand)]
    pub command: UserCommand,
}

/// Subcommands of `ecommerce user`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account with a role.
    Create(CreateUserArgs),
}

/// Arguments of `ecommerce user create`.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[arg(long, value_name = "EMAIL")]
    pub email: String,
    /// customer, vendor or admin.
    #[arg(long, value_name = "ROLE", value_parser = ["customer", "vendor", "admin"], default_value = "customer")]
    pub role: String,
    /// Display name [default: the e-mail address]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// File whose first line is the password (else: the first line of standard input).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,
}

/// Subcommands of `ecommerce catalog`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Load a JSON-lines file of categories and products through a running node.
    Import(CatalogImportArgs),
    /// Write a realistic demo catalogue as JSON lines.
    Generate(GenerateArgs),
}

/// Arguments of `ecommerce catalog import`.
#[derive(Debug, Args)]
pub struct CatalogImportArgs {
    /// JSON lines: `{"type":"category",...}` or `{"type":"product",...}`.
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,

    /// Products per request (1 to 500).
    #[arg(long, value_name = "N", default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(1..=500))]
    pub batch: u64,

    #[command(flatten)]
    pub node: NodeOpts,
}

/// Arguments of `ecommerce catalog generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many products.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub products: u64,

    /// Same seed, same catalogue.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,

    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub out: Option<PathBuf>,
}

/// Arguments of `ecommerce serve`.
///
/// Every field is optional so the caller can layer configuration: defaults, then the
/// config file, then `ECOMMERCE_*` environment variables, then these flags. A `None` here
/// means "not given on the command line", never "use the default".
#[derive(Debug, Default, Args)]
#[command(after_long_help = "Configuration is layered; later layers win:\n  \
        1. built-in defaults\n  \
        2. the --config TOML file\n  \
        3. environment variables: ECOMMERCE_NODE_ID, ECOMMERCE_DATA_DIR, ECOMMERCE_HTTP_ADDR,\n     \
        ECOMMERCE_GRPC_ADDR, ECOMMERCE_PEER_ADDR, ECOMMERCE_JOIN; nested keys use `__`,\n     \
        e.g. ECOMMERCE_PEER_TLS__DIR=certs, ECOMMERCE_TLS__CERT=cert.pem,\n     \
        e.g. ECOMMERCE_RAFT__SNAPSHOT_LOGS=50\n  \
        4. the flags above")]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// This node's Raft id, unique in the cluster and never reused [default: 1]
    #[arg(long, value_name = "N")]
    pub node_id: Option<u64>,

    /// Directory holding the Raft log and the state machine [default: ./data]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub data_dir: Option<PathBuf>,

    /// Address the REST API listens on and is advertised at [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,

    /// Address the client gRPC services listen on [default: 127.0.0.1:50051]
    #[arg(long, value_name = "HOST:PORT")]
    pub grpc_addr: Option<String>,

    /// Address the peer protocol (Raft, mutual TLS) listens on and is advertised at
    /// [default: 127.0.0.1:50052]
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_addr: Option<String>,

    /// Peer address of any cluster member to join through (e.g. 10.0.0.1:50052).
    ///
    /// The node presents its certificate (--certs) and asks that member to add it as a
    /// learner, then to promote it to voter. Safe to keep on restart: joining is idempotent.
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,

    /// Directory with the cluster CA and this node's certificate (`ecommerce certs init`):
    /// `ca.pem`, `node-<id>.pem`, `node-<id>.key`.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub certs: Option<PathBuf>,

    /// The key-encryption key file (`ecommerce keys generate-kek`), the same on every node:
    /// it wraps the data keys that seal everything stored. Without it, a node that serves
    /// only loopback addresses and joins nobody makes one in DATA_DIR/keys/kek; any other
    /// node refuses to start.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub kek_file: Option<PathBuf>,

    /// Certificate chain (PEM) for HTTPS and TLS gRPC to clients.
    #[arg(long, value_name = "FILE", requires = "tls_key", value_hint = ValueHint::FilePath)]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", value_hint = ValueHint::FilePath)]
    pub tls_key: Option<PathBuf>,

    /// Serve clients in plain text on a non-loopback address (logs a warning). Without TLS
    /// and without this flag, REST and client gRPC may only listen on loopback.
    #[arg(long)]
    pub insecure_plaintext: bool,

    /// With --join: stay a learner (replicates, does not vote) instead of becoming a voter.
    // No `requires = "join"`: the join URL may come from the config file or the environment.
    #[arg(long)]
    pub join_as_learner: bool,

    /// Log output format [default: text]
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,

    /// Build a snapshot every N applied log entries (and purge the log before it) [default: 5000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_logs: Option<u64>,
}

/// How to reach a running node; shared by `cluster` and `backup`.
#[derive(Debug, Clone, Args)]
pub struct NodeOpts {
    /// REST URL of any cluster member, http:// or https:// (`host:port` is taken as
    /// http://host:port).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "ECOMMERCE_NODE",
        default_value = DEFAULT_NODE_URL,
        value_parser = parse_node_url,
        value_hint = ValueHint::Url,
    )]
    pub node: String,

    /// Give up after this many seconds, including retries while the cluster has no leader.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub timeout: u64,

    /// The node's operator token (`auth.operator_token`), sent as `X-Operator-Token`.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "ECOMMERCE_OPERATOR_TOKEN",
        hide_env_values = true
    )]
    pub operator_token: Option<String>,

    /// An admin's access token, sent as `Authorization: Bearer` (instead of the operator token).
    #[arg(
        long,
        global = true,
        value_name = "JWT",
        env = "ECOMMERCE_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub access_token: Option<String>,

    /// CA certificate (PEM) to trust for an https:// node, besides the system's roots.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "ECOMMERCE_CA_CERT",
        value_hint = ValueHint::FilePath
    )]
    pub ca_cert: Option<PathBuf>,
}

impl NodeOpts {
    /// The `--timeout` as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// Arguments of `ecommerce cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub node: NodeOpts,

    /// Print the node's JSON response instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// Subcommands of `ecommerce cluster`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show members, roles, the leader and the Raft indexes as seen by the node.
    Status,
    /// Add a node as a learner: it replicates the log but does not vote.
    AddLearner(AddLearnerArgs),
    /// Promote a learner to voter.
    Promote(NodeIdArg),
    /// Remove a node from the cluster for good; its id can never be reused.
    Remove(NodeIdArg),
    /// Ask the leader to hand leadership to another voter.
    TransferLeader(NodeIdArg),
}

/// Arguments of `ecommerce cluster add-learner`.
#[derive(Debug, Args)]
pub struct AddLearnerArgs {
    /// Raft id of the new node.
    #[arg(long, value_name = "N")]
    pub node_id: u64,
    /// REST address the new node is reachable at.
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: String,
    /// Peer address the new node is reachable at; the leader checks that the node answering
    /// there holds the certificate of this node id.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_addr: String,
}

/// A `--node-id N` argument naming an existing member.
#[derive(Debug, Args)]
pub struct NodeIdArg {
    /// Raft id of the member.
    #[arg(long, value_name = "N")]
    pub node_id: u64,
}

/// Arguments of `ecommerce backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (overwritten if it exists).
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,

    #[command(flatten)]
    pub node: NodeOpts,
}

/// Arguments of `ecommerce restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Backup file written by `ecommerce backup`.
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,

    /// Data directory to create; must not hold a node already.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub data_dir: PathBuf,

    /// Raft id of the single node of the new cluster.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub node_id: u64,

    /// REST address the node will be advertised at.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub http_addr: String,

    /// Peer address the node will be advertised at.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50052")]
    pub peer_addr: String,

    /// The KEK file the backup was made under (it must hold the backup's KEK version). The
    /// restored data keys are wrapped under its newest version, and it is copied to
    /// DATA_DIR/keys/kek, where the restored lone node finds it (give the node
    /// storage.kek_file instead, and delete that copy, to keep the KEK apart from the data).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub kek_file: Option<PathBuf>,
}

/// Subcommands of `ecommerce keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Append a new random KEK version to FILE (created 0600 if missing).
    GenerateKek {
        /// The KEK file (storage.kek_file).
        #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        file: PathBuf,
        /// The version to add; the highest present plus one by default.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// Make the cluster's data keys in DATA_DIR/keys/data-keys, wrapped by the newest
    /// version of the KEK file: for upgrading a cluster whose data predates encryption at
    /// rest (run it for one node, then copy the file to every other node's data directory
    /// before starting them).
    InitDataKeys {
        /// The node's data directory.
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        data_dir: PathBuf,
        /// The KEK file (storage.kek_file).
        #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        kek_file: PathBuf,
    },
    #[command(flatten)]
    Online(KeysOnline),
}

/// `ecommerce keys` commands sent to running nodes.
#[derive(Debug, Subcommand)]
pub enum KeysOnline {
    /// Show, for every member, which KEK version wraps its data keys and which versions
    /// its KEK file holds.
    Status {
        #[command(flatten)]
        node: NodeOpts,
    },
    /// Rewrap every member's data keys under KEK version N (online; no stored value
    /// changes). Add version N to every node's KEK file first: the command checks that every
    /// member holds it before it changes anything.
    RotateKek {
        /// The KEK version to rotate to.
        #[arg(long, value_name = "N")]
        to: u32,
        #[command(flatten)]
        node: NodeOpts,
    },
}

/// Subcommands of `ecommerce certs`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a cluster CA and certificates for the first nodes.
    Init {
        /// Directory to create them in (must not hold a CA yet).
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: PathBuf,
        /// Node ids to issue certificates for, e.g. 1,2,3.
        #[arg(long, value_name = "IDS", value_delimiter = ',', required = true)]
        nodes: Vec<u64>,
        /// DNS names or IP addresses clients use to reach the nodes (for HTTPS).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Use this cluster id instead of a new one (e.g. to add peers to a node that started
        /// alone: its id is in `GET /cluster`).
        #[arg(long, value_name = "ID")]
        cluster_id: Option<String>,
    },
    /// Issue a certificate for one more node from the CA in DIR.
    Issue {
        /// Directory holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: PathBuf,
        /// The new node's id (never one that was removed).
        #[arg(long, value_name = "N")]
        node_id: u64,
        /// DNS names or IP addresses clients use to reach the node (for HTTPS).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        hosts: Vec<String>,
    },
}

/// Normalises a `--node` value: adds `http://` when no scheme is given and drops trailing
/// slashes, so paths can be appended with `format!("{node}/cluster")`.
fn parse_node_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let url = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported scheme {:?} in {raw:?}: use http:// or https://",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none() {
        return Err(format!("no host in {raw:?}"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("ecommerce").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} should parse: {e}"))
            .command
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn long_help_explains_the_product_and_the_environment() {
        let mut cli = Cli::command();
        assert!(cli.render_long_help().to_string().contains("Raft"));
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        assert!(help.contains("single-node cluster"), "{help}");
        assert!(help.contains("ECOMMERCE_RAFT__SNAPSHOT_LOGS"), "{help}");
    }

    #[test]
    fn serve_without_arguments_gives_nothing() {
        let Command::Serve(args) = parse(&["serve"]) else {
            panic!("expected serve")
        };
        assert!(args.config.is_none());
        assert!(args.node_id.is_none());
        assert!(args.data_dir.is_none());
        assert!(args.http_addr.is_none());
        assert!(args.grpc_addr.is_none());
        assert!(args.join.is_none());
        assert!(!args.join_as_learner);
        assert!(args.log_format.is_none());
        assert!(args.snapshot_logs.is_none());
    }

    #[test]
    fn serve_with_every_flag() {
        let Command::Serve(args) = parse(&[
            "serve",
            "--config",
            "config/node.toml",
            "--node-id",
            "3",
            "--data-dir",
            "/var/lib/ecommerce",
            "--http-addr",
            "0.0.0.0:8083",
            "--grpc-addr",
            "0.0.0.0:50053",
            "--peer-addr",
            "0.0.0.0:50054",
            "--join",
            "10.0.0.1:50052",
            "--join-as-learner",
            "--certs",
            "/etc/ecommerce/certs",
            "--tls-cert",
            "/etc/ecommerce/https.pem",
            "--tls-key",
            "/etc/ecommerce/https.key",
            "--insecure-plaintext",
            "--log-format",
            "json",
            "--snapshot-logs",
            "50",
        ]) else {
            panic!("expected serve")
        };
        assert_eq!(args.config, Some(PathBuf::from("config/node.toml")));
        assert_eq!(args.node_id, Some(3));
        assert_eq!(args.data_dir, Some(PathBuf::from("/var/lib/ecommerce")));
        assert_eq!(args.http_addr.as_deref(), Some("0.0.0.0:8083"));
        assert_eq!(args.grpc_addr.as_deref(), Some("0.0.0.0:50053"));
        assert_eq!(args.peer_addr.as_deref(), Some("0.0.0.0:50054"));
        assert_eq!(args.join.as_deref(), Some("10.0.0.1:50052"));
        assert!(args.join_as_learner);
        assert_eq!(args.certs, Some(PathBuf::from("/etc/ecommerce/certs")));
        assert_eq!(
            args.tls_cert,
            Some(PathBuf::from("/etc/ecommerce/https.pem"))
        );
        assert_eq!(
            args.tls_key,
            Some(PathBuf::from("/etc/ecommerce/https.key"))
        );
        assert!(args.insecure_plaintext);
        assert_eq!(args.log_format.as_deref(), Some("json"));
        assert_eq!(args.snapshot_logs, Some(50));
    }

    #[test]
    fn serve_rejects_bad_values() {
        for bad in [
            &["serve", "--log-format", "xml"][..],
            &["serve", "--snapshot-logs", "0"],
            &["serve", "--node-id", "-1"],
            &["serve", "--bogus"],
            &["serve", "--tls-cert", "cert.pem"],
        ] {
            let args = std::iter::once("ecommerce").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn cluster_status_defaults() {
        let Command::Cluster(args) = parse(&["cluster", "status"]) else {
            panic!("expected cluster")
        };
        assert!(matches!(args.command, ClusterCommand::Status));
        // The test environment may set ECOMMERCE_NODE; only check the default when it doesn't.
        if std::env::var_os("ECOMMERCE_NODE").is_none() {
            assert_eq!(args.node.node, DEFAULT_NODE_URL);
        }
        assert_eq!(args.node.timeout(), Duration::from_secs(30));
        assert!(!args.json);
    }

    #[test]
    fn cluster_global_options_go_before_or_after_the_subcommand() {
        for argv in [
            &[
                "cluster",
                "--node",
                "10.0.0.2:8080/",
                "--timeout",
                "5",
                "--json",
                "status",
            ][..],
            &[
                "cluster",
                "status",
                "--node",
                "http://10.0.0.2:8080",
                "--timeout",
                "5",
                "--json",
            ],
        ] {
            let Command::Cluster(args) = parse(argv) else {
                panic!("expected cluster")
            };
            assert_eq!(args.node.node, "http://10.0.0.2:8080");
            assert_eq!(args.node.timeout, 5);
            assert!(args.json);
        }
    }

    #[test]
    fn cluster_membership_subcommands() {
        let Command::Cluster(args) = parse(&[
            "cluster",
            "add-learner",
            "--node-id",
            "4",
            "--http-addr",
            "127.0.0.1:8084",
            "--peer-addr",
            "127.0.0.1:50054",
        ]) else {
            panic!("expected cluster")
        };
        let ClusterCommand::AddLearner(add) = args.command else {
            panic!("expected add-learner")
        };
        assert_eq!(add.node_id, 4);
        assert_eq!(add.http_addr, "127.0.0.1:8084");
        assert_eq!(add.peer_addr, "127.0.0.1:50054");

        for (name, expected) in [("promote", 1), ("remove", 2), ("transfer-leader", 3)] {
            let Command::Cluster(args) = parse(&["cluster", name, "--node-id", "7"]) else {
                panic!("expected cluster")
            };
            let (kind, id) = match args.command {
                ClusterCommand::Promote(a) => (1, a.node_id),
                ClusterCommand::Remove(a) => (2, a.node_id),
                ClusterCommand::TransferLeader(a) => (3, a.node_id),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!((kind, id), (expected, 7), "{name}");
        }

        let missing = ["ecommerce", "cluster", "promote"];
        assert!(Cli::try_parse_from(missing).is_err());
    }

    #[test]
    fn backup_takes_a_file_and_node_options() {
        let Command::Backup(args) = parse(&["backup", "snap.bin", "--node", "127.0.0.1:8081"])
        else {
            panic!("expected backup")
        };
        assert_eq!(args.file, PathBuf::from("snap.bin"));
        assert_eq!(args.node.node, "http://127.0.0.1:8081");
        assert!(Cli::try_parse_from(["ecommerce", "backup"]).is_err());
    }

    #[test]
    fn restore_defaults_and_flags() {
        let Command::Restore(args) = parse(&["restore", "snap.bin", "--data-dir", "d"]) else {
            panic!("expected restore")
        };
        assert_eq!(args.file, PathBuf::from("snap.bin"));
        assert_eq!(args.data_dir, PathBuf::from("d"));
        assert_eq!(args.node_id, 1);
        assert_eq!(args.http_addr, "127.0.0.1:8080");
        assert_eq!(args.peer_addr, "127.0.0.1:50052");

        let Command::Restore(args) = parse(&[
            "restore",
            "snap.bin",
            "--data-dir",
            "d",
            "--node-id",
            "9",
            "--http-addr",
            "0.0.0.0:9000",
            "--peer-addr",
            "0.0.0.0:9001",
        ]) else {
            panic!("expected restore")
        };
        assert_eq!(args.node_id, 9);
        assert_eq!(args.http_addr, "0.0.0.0:9000");
        assert_eq!(args.peer_addr, "0.0.0.0:9001");

        assert!(Cli::try_parse_from(["ecommerce", "restore", "snap.bin"]).is_err());
    }

    #[test]
    fn node_urls_are_normalised() {
        assert_eq!(
            parse_node_url("127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_node_url("http://node-1:8080/").unwrap(),
            "http://node-1:8080"
        );
        assert_eq!(
            parse_node_url("http://lb/ecommerce/").unwrap(),
            "http://lb/ecommerce"
        );
        assert_eq!(
            parse_node_url("https://node-1:8443/").unwrap(),
            "https://node-1:8443"
        );
        assert!(parse_node_url("ftp://node-1").is_err());
        assert!(parse_node_url("http://").is_err());
    }
}
