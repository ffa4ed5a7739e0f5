//! What browsers see: CORS for the configured origins only (preflights
//! answered before admission), the security headers on every answer, errors
//! included, and gzip for clients that accept it; HSTS only over TLS (in
//! `client_tls.rs`).

use std::io::Read;

use reqwest::Method;

use crate::harness::{config_file, Cluster};

const SHOP: &str = "https://shop.example.test";

#[tokio::test]
async fn cors_for_listed_origins_security_headers_and_gzip() {
    let (_dir, config) = config_file(&format!("[http]\ncors_allowed_origins = [\"{SHOP}\"]\n"));
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);

    // A preflight from the shop's pages is allowed, with the headers a
    // storefront sends (bearer token, idempotency key, guest cart token).
    let preflight = client
        .raw(
            Method::OPTIONS,
            "/api/v1/checkout",
            &[
                ("origin", SHOP),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type,idempotency-key,x-cart-token",
                ),
            ],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(preflight.status, 200, "{preflight}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(SHOP),
        "{preflight}"
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in ["authorization", "idempotency-key", "x-cart-token"] {
        assert!(allowed.contains(header), "{header} not allowed: {allowed}");
    }
    assert!(preflight.header("access-control-max-age").is_some());

    // A simple request from the shop gets its origin back and sees the
    // headers a client needs; another origin gets nothing to go on.
    let from_shop = client
        .raw(
            Method::GET,
            "/api/v1/products",
            &[("origin", SHOP)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(from_shop.status, 200, "{from_shop}");
    assert_eq!(from_shop.header("access-control-allow-origin"), Some(SHOP));
    let exposed = from_shop
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("idempotent-replayed"), "{exposed}");
    let elsewhere = client
        .raw(
            Method::GET,
            "/api/v1/products",
            &[("origin", "https://evil.example.test")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);

    // Security headers on a success and on an error alike; no HSTS without TLS.
    let missing = client.get("/api/v1/products/nope-404").await.unwrap();
    assert_eq!(missing.status, 404, "{missing}");
    for reply in [&from_shop, &missing] {
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            reply.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(reply.header("strict-transport-security"), None);
    }

    // gzip when asked for, on a large JSON answer; the same JSON once inflated.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/openapi.json", client.base());
    let plain = http.get(&url).send().await.unwrap();
    assert_eq!(plain.headers().get("content-encoding"), None);
    let plain = plain.bytes().await.unwrap();
    let zipped = http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        zipped
            .headers()
            .get("content-encoding")
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let zipped = zipped.bytes().await.unwrap();
    assert!(
        zipped.len() < plain.len() / 3,
        "{} of {}",
        zipped.len(),
        plain.len()
    );
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, plain);
}

#[tokio::test]
async fn without_listed_origins_no_cross_origin_access() {
    let cluster = Cluster::start(1).await;
    let preflight = cluster
        .client(1)
        .raw(
            Method::OPTIONS,
            "/api/v1/products",
            &[("origin", SHOP), ("access-control-request-method", "GET")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(preflight.header("access-control-allow-origin"), None);
}
