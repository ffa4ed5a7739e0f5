//! Offline restore: seeds a fresh data directory from a snapshot (backup)
//! file so that it starts as a single-node cluster holding that state.
//!
//! The restored node keeps the log position of the backup: its state machine
//! reports the backup's last applied log id and its log is "purged" up to it,
//! so versions (log indexes) keep growing after the restore instead of
//! starting over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ecommerce_storage::{codec, snapshot, Storage, CF_RAFT_META, CF_SM_META};

use crate::state_machine::{KEY_LAST_APPLIED, KEY_MEMBERSHIP, KEY_REMOVED_NODES};
use crate::types::{NodeId, NodeInfo, SnapshotMeta, StoredMembership};
use crate::{Error, Result};

/// Loads `backup` into `storage` (which must hold no Raft state yet) as the
/// state of a new single-node cluster made of `node_id` at `info`.
pub fn restore_into(
    storage: &Storage,
    backup: &Path,
    node_id: NodeId,
    info: NodeInfo,
) -> Result<SnapshotMeta> {
    if storage.last(ecommerce_storage::CF_RAFT_LOG)?.is_some()
        || storage.get(CF_RAFT_META, b"vote")?.is_some()
    {
        return Err(Error::Storage(
            "the data directory already holds a node's state; restore needs an empty one".into(),
        ));
    }
    let header = snapshot::verify(backup)?;
    let meta: SnapshotMeta = codec::decode(&header)?;
    let last = meta
        .last_log_id
        .ok_or_else(|| Error::Storage("the backup holds no applied entries".into()))?;
    let membership = openraft::Membership::new(
        vec![BTreeSet::from([node_id])],
        BTreeMap::from([(node_id, info)]),
    );
    let stored = StoredMembership::new(Some(last), membership);
    storage.import(backup, |batch| {
        batch.put(CF_SM_META, KEY_LAST_APPLIED, &codec::encode(&Some(last))?)?;
        batch.put(CF_SM_META, KEY_MEMBERSHIP, &codec::encode(&stored)?)?;
        batch.put(
            CF_SM_META,
            KEY_REMOVED_NODES,
            &codec::encode(&BTreeSet::<u64>::new())?,
        )?;
        batch.put(CF_RAFT_META, b"last_purged", &codec::encode(&last)?)?;
        // Start from the backup's term: entries of a lower term would sort
        // below the restored log id and never count as committed.
        let vote = crate::types::Vote::new(last.leader_id.term, node_id);
        batch.put(CF_RAFT_META, b"vote", &codec::encode(&vote)?)
    })?;
    Ok(meta)
}
