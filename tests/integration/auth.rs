//! Users and authentication against real nodes: registration, login, refresh rotation and
//! reuse detection, logout, refused tokens (expired, tampered, wrong key, `alg: none`,
//! unknown key), key rotation, password change and reset, profiles, deletion, rate limits,
//! the CLI bootstrap of the first admin, and linearizable e-mail uniqueness on 3 nodes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::client::{Client, Reply};
use crate::harness::{
    access_token, config_file, eventually, run_cli, sign_in, Cluster, STARTUP_TIMEOUT,
};

const PASSWORD: &str = "a long enough password";

async fn register(client: &Client, email: &str, password: &str) -> Reply {
    client
        .post(
            "/auth/register",
            &json!({"email": email, "password": password, "name": "Test User"}),
        )
        .await
        .expect("POST /auth/register")
}

async fn login(client: &Client, email: &str, password: &str) -> Reply {
    client
        .post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
        .expect("POST /auth/login")
}

async fn refresh(client: &Client, token: &Value) -> Reply {
    client
        .post("/auth/refresh", &json!({ "refresh_token": token }))
        .await
        .expect("POST /auth/refresh")
}

async fn me(client: &Client, token: &str) -> Reply {
    client
        .clone()
        .with_bearer(token)
        .get("/api/v1/users/me")
        .await
        .expect("GET /api/v1/users/me")
}

fn token_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {body}"))
        .to_string()
}

/// The decoded JSON header and claims of a JWT (no verification).
fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    let part = |s: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON")
    };
    (part(parts[0]), part(parts[1]))
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
}

#[tokio::test]
async fn register_login_refresh_rotation_reuse_and_logout() {
    // At debug level every request is logged, with its headers' names.
    let cluster = Cluster::start_logging_debug(1).await;
    let client = cluster.client(1);

    let created = register(&client, "  Ann@Example.TEST ", PASSWORD).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created}");
    assert_eq!(created.body["email"], "ann@example.test");
    assert_eq!(created.body["role"], "customer");
    assert!(created.body.get("password_hash").is_none(), "{created}");
    register(&client, "ann@example.test", PASSWORD)
        .await
        .expect_error(409, "email_taken", "same address again");
    let weak = register(&client, "weak@example.test", "short").await;
    weak.expect_error(422, "weak_password", "short password");
    assert_eq!(weak.body["details"]["min_length"], 12, "{weak}");
    register(&client, "not-an-address", PASSWORD)
        .await
        .expect_error(422, "validation_failed", "bad e-mail");

    // Wrong password and unknown account: the same answer.
    let wrong = login(&client, "ann@example.test", "not the password!").await;
    wrong.expect_error(401, "invalid_credentials", "wrong password");
    let unknown = login(&client, "nobody@example.test", "not the password!").await;
    unknown.expect_error(401, "invalid_credentials", "unknown account");
    assert_eq!(wrong.body, unknown.body, "no user enumeration");

    let first = login(&client, "ANN@example.test", PASSWORD)
        .await
        .ok("login");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    assert!(first["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() > 40));
    let access = token_of(&first);
    let (header, claims) = decode(&access);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].as_str().is_some(), "{header}");
    assert_eq!(claims["role"], "customer");
    assert_eq!(claims["sub"], created.body["id"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
    let profile = me(&client, &access).await.ok("me");
    assert_eq!(profile["id"], created.body["id"]);

    // Rotation on every use: the new pair works, the old refresh token is spent.
    let second = refresh(&client, &first["refresh_token"])
        .await
        .ok("refresh");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    me(&client, &token_of(&second))
        .await
        .ok("me with the refreshed token");
    // Reuse of the spent token revokes the whole family: the newest refresh token and
    // every access token of the session stop working.
    refresh(&client, &first["refresh_token"])
        .await
        .expect_error(
            401,
            "invalid_refresh_token",
            "reuse of a spent refresh token",
        );
    refresh(&client, &second["refresh_token"])
        .await
        .expect_error(401, "invalid_refresh_token", "refresh after reuse");
    me(&client, &token_of(&second)).await.expect_error(
        401,
        "unauthenticated",
        "access token of a revoked family",
    );
    me(&client, &access).await.expect_error(
        401,
        "unauthenticated",
        "first access token of a revoked family",
    );

    // Logout ends a session, and only that one.
    let a = login(&client, "ann@example.test", PASSWORD)
        .await
        .ok("login a");
    let b = login(&client, "ann@example.test", PASSWORD)
        .await
        .ok("login b");
    let reply = client
        .post(
            "/auth/logout",
            &json!({"refresh_token": a["refresh_token"]}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply}");
    me(&client, &token_of(&a))
        .await
        .expect_error(401, "unauthenticated", "after logout");
    refresh(&client, &a["refresh_token"]).await.expect_error(
        401,
        "invalid_refresh_token",
        "refresh after logout",
    );
    me(&client, &token_of(&b))
        .await
        .ok("the other session lives on");
    refresh(&client, &json!("garbage")).await.expect_error(
        401,
        "invalid_refresh_token",
        "garbage refresh token",
    );

    // Nothing secret or personal reached the node's log on the way.
    let log = std::fs::read_to_string(cluster.node(1).log_path()).unwrap();
    assert!(
        log.contains("/auth/refresh"),
        "requests are logged at debug"
    );
    let text = |v: &Value| v.as_str().unwrap().to_string();
    for (what, secret) in [
        ("the password", PASSWORD.to_string()),
        ("a refresh token", text(&first["refresh_token"])),
        ("a rotated refresh token", text(&second["refresh_token"])),
        ("a logged-out refresh token", text(&a["refresh_token"])),
        ("an access token", access),
        ("another access token", token_of(&b)),
        ("the e-mail address", "ann@example.test".to_string()),
    ] {
        assert!(!log.contains(&secret), "the node's log holds {what}");
    }
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    // Short-lived access tokens so expiry can be observed.
    let (_dir, config) = config_file("[auth]\naccess_token_ttl_secs = 10\n");
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);
    let credentials = access_token(&client, "customer", "forger").await;
    let token = credentials.token.clone();
    me(&client, &token).await.ok("the genuine token");
    let (header, claims) = decode(&token);
    let parts: Vec<&str> = token.split('.').collect();

    let mut admin_claims = claims.clone();
    admin_claims["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], encode(&admin_claims), parts[2]);
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", encode(&none_header), encode(&admin_claims));
    let alg_none_signed = format!("{}.{}.{}", encode(&none_header), parts[1], parts[2]);
    let kid = header["kid"].as_str().expect("kid");
    let wrong_key = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(kid.to_string());
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&[42u8; 32]),
        )
        .expect("sign with a key of our own")
    };
    let mut unknown_kid_header = header.clone();
    unknown_kid_header["kid"] = json!("no-such-key");
    let unknown_kid = format!("{}.{}.{}", encode(&unknown_kid_header), parts[1], parts[2]);
    let mut hs512 = header.clone();
    hs512["alg"] = json!("HS512");
    let confused = format!("{}.{}.{}", encode(&hs512), parts[1], parts[2]);

    for (what, forged) in [
        ("tampered claims", tampered),
        ("alg none, unsigned", alg_none),
        ("alg none header on a signed token", alg_none_signed),
        ("signed with another key", wrong_key),
        ("unknown kid", unknown_kid),
        ("another algorithm", confused),
        ("not a JWT", "abc".to_string()),
    ] {
        me(&client, &forged)
            .await
            .expect_error(401, "unauthenticated", what);
    }
    let basic = client
        .clone()
        .with_header("authorization", "Basic dXNlcjpwYXNz")
        .get("/api/v1/users/me")
        .await
        .unwrap();
    basic.expect_error(401, "unauthenticated", "Basic credentials");

    // Expiry: the genuine token stops working once `exp` (plus 5 s leeway) has passed.
    eventually("the 10 s access token to expire", STARTUP_TIMEOUT, || {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let reply = me(&client, &token).await;
            if reply.status == StatusCode::UNAUTHORIZED && reply.code() == "unauthenticated" {
                Ok(())
            } else {
                Err(reply.to_string())
            }
        }
    })
    .await;
    // The refresh token still gives a fresh access token.
    let fresh = refresh(&client, &json!(credentials.refresh_token))
        .await
        .ok("refresh after the access token expired");
    me(&client, &token_of(&fresh)).await.ok("the fresh token");
}

#[tokio::test]
async fn key_rotation_keeps_issued_tokens_valid() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.client(1);
    let before = access_token(&leader, "customer", "rotator").await;
    let (old_header, _) = decode(&before.token);

    let admin = cluster.admin_client(2);
    let rotated = admin
        .post("/api/v1/auth/signing-keys/rotate", &json!({}))
        .await
        .unwrap()
        .ok("rotate");
    assert_ne!(rotated["kid"], old_header["kid"]);

    let after = access_token(&cluster.client(3), "customer", "rotator").await;
    let (new_header, _) = decode(&after.token);
    assert_eq!(
        new_header["kid"], rotated["kid"],
        "new tokens use the new key"
    );
    for id in cluster.ids() {
        me(&cluster.client(id), &before.token)
            .await
            .ok(&format!("a token of the old key on node {id}"));
        me(&cluster.client(id), &after.token)
            .await
            .ok(&format!("a token of the new key on node {id}"));
    }
    // A second rotation within the access-token lifetime still keeps the first key.
    admin
        .post("/api/v1/auth/signing-keys/rotate", &json!({}))
        .await
        .unwrap()
        .ok("rotate again");
    me(&leader, &before.token)
        .await
        .ok("a token of the first key after two rotations");
}

#[tokio::test]
async fn concurrent_registrations_of_one_address_on_three_nodes_make_one_account() {
    let cluster = Cluster::start(3).await;
    let clients: Vec<Client> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.client(id))
        .collect();
    for round in 0..5 {
        let email = format!("race-{round}@example.test");
        let attempts = clients.iter().map(|c| {
            let (c, email) = (c.clone(), email.clone());
            async move { register(&c, &email, PASSWORD).await }
        });
        let replies = futures::future::join_all(attempts).await;
        let created = replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        let taken = replies.iter().filter(|r| r.code() == "email_taken").count();
        assert_eq!(
            (created, taken),
            (1, 2),
            "round {round}: exactly one registration wins: {replies:?}"
        );
    }
    // Every node agrees: one account per address.
    let admin = cluster.admin_client(3);
    let list = admin
        .get("/api/v1/users?limit=1000")
        .await
        .unwrap()
        .ok("list users");
    for round in 0..5 {
        let email = format!("race-{round}@example.test");
        let n = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|u| u["email"] == json!(email))
            .count();
        assert_eq!(n, 1, "accounts with {email}: {list}");
        for c in &clients {
            login(c, &email, PASSWORD).await.ok("login on every node");
        }
    }
}

#[tokio::test]
async fn password_change_and_single_use_expiring_reset() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client(1);
    let admin = cluster.admin_client(1);
    let email = "reset@example.test";
    register(&client, email, PASSWORD).await;
    let session = login(&client, email, PASSWORD).await.ok("login");
    let access = token_of(&session);
    let user_id = me(&client, &access).await.ok("me")["id"].clone();

    // Change: needs the current password; ends every session.
    let change = |current: &str, new: &str| {
        let c = client.clone().with_bearer(&access);
        let body = json!({"current_password": current, "new_password": new});
        async move { c.post("/api/v1/users/me/password", &body).await.unwrap() }
    };
    change("wrong password!!", "another long password")
        .await
        .expect_error(401, "invalid_credentials", "wrong current password");
    change(PASSWORD, "tiny")
        .await
        .expect_error(422, "weak_password", "weak new password");
    let changed = change(PASSWORD, "another long password").await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed}");
    me(&client, &access).await.expect_error(
        401,
        "unauthenticated",
        "sessions end on password change",
    );
    refresh(&client, &session["refresh_token"])
        .await
        .expect_error(
            401,
            "invalid_refresh_token",
            "refresh after password change",
        );
    login(&client, email, PASSWORD)
        .await
        .expect_error(401, "invalid_credentials", "old password");
    let session = login(&client, email, "another long password")
        .await
        .ok("new password");

    // Reset: the same 202 for an unknown address; the token arrives in the
    // event log sealed for the notification side, never in plain text.
    let ask = |address: &str| {
        let c = client.clone();
        let body = json!({ "email": address });
        async move { c.post("/auth/password-reset", &body).await.unwrap() }
    };
    let unknown = ask("nobody@example.test").await;
    let known = ask(email).await;
    assert_eq!(unknown.status, StatusCode::ACCEPTED, "{unknown}");
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    let delivery = eventually("the PasswordResetIssued event", STARTUP_TIMEOUT, || {
        let (admin, user_id) = (admin.clone(), user_id.clone());
        async move {
            let events = admin.all_events().await.map_err(|e| e.to_string())?;
            events
                .iter()
                .find(|e| e["type"] == "PasswordResetIssued" && e["data"]["user_id"] == user_id)
                .map(|e| {
                    assert!(e["data"].get("token").is_none(), "{e}");
                    e["data"]["delivery"]
                        .as_str()
                        .expect("delivery")
                        .to_string()
                })
                .ok_or_else(|| format!("{} events, none for the reset", events.len()))
        }
    })
    .await;
    let reset_token = cluster.open_reset_delivery(user_id.as_str().expect("user id"), &delivery);
    assert_ne!(delivery, reset_token);
    let confirm = |token: &str, password: &str| {
        let c = client.clone();
        let body = json!({"token": token, "new_password": password});
        async move { c.post("/auth/password-reset/confirm", &body).await.unwrap() }
    };
    confirm(&reset_token, "x")
        .await
        .expect_error(422, "weak_password", "weak password on reset");
    confirm("not-the-token", "a password set by reset")
        .await
        .expect_error(400, "invalid_reset_token", "wrong token");
    let done = confirm(&reset_token, "a password set by reset").await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{done}");
    confirm(&reset_token, "yet another password!")
        .await
        .expect_error(400, "invalid_reset_token", "a reset token is single-use");
    me(&client, &token_of(&session)).await.expect_error(
        401,
        "unauthenticated",
        "sessions end on reset",
    );
    login(&client, email, "a password set by reset")
        .await
        .ok("login with the reset password");
}

#[tokio::test]
async fn reset_tokens_expire() {
    let (_dir, config) = config_file("[auth]\nreset_token_ttl_secs = 1\n");
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);
    let admin = cluster.admin_client(1);
    let (_, user_id) = sign_in(&client, "customer", "expiring").await;
    client
        .post(
            "/auth/password-reset",
            &json!({"email": crate::harness::test_account("customer", "expiring").0}),
        )
        .await
        .unwrap();
    let (token, expires_ms) = eventually("the reset event", STARTUP_TIMEOUT, || {
        let (admin, user_id) = (admin.clone(), user_id.clone());
        async move {
            let events = admin.all_events().await.map_err(|e| e.to_string())?;
            events
                .iter()
                .find(|e| {
                    e["type"] == "PasswordResetIssued" && e["data"]["user_id"] == json!(user_id)
                })
                .map(|e| {
                    (
                        e["data"]["delivery"]
                            .as_str()
                            .expect("delivery")
                            .to_string(),
                        e["data"]["expires_ms"].as_u64().expect("expires_ms"),
                    )
                })
                .ok_or_else(|| "no reset event yet".to_string())
        }
    })
    .await;
    let token = cluster.open_reset_delivery(&user_id, &token);
    // Expiry is judged in log time: wait until a later command carries a later clock.
    eventually(
        "log time to pass the reset token's expiry",
        STARTUP_TIMEOUT,
        || {
            let admin = admin.clone();
            async move {
                let reply = admin
                    .put_warehouse("tick", "Tick")
                    .await
                    .map_err(|e| e.to_string())?;
                let events = admin
                    .events(None, Some(1000))
                    .await
                    .map_err(|e| e.to_string())?;
                let last = events.body["events"]
                    .as_array()
                    .and_then(|e| e.last().cloned())
                    .unwrap_or(Value::Null);
                match last["timestamp_ms"].as_u64() {
                    Some(t) if t > expires_ms && reply.status == StatusCode::OK => Ok(()),
                    other => Err(format!("last event time {other:?}")),
                }
            }
        },
    )
    .await;
    client
        .post(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "too late for this"}),
        )
        .await
        .unwrap()
        .expect_error(400, "invalid_reset_token", "an expired reset token");
}

#[tokio::test]
async fn profiles_addresses_roles_and_deletion() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client(1);
    let admin = cluster.admin_client(1);
    let (alice, alice_id) = sign_in(&client, "customer", "alice").await;
    let address = json!({
        "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "de"
    });
    let updated = alice
        .send(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&json!({"name": "Alice A", "shipping_address": address})),
            None,
        )
        .await
        .unwrap()
        .ok("update profile");
    assert_eq!(updated["name"], "Alice A");
    assert_eq!(updated["shipping_address"]["country"], "DE");
    assert_eq!(updated["billing_address"], Value::Null);
    let bad = alice
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{alice_id}"),
            Some(&json!({"billing_address": {"line1": "x", "city": "y", "postal_code": "1", "country": "Germany"}})),
            None,
        )
        .await
        .unwrap();
    bad.expect_error(422, "validation_failed", "a bad country code");
    assert_eq!(bad.body["details"]["field"], "billing_address.country");
    let cleared = alice
        .send(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&json!({"shipping_address": null})),
            None,
        )
        .await
        .unwrap()
        .ok("clear the address");
    assert_eq!(cleared["shipping_address"], Value::Null);
    assert_eq!(cleared["name"], "Alice A", "absent fields stay");

    // Roles: an admin makes alice a vendor; her old tokens end with the old role.
    let promoted = admin
        .put(
            &format!("/api/v1/users/{alice_id}/role"),
            &json!({"role": "vendor"}),
        )
        .await
        .unwrap()
        .ok("make alice a vendor");
    assert_eq!(promoted["role"], "vendor");
    alice.get("/api/v1/users/me").await.unwrap().expect_error(
        401,
        "unauthenticated",
        "a token with the old role",
    );
    admin
        .put(
            &format!("/api/v1/users/{alice_id}/role"),
            &json!({"role": "emperor"}),
        )
        .await
        .unwrap()
        .expect_error(422, "validation_failed", "an unknown role");
    admin
        .get("/api/v1/users/no-such-user")
        .await
        .unwrap()
        .expect_error(404, "user_not_found", "unknown user");

    // Deletion anonymises; the address can be registered again.
    let (bob, _) = sign_in(&client, "customer", "bob").await;
    let deleted = bob
        .send(reqwest::Method::DELETE, "/api/v1/users/me", None, None)
        .await
        .unwrap()
        .ok("delete own account");
    assert_eq!(
        (
            deleted["deleted"].clone(),
            deleted["email"].clone(),
            deleted["name"].clone()
        ),
        (json!(true), Value::Null, json!(""))
    );
    bob.get("/api/v1/users/me").await.unwrap().expect_error(
        401,
        "unauthenticated",
        "token of a deleted account",
    );
    let (email, password) = crate::harness::test_account("customer", "bob");
    login(&client, &email, &password).await.expect_error(
        401,
        "invalid_credentials",
        "login to a deleted account",
    );
    let again = register(&client, &email, &password).await;
    assert_eq!(again.status, StatusCode::CREATED, "{again}");
    assert_ne!(again.body["id"], deleted["id"]);
    let events = admin.all_events().await.unwrap();
    let deletion = events
        .iter()
        .find(|e| e["type"] == "UserDeleted")
        .expect("a UserDeleted event");
    assert!(
        !deletion.to_string().contains("bob"),
        "no personal data in the event: {deletion}"
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_account_and_per_ip() {
    let (_dir, config) = config_file(
        "[auth]\nattempts_per_account_per_minute = 3\nattempts_per_ip_per_minute = 12\n",
    );
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);
    for i in 0..3 {
        login(&client, "target@example.test", "wrong password!!")
            .await
            .expect_error(401, "invalid_credentials", &format!("attempt {i}"));
    }
    let limited = login(&client, "target@example.test", "wrong password!!").await;
    limited.expect_error(429, "rate_limited", "fourth attempt on one account");
    let retry: u64 = limited
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {limited}"))
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The limit is per account: another account is still answered...
    login(&client, "other@example.test", "wrong password!!")
        .await
        .expect_error(401, "invalid_credentials", "another account");
    // ...until the address's own quota runs out, whichever accounts it tries.
    let mut hit = None;
    for i in 0..12 {
        let reply = login(
            &client,
            &format!("spray-{i}@example.test"),
            "wrong password!!",
        )
        .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            hit = Some(reply);
            break;
        }
        reply.expect_error(401, "invalid_credentials", "spraying");
    }
    let hit = hit.expect("the per-IP limit must stop a password spray within 12 attempts");
    hit.expect_error(429, "rate_limited", "per-IP limit");
    assert!(hit.header("retry-after").is_some(), "{hit}");
}

#[tokio::test]
async fn the_cli_bootstraps_the_first_admin() {
    let cluster = Cluster::start(1).await;
    let url = cluster.node(1).url();
    let (dir, _) = config_file("");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "boot admin password\n").unwrap();
    let password_arg = password_file.display().to_string();
    let output = run_cli([
        "user",
        "create",
        "--email",
        "Root@Example.test",
        "--role",
        "admin",
        "--password-file",
        &password_arg,
        "--node",
        &url,
    ])
    .await;
    assert!(
        output.status.success(),
        "user create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(
        (printed["email"].clone(), printed["role"].clone()),
        (json!("root@example.test"), json!("admin"))
    );
    let client = cluster.client(1);
    let session = login(&client, "root@example.test", "boot admin password")
        .await
        .ok("login as the bootstrapped admin");
    client
        .clone()
        .with_bearer(&token_of(&session))
        .get("/api/v1/users")
        .await
        .unwrap()
        .ok("the new admin lists users");

    let output = run_cli([
        "user",
        "create",
        "--email",
        "intruder@example.test",
        "--role",
        "admin",
        "--password-file",
        &password_arg,
        "--node",
        &url,
        "--operator-token",
        "a wrong operator token of sufficient length",
    ])
    .await;
    assert!(!output.status.success(), "a wrong operator token must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unauthenticated"), "{stderr}");
}
