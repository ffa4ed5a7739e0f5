//! Free loopback ports, and the three listeners of a node ([`Addrs`]).
//!
//! A free port is found by binding port 0 and dropping the listener; a port handed out once is
//! never handed out again by this process, even if the OS recycles it, so two nodes (or a node
//! and a test's own listener) never get the same one.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

use anyhow::Context;

/// Ports already handed out in this process.
static USED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port nobody listens on right now, never returned before in this process.
pub fn free_port() -> anyhow::Result<u16> {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let fresh = USED_PORTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port);
        if fresh {
            return Ok(port);
        }
    }
}

/// `127.0.0.1:<a free port>` (see [`free_port`]).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// The listeners of one node: REST (`--http-addr`), client gRPC (`--grpc-addr`) and the peer
/// port (`--peer-addr`: Raft and blobs between nodes, mutual TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addrs {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub peer: SocketAddr,
}

impl Addrs {
    /// Three free loopback ports.
    pub fn loopback() -> anyhow::Result<Addrs> {
        Ok(Addrs {
            http: free_addr()?,
            grpc: free_addr()?,
            peer: free_addr()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        let addrs = Addrs::loopback().unwrap();
        assert!(addrs.http.ip().is_loopback());
        assert_ne!(addrs.http.port(), addrs.peer.port());
    }
}
