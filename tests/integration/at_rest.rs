//! Encryption at rest, as an operator and an attacker with a copy of the
//! disks see it: after sign-ups, profile addresses, logins, a password reset,
//! a signing-key rotation and a KEK rotation, no file of any node (RocksDB's
//! SSTs, WAL and MANIFEST, snapshots, the node's log) nor a backup holds an
//! e-mail address, a name, a street or the reset token in plain text; and a
//! KEK rotation under write load fails no request.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{run_cli, sign_in, Cluster, STARTUP_TIMEOUT};

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// The files of `files` that hold any of `secrets`, with the secret found.
fn leaks(files: &[std::path::PathBuf], secrets: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{}: {secret}", file.display()));
            }
        }
    }
    found
}

async fn rotate_kek(cluster: &Cluster, to: u32) {
    let out = run_cli([
        "keys".to_string(),
        "rotate-kek".into(),
        "--to".into(),
        to.to_string(),
        "--node".into(),
        cluster.node(1).url(),
        "--access-token".into(),
        cluster.admin_token().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "keys rotate-kek: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn kek_versions(cluster: &Cluster, node: u64) -> Value {
    cluster
        .admin_client(node)
        .get("/node/keys")
        .await
        .expect("GET /node/keys")
        .ok("node keys")
}

#[tokio::test]
async fn no_plaintext_at_rest_after_sign_ups_a_reset_and_rotations() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    let leader = cluster.leader().await;
    let client = cluster.client(leader);
    let mut secrets = Vec::new();
    let mut users = Vec::new();
    for i in 0..6 {
        let marker = format!("zq{i}xv");
        let email = format!("{marker}.mail@example.test");
        let name = format!("Namemark {marker}");
        let street = format!("{marker} Streetmark 12");
        let body = json!({"email": email, "password": "a long enough password", "name": name});
        let created = client
            .post("/auth/register", &body)
            .await
            .expect("register");
        assert_eq!(created.status, StatusCode::CREATED, "{created}");
        let login = client
            .post(
                "/auth/login",
                &json!({"email": email, "password": "a long enough password"}),
            )
            .await
            .expect("login")
            .ok("login");
        let me = client
            .clone()
            .with_bearer(login["access_token"].as_str().expect("token"));
        me.send(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&json!({"shipping_address": {
                "line1": street, "city": "Berlin", "postal_code": "10115", "country": "de"
            }})),
            None,
        )
        .await
        .expect("PATCH me")
        .ok("profile address");
        secrets.extend([email.clone(), name, street]);
        users.push(email);
    }

    // A password reset: its token reaches the notification side sealed.
    let admin = cluster.admin_client(leader);
    client
        .post("/auth/password-reset", &json!({"email": users[0]}))
        .await
        .expect("reset");
    let delivery = crate::harness::eventually("the reset event", STARTUP_TIMEOUT, || {
        let admin = admin.clone();
        async move {
            let events = admin.all_events().await.map_err(|e| e.to_string())?;
            events
                .iter()
                .find(|e| e["type"] == "PasswordResetIssued")
                .map(|e| {
                    (
                        e["data"]["user_id"].as_str().unwrap().to_string(),
                        e["data"]["delivery"].as_str().unwrap().to_string(),
                    )
                })
                .ok_or_else(|| "no reset event yet".to_string())
        }
    })
    .await;
    let token = cluster.open_reset_delivery(&delivery.0, &delivery.1);
    let done = client
        .post(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "a password set by reset"}),
        )
        .await
        .expect("confirm");
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{done}");
    secrets.push(token);

    // Rotations: the signing key, then the KEK (to a version added to the
    // shared KEK file while the nodes run).
    admin
        .post("/api/v1/auth/signing-keys/rotate", &json!({}))
        .await
        .expect("rotate signing key")
        .ok("rotate signing key");
    let added = cluster
        .kit_certs()
        .generate_kek()
        .expect("a new KEK version");
    rotate_kek(&cluster, added).await;
    for id in 1..=3 {
        assert_eq!(kek_versions(&cluster, id).await["kek_version"], added);
    }
    // More writes after the rotation, then a backup.
    let (customer, _) = sign_in(&client, "customer", "after-rotation").await;
    customer
        .get("/api/v1/users/me")
        .await
        .expect("me")
        .ok("me after the rotation");
    let work = tempfile::tempdir().expect("temp dir");
    let backup = work.path().join("cluster.backup");
    let out = run_cli([
        "backup".to_string(),
        backup.display().to_string(),
        "--node".into(),
        cluster.node(leader).url(),
        "--access-token".into(),
        cluster.admin_token().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every node snapshots (the state travels in snapshot files too).
    crate::harness::eventually("a snapshot on every node", STARTUP_TIMEOUT, || {
        let cluster = &cluster;
        async move {
            for id in 1..=3 {
                let view = cluster
                    .client(id)
                    .cluster()
                    .await
                    .map_err(|e| e.to_string())?;
                if view.body["snapshot_index"].as_u64().unwrap_or(0) == 0 {
                    return Err(format!("node {id}: no snapshot yet: {view}"));
                }
            }
            Ok(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill_all();

    let mut all = vec![backup];
    for id in 1..=3 {
        all.extend(files(cluster.node(id).dir()));
    }
    assert!(
        all.iter()
            .any(|f| f.to_string_lossy().contains("snapshots")),
        "no snapshot file among {all:?}"
    );
    // The search can find what it looks for: a control file in plain text.
    let control = work.path().join("control");
    std::fs::write(&control, format!("..{}..", secrets[0])).unwrap();
    assert_eq!(
        leaks(&[control], &secrets).len(),
        1,
        "the search misses plaintext"
    );
    let found = leaks(&all, &secrets);
    assert!(found.is_empty(), "plaintext at rest:\n{}", found.join("\n"));
}

#[tokio::test]
async fn kek_rotation_under_write_load_fails_no_request() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let admin = cluster.admin_client(leader);
    admin
        .put_warehouse("rot-w", "Main")
        .await
        .expect("PUT warehouse")
        .ok("warehouse");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (client, stop) = (cluster.admin_client(1 + w % 3), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut failures = Vec::new();
            // Bounded: at most 2,000 writes, and it stops with the rotation.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && done < 2000 {
                let reply = client
                    .set_stock(&format!("rot-{w}"), "rot-w", (done % 50) as i64)
                    .await;
                match reply {
                    Ok(r) if r.status.is_success() => {}
                    Ok(r) => failures.push(r.to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
                done += 1;
            }
            (done, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let added = cluster
        .kit_certs()
        .generate_kek()
        .expect("a new KEK version");
    rotate_kek(&cluster, added).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for writer in writers {
        let (done, failures) = writer.await.expect("writer");
        assert!(
            failures.is_empty(),
            "failed during the rotation: {failures:?}"
        );
        total += done;
    }
    assert!(total > 0);
    for id in 1..=3 {
        assert_eq!(kek_versions(&cluster, id).await["kek_version"], added);
    }
    // A rotation to a version some node lacks changes nothing.
    let out = run_cli([
        "keys".to_string(),
        "rotate-kek".into(),
        "--to".into(),
        "99".into(),
        "--node".into(),
        cluster.node(1).url(),
        "--access-token".into(),
        cluster.admin_token().to_string(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no KEK version 99"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ecommerce serve` for node `id` on `data_dir` with the cluster's
/// certificates and KEK file `kek`, expected to refuse to start: its stderr.
async fn refused_start(
    id: u64,
    data_dir: &Path,
    certs: &Path,
    kek: &Path,
    join: Option<String>,
) -> String {
    let free = || crate::harness::free_addr().to_string();
    let mut args = vec![
        "serve".to_string(),
        "--node-id".into(),
        id.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--http-addr".into(),
        free(),
        "--grpc-addr".into(),
        free(),
        "--peer-addr".into(),
        free(),
        "--certs".into(),
        certs.display().to_string(),
        "--kek-file".into(),
        kek.display().to_string(),
    ];
    if let Some(join) = join {
        args.extend(["--join".into(), join]);
    }
    let out = run_cli(args).await;
    assert!(!out.status.success(), "the node started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_node_without_its_kek_version_or_with_another_kek_refuses_to_start() {
    let mut cluster = Cluster::start(1).await;
    let certs = cluster.kit_certs().dir().to_path_buf();
    let kek = cluster.kit_certs().kek_file();
    let old_kek = std::fs::read_to_string(&kek).unwrap();
    let added = cluster
        .kit_certs()
        .generate_kek()
        .expect("a new KEK version");
    rotate_kek(&cluster, added).await;

    // Restarted with a KEK file that lost the version its data keys need.
    cluster.kill_all();
    let work = tempfile::tempdir().expect("temp dir");
    let stale = work.path().join("stale-kek");
    std::fs::write(&stale, &old_kek).unwrap();
    std::fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let data = cluster.node(1).data_dir();
    let stderr = refused_start(1, &data, &certs, &stale, None).await;
    assert!(
        stderr.contains(&format!("KEK version {added}")),
        "the refusal names the missing version: {stderr}"
    );

    // A new node whose KEK holds other bytes cannot join: the data keys it
    // fetches do not open.
    cluster.restart(1).await;
    cluster.issue_cert(2);
    let foreign = work.path().join("foreign-kek");
    ecommerce::vault::kek::append_new_version(&foreign, Some(added)).unwrap();
    let stderr = refused_start(
        2,
        &work.path().join("n2"),
        &certs,
        &foreign,
        Some(cluster.node(1).peer_addr().to_string()),
    )
    .await;
    assert!(
        stderr.contains(&format!("do not open with KEK version {added}")),
        "{stderr}"
    );
}
