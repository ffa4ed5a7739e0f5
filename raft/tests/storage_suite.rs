//! openraft's storage conformance suite against the RocksDB log store and
//! state machine.
#![allow(clippy::result_large_err)] // openraft's StorageError is imposed by its traits

use ecommerce_raft::types::{StorageError, TypeConfig};
use ecommerce_raft::{LogStore, StateMachine};
use ecommerce_storage::{Storage, StorageOptions};
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct Builder;

async fn open(dir: &TempDir) -> Result<(LogStore, StateMachine), StorageError> {
    let storage = Storage::open(
        &dir.path().join("db"),
        ecommerce_domains::TABLES,
        &StorageOptions::default(),
    )
    .expect("open storage");
    let sm = StateMachine::open(storage.clone(), dir.path().join("snapshots")).await?;
    Ok((LogStore::new(storage), sm))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm) = open(&dir).await?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_conformance_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)
}
