//! Linearizable reads: the read-index barrier, batched on the leader and
//! asked of it by followers.

use super::*;

/// One leadership-confirming quorum round: the index a linearizable read
/// that arrived before the round started must wait for.
pub(super) async fn read_index_round(raft: &Raft) -> Result<u64, WireError> {
    match raft.get_read_log_id().await {
        Ok((read_log_id, _)) => Ok(read_log_id.map_or(0, |l| l.index)),
        Err(RaftError::APIError(_)) => Err(WireError::NotLeader),
        Err(RaftError::Fatal(e)) => Err(WireError::Other(e.to_string())),
    }
}

impl RaftNode {
    /// Returns once this node has applied every entry committed before the call.
    pub async fn linearizable_barrier(&self, deadline: Instant) -> Result<()> {
        loop {
            let (leader_id, leader) = self.wait_leader(deadline).await?;
            let read_index = if leader_id == self.id {
                self.read_index_local().await.map_err(Error::from)
            } else {
                self.read_index_remote(leader_id, &leader, deadline).await
            };
            match read_index {
                Ok(index) => return self.wait_applied(index, deadline).await,
                Err(Error::NoLeader | Error::Rpc(_)) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() + RETRY_PAUSE > deadline {
                return Err(Error::NoLeader);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    pub(super) async fn read_index_remote(
        &self,
        leader_id: NodeId,
        leader: &NodeInfo,
        deadline: Instant,
    ) -> Result<u64> {
        let reply = self
            .call_peer(
                Peer::Node(leader_id),
                &leader.peer_addr,
                PeerCall::ReadIndex,
                &(),
                Some(deadline),
            )
            .await;
        reply.map_err(status_error)?.map_err(Error::from)
    }

    pub(super) async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<()> {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout_at(deadline, async {
            applied.wait_for(|a| *a >= index).await.map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Fatal("state machine stopped".into())),
            Err(_) => Err(Error::Timeout),
        }
    }
}
