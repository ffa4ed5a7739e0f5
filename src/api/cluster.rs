//! Cluster administration over REST: status, membership changes, leadership
//! transfer, streaming backups, and the digest of the replicated state. Any
//! member accepts these; changes are forwarded to the leader.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecommerce_raft::{ClusterStatus, MembershipOp, NodeInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Operator;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, MutationMeta};
use super::App;

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    pub node_id: u64,
    pub http_addr: String,
    /// The node-to-node protocol's address (mutual TLS; not for clients).
    pub peer_addr: String,
    /// `voter` or `learner`.
    pub role: String,
    pub is_leader: bool,
    pub matched_index: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDto {
    pub cluster_id: String,
    pub node_id: u64,
    /// leader, follower, candidate or learner.
    pub state: String,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub members: Vec<MemberDto>,
}

pub fn cluster_dto(cluster_id: &str, s: ClusterStatus) -> ClusterDto {
    ClusterDto {
        cluster_id: cluster_id.to_string(),
        node_id: s.node_id,
        state: s.state,
        leader_id: s.leader_id,
        term: s.term,
        last_log_index: s.last_log_index,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        snapshot_index: s.snapshot_index,
        purged_index: s.purged_index,
        members: s
            .members
            .into_iter()
            .map(|m| MemberDto {
                node_id: m.node_id,
                http_addr: m.http_addr,
                peer_addr: m.peer_addr,
                role: match m.role {
                    ecommerce_raft::Role::Voter => "voter".into(),
                    ecommerce_raft::Role::Learner => "learner".into(),
                },
                is_leader: m.is_leader,
                matched_index: m.matched_index,
            })
            .collect(),
    }
}

/// The cluster as this node sees it.
#[utoipa::path(get, path = "/cluster", tag = "cluster", responses((status = 200, body = ClusterDto)))]
pub async fn status(State(state): State<App>) -> Json<ClusterDto> {
    Json(cluster_dto(&state.cluster_id, state.cluster_status()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLearnerBody {
    pub node_id: u64,
    pub http_addr: String,
    /// Where the node serves the peer protocol; the leader checks that the
    /// node answering there holds the certificate of `node_id`.
    pub peer_addr: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeIdBody {
    pub node_id: u64,
}

/// Why the membership routes take no `Idempotency-Key`.
const MEMBERSHIP_RETRY: &str = "a membership change is not a command with a stored outcome: \
    a retry is decided against the cluster as it is then (GET /cluster shows whether the first \
    attempt took effect)";

async fn change(state: &App, op: MembershipOp) -> AppResult<Json<ClusterDto>> {
    let status = state.change_membership(op).await?;
    Ok(Json(cluster_dto(&state.cluster_id, status)))
}

/// Add a node as a learner (it receives the log but does not vote); returns
/// once it has caught up.
#[utoipa::path(post, path = "/cluster/learners", tag = "cluster", request_body = AddLearnerBody,
    responses((status = 200, body = ClusterDto), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_learner(
    State(state): State<App>,
    Operator(_by): Operator,
    meta: MutationMeta,
    AppJson(body): AppJson<AddLearnerBody>,
) -> AppResult<Json<ClusterDto>> {
    meta.refuse_key(MEMBERSHIP_RETRY)?;
    let info = NodeInfo {
        http_addr: body.http_addr,
        peer_addr: body.peer_addr,
    };
    change(
        &state,
        MembershipOp::AddLearner {
            node_id: body.node_id,
            info,
        },
    )
    .await
}

/// Promote a learner to voter.
#[utoipa::path(post, path = "/cluster/promote", tag = "cluster", request_body = NodeIdBody,
    responses((status = 200, body = ClusterDto), (status = 409, body = ErrorBody)))]
pub async fn promote(
    State(state): State<App>,
    Operator(_by): Operator,
    meta: MutationMeta,
    AppJson(body): AppJson<NodeIdBody>,
) -> AppResult<Json<ClusterDto>> {
    meta.refuse_key(MEMBERSHIP_RETRY)?;
    change(
        &state,
        MembershipOp::Promote {
            node_id: body.node_id,
        },
    )
    .await
}

/// Remove a node from the cluster; its id can never be used again.
#[utoipa::path(post, path = "/cluster/remove", tag = "cluster", request_body = NodeIdBody,
    responses((status = 200, body = ClusterDto), (status = 409, body = ErrorBody)))]
pub async fn remove(
    State(state): State<App>,
    Operator(_by): Operator,
    meta: MutationMeta,
    AppJson(body): AppJson<NodeIdBody>,
) -> AppResult<Json<ClusterDto>> {
    meta.refuse_key(MEMBERSHIP_RETRY)?;
    change(
        &state,
        MembershipOp::Remove {
            node_id: body.node_id,
        },
    )
    .await
}

/// Move leadership to another voter.
#[utoipa::path(post, path = "/cluster/transfer-leader", tag = "cluster", request_body = NodeIdBody,
    responses((status = 200, body = ClusterDto), (status = 409, body = ErrorBody)))]
pub async fn transfer_leader(
    State(state): State<App>,
    Operator(_by): Operator,
    meta: MutationMeta,
    AppJson(body): AppJson<NodeIdBody>,
) -> AppResult<Json<ClusterDto>> {
    meta.refuse_key(MEMBERSHIP_RETRY)?;
    change(
        &state,
        MembershipOp::TransferLeader {
            node_id: body.node_id,
        },
    )
    .await
}

/// Which KEK version wraps this node's data keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysDto {
    /// The KEK version this node's data keys are wrapped under.
    pub kek_version: u32,
    /// The versions in this node's KEK file.
    pub kek_versions: Vec<u32>,
}

impl From<crate::vault::KeysStatus> for KeysDto {
    fn from(s: crate::vault::KeysStatus) -> Self {
        Self {
            kek_version: s.kek_version,
            kek_versions: s.kek_versions,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RotateKekRequest {
    /// The KEK version to wrap the data keys under (already in the KEK file).
    pub to: u32,
}

/// This node's key status (each node keeps its own wrapped copy of the
/// cluster's data keys).
#[utoipa::path(get, path = "/node/keys", tag = "cluster",
    responses((status = 200, body = KeysDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn keys(State(state): State<App>, Operator(_by): Operator) -> AppResult<Json<KeysDto>> {
    Ok(Json(state.keys_status()?.into()))
}

/// Rewrap this node's data keys under another KEK version (a KEK rotation,
/// online; no stored value changes). Repeating it is harmless.
#[utoipa::path(post, path = "/node/keys/rotate-kek", tag = "cluster", request_body = RotateKekRequest,
    responses((status = 200, body = KeysDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_kek(
    State(state): State<App>,
    Operator(_by): Operator,
    AppJson(body): AppJson<RotateKekRequest>,
) -> AppResult<Json<KeysDto>> {
    let app = state.clone();
    let status = tokio::task::spawn_blocking(move || app.rotate_kek(body.to))
        .await
        .map_err(AppError::internal)??;
    Ok(Json(status.into()))
}

/// Stream a consistent snapshot of the whole state (a backup). It includes
/// every write acknowledged before the request.
#[utoipa::path(get, path = "/cluster/backup", tag = "cluster",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 503, body = ErrorBody)))]
pub async fn backup(State(state): State<App>, Operator(_by): Operator) -> AppResult<Response> {
    let file = state.backup().await?;
    let len = file.metadata().map_err(AppError::internal)?.len();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 1 << 16);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ecommerce.backup\"".to_string(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DigestDto {
    pub node_id: u64,
    /// The last log index this replica applied (absent before the first).
    pub applied_index: Option<u64>,
    /// SHA-256 (hex) of every state-machine table at `applied_index`.
    pub digest: String,
}

/// The last digest computed, by applied index: the state at one applied
/// index is always the same, so a second call at that index is answered
/// without hashing again, and calls that arrive while one hashes wait for it
/// (one at a time: the lock is held while hashing). Hashes actually computed
/// are counted in `cluster_digest_computations_total`.
#[derive(Default)]
pub struct DigestCache(tokio::sync::Mutex<Option<DigestDto>>);

impl DigestCache {
    /// The digest of `state`'s replica at its current applied index.
    async fn get(&self, state: &App) -> AppResult<DigestDto> {
        let mut last = self.0.lock().await;
        // Read after taking the lock: a call that waited for another's
        // computation finds it here if nothing was applied meanwhile. The
        // state machine publishes this right after writing each apply.
        let applied = state.applied_index();
        if let Some(hit) = last
            .as_ref()
            .filter(|d| d.applied_index.unwrap_or(0) == applied)
        {
            return Ok(hit.clone());
        }
        let (applied_index, digest) = state.state_digest().await?;
        metrics::counter!("cluster_digest_computations_total").increment(1);
        let computed = DigestDto {
            node_id: state.node_id(),
            applied_index,
            digest,
        };
        *last = Some(computed.clone());
        Ok(computed)
    }
}

/// A digest of this replica's whole replicated state, with the log index it
/// reflects, read from one consistent view (admins or the operator token).
/// Replicas at the same `applied_index` must have the same `digest`; the
/// consistency suite (`jepsen/`) checks that they converge after faults
/// heal. Local: no quorum round, so a lagging replica answers with its own
/// older index. Computed once per applied index (`DigestCache`).
#[utoipa::path(get, path = "/cluster/digest", tag = "cluster",
    responses((status = 200, body = DigestDto), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn digest(
    State(state): State<App>,
    Operator(_by): Operator,
    Extension(cache): Extension<Arc<DigestCache>>,
) -> AppResult<Json<DigestDto>> {
    cache.get(&state).await.map(Json)
}
