//! Social sign-in (Google with OpenID Connect, GitHub, Facebook) against a local OAuth2/OIDC
//! provider that this test starts: authorization codes bound to a PKCE `S256` challenge, a token
//! endpoint that checks the client secret and the verifier, RS256 ID tokens with a published
//! JWKS, and GitHub/Facebook-style user-info endpoints. The test plays the browser and the
//! storefront: it follows the node's redirect to the provider, takes `code` and `state` from
//! the provider's redirect back, and hands them to the node's callback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::{Method, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::{Client, Reply};
use crate::harness::{config_file, Cluster};

const CLIENT_ID: &str = "shop-client";
const CLIENT_SECRET: &str = "shop-client-secret";
const REDIRECT_URI: &str = "https://shop.test/signed-in";
const KEY_ID: &str = "test-key-1";

/// PKCS#1 DER of the test provider's RSA key (a throwaway generated for this test).
const PROVIDER_KEY_DER_B64: &str = concat!(
    "MIIEowIBAAKCAQEAvzIUy8lDz2+ZyJXRvT722vGWoOTgUTC3iAKl3pkL0OpIx4neVK22AlFhM38L",
    "7g1KMRvU4oBWGOL4kT5wLAHDbd8KM6cl1H3A3gj4ZKuiMFPHlDcEdFGT98fHW41AYIPEkMjtqZDB",
    "tix7yGOmFoBv+gcqvht5wrDq8uW8Loy5UP8aRFVFfLhN+3l/1WDQQbgqtfP6M7N9kLg8RQI9JW9c",
    "tjubUF5R0AQB2eX7ObKqZ9gB8zBoDkRhl9J/WxyfKQPsIenUToOVsNIoZ+eXmpkTmO8KBMeDH80t",
    "w4tWsGlGC06O9TXlTCuhH2s2Gu4U6wk2EavkKZ90SEfbALaGkOs+vQIDAQABAoIBAAf0drqK33Qm",
    "Rcz7dMxNrhoqcpSzqSSfpQc26v1Ru1TgJpKMyTAXQSskBSoOF2o6adOUv50D73EeIm7ynNqr4Rx1",
    "avh+tBt89vUWBPW1UWx20+c2CcyoJ0KoMIJ95EePu/I1NfQ35mNkwuqxwLOPePk7apsZzA1ebIwa",
    "JGQAbWZyAFWxbnj8u5JnRgeOHRg3spsqduphjPDLh83My6dJiqLi8AvotoSFakJG3pChoH0G9U4C",
    "GAc344URMSFadypSk2l6jYjPD+AWi2pyuiNPXkiICkD8UTpdXOc0mkwsV9W0FXNoLVUhfogHdmyH",
    "C3W3V0036IZJOAJwaQ1WtwE+q2ECgYEA4AU1URuLZ3TQZdhzeUoqfC0cF4wlvg9MZV6Zym1KlwON",
    "APPGNdck+xJ9gofudzTJOj6tVThRs3LxEK7voVDSTDypOUqaJqEsIrDTprvyIXWvZsaTXvaY6u/Q",
    "2RO0HVWr98L2qUhh/jn1wbiu+4UzmYYmuLE4IcoS+5mkrRFuuV0CgYEA2n1MZLhf/d323icRYJsk",
    "vDslqUIvVx7MUfOo7YM+qwqfHki2lOupyoKsJ1fglr/pyCd7uUOQ7IjZDtvoOCSv7KQfiI5z/YRa",
    "zAAPTxpcuKSLWjLEO/GRprDBgh29KXTKvDwRxZLoWEd/mTwDz+6Ym7fKYw4md5YJi7Rb0mnaZOEC",
    "gYASNlovTd33eze2D/LTWYQ6tDAkefBXk0bStu4p1tjJjjBYc3kZx3PqNYaepg5tAo2Zfp743qtF",
    "u4J9qLsyki+Goyfe0IHXwiKkb1vFomH89mRcJqi0f7fO4dBI1aE/AUgJzH/hI1FUKcIhDbKsIBgh",
    "0xYyzbWSiashaUxKBbDKwQKBgHzwUZL2681b9CMs6/72OJd6qxqSwkdrUSM71kmbV2aveDX1FpMp",
    "/7nR52fIFKGftKvECDf0rxbTWmvozG3ubLtBTtbjvuglm1Y0Yoy1Yngjf5xgk15D0SokwUMKhnUC",
    "WDwzjWYRj9OLbyfM7dElexbwjkb+fHi9z0+YHzm/VieBAoGBANOlrrflybBLrgqvAZmX9FDxSe+x",
    "0+70CIISloMul7AhWHIPj1evR+NGTOMnNeT7sR50FJ18lv5mkGERYJkYLPQJjczOoiO2vc5cayyA",
    "IDAFWWRGAMfiLNTLazN2MwsURVnxhrrlEDiRu9tMwWtylFjxhzNBQpHPIVugaWP/pL0V",
);
/// Its modulus, base64url (the JWK `n`).
const PROVIDER_KEY_N: &str = concat!(
    "vzIUy8lDz2-ZyJXRvT722vGWoOTgUTC3iAKl3pkL0OpIx4neVK22AlFhM38L7g1KMRvU4oBWGOL4",
    "kT5wLAHDbd8KM6cl1H3A3gj4ZKuiMFPHlDcEdFGT98fHW41AYIPEkMjtqZDBtix7yGOmFoBv-gcq",
    "vht5wrDq8uW8Loy5UP8aRFVFfLhN-3l_1WDQQbgqtfP6M7N9kLg8RQI9JW9ctjubUF5R0AQB2eX7",
    "ObKqZ9gB8zBoDkRhl9J_WxyfKQPsIenUToOVsNIoZ-eXmpkTmO8KBMeDH80tw4tWsGlGC06O9TXl",
    "TCuhH2s2Gu4U6wk2EavkKZ90SEfbALaGkOs-vQ",
);

/// Someone who signs in at the provider.
#[derive(Clone, Debug)]
struct Person {
    /// The provider's user id (digits, so it also serves as GitHub's numeric id).
    sub: String,
    email: String,
    email_verified: bool,
    name: String,
}

impl Person {
    fn new(sub: &str, email: &str, email_verified: bool) -> Person {
        Person {
            sub: sub.into(),
            email: email.into(),
            email_verified,
            name: format!("Person {sub}"),
        }
    }
}

/// What the provider remembers about an issued code.
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    person: Person,
}

#[derive(Default)]
struct ProviderState {
    /// Who signs in at the next visit of the authorize page.
    next: Option<Person>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, Person>,
    /// Issue ID tokens for another client (a token meant for someone else).
    wrong_audience: bool,
    issuer: String,
}

type Shared = Arc<Mutex<ProviderState>>;

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn authorize(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| q.get(name).cloned().unwrap_or_default();
    if param("client_id") != CLIENT_ID
        || param("response_type") != "code"
        || param("code_challenge_method") != "S256"
        || param("code_challenge").len() != 43
        || param("redirect_uri") != REDIRECT_URI
        || param("state").is_empty()
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let mut provider = shared.lock().unwrap();
    let person = provider.next.clone().expect("the test names who signs in");
    let code = random();
    provider.codes.insert(
        code.clone(),
        Grant {
            challenge: param("code_challenge"),
            redirect_uri: param("redirect_uri"),
            nonce: q.get("nonce").cloned(),
            person,
        },
    );
    let mut back = Url::parse(REDIRECT_URI).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

async fn token(State(shared): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let field = |name: &str| f.get(name).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if field("grant_type") != "authorization_code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let mut provider = shared.lock().unwrap();
    // A code is spent by its first use, right or wrong.
    let Some(grant) = provider.codes.remove(&field("code")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if challenge != grant.challenge || field("redirect_uri") != grant.redirect_uri {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let access_token = random();
    provider
        .access_tokens
        .insert(access_token.clone(), grant.person.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let audience = if provider.wrong_audience {
        "another-client"
    } else {
        CLIENT_ID
    };
    let claims = json!({
        "iss": provider.issuer,
        "aud": audience,
        "sub": grant.person.sub,
        "email": grant.person.email,
        "email_verified": grant.person.email_verified,
        "name": grant.person.name,
        "nonce": grant.nonce,
        "iat": now,
        "exp": now + 300,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KEY_ID.into());
    let der = STANDARD.decode(PROVIDER_KEY_DER_B64).unwrap();
    let id_token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(&der),
    )
    .expect("sign the ID token");
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

fn bearer_person(shared: &Shared, headers: &HeaderMap) -> Option<Person> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    shared.lock().unwrap().access_tokens.get(token).cloned()
}

async fn github_user(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if headers.get(header::USER_AGENT).is_none() {
        return oauth_error(StatusCode::FORBIDDEN, "user agent required");
    }
    match bearer_person(&shared, &headers) {
        Some(p) => Json(json!({
            "id": p.sub.parse::<u64>().expect("numeric sub"),
            "login": format!("login{}", p.sub),
            "name": p.name,
            "email": null,
        }))
        .into_response(),
        None => oauth_error(StatusCode::UNAUTHORIZED, "bad credentials"),
    }
}

async fn github_emails(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    match bearer_person(&shared, &headers) {
        Some(p) => Json(json!([
            {"email": format!("secondary{}@elsewhere.test", p.sub), "primary": false, "verified": true},
            {"email": p.email, "primary": true, "verified": p.email_verified},
        ]))
        .into_response(),
        None => oauth_error(StatusCode::UNAUTHORIZED, "bad credentials"),
    }
}

async fn facebook_me(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q.get("fields").map(String::as_str), Some("id,name,email"));
    match bearer_person(&shared, &headers) {
        // Facebook leaves out an address its owner has not confirmed.
        Some(p) => Json(json!({
            "id": p.sub,
            "name": p.name,
            "email": if p.email_verified { json!(p.email) } else { Value::Null },
        }))
        .into_response(),
        None => oauth_error(StatusCode::UNAUTHORIZED, "bad credentials"),
    }
}

async fn jwks() -> Json<Value> {
    Json(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEY_ID,
        "n": PROVIDER_KEY_N, "e": "AQAB",
    }]}))
}

/// The local provider: its shared state and base URL.
async fn start_provider() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    shared.lock().unwrap().issuer = base.clone();
    let app = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/user", get(github_user))
        .route("/user/emails", get(github_emails))
        .route("/me", get(facebook_me))
        .route("/jwks", get(jwks))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (shared, base)
}

/// A one-node cluster with all three providers pointing at the local one.
async fn start_node(base: &str) -> (tempfile::TempDir, Cluster) {
    start_node_with(base, "").await
}

/// [`start_node`] with more TOML under `[auth.social]`.
async fn start_node_with(base: &str, social: &str) -> (tempfile::TempDir, Cluster) {
    let client = format!(
        "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         redirect_uri = \"{REDIRECT_URI}\"\nauthorize_url = \"{base}/authorize\"\n\
         token_url = \"{base}/token\"\n"
    );
    let toml = format!(
        "[auth]\nattempts_per_ip_per_minute = 10000\n[auth.social]\n{social}\n\
         [auth.social.google]\n{client}jwks_url = \"{base}/jwks\"\nissuer = \"{base}\"\n\
         [auth.social.github]\n{client}userinfo_url = \"{base}/user\"\n\
         emails_url = \"{base}/user/emails\"\n\
         [auth.social.facebook]\n{client}userinfo_url = \"{base}/me?fields=id,name,email\"\n"
    );
    let (dir, path) = config_file(&toml);
    let cluster = Cluster::start_with(1, &["--config", &path]).await;
    (dir, cluster)
}

/// Asks the node to start a sign-in (JSON form): the provider URL and the state.
async fn begin(node: &Client, provider: &str) -> (String, String) {
    let body = node
        .raw(
            Method::GET,
            &format!("/auth/social/{provider}"),
            &[("accept", "application/json")],
            Vec::new(),
        )
        .await
        .expect("begin social sign-in")
        .ok("begin social sign-in");
    (
        body["authorization_url"].as_str().expect("url").to_string(),
        body["state"].as_str().expect("state").to_string(),
    )
}

/// The browser at the provider: `person` signs in; answers the `code` and `state` the
/// provider sends back to the storefront.
async fn sign_in_at_provider(shared: &Shared, url: &str, person: &Person) -> (String, String) {
    shared.lock().unwrap().next = Some(person.clone());
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser.get(url).send().await.expect("authorize page");
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "authorize answered {response:?}"
    );
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let back = Url::parse(location).unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    (q["code"].clone(), q["state"].clone())
}

async fn callback(node: &Client, provider: &str, code: &str, state: &str) -> Reply {
    let mut url = Url::parse("http://x/").unwrap();
    url.query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", state);
    node.get(&format!(
        "/auth/social/{provider}/callback?{}",
        url.query().unwrap()
    ))
    .await
    .expect("social callback")
}

/// The whole dance for `person` at `provider`; the node's reply to the callback.
async fn social_sign_in(node: &Client, shared: &Shared, provider: &str, person: &Person) -> Reply {
    let (url, state) = begin(node, provider).await;
    let (code, returned_state) = sign_in_at_provider(shared, &url, person).await;
    assert_eq!(returned_state, state);
    callback(node, provider, &code, &state).await
}

/// The profile behind a token response.
async fn me(node: &Client, tokens: &Value) -> Value {
    let token = tokens["access_token"].as_str().expect("access_token");
    node.clone()
        .with_bearer(token)
        .get("/api/v1/users/me")
        .await
        .expect("GET me")
        .ok("GET /api/v1/users/me")
}

#[tokio::test]
async fn social_sign_in_creates_links_and_reuses_accounts() {
    let (shared, base) = start_provider().await;
    let (_config, cluster) = start_node(&base).await;
    let node = cluster.client(1);

    // The plain redirect form: 302 to the provider with PKCE and state.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/auth/social/google", node.base()))
        .send()
        .await
        .expect("GET /auth/social/google");
    assert_eq!(redirect.status(), StatusCode::FOUND);
    let location = redirect.headers()[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{base}/authorize?")),
        "{location}"
    );
    for param in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
    ] {
        assert!(location.contains(param), "{param} missing from {location}");
    }

    // Google (OIDC): a new customer account from a verified address.
    let ada = Person::new("1001", "Ada@Example.test", true);
    let tokens = social_sign_in(&node, &shared, "google", &ada)
        .await
        .ok("google sign-in");
    assert_eq!(tokens["token_type"], "Bearer");
    let profile = me(&node, &tokens).await;
    assert_eq!(profile["email"], "ada@example.test");
    assert_eq!(profile["role"], "customer");
    assert_eq!(profile["name"], "Person 1001");
    let ada_id = profile["id"].as_str().unwrap().to_string();

    // The refresh token is an ordinary one.
    let refreshed = node
        .post(
            "/auth/refresh",
            &json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await
        .expect("refresh")
        .ok("refresh a social session");
    assert_eq!(me(&node, &refreshed).await["id"], json!(ada_id));

    // Again with Google: the same account.
    let again = social_sign_in(&node, &shared, "google", &ada)
        .await
        .ok("second google sign-in");
    assert_eq!(me(&node, &again).await["id"], json!(ada_id));

    // GitHub, same verified address: linked to the same account.
    let tokens = social_sign_in(&node, &shared, "github", &ada)
        .await
        .ok("github sign-in");
    assert_eq!(me(&node, &tokens).await["id"], json!(ada_id));

    // Facebook, another person: another account.
    let bo = Person::new("2002", "bo@example.test", true);
    let tokens = social_sign_in(&node, &shared, "facebook", &bo)
        .await
        .ok("facebook sign-in");
    let bo_profile = me(&node, &tokens).await;
    assert_eq!(bo_profile["email"], "bo@example.test");
    assert_ne!(bo_profile["id"], json!(ada_id));

    // An account registered with a password but never proven: a provider that vouches for
    // the address takes it over, and the unproven password stops working (pre-hijacking).
    let squatted =
        json!({"email": "cy@example.test", "password": "squatter password 1", "name": "Sq"});
    let created = node
        .post("/auth/register", &squatted)
        .await
        .expect("register")
        .status;
    assert_eq!(created, StatusCode::CREATED);
    let squatter_login = json!({"email": "cy@example.test", "password": "squatter password 1"});
    node.post("/auth/login", &squatter_login)
        .await
        .expect("login")
        .ok("the password works before the social sign-in");
    let cy = Person::new("3003", "cy@example.test", true);
    let tokens = social_sign_in(&node, &shared, "github", &cy)
        .await
        .ok("github sign-in of the address owner");
    assert_eq!(me(&node, &tokens).await["email"], "cy@example.test");
    node.post("/auth/login", &squatter_login)
        .await
        .expect("login")
        .expect_error(
            401,
            "invalid_credentials",
            "the unproven password after the takeover",
        );
}

#[tokio::test]
async fn social_sign_in_refuses_bad_state_code_token_and_unverified_addresses() {
    let (shared, base) = start_provider().await;
    let (_config, cluster) = start_node(&base).await;
    let node = cluster.client(1);
    let dee = Person::new("4004", "dee@example.test", true);

    // A state the node never issued.
    let (url, _) = begin(&node, "google").await;
    let (code, _) = sign_in_at_provider(&shared, &url, &dee).await;
    callback(&node, "google", &code, "made-up-state")
        .await
        .expect_error(400, "invalid_social_state", "unknown state");

    // A state is spent by its first use: a replayed callback is refused.
    let (url, state) = begin(&node, "google").await;
    let (code, _) = sign_in_at_provider(&shared, &url, &dee).await;
    callback(&node, "google", &code, &state)
        .await
        .ok("first callback");
    callback(&node, "google", &code, &state).await.expect_error(
        400,
        "invalid_social_state",
        "replayed callback",
    );

    // A state issued for one provider is not good at another.
    let (url, state) = begin(&node, "google").await;
    let (code, _) = sign_in_at_provider(&shared, &url, &dee).await;
    callback(&node, "github", &code, &state).await.expect_error(
        400,
        "invalid_social_state",
        "state of another provider",
    );

    // A code the provider never issued (or already spent).
    let (_, state) = begin(&node, "github").await;
    let reply = callback(&node, "github", "not-a-code", &state).await;
    reply.expect_error(400, "social_login_failed", "bad code");
    assert!(
        reply.body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{reply}"
    );

    // The user declined at the provider.
    let (_, state) = begin(&node, "facebook").await;
    let declined = node
        .get(&format!(
            "/auth/social/facebook/callback?error=access_denied&state={state}"
        ))
        .await
        .expect("declined callback");
    declined.expect_error(400, "social_login_failed", "declined at the provider");

    // An ID token issued for another client.
    shared.lock().unwrap().wrong_audience = true;
    social_sign_in(&node, &shared, "google", &dee)
        .await
        .expect_error(400, "social_login_failed", "ID token for another audience");
    shared.lock().unwrap().wrong_audience = false;

    // An address the provider does not vouch for never creates or links an account.
    let eve = json!({"email": "eve@example.test", "password": "eve's own password", "name": "Eve"});
    let registered = node
        .post("/auth/register", &eve)
        .await
        .expect("register eve");
    assert_eq!(registered.status, StatusCode::CREATED, "{registered}");
    let mallory = Person::new("5005", "eve@example.test", false);
    for provider in ["google", "github", "facebook"] {
        social_sign_in(&node, &shared, provider, &mallory)
            .await
            .expect_error(403, "email_not_verified", provider);
    }
    node.post(
        "/auth/login",
        &json!({"email": "eve@example.test", "password": "eve's own password"}),
    )
    .await
    .expect("login")
    .ok("eve's password still works");

    // Unknown and unconfigured providers.
    node.get("/auth/social/twitter")
        .await
        .expect("GET twitter")
        .expect_error(404, "provider_not_configured", "unknown provider");
    node.get("/auth/social/twitter/callback?code=a&state=b")
        .await
        .expect("GET twitter callback")
        .expect_error(404, "provider_not_configured", "unknown provider callback");

    // Missing parameters.
    node.get("/auth/social/google/callback")
        .await
        .expect("callback without state")
        .expect_error(400, "invalid_social_state", "no state");
    let (_, state) = begin(&node, "google").await;
    node.get(&format!("/auth/social/google/callback?state={state}"))
        .await
        .expect("callback without code")
        .expect_error(422, "validation_failed", "no code");
}

#[tokio::test]
async fn social_sign_in_states_expire_and_are_swept() {
    let (shared, base) = start_provider().await;
    let (_config, cluster) = start_node_with(&base, "state_ttl_secs = 1").await;
    let node = cluster.client(1);
    let fin = Person::new("6006", "fin@example.test", true);
    let (url, state) = begin(&node, "google").await;
    let (code, _) = sign_in_at_provider(&shared, &url, &fin).await;
    // The leader's sweep removes the expired state (counted in `expired_total{kind="auth"}`).
    crate::harness::eventually(
        "the expired social sign-in state to be swept",
        std::time::Duration::from_secs(20),
        || {
            let node = node.clone();
            async move {
                let metrics = node.get("/metrics").await.map_err(|e| e.to_string())?;
                let text = metrics.body.as_str().unwrap_or_default().to_string();
                let swept = text
                    .lines()
                    .find(|l| l.starts_with("expired_total{kind=\"auth\"}"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
                if swept >= 1.0 {
                    Ok(())
                } else {
                    Err(format!("swept {swept}"))
                }
            }
        },
    )
    .await;
    callback(&node, "google", &code, &state).await.expect_error(
        400,
        "invalid_social_state",
        "an expired state",
    );
}
