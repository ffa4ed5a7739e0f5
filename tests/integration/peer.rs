//! The cluster boundary, tried as an attacker would: the node-to-node protocol
//! (`ecommerce.raft.v1.RaftService`) is served only on the peer listener, over mutual
//! TLS with the cluster CA, to members. Strangers get no TLS session or an
//! `unauthenticated`/`permission_denied` status on every listener, and nothing changes;
//! a removed node's certificate stops working; membership changes check who answers at
//! an address.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use std::time::Duration;

use ecommerce_domains::users::UserCommand;
use ecommerce_domains::{Command, Envelope, Role};
use ecommerce_raft::peer_auth::{node_dns_name, PeerIdentity};
use ecommerce_raft::proto::raft_service_client::RaftServiceClient;
use ecommerce_raft::proto::Payload;
use ecommerce_storage::codec;
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::harness::{sign_in, Cluster, Node, STARTUP_TIMEOUT};

/// Every method of the peer service, called with `payload`; the statuses.
async fn call_every_method(
    client: &mut RaftServiceClient<Channel>,
    payload: &Payload,
) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    let req = || {
        let mut r = tonic::Request::new(payload.clone());
        r.set_timeout(Duration::from_secs(5));
        r
    };
    vec![
        (
            "AppendEntries",
            client.append_entries(req()).await.map(drop),
        ),
        ("Vote", client.vote(req()).await.map(drop)),
        (
            "InstallSnapshot",
            client.install_snapshot(req()).await.map(drop),
        ),
        ("Forward", client.forward(req()).await.map(drop)),
        ("ReadIndex", client.read_index(req()).await.map(drop)),
        (
            "ChangeMembership",
            client.change_membership(req()).await.map(drop),
        ),
        ("Campaign", client.campaign(req()).await.map(drop)),
        ("Join", client.join(req()).await.map(drop)),
        // A stream: its refusal may come with the first message.
        ("FetchBlob", fetch_first(client, req()).await),
    ]
}

/// `FetchBlob`, reading its stream's first message.
async fn fetch_first(
    client: &mut RaftServiceClient<Channel>,
    req: tonic::Request<Payload>,
) -> Result<(), tonic::Status> {
    let mut stream = client.fetch_blob(req).await?.into_inner();
    stream.message().await.map(drop)
}

/// A forged `SetRole(admin)` for `user_id`, as a follower would forward it.
fn forged_promotion(user_id: &str) -> Payload {
    let envelope = Envelope {
        now_ms: 0,
        idempotency: None,
        command: Command::Users(Box::new(UserCommand::SetRole {
            user_id: user_id.to_string(),
            role: Role::Admin,
        })),
    };
    Payload {
        data: codec::encode(&envelope).expect("encode envelope"),
    }
}

/// A client of the peer service at `addr` presenting node `as_node`'s certificate from
/// `certs` (or none), trusting `certs`' CA, expecting node `expect`'s certificate.
fn peer_client(
    addr: &str,
    certs: &Path,
    as_node: Option<u64>,
    expect: u64,
) -> RaftServiceClient<Channel> {
    peer_client_with(addr, certs, as_node.map(|id| (certs, id)), expect)
}

/// [`peer_client`] trusting the CA in `ca_dir` and presenting node `id`'s certificate
/// from `cert_dir` (which may be another CA's).
fn peer_client_with(
    addr: &str,
    ca_dir: &Path,
    cert: Option<(&Path, u64)>,
    expect: u64,
) -> RaftServiceClient<Channel> {
    let ca = std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem");
    let cluster = ecommerce::tls::cluster_id_of_ca(&ca).expect("cluster id");
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name(node_dns_name(expect, &cluster));
    if let Some((dir, id)) = cert {
        let cert = std::fs::read(dir.join(format!("node-{id}.pem"))).expect("node cert");
        let key = std::fs::read(dir.join(format!("node-{id}.key"))).expect("node key");
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    RaftServiceClient::new(channel)
}

/// A plain-text (h2c) client of whatever serves at `addr`.
fn plain_client(addr: &str) -> RaftServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    RaftServiceClient::new(channel)
}

/// What the test compares before and after the attacks: the membership and the
/// customer's role.
async fn observe(
    cluster: &Cluster,
    customer: &crate::client::Client,
) -> (Vec<(u64, String)>, String) {
    let leader_view = cluster.view(1).await;
    let me = customer
        .get("/api/v1/users/me")
        .await
        .expect("GET /api/v1/users/me")
        .ok("GET /api/v1/users/me");
    (
        leader_view.members,
        me["role"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn strangers_cannot_speak_the_peer_protocol_on_any_listener() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let (customer, customer_id) = sign_in(&cluster.client(leader), "customer", "mallory").await;
    let forged = forged_promotion(&customer_id);
    let before = observe(&cluster, &customer).await;
    assert_eq!(before.1, "customer");

    // A CA of another cluster, with a certificate for the same node ids.
    let rogue = tempfile::tempdir().unwrap();
    ecommerce::tls::init_dir(rogue.path(), None, &[1, 2, 3, 9], &[]).unwrap();
    // A certificate of this cluster's CA for a node that is not a member.
    cluster.issue_cert(9);
    let certs = cluster.certs_dir();

    for id in cluster.ids() {
        let node = cluster.node(id);
        let (http, grpc, peer) = (
            node.http_addr().to_string(),
            node.grpc_addr().to_string(),
            node.peer_addr().to_string(),
        );
        // The client listeners do not serve the peer service at all.
        for (listener, addr) in [("REST", &http), ("client gRPC", &grpc)] {
            for (method, result) in call_every_method(&mut plain_client(addr), &forged).await {
                let status =
                    result.expect_err(&format!("{method} on node {id}'s {listener} listener"));
                assert_ne!(status.code(), tonic::Code::Ok);
            }
        }
        // The peer listener: no TLS, TLS without a certificate, a certificate of another CA.
        let strangers = [
            ("plain text", plain_client(&peer)),
            ("no certificate", peer_client(&peer, &certs, None, id)),
            (
                "another cluster's CA",
                peer_client_with(&peer, &certs, Some((rogue.path(), id)), id),
            ),
        ];
        for (who, mut client) in strangers {
            for (method, result) in call_every_method(&mut client, &forged).await {
                let status =
                    result.expect_err(&format!("{method} on node {id}'s peer listener, {who}"));
                assert!(
                    matches!(
                        status.code(),
                        // No TLS session: the connection fails or the server's TLS
                        // stack answers plain HTTP/2 with a protocol error.
                        tonic::Code::Unavailable
                            | tonic::Code::Unknown
                            | tonic::Code::Internal
                            | tonic::Code::Cancelled
                            | tonic::Code::Unauthenticated
                    ),
                    "{method} on node {id}'s peer listener, {who}: {status:?}"
                );
            }
        }
        // A certificate of this cluster for a node that is not a member: everything but
        // Identify and Join needs membership.
        let mut outsider = peer_client(&peer, &certs, Some(9), id);
        for (method, result) in call_every_method(&mut outsider, &forged).await {
            if method == "Join" {
                continue;
            }
            let status = result.expect_err(&format!("{method} on node {id} as non-member node 9"));
            assert_eq!(
                status.code(),
                tonic::Code::PermissionDenied,
                "{method} on node {id} as non-member node 9: {status:?}"
            );
        }
    }

    let after = observe(&cluster, &customer).await;
    assert_eq!(after.0, before.0, "membership unchanged");
    assert_eq!(
        after.1, "customer",
        "the forged SetRole(admin) had no effect"
    );
}

#[tokio::test]
async fn a_members_certificate_works_until_the_member_is_removed() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let victim = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let certs = cluster.certs_dir();
    let peer = cluster.node(leader).peer_addr().to_string();

    // Control: as a member, the victim's certificate is accepted (ReadIndex on the leader).
    let mut as_victim = peer_client(&peer, &certs, Some(victim), leader);
    as_victim
        .read_index(Payload {
            data: codec::encode(&()).unwrap(),
        })
        .await
        .expect("a member's ReadIndex on the leader");

    cluster.kill(victim);
    cluster
        .admin_client(leader)
        .post("/cluster/remove", &json!({ "node_id": victim }))
        .await
        .expect("POST /cluster/remove")
        .ok("remove the victim");
    let remaining: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != victim)
        .collect();
    cluster.wait_voters(leader, &remaining).await;

    for id in &remaining {
        let addr = cluster.node(*id).peer_addr().to_string();
        let mut client = peer_client(&addr, &certs, Some(victim), *id);
        for (method, result) in call_every_method(&mut client, &forged_promotion("x")).await {
            if method == "Join" {
                let status = result.expect_err("a removed node may not join again");
                assert_ne!(status.code(), tonic::Code::Ok);
                continue;
            }
            let status = result.expect_err(&format!(
                "{method} on node {id} with the removed node's certificate"
            ));
            assert_eq!(
                status.code(),
                tonic::Code::PermissionDenied,
                "{method} on node {id} with the removed node's certificate: {status:?}"
            );
        }
    }
}

#[tokio::test]
async fn membership_changes_check_who_answers_and_keep_a_quorum() {
    let cluster = Cluster::start(1).await;
    let admin = cluster.admin_client(1);
    let node1 = cluster.node(1);
    let (http1, peer1) = (node1.http_addr().to_string(), node1.peer_addr().to_string());

    // Node 1's own addresses under a new id: refused (an address of a member).
    let own = admin
        .post(
            "/cluster/learners",
            &json!({ "node_id": 2, "http_addr": http1, "peer_addr": peer1 }),
        )
        .await
        .expect("POST /cluster/learners");
    own.expect_error(409, "membership_refused", "node 1's addresses as node 2");
    // A fresh REST address but node 1's peer address: still node 1 answering.
    let spare = crate::harness::free_addr().to_string();
    admin
        .post(
            "/cluster/learners",
            &json!({ "node_id": 2, "http_addr": spare, "peer_addr": peer1 }),
        )
        .await
        .expect("POST /cluster/learners")
        .expect_error(409, "membership_refused", "node 1's peer address as node 2");

    // A running node of this cluster's CA that holds node 5's certificate, offered as node 6.
    cluster.issue_cert(5);
    let mut five = Node::with_certs(5, &[], Some(cluster.certs_dir()));
    // It joins nothing (no --join towards a member that would accept it as 6); it waits
    // with a join address that leads nowhere, serving its peer port meanwhile.
    // Added by the leader rather than joining, it cannot fetch the cluster's
    // data keys: it is given a copy of them, as an operator would.
    let keys = five.data_dir().join(ecommerce::vault::DATA_KEYS_FILE);
    std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
    std::fs::copy(
        node1.data_dir().join(ecommerce::vault::DATA_KEYS_FILE),
        &keys,
    )
    .unwrap();
    let nowhere = crate::harness::free_addr().to_string();
    five.start(Some(&nowhere), false).await;
    let peer5 = five.peer_addr().to_string();
    let http5 = five.http_addr().to_string();
    admin
        .post(
            "/cluster/learners",
            &json!({ "node_id": 6, "http_addr": http5, "peer_addr": peer5 }),
        )
        .await
        .expect("POST /cluster/learners")
        .expect_error(409, "membership_refused", "node 5 offered as node 6");

    // The last voter cannot be removed, and nothing above changed the membership.
    admin
        .post("/cluster/remove", &json!({ "node_id": 1 }))
        .await
        .expect("POST /cluster/remove")
        .expect_error(409, "membership_refused", "remove the last voter");
    let view = cluster.view(1).await;
    assert_eq!(view.members, vec![(1, "voter".to_string())]);
    assert_eq!(view.leader_id, Some(1));

    // The same node, offered under its own id, is verified and added.
    admin
        .post(
            "/cluster/learners",
            &json!({ "node_id": 5, "http_addr": http5, "peer_addr": peer5 }),
        )
        .await
        .expect("POST /cluster/learners")
        .ok("node 5 offered as itself");
    crate::harness::eventually("node 5 to be a learner", STARTUP_TIMEOUT, || {
        let c = cluster.client(1);
        async move {
            let view = crate::harness::cluster_view(&c).await?;
            if view.learners() == [5] {
                Ok(())
            } else {
                Err(format!("{:?}", view.members))
            }
        }
    })
    .await;
    // Writes still commit.
    crate::shop::warehouse(&admin, "wh-b", 0.0, 1).await;
    let reply = admin
        .set_stock("boundary-1", "wh-b", 1)
        .await
        .expect("PUT stock");
    reply.expect_stock("boundary-1", 1, "a write after the refused changes");
    drop(five);
}

#[tokio::test]
async fn a_lone_node_closes_its_peer_port_with_a_ca_of_its_own() {
    let mut node = Node::new(1, &[]);
    node.start(None, false).await;
    let tls_dir = node.data_dir().join("tls");
    assert!(tls_dir.join("ca.pem").is_file(), "the node made its own CA");
    let identity = PeerIdentity::from_der(
        &rustls_pki_types::CertificateDer::from_pem_file(tls_dir.join("node-1.pem")).unwrap(),
    )
    .expect("a node certificate");
    let cluster = node.client().cluster().await.unwrap().body;
    assert_eq!(cluster["cluster_id"], json!(identity.cluster_id));

    // A certificate of some other CA claiming to be node 1 of this cluster id.
    let other = tempfile::tempdir().unwrap();
    ecommerce::tls::init_dir(other.path(), Some(&identity.cluster_id), &[1], &[]).unwrap();
    let peer = node.peer_addr().to_string();
    let mut forger = peer_client_with(&peer, &tls_dir, Some((other.path(), 1)), 1);
    let refused = forger
        .forward(forged_promotion("anyone"))
        .await
        .expect_err("a certificate of another CA");
    assert_ne!(refused.code(), tonic::Code::Ok);
}
