//! Writes: the leader proposes (through the proposal batcher); a follower
//! forwards to the leader; retried on another leader only when that is safe
//! (see the module doc of `node`).

use super::*;

/// Hands one entry to Raft on the leader; returns one result per envelope
/// it carries.
pub(super) async fn client_write(
    raft: &Raft,
    mut entry: Envelope,
) -> Result<Vec<Applied>, WireError> {
    // The leader's clock stamps every entry, so one node's clock drives log
    // time at a time (the state machine keeps it monotonic).
    entry.now_ms = now_ms();
    match raft.client_write(entry).await {
        Ok(response) => Ok(response.data.0),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(WireError::Ambiguous),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(WireError::Other(e.to_string()))
        }
        Err(RaftError::Fatal(e)) => Err(WireError::Other(e.to_string())),
    }
}

impl RaftNode {
    /// Proposes `envelope` on the leader (forwarding if needed) and returns the
    /// state machine's result.
    pub async fn write(&self, envelope: Envelope, deadline: Instant) -> Result<Applied> {
        let retry_safe = envelope.idempotency.is_some();
        // Set once an attempt may have been proposed: from then on, failing
        // means "outcome unknown" (504), never "nothing happened" (503).
        let mut outcome_unknown = false;
        let give_up = |outcome_unknown: bool| {
            if outcome_unknown {
                Error::Timeout
            } else {
                Error::NoLeader
            }
        };
        loop {
            let Ok((leader_id, leader)) = self.wait_leader(deadline).await else {
                return Err(give_up(outcome_unknown));
            };
            let attempt = if leader_id == self.id {
                // Without a quorum the proposal never commits: give up at the
                // deadline (the outcome is unknown: the entry may commit later).
                match tokio::time::timeout_at(deadline, self.write_local(envelope.clone())).await {
                    Ok(result) => result.map_err(Error::from),
                    Err(_) => Err(Error::Timeout),
                }
            } else {
                self.forward_write(leader_id, &leader, &envelope, deadline)
                    .await
            };
            match attempt {
                Ok(applied) => return Ok(applied),
                // Nothing was proposed: safe to try again.
                Err(Error::NoLeader) => {}
                // Maybe proposed: only a write the state machine deduplicates may be retried.
                Err(Error::Timeout | Error::Rpc(_)) => {
                    outcome_unknown = true;
                    if !retry_safe {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) => return Err(e),
            }
            if Instant::now() + RETRY_PAUSE > deadline {
                return Err(give_up(outcome_unknown));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    pub(super) async fn forward_write(
        &self,
        leader_id: NodeId,
        leader: &NodeInfo,
        envelope: &Envelope,
        deadline: Instant,
    ) -> Result<Applied> {
        match self
            .call_peer(
                Peer::Node(leader_id),
                &leader.peer_addr,
                PeerCall::Forward,
                envelope,
                Some(deadline),
            )
            .await
        {
            Ok(result) => result.map_err(Error::from),
            // The leader is unreachable and never saw the request.
            Err(status)
                if status.code() == tonic::Code::Unavailable && is_connect_error(&status) =>
            {
                Err(Error::NoLeader)
            }
            Err(status) => Err(status_error(status)),
        }
    }
}
