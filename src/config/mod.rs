//! Layered, typed configuration: defaults, then a TOML file (`--config`),
//! then `ECOMMERCE_*` environment variables (`__` separates nested keys, e.g.
//! `ECOMMERCE_RAFT__SNAPSHOT_LOGS`), then command-line flags. Validated
//! before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod auth;
mod http;

pub use auth::{AuthSettings, ProviderSettings, SecretString, SocialSettings};
#[cfg(test)]
use http::check_origins;
pub use http::HttpSettings;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This node's id: unique in the cluster, never reused after removal.
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// REST listen address (clients); port 0 picks a free port.
    pub http_addr: String,
    /// gRPC listen address (clients); port 0 picks a free port.
    pub grpc_addr: String,
    /// Peer listen address: the node-to-node protocol (Raft, forwarded
    /// writes, joining, blobs), mutual TLS only; port 0 picks a free port.
    pub peer_addr: String,
    /// Addresses peers and clients should use, when they differ from the listen
    /// addresses (e.g. listening on 0.0.0.0).
    pub advertise_http_addr: Option<String>,
    pub advertise_peer_addr: Option<String>,
    /// Peer address (host:port) of a member to join through; without it a
    /// fresh node starts a new single-node cluster. Joining needs the node's
    /// certificate of the cluster (`peer_tls`).
    pub join: Option<String>,
    /// Stay a learner after joining (promote later with `cluster promote`).
    pub join_as_learner: bool,
    pub log_format: LogFormat,
    /// TLS for clients (REST and client gRPC).
    pub tls: TlsSettings,
    /// The node's credentials on the peer protocol.
    pub peer_tls: PeerTlsSettings,
    /// Serve REST and client gRPC in plain text on a non-loopback address
    /// (without it, such a node refuses to start unless `tls` is set).
    pub insecure_plaintext: bool,
    pub raft: RaftSettings,
    pub http: HttpSettings,
    pub idempotency: IdempotencySettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub commerce: CommerceSettings,
    pub payments: PaymentSettings,
    pub media: MediaSettings,
    pub search: SearchSettings,
    pub events: EventSettings,
}

/// Client-facing TLS: a certificate chain and its key (PEM). Both or none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Where the node finds the cluster CA and its own node certificate:
/// `dir`, a directory made by `ecommerce certs init` (`ca.pem`,
/// `node-<id>.pem`, `node-<id>.key`), or the three files by name. Neither:
/// a node that starts a new cluster makes a private CA of its own in
/// `<data_dir>/tls/` (see `tls.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerTlsSettings {
    pub dir: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl PeerTlsSettings {
    /// The files of node `node_id`, if configured.
    pub fn files(&self, node_id: u64) -> Option<crate::tls::PeerFiles> {
        match (&self.dir, &self.ca, &self.cert, &self.key) {
            (Some(dir), ..) => Some(crate::tls::PeerFiles::in_dir(dir, node_id)),
            (None, Some(ca), Some(cert), Some(key)) => Some(crate::tls::PeerFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let files = [&self.ca, &self.cert, &self.key];
        let named = files.iter().filter(|f| f.is_some()).count();
        anyhow::ensure!(
            named == 0 || (named == 3 && self.dir.is_none()),
            "peer_tls: give either dir, or all of ca, cert and key"
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RaftSettings {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) every this many entries.
    pub snapshot_logs: u64,
    /// Entries kept behind a snapshot for followers that lag a little (at
    /// most `snapshot_logs`).
    pub logs_to_keep: u64,
    pub install_snapshot_timeout_ms: u64,
    /// Batches of proposals the leader hands to Raft before the first is
    /// answered; commands arriving meanwhile wait for the next batch.
    pub proposals_in_flight: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How long a stored response is replayed for its key.
    pub ttl_secs: u64,
    /// How often the leader proposes the expiry command.
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommerceSettings {
    /// How long checkout reserves stock before an unpaid order is cancelled.
    pub hold_ttl_secs: u64,
    /// Longest hold a checkout or an extension may ask for.
    pub max_hold_ttl_secs: u64,
    /// Carts unchanged for this long are removed.
    pub cart_idle_secs: u64,
    /// How often the leader looks for expired holds and idle carts.
    pub sweep_interval_ms: u64,
    /// Guest carts one client network (an IPv4 address, an IPv6 /64) may
    /// start per minute on a node; past it 429 `rate_limited`.
    pub guest_carts_per_network_per_minute: u32,
    /// Guest carts all clients together may start per minute on a node.
    pub guest_carts_per_minute: u32,
    /// Cart writes by guests of one client network per minute on a node.
    pub guest_writes_per_network_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// The provider payments go to; `sandbox` is built in and works offline.
    pub provider: String,
    /// Deadline of one provider call.
    pub timeout_ms: u64,
    /// Calls without a definite answer before the payment counts as failed.
    pub max_attempts: u32,
    /// Pause between two attempts.
    pub retry_backoff_ms: u64,
    /// How often the leader's worker looks for payment tasks.
    pub poll_interval_ms: u64,
    /// How long the sandbox's slow test card takes to answer.
    pub sandbox_delay_ms: u64,
}

/// How long the replicated event log keeps events: the leader compacts
/// those older than `retention_secs`, and the oldest beyond `max_events`.
/// A consumer behind what is left gets 410 `events_compacted`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub retention_secs: u64,
    pub max_events: u64,
    /// How often the leader looks for events to compact.
    pub compact_interval_secs: u64,
}

/// The product search index every node derives from the event log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// Pause after each commit of the index: how stale search may be behind
    /// the node's state. A product changed several times within it is
    /// indexed once, and fewer commits mean fewer segments to merge.
    pub commit_interval_ms: u64,
    /// Search queries a node runs at once; more wait their turn. 0: half
    /// the cores (at least one).
    pub max_concurrent_queries: usize,
}

impl SearchSettings {
    /// `max_concurrent_queries`, with 0 resolved against this machine.
    pub fn query_concurrency(&self) -> usize {
        match self.max_concurrent_queries {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)),
            n => n,
        }
    }
}

/// Uploaded images: limits, replication of their bytes, public URLs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Largest image an upload may carry, in bytes.
    pub max_upload_bytes: usize,
    /// Budget of one upload, its body included: past it 504 `timeout`.
    pub upload_timeout_ms: u64,
    /// Public base URL of a CDN that forwards paths unchanged to the nodes
    /// (e.g. `https://cdn.example.com`); image URLs in API responses start
    /// with it. Absent: the URLs are paths on the node (`/api/v1/media/...`).
    pub cdn_base_url: Option<String>,
    /// Deadline of one blob download from a peer.
    pub fetch_timeout_ms: u64,
    /// Pause before trying again to fetch blobs no peer could provide.
    pub fetch_retry_ms: u64,
    /// How often every registered image is checked against the local disk
    /// (and missing bytes fetched), besides following new registrations.
    pub reconcile_interval_secs: u64,
    /// A blob file with no registered image (an upload whose registration
    /// was refused or lost) is removed by the reconcile once it is this old.
    pub orphan_grace_secs: u64,
    /// What one vendor may upload in all (admins: no limit); past it 409
    /// `upload_quota_exceeded`.
    pub vendor_max_images: u64,
    pub vendor_max_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub block_cache_mb: usize,
    /// Memtable size per table (column family).
    pub write_buffer_mb: usize,
    /// Memtables of all tables together; past it the largest is flushed.
    pub memtable_budget_mb: usize,
    /// Writes are refused (507 `insufficient_storage`) while the data
    /// directory's filesystem has less free space than the smaller of this
    /// and `min_free_percent` of its size; reads go on.
    pub min_free_bytes: u64,
    pub min_free_percent: u8,
    /// The key-encryption key file (`ecommerce keys generate-kek`): the
    /// same on every node, readable by its owner only.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// The same text as a KEK file, e.g. from `ECOMMERCE_STORAGE__KEK`.
    #[serde(default)]
    pub kek: Option<SecretString>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("./data"),
            http_addr: "127.0.0.1:8080".into(),
            grpc_addr: "127.0.0.1:50051".into(),
            peer_addr: "127.0.0.1:50052".into(),
            advertise_http_addr: None,
            advertise_peer_addr: None,
            join: None,
            join_as_learner: false,
            log_format: LogFormat::Text,
            tls: TlsSettings::default(),
            peer_tls: PeerTlsSettings::default(),
            insecure_plaintext: false,
            raft: RaftSettings {
                heartbeat_interval_ms: 100,
                election_timeout_min_ms: 400,
                election_timeout_max_ms: 800,
                snapshot_logs: 5000,
                logs_to_keep: 1000,
                install_snapshot_timeout_ms: 30_000,
                proposals_in_flight: 2,
            },
            http: HttpSettings {
                request_timeout_ms: 10_000,
                body_read_timeout_ms: 10_000,
                membership_timeout_ms: 120_000,
                max_body_bytes: 1 << 20,
                max_in_flight: 256,
                header_read_timeout_ms: 10_000,
                cors_allowed_origins: Vec::new(),
                trusted_proxies: Vec::new(),
            },
            idempotency: IdempotencySettings {
                ttl_secs: 24 * 3600,
                sweep_interval_secs: 60,
            },
            storage: StorageSettings {
                block_cache_mb: 64,
                write_buffer_mb: 16,
                memtable_budget_mb: 64,
                min_free_bytes: 1 << 30,
                min_free_percent: 5,
                kek_file: None,
                kek: None,
            },
            auth: AuthSettings::default(),
            commerce: CommerceSettings {
                hold_ttl_secs: 15 * 60,
                max_hold_ttl_secs: 3600,
                cart_idle_secs: 30 * 24 * 3600,
                sweep_interval_ms: 1000,
                guest_carts_per_network_per_minute: 30,
                guest_carts_per_minute: 3000,
                guest_writes_per_network_per_minute: 600,
            },
            payments: PaymentSettings {
                provider: "sandbox".into(),
                timeout_ms: 5000,
                max_attempts: 3,
                retry_backoff_ms: 500,
                poll_interval_ms: 200,
                sandbox_delay_ms: 30_000,
            },
            media: MediaSettings {
                max_upload_bytes: 10 << 20,
                upload_timeout_ms: 120_000,
                cdn_base_url: None,
                fetch_timeout_ms: 10_000,
                fetch_retry_ms: 2000,
                reconcile_interval_secs: 3600,
                orphan_grace_secs: 3600,
                vendor_max_images: 10_000,
                vendor_max_bytes: 10 << 30,
            },
            search: SearchSettings {
                commit_interval_ms: 1000,
                max_concurrent_queries: 0,
            },
            events: EventSettings {
                retention_secs: 30 * 24 * 3600,
                max_events: 10_000_000,
                compact_interval_secs: 60,
            },
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tls: Option<PeerTlsOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_plaintext: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_as_learner: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageOverrides>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct StorageOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TlsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PeerTlsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RaftOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_logs: Option<u64>,
}

impl Settings {
    /// Loads the layers in order and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file(file));
        }
        let settings: Settings = figment
            // ECOMMERCE_OPERATOR_TOKEN is the CLI's, and the README exports
            // it in the node's shell too: not a setting of the node.
            .merge(
                Env::prefixed("ECOMMERCE_")
                    .ignore(&["OPERATOR_TOKEN"])
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides))
            .extract()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(self.node_id > 0, "node_id must be at least 1");
        for (name, addr) in [
            ("http_addr", &self.http_addr),
            ("grpc_addr", &self.grpc_addr),
            ("peer_addr", &self.peer_addr),
        ] {
            ensure!(
                addr.parse::<SocketAddr>().is_ok(),
                "{name} {addr:?} is not a socket address (host:port)"
            );
        }
        ensure!(
            self.tls.cert.is_some() == self.tls.key.is_some(),
            "tls.cert and tls.key go together"
        );
        self.peer_tls.validate()?;
        if self.tls.cert.is_none() && !self.insecure_plaintext {
            for (name, addr) in [
                ("http_addr", &self.http_addr),
                ("grpc_addr", &self.grpc_addr),
            ] {
                let loopback = addr
                    .parse::<SocketAddr>()
                    .is_ok_and(|a| a.ip().is_loopback());
                ensure!(
                    loopback,
                    "{name} {addr} is not a loopback address: serve clients over TLS (tls.cert and \
                     tls.key, flags --tls-cert/--tls-key) or accept plain text with --insecure-plaintext"
                );
            }
        }
        let r = &self.raft;
        ensure!(
            r.heartbeat_interval_ms > 0,
            "raft.heartbeat_interval_ms must be positive"
        );
        ensure!(
            r.election_timeout_min_ms > 2 * r.heartbeat_interval_ms,
            "raft.election_timeout_min_ms must exceed twice raft.heartbeat_interval_ms"
        );
        ensure!(
            r.election_timeout_max_ms > r.election_timeout_min_ms,
            "raft.election_timeout_max_ms must exceed raft.election_timeout_min_ms"
        );
        ensure!(r.snapshot_logs > 0, "raft.snapshot_logs must be positive");
        ensure!(
            self.http.request_timeout_ms > 0 && self.http.body_read_timeout_ms > 0,
            "http.request_timeout_ms and http.body_read_timeout_ms must be positive"
        );
        ensure!(
            self.http.max_body_bytes >= 1024,
            "http.max_body_bytes must be at least 1024"
        );
        ensure!(
            (1..=60_000).contains(&self.search.commit_interval_ms),
            "search.commit_interval_ms must be between 1 and 60000"
        );
        ensure!(
            self.storage.memtable_budget_mb > 0,
            "storage.memtable_budget_mb must be positive"
        );
        ensure!(
            self.events.retention_secs > 0
                && self.events.max_events > 0
                && self.events.compact_interval_secs > 0,
            "events.retention_secs, events.max_events and events.compact_interval_secs must be positive"
        );
        ensure!(
            self.storage.kek_file.is_none() || self.storage.kek.is_none(),
            "storage.kek_file and storage.kek are two ways to give one KEK: give one"
        );
        ensure!(
            self.storage.min_free_percent <= 100,
            "storage.min_free_percent is a percentage (0 to 100)"
        );
        ensure!(
            (1..=64).contains(&self.raft.proposals_in_flight),
            "raft.proposals_in_flight must be between 1 and 64"
        );
        ensure!(
            self.http.max_in_flight > 0,
            "http.max_in_flight must be positive"
        );
        ensure!(
            self.http.header_read_timeout_ms > 0,
            "http.header_read_timeout_ms must be positive"
        );
        self.http.validate()?;
        let c = &self.commerce;
        ensure!(
            c.guest_carts_per_network_per_minute > 0
                && c.guest_carts_per_minute > 0
                && c.guest_writes_per_network_per_minute > 0,
            "commerce: the guest limits must be positive"
        );
        ensure!(
            self.idempotency.ttl_secs > 0,
            "idempotency.ttl_secs must be positive"
        );
        ensure!(
            self.idempotency.sweep_interval_secs > 0,
            "idempotency.sweep_interval_secs must be positive"
        );
        let a = &self.auth;
        ensure!(
            (10..=86_400).contains(&a.access_token_ttl_secs),
            "auth.access_token_ttl_secs must be between 10 and 86400"
        );
        ensure!(
            a.refresh_token_ttl_secs >= a.access_token_ttl_secs,
            "auth.refresh_token_ttl_secs must be at least auth.access_token_ttl_secs"
        );
        ensure!(
            a.reset_token_ttl_secs > 0,
            "auth.reset_token_ttl_secs must be positive"
        );
        ensure!(
            a.operator_token.as_ref().is_none_or(|t| t.0.len() >= 32),
            "auth.operator_token must be at least 32 characters"
        );
        ensure!(
            a.argon2_memory_kib >= 8 * 1024
                && a.argon2_iterations >= 1
                && a.argon2_parallelism >= 1,
            "auth.argon2_* must be at least 8192 KiB, 1 iteration, 1 lane"
        );
        ensure!(
            a.attempts_per_account_per_minute > 0 && a.attempts_per_ip_per_minute > 0,
            "auth.attempts_per_* must be positive"
        );
        a.social.validate()?;
        let c = &self.commerce;
        ensure!(
            c.hold_ttl_secs > 0 && c.hold_ttl_secs <= c.max_hold_ttl_secs,
            "commerce.hold_ttl_secs must be between 1 and commerce.max_hold_ttl_secs"
        );
        ensure!(
            c.cart_idle_secs > 0 && c.sweep_interval_ms > 0,
            "commerce.cart_idle_secs and commerce.sweep_interval_ms must be positive"
        );
        let p = &self.payments;
        ensure!(
            p.provider == crate::payments::sandbox::NAME,
            "payments.provider {:?} is not available (built in: sandbox)",
            p.provider
        );
        ensure!(
            p.timeout_ms > 0 && p.max_attempts > 0 && p.poll_interval_ms > 0,
            "payments.timeout_ms, payments.max_attempts and payments.poll_interval_ms must be positive"
        );
        let m = &self.media;
        ensure!(
            (1024..=1 << 30).contains(&m.max_upload_bytes),
            "media.max_upload_bytes must be between 1024 and 1073741824"
        );
        ensure!(
            m.fetch_timeout_ms > 0 && m.fetch_retry_ms > 0 && m.reconcile_interval_secs > 0,
            "media.fetch_timeout_ms, media.fetch_retry_ms and media.reconcile_interval_secs must be positive"
        );
        ensure!(
            m.upload_timeout_ms > 0,
            "media.upload_timeout_ms must be positive"
        );
        if let Some(cdn) = &m.cdn_base_url {
            let host = cdn
                .strip_prefix("https://")
                .or_else(|| cdn.strip_prefix("http://"))
                .unwrap_or("");
            ensure!(
                !host.is_empty() && !host.starts_with('/') && !cdn.contains(['?', '#', ' ']),
                "media.cdn_base_url must be an http:// or https:// URL without query or fragment"
            );
        }
        if let Some(join) = &self.join {
            ensure!(
                !join.contains("://")
                    && join.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok()
                    }),
                "join must be the peer address (host:port) of a member, e.g. 127.0.0.1:50071"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
