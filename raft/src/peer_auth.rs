//! Who may speak the node-to-node protocol: the identity carried by a node
//! certificate of the cluster's CA, and the checks every peer RPC makes.
//!
//! A node certificate names its node and cluster twice, as DNS names in its
//! subject alternative names: `node-<id>.<cluster id>.ecommerce-peer` (this
//! node exactly) and `member.<cluster id>.ecommerce-peer` (some node of the
//! cluster). A client dialling a peer verifies the first name when it knows
//! whom it calls (Raft traffic, forwarding, the identity check before a node
//! is added), the second when any member will do (joining). A server reads
//! the first name of the client's certificate (TLS has already proven it was
//! issued by the cluster CA) and checks it against the cluster and the
//! membership it knows.
//!
//! Architecture invariant: possession of a node certificate is what lets a
//! process act as that node; the cluster's CA key (kept by the operator, not
//! by the nodes of a multi-node cluster) is what makes one.

use std::fmt;

use serde::{Deserialize, Serialize};
use tonic::{Request, Status};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::types::NodeId;

/// The pseudo top-level domain of peer names; never resolved.
const PEER_DOMAIN: &str = "ecommerce-peer";

/// The DNS name a node certificate carries for exactly node `id`.
pub fn node_dns_name(id: NodeId, cluster_id: &str) -> String {
    format!("node-{id}.{cluster_id}.{PEER_DOMAIN}")
}

/// The DNS name every node certificate of the cluster carries.
pub fn member_dns_name(cluster_id: &str) -> String {
    format!("member.{cluster_id}.{PEER_DOMAIN}")
}

/// Whether `id` can be a cluster id: a DNS label (lower-case letters,
/// digits and inner hyphens, at most 63), since it is part of peer names.
pub fn valid_cluster_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The node a certificate was issued to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    pub node_id: NodeId,
    pub cluster_id: String,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} of cluster {}", self.node_id, self.cluster_id)
    }
}

impl PeerIdentity {
    /// Reads the node name from a DER certificate; `None` when it has none
    /// (not a node certificate), or more than one.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let san = cert.subject_alternative_name().ok()??;
        let mut found = None;
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                if let Some(identity) = Self::from_dns_name(dns) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(identity);
                }
            }
        }
        found
    }

    /// Parses `node-<id>.<cluster id>.ecommerce-peer`.
    pub fn from_dns_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("node-")?;
        let (id, rest) = rest.split_once('.')?;
        let cluster_id = rest.strip_suffix(PEER_DOMAIN)?.strip_suffix('.')?;
        let node_id: NodeId = id.parse().ok()?;
        (node_id > 0 && valid_cluster_id(cluster_id) && id == node_id.to_string()).then(|| Self {
            node_id,
            cluster_id: cluster_id.to_string(),
        })
    }

    /// The identity of the certificate a peer presented on this request's
    /// TLS connection. TLS already verified the chain to the cluster CA.
    pub fn of_request<T>(request: &Request<T>) -> Result<Self, Status> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("a node certificate is required"))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("a node certificate is required"))?;
        Self::from_der(leaf.as_ref())
            .ok_or_else(|| Status::unauthenticated("the certificate names no node of a cluster"))
    }
}

/// What a peer RPC requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A node certificate of this cluster (identify, join).
    Cluster,
    /// ... whose node is a member (voter or learner) of the membership this
    /// node knows; a node that knows no membership yet (it is joining)
    /// accepts any node of its cluster.
    Member,
}

/// The checks of one node's peer service.
#[derive(Debug, Clone)]
pub struct PeerGuard {
    pub cluster_id: String,
}

impl PeerGuard {
    /// Admits `identity` for `access`, given whether it is a member and
    /// whether this node knows any membership yet.
    pub fn admit(
        &self,
        identity: &PeerIdentity,
        access: Access,
        is_member: bool,
        knows_membership: bool,
    ) -> Result<(), Status> {
        if identity.cluster_id != self.cluster_id {
            return Err(Status::permission_denied(format!(
                "{identity} is not of this cluster ({})",
                self.cluster_id
            )));
        }
        match access {
            Access::Cluster => Ok(()),
            Access::Member if is_member || !knows_membership => Ok(()),
            Access::Member => Err(Status::permission_denied(format!(
                "{identity} is not a member of this cluster"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip_and_strangers_do_not_parse() {
        let cluster = "3f2a9c1e-0b7d-4c55-9a51-6b0e2d7f1c20";
        let name = node_dns_name(12, cluster);
        assert_eq!(
            PeerIdentity::from_dns_name(&name),
            Some(PeerIdentity {
                node_id: 12,
                cluster_id: cluster.into()
            })
        );
        for bad in [
            member_dns_name(cluster),
            "node-0.c.ecommerce-peer".into(),
            "node-01.c.ecommerce-peer".into(),
            "node-1.C.ecommerce-peer".into(),
            "node-1..ecommerce-peer".into(),
            "node-1.c.example.com".into(),
            "node-x.c.ecommerce-peer".into(),
            "localhost".into(),
        ] {
            assert_eq!(PeerIdentity::from_dns_name(&bad), None, "{bad}");
        }
    }

    #[test]
    fn cluster_ids_are_dns_labels() {
        assert!(valid_cluster_id("3f2a9c1e-0b7d-4c55-9a51-6b0e2d7f1c20"));
        for bad in ["", "-a", "a-", "A", "a.b", &"a".repeat(64)] {
            assert!(!valid_cluster_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_guard_wants_this_cluster_and_a_member() {
        let guard = PeerGuard {
            cluster_id: "c1".into(),
        };
        let ours = PeerIdentity {
            node_id: 2,
            cluster_id: "c1".into(),
        };
        let theirs = PeerIdentity {
            node_id: 2,
            cluster_id: "c2".into(),
        };
        assert!(guard.admit(&ours, Access::Cluster, false, true).is_ok());
        assert!(guard.admit(&ours, Access::Member, true, true).is_ok());
        assert!(guard.admit(&ours, Access::Member, false, false).is_ok());
        let refused = guard.admit(&ours, Access::Member, false, true).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        for access in [Access::Cluster, Access::Member] {
            let refused = guard.admit(&theirs, access, true, true).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        }
    }
}
