//! Clients over TLS: with `--tls-cert/--tls-key` a node serves REST and client gRPC over
//! TLS only, the CLI reaches it with `https://` and `--ca-cert`, and a node refuses to
//! serve clients in plain text on a non-loopback address unless told
//! `--insecure-plaintext`.

use std::time::{Duration, Instant};

use ecommerce::grpc::proto::cluster_service_client::ClusterServiceClient;
use ecommerce::grpc::proto::ClusterStatusRequest;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::client::Client;
use crate::harness::{free_addr, run_cli, scrub_env, Node, BIN, STARTUP_TIMEOUT};

/// A certificate directory for node 1 whose certificate names 127.0.0.1.
fn loopback_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    ecommerce::tls::init_dir(dir.path(), None, &[1], &["127.0.0.1".to_string()])
        .expect("certs init");
    dir
}

#[tokio::test]
async fn a_node_with_a_certificate_serves_clients_over_tls_only() {
    let certs = loopback_certs();
    let mut node = Node::with_client_tls(1, &[], certs.path().to_path_buf());
    node.start(None, false).await;
    assert!(node.url().starts_with("https://"));
    let ca = certs.path().join(ecommerce::tls::CA_CERT);

    // REST over HTTPS, trusting the cluster CA.
    let reply = node
        .client()
        .cluster()
        .await
        .expect("GET /cluster over https");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000"),
        "browsers are told to use nothing but TLS"
    );

    // Plain HTTP on the same port gets no answer a client could take for the API.
    let plain = Client::with_timeout(
        format!("http://{}", node.http_addr()),
        Duration::from_secs(3),
    );
    if let Ok(reply) = plain.health().await {
        assert_ne!(reply.status, 200, "plain HTTP on the TLS port was served");
    }
    // HTTPS without trusting the cluster CA fails the handshake.
    let stranger = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let untrusted = stranger.get(format!("{}/health", node.url())).send().await;
    assert!(
        untrusted.is_err(),
        "a certificate of an unknown CA was accepted"
    );

    // Client gRPC over TLS.
    let pem = std::fs::read(&ca).unwrap();
    let endpoint = Endpoint::from_shared(format!("https://{}", node.grpc_addr()))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pem)))
        .unwrap()
        .connect_timeout(Duration::from_secs(3));
    let status = ClusterServiceClient::connect(endpoint)
        .await
        .expect("connect gRPC over TLS")
        .status(ClusterStatusRequest {})
        .await
        .expect("cluster status over TLS")
        .into_inner();
    assert_eq!(status.node_id, 1);
    // ... and not in plain text.
    let plain_grpc = Endpoint::from_shared(format!("http://{}", node.grpc_addr()))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    let refused = match ClusterServiceClient::connect(plain_grpc).await {
        Ok(mut c) => c.status(ClusterStatusRequest {}).await.is_err(),
        Err(_) => true,
    };
    assert!(
        refused,
        "client gRPC answered in plain text on its TLS port"
    );

    // The CLI: https:// with --ca-cert works, without it the node is not trusted.
    let out = run_cli([
        "cluster",
        "status",
        "--node",
        &node.url(),
        "--ca-cert",
        &ca.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "cluster status over https: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("voter"));
    let out = run_cli(["cluster", "status", "--node", &node.url(), "--timeout", "3"]).await;
    assert!(!out.status.success(), "the CLI trusted an unknown CA");
}

#[tokio::test]
async fn plain_text_off_loopback_needs_an_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    // A node that serves other hosts needs a KEK of its own.
    let kek = dir.path().join("kek");
    ecommerce::vault::kek::append_new_version(&kek, None).unwrap();
    let kek = kek.display().to_string();
    let port = free_addr().port();
    let http = format!("0.0.0.0:{port}");
    let grpc = free_addr().to_string();
    let peer = free_addr().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "serve",
            "--node-id",
            "1",
            "--data-dir",
            &data,
            "--http-addr",
            &http,
            "--grpc-addr",
            &grpc,
            "--peer-addr",
            &peer,
            "--kek-file",
            &kek,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    let refused = run_cli(args(&[])).await;
    assert!(!refused.status.success(), "served plain text on 0.0.0.0");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--insecure-plaintext"),
        "the refusal names the way out: {stderr}"
    );

    // With the flag it serves, and says so in its log.
    let mut command = tokio::process::Command::new(BIN);
    scrub_env(command.as_std_mut());
    let mut child = command
        .args(args(&["--insecure-plaintext"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let client = Client::new(format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(reply) = client.health().await {
            if reply.status == 200 {
                break;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        assert!(
            Instant::now() < deadline,
            "not up within {STARTUP_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("plain text"), "a warning in the log: {log}");
}

#[tokio::test]
async fn a_renewed_rest_certificate_is_served_without_a_restart() {
    let certs = loopback_certs();
    let mut node = Node::with_client_tls(1, &[], certs.path().to_path_buf());
    node.start(None, false).await;
    let pid = node.pid();
    // The operator renews the certificate in place, from another CA.
    let renewed = loopback_certs();
    for file in [
        ecommerce::tls::node_cert_file(1),
        ecommerce::tls::node_key_file(1),
    ] {
        std::fs::copy(renewed.path().join(&file), certs.path().join(&file)).unwrap();
    }
    let trusting_new = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(renewed.path().join(ecommerce::tls::CA_CERT)).unwrap(),
            )
            .unwrap(),
        )
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    // Files are checked every 10 s: the new certificate is served within that.
    let deadline = Instant::now() + ecommerce::tls::RELOAD_CHECK_INTERVAL + Duration::from_secs(15);
    loop {
        let reply = trusting_new
            .get(format!("{}/health", node.url()))
            .send()
            .await;
        if reply.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served without a restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The same process served it: no restart happened.
    assert!(node.is_running() && node.pid() == pid, "the node restarted");
}
