//! The application layer: the node's use cases, one function each, called by
//! REST (`api/`) and gRPC (`grpc/`) alike. A use case takes domain types and
//! the caller, checks what the caller may do, proposes commands or reads the
//! replicated state, and returns domain types or an [`AppError`]; the
//! transports only parse, call and render.
//!
//! Architecture invariant: only this module reaches the Raft node
//! ([`App`] keeps it private); `api/` and `grpc/` never name `RaftNode`,
//! RocksDB or openraft, nor each other: what both transports need
//! (role checks, idempotency keys, request types) lives here (checked by
//! `crate::architecture`).

pub mod access;
pub mod accounts;
pub mod carts;
pub mod catalog;
pub mod client_addr;
pub mod cluster;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod inventory;
pub mod media;
pub mod orders;
pub mod pricing;
pub mod search;
pub mod sessions;

use std::sync::Arc;
use std::time::Duration;

use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::{Command, Envelope};
use ecommerce_raft::{RaftNode, Reader};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::config::Settings;
pub use error::{AppError, AppResult, ErrorCode};

/// Read consistency requested by a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Read-index: reflects every write acknowledged before the read began.
    #[default]
    Linearizable,
    /// This node's local replica, possibly behind the leader.
    Stale,
}

/// An amount as a client wrote it: minor units and an ISO 4217 code,
/// parsed into [`Money`](ecommerce_domains::money::Money) by the use case.
#[derive(Debug, Clone, Serialize)]
pub struct MoneyInput {
    pub amount: i64,
    pub currency: String,
}

/// The node's use cases and what they share; cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    /// Private to `app`: the layers above propose and read through `App`.
    node: Arc<RaftNode>,
    services: Services,
}

/// What the use cases share besides the replicated state.
pub struct Services {
    pub settings: Settings,
    pub cluster_id: String,
    pub prometheus: PrometheusHandle,
    pub auth: Arc<crate::auth::Auth>,
    /// Image blobs on this node, peer fetching, thumbnails.
    pub media: Arc<crate::media::Media>,
    /// Hot products for stale reads, invalidated from the event log.
    pub products: Arc<crate::projections::products::ProductCache>,
    /// This node's product search index, kept up to date by `search::indexer::run`.
    pub search: Arc<crate::search::SearchIndex>,
    /// Search queries running at once (`search.max_concurrent_queries`):
    /// they run on the blocking pool, and unbounded they would take the
    /// cores from the runtime that serves every other request and Raft.
    pub search_queries: Arc<tokio::sync::Semaphore>,
    /// The payment provider's port: how a checkout's payment input becomes
    /// a stored payment method (the payment worker calls the rest of it).
    pub payments: Arc<dyn crate::payments::PaymentProvider>,
    /// What guests may do with carts per minute (`commerce.guest_*`).
    pub guest_limits: crate::auth::limits::GuestLimits,
    /// `http.trusted_proxies`, parsed: whose forwarding headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Free space of the data directory: writes are refused while it is low.
    pub disk: Arc<ecommerce_raft::DiskWatch>,
    /// The KEK and the cluster's data keys.
    pub vault: Arc<crate::vault::Vault>,
}

impl std::ops::Deref for App {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0.services
    }
}

/// A committed command's result.
pub struct Committed {
    pub outcome: ecommerce_domains::Outcome,
    pub replayed: bool,
}

impl App {
    pub fn new(node: Arc<RaftNode>, services: Services) -> Self {
        Self(Arc::new(Inner { node, services }))
    }

    fn node(&self) -> &RaftNode {
        &self.0.node
    }

    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.settings.http.request_timeout_ms)
    }

    /// Proposes `command` through Raft and waits for its result.
    pub async fn propose(
        &self,
        command: Command,
        idempotency: Option<IdempotencyTag>,
    ) -> AppResult<Committed> {
        if self.disk.is_low() {
            return Err(insufficient_storage());
        }
        let envelope = Envelope {
            // Stamped by the leader when it proposes the command.
            now_ms: 0,
            // What the state keeps of the request is keyed: a digest of a
            // body (an address, a coupon) reveals nothing without the keys.
            idempotency: idempotency.map(|tag| self.vault.keyed_tag(tag)),
            command,
        };
        let applied = self.node().write(envelope, self.deadline()).await?;
        Ok(Committed {
            outcome: applied.outcome,
            replayed: applied.replayed,
        })
    }

    /// A view of the state at the requested consistency.
    pub async fn read(&self, consistency: Consistency) -> AppResult<Reader<'_>> {
        if consistency == Consistency::Linearizable {
            self.node().linearizable_barrier(self.deadline()).await?;
        }
        Reader::new(self.node().storage()).ok_or_else(|| ecommerce_raft::Error::Installing.into())
    }
}

impl Committed {
    /// The outcome as `render(response)`, or the domain's refusal; either way
    /// with whether it replays a stored outcome. Transport-neutral: REST
    /// answers it with [`Rendered::into_response`], gRPC with its own reply.
    pub fn render<T>(
        self,
        render: impl FnOnce(ecommerce_domains::Response) -> AppResult<T>,
    ) -> Rendered<T> {
        Rendered {
            result: self.outcome.map_err(AppError::from).and_then(render),
            replayed: self.replayed,
        }
    }
}

/// A committed command's result, rendered for the caller.
pub struct Rendered<T> {
    pub result: AppResult<T>,
    /// True when the result is a stored one replayed for a repeated idempotency key.
    pub replayed: bool,
}

impl<T> Rendered<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Rendered<U> {
        Rendered {
            result: self.result.map(f),
            replayed: self.replayed,
        }
    }
}

/// A write refused because the data directory is nearly full.
pub fn insufficient_storage() -> AppError {
    AppError::new(
        ErrorCode::InsufficientStorage,
        "this node's disk is nearly full: writes are refused until space is freed (reads go on)",
    )
}

/// An unexpected command response: a bug, answered as a 500.
pub fn unexpected(response: ecommerce_domains::Response) -> AppError {
    AppError::internal(format!("unexpected command response {response:?}"))
}
