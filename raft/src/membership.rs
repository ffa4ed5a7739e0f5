//! Membership changes, run by the leader (a follower forwards them): add a
//! learner, promote it, remove a node, transfer leadership; and joining,
//! asked by a new node over the peer protocol.
//!
//! Every change is checked before openraft sees it:
//! - a node is added only after the leader dialled its peer address and the
//!   answer came, over mutual TLS, from a certificate naming that node id of
//!   this cluster (`Identify`); an address already used by another member
//!   is refused;
//! - a change that would leave the cluster without a reachable majority of
//!   voters (removing the last voter, or voters that are down) is refused:
//!   openraft would wait for that quorum for ever;
//! - a removed node id never comes back (recorded by the state machine).

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::network::Peer;
use crate::node::{MembershipOp, PeerCall, RaftNode, WireError, RETRY_PAUSE};
use crate::peer_auth::PeerIdentity;
use crate::types::{NodeId, NodeInfo, Raft};
use crate::{Error, Result};

/// What a new node sends to join (its id is its certificate's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinRequest {
    pub info: NodeInfo,
    pub as_learner: bool,
}

/// How long a member waits for a join to be done (a learner catching up
/// may need a snapshot).
const JOIN_DEADLINE: Duration = Duration::from_secs(120);
/// How long the leader waits for a node to say who it is.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(3);

type Membership = openraft::Membership<NodeId, crate::types::NodeInfo>;

impl RaftNode {
    /// Runs a membership change on the leader (forwarding if needed).
    pub async fn change_membership(&self, op: MembershipOp, deadline: Instant) -> Result<()> {
        loop {
            let (leader_id, leader) = self.wait_leader(deadline).await?;
            let attempt = if leader_id == self.id {
                match tokio::time::timeout_at(deadline, self.change_membership_local(op.clone()))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => return Err(Error::Timeout),
                }
            } else {
                self.forward_membership(leader_id, &leader, &op, deadline)
                    .await
            };
            match attempt {
                // Membership changes are idempotent, so retrying is safe.
                Err(
                    WireError::NotLeader | WireError::MembershipInProgress | WireError::Other(_),
                ) if Instant::now() + RETRY_PAUSE < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => return other.map_err(Error::from),
            }
        }
    }

    async fn forward_membership(
        &self,
        leader_id: NodeId,
        leader: &NodeInfo,
        op: &MembershipOp,
        deadline: Instant,
    ) -> Result<(), WireError> {
        let reply = self
            .call_peer(
                Peer::Node(leader_id),
                &leader.peer_addr,
                PeerCall::ChangeMembership,
                op,
                Some(deadline),
            )
            .await;
        reply.unwrap_or_else(|status| Err(WireError::Other(status.to_string())))
    }

    /// On any member: adds the node `node_id` (the id its certificate
    /// names) as a learner, then promotes it unless `as_learner`.
    pub(crate) async fn join_local(
        &self,
        node_id: NodeId,
        request: JoinRequest,
    ) -> Result<(), WireError> {
        let deadline = Instant::now() + JOIN_DEADLINE;
        let info = request.info;
        let steps = std::iter::once(MembershipOp::AddLearner { node_id, info })
            .chain((!request.as_learner).then_some(MembershipOp::Promote { node_id }));
        for op in steps {
            self.change_membership(op, deadline)
                .await
                .map_err(|e| match e {
                    Error::NodeIdRemoved(id) => WireError::NodeIdRemoved(id),
                    Error::NoLeader => WireError::NotLeader,
                    other => WireError::Membership(other.to_string()),
                })?;
        }
        Ok(())
    }

    /// On a new node: asks the member at `peer_addr` (whichever node of the
    /// cluster answers there) to add this node, as its certificate names it.
    pub async fn join_via(&self, peer_addr: &str, as_learner: bool) -> Result<()> {
        let request = JoinRequest {
            info: self.info.clone(),
            as_learner,
        };
        let reply = self
            .call_peer(
                Peer::AnyMember,
                peer_addr,
                PeerCall::Join,
                &request,
                Some(Instant::now() + JOIN_DEADLINE),
            )
            .await;
        reply
            .map_err(crate::node::status_error)?
            .map_err(Error::from)
    }

    /// Dials `addr` expecting node `node_id` of this cluster; the TLS
    /// handshake already refuses any other certificate, and the node's own
    /// answer must agree.
    async fn identify(&self, node_id: NodeId, addr: &str) -> Result<(), WireError> {
        let deadline = Instant::now() + IDENTIFY_TIMEOUT;
        let reply: Result<PeerIdentity, WireError> = self
            .call_peer(
                Peer::Node(node_id),
                addr,
                PeerCall::Identify,
                &(),
                Some(deadline),
            )
            .await
            .map_err(|status| {
                WireError::Membership(format!(
                    "node {node_id} could not be verified at {addr}: {}",
                    status.message()
                ))
            })?;
        let answer = reply?;
        if answer.node_id != node_id || answer.cluster_id != self.cluster_id {
            return Err(WireError::Membership(format!(
                "{addr} answers as {answer}, not as node {node_id} of cluster {}",
                self.cluster_id
            )));
        }
        Ok(())
    }

    /// Whether a majority of `voters` answers now (this node counts as
    /// answering). Probes the others in parallel.
    async fn reachable_majority(&self, voters: &BTreeSet<NodeId>, membership: &Membership) -> bool {
        let probes = voters
            .iter()
            .filter(|id| **id != self.id)
            .filter_map(|id| membership.get_node(id).map(|n| (*id, n.peer_addr.clone())))
            .map(|(id, addr)| async move { self.identify(id, &addr).await.is_ok() });
        let answering = futures::future::join_all(probes)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
            + usize::from(voters.contains(&self.id));
        answering > voters.len() / 2
    }

    pub(crate) async fn change_membership_local(&self, op: MembershipOp) -> Result<(), WireError> {
        if self.raft().metrics().borrow().state != ServerState::Leader {
            return Err(WireError::NotLeader);
        }
        let membership = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let result = match op {
            MembershipOp::TransferLeader { node_id } => {
                return self.transfer_leader(node_id, &membership).await
            }
            MembershipOp::AddLearner { node_id, info } => {
                let removed = crate::state_machine::removed_nodes(self.storage())
                    .map_err(|e| WireError::Other(e.to_string()))?;
                if removed.contains(&node_id) {
                    return Err(WireError::NodeIdRemoved(node_id));
                }
                match membership.get_node(&node_id) {
                    Some(existing) if *existing == info => return Ok(()),
                    Some(existing) => {
                        return Err(WireError::Membership(format!(
                            "node id {node_id} is already a member at {existing}"
                        )))
                    }
                    None => {}
                }
                if let Some((other, _)) = membership
                    .nodes()
                    .find(|(_, n)| n.peer_addr == info.peer_addr || n.http_addr == info.http_addr)
                {
                    return Err(WireError::Membership(format!(
                        "node {other} already uses an address of {info}"
                    )));
                }
                self.identify(node_id, &info.peer_addr).await?;
                self.raft()
                    .add_learner(node_id, info, true)
                    .await
                    .map(|_| ())
            }
            MembershipOp::Promote { node_id } => {
                if voters.contains(&node_id) {
                    return Ok(());
                }
                if membership.get_node(&node_id).is_none() {
                    return Err(WireError::Membership(format!(
                        "node {node_id} is not a learner of this cluster"
                    )));
                }
                let mut after = voters.clone();
                after.insert(node_id);
                if !self.reachable_majority(&after, &membership).await {
                    return Err(WireError::Membership(format!(
                        "promoting node {node_id} would leave no reachable majority of voters {after:?}"
                    )));
                }
                self.raft()
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
                    .await
                    .map(|_| ())
            }
            MembershipOp::Remove { node_id } => {
                if membership.get_node(&node_id).is_none() {
                    return Ok(());
                }
                if voters.contains(&node_id) {
                    let mut after = voters.clone();
                    after.remove(&node_id);
                    if after.is_empty() {
                        return Err(WireError::Membership("cannot remove the last voter".into()));
                    }
                    if !self.reachable_majority(&after, &membership).await {
                        return Err(WireError::Membership(format!(
                            "removing node {node_id} would leave no reachable majority of voters {after:?}"
                        )));
                    }
                    self.raft()
                        .change_membership(
                            ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
                            false,
                        )
                        .await
                        .map(|_| ())
                } else {
                    self.raft()
                        .change_membership(
                            ChangeMembers::RemoveNodes(BTreeSet::from([node_id])),
                            false,
                        )
                        .await
                        .map(|_| ())
                }
            }
        };
        result.map_err(|e| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => WireError::NotLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            )) => WireError::MembershipInProgress,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                WireError::Membership(e.to_string())
            }
            RaftError::Fatal(e) => WireError::Other(e.to_string()),
        })
    }

    /// Leadership transfer for openraft 0.9, which has no such call: the leader
    /// stops sending heartbeats so that the followers' leader leases lapse,
    /// then asks the target to campaign until it wins or the attempt times
    /// out. Another follower may win the race; the caller is told so.
    async fn transfer_leader(
        &self,
        target: NodeId,
        membership: &Membership,
    ) -> Result<(), WireError> {
        if target == self.id {
            return Ok(());
        }
        if !membership.voter_ids().any(|v| v == target) {
            return Err(WireError::Membership(format!(
                "node {target} is not a voter"
            )));
        }
        let addr = membership
            .get_node(&target)
            .map(|n| n.peer_addr.clone())
            .unwrap_or_default();
        let election_max = Duration::from_millis(self.raft().config().election_timeout_max);
        let _heartbeats = HeartbeatPause::start(self.raft());
        let deadline = Instant::now() + election_max * 10;
        let mut leader = None;
        while Instant::now() < deadline {
            tokio::time::sleep(election_max / 2).await;
            leader = self.raft().metrics().borrow().current_leader;
            if leader == Some(target) {
                break;
            }
            if leader == Some(self.id) {
                if let Err(e) = self.ask_to_campaign(target, &addr).await {
                    tracing::debug!(error = %e, "campaign request failed");
                }
            }
        }
        match leader {
            Some(l) if l == target => Ok(()),
            Some(l) => Err(WireError::Membership(format!(
                "leadership went to node {l} instead of {target}; retry"
            ))),
            None => Err(WireError::Membership(
                "no leader was elected in time".into(),
            )),
        }
    }
}

/// Pauses the leader's heartbeats; they resume when this is dropped, also
/// when the transfer is abandoned half-way (client gone, deadline passed).
struct HeartbeatPause<'a>(&'a Raft);

impl<'a> HeartbeatPause<'a> {
    fn start(raft: &'a Raft) -> Self {
        raft.runtime_config().heartbeat(false);
        Self(raft)
    }
}

impl Drop for HeartbeatPause<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().heartbeat(true);
    }
}

/// On a node about to join: the cluster's wrapped data keys, from the
/// member at `peer_addr`, before this node stores anything (it cannot seal
/// a log entry without them).
pub async fn fetch_keys(tls: crate::PeerTls, peer_addr: &str) -> Result<Vec<u8>> {
    let channels = crate::Channels::new(tls);
    let mut client = channels
        .client(Peer::AnyMember, peer_addr)
        .map_err(|e| Error::Rpc(crate::node::client_error(e)))?;
    let mut request =
        tonic::Request::new(crate::network::encode(&()).map_err(crate::node::status_error)?);
    request.set_timeout(IDENTIFY_TIMEOUT);
    let reply = client
        .fetch_keys(request)
        .await
        .map_err(crate::node::status_error)?;
    crate::network::decode(reply.get_ref()).map_err(crate::node::status_error)
}
