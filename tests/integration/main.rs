//! Black-box integration tests of the shipped `ecommerce` binary (the single `integration`
//! test target, one module per feature to keep link time down).
//!
//! Every test starts real node processes through `harness` (on `ecommerce-testkit`: own temp
//! dir, free loopback ports, readiness polled with a deadline, SIGKILL on drop) and talks to
//! them only through the public REST API (`client`), the CLI, and the public gRPC API
//! (`grpc`, whose generated client is the only thing used from the crate's library).
//! Run with `cargo test --test integration -- --test-threads 2`; a failing test prints the
//! tail of each node's log, and `ECOMMERCE_TEST_KEEP_DIRS=1` keeps the node dirs.

mod client;
mod harness;
mod shop;

mod abuse;
mod at_rest;
mod auth;
mod authz_matrix;
mod backup;
mod browser;
mod catalog;
mod client_tls;
mod cluster;
mod commerce;
mod digest;
mod disk;
mod errors;
mod events;
mod grpc;
mod idempotency;
mod leadership;
mod media;
mod ops;
mod oversell;
mod peer;
mod pricing;
mod quorum;
mod search;
mod slow_clients;
mod social;
