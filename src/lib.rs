//! The `ecommerce` node: configuration, the REST and gRPC APIs, and
//! [`Application`], which builds and runs a node. `main.rs` only parses the
//! command line and calls into here; the tests use the same builder.

pub mod api;
pub mod app;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod config;
pub mod grpc;
pub mod identity;
pub mod media;
pub mod payments;
pub mod projections;
pub mod restore;
pub mod search;
mod serve;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod vault;
pub mod workers;

pub use startup::Application;
