//! The error contract on a single node: every rejected request gets the documented status and
//! stable `code` in the one error shape `{"code","message","details"}`, and a node that has
//! just refused a pile of bad requests still serves normal writes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{assert_error_shape, raw_http, Client, Consistency};
use crate::harness::Cluster;

const JSON: (&str, &str) = ("content-type", "application/json");

/// One-node cluster with warehouse `wh-1` and stock `sku-1` = 10 in it.
async fn seeded_node() -> (Cluster, Client) {
    let cluster = Cluster::start(1).await;
    let client = cluster.admin_client(1);
    client
        .put_warehouse("wh-1", "Main")
        .await
        .expect("PUT warehouse")
        .ok("seed warehouse");
    client
        .set_stock("sku-1", "wh-1", 10)
        .await
        .expect("PUT stock")
        .expect_stock("sku-1", 10, "seed stock");
    (cluster, client)
}

/// After the bad requests: the seeded stock is untouched and a normal write still works.
async fn assert_still_serves(client: &Client) {
    client
        .get_stock("sku-1", Consistency::Linearizable)
        .await
        .expect("GET stock")
        .expect_stock("sku-1", 10, "seeded stock after rejected requests");
    client
        .adjust("sku-1", "wh-1", 1, "recount", None)
        .await
        .expect("POST adjustment")
        .expect_stock("sku-1", 11, "normal write after rejected requests");
}

/// Sends `body` as JSON bytes with the given headers and checks status and code.
async fn expect_raw(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    status: u16,
    code: &str,
) -> Value {
    let what = format!("{method} {path} with body {body:?} and headers {headers:?}");
    let reply = client
        .raw(method, path, headers, body.as_bytes().to_vec())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    reply.expect_error(status, code, &what);
    reply.body
}

#[tokio::test]
async fn malformed_json_wrong_types_unknown_and_missing_fields_get_400() {
    let (_cluster, client) = seeded_node().await;
    let stock = "/api/v1/inventory/sku-1/warehouses/wh-1";
    let adjust = "/api/v1/inventory/sku-1/warehouses/wh-1/adjustments";
    let warehouse = "/api/v1/warehouses/wh-2";

    for body in [r#"{"on_hand": 1"#, "not json", r#"{"on_hand": 1}}"#, ""] {
        expect_raw(
            &client,
            Method::PUT,
            stock,
            &[JSON],
            body,
            400,
            "malformed_json",
        )
        .await;
    }
    expect_raw(
        &client,
        Method::POST,
        adjust,
        &[JSON],
        "{delta:1}",
        400,
        "malformed_json",
    )
    .await;

    let invalid: &[(&Method, &str, &str)] = &[
        // wrong types
        (&Method::PUT, stock, r#"{"on_hand": "ten"}"#),
        (&Method::PUT, stock, r#"{"on_hand": 1.5}"#),
        (&Method::PUT, stock, "42"),
        (&Method::POST, adjust, r#"{"delta": "x", "reason": "r"}"#),
        (
            &Method::PUT,
            warehouse,
            r#"{"name": "W", "location": {"lat": "north", "lon": 1.0}, "priority": 0}"#,
        ),
        // unknown fields
        (&Method::PUT, stock, r#"{"on_hand": 1, "bogus": true}"#),
        (
            &Method::PUT,
            warehouse,
            r#"{"name": "W", "location": {"lat": 1.0, "lon": 1.0}, "priority": 0, "colour": "red"}"#,
        ),
        // missing fields
        (&Method::PUT, stock, r#"{}"#),
        (&Method::PUT, warehouse, r#"{"name": "W"}"#),
    ];
    for (method, path, body) in invalid {
        expect_raw(
            &client,
            (*method).clone(),
            path,
            &[JSON],
            body,
            400,
            "invalid_body",
        )
        .await;
    }
    assert_eq!(
        client
            .get_warehouse("wh-2")
            .await
            .expect("GET warehouse")
            .code(),
        "warehouse_not_found",
        "rejected warehouse bodies must not create wh-2"
    );
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn negative_quantities_and_bad_identifiers_get_422_with_the_field() {
    let (_cluster, client) = seeded_node().await;

    let body = expect_raw(
        &client,
        Method::PUT,
        "/api/v1/inventory/sku-1/warehouses/wh-1",
        &[JSON],
        r#"{"on_hand": -1}"#,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        body["details"]["field"],
        json!("on_hand"),
        "details of negative on_hand: {body}"
    );

    let long_sku = "s".repeat(65);
    for sku in ["bad$sku", "sp%20ace", "sl%2Fash", long_sku.as_str()] {
        let path = format!("/api/v1/inventory/{sku}/warehouses/wh-1");
        let body = expect_raw(
            &client,
            Method::PUT,
            &path,
            &[JSON],
            r#"{"on_hand": 1}"#,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            body["details"]["field"],
            json!("sku"),
            "details for sku {sku:?}: {body}"
        );
        let path = format!("{path}/adjustments");
        let body = expect_raw(
            &client,
            Method::POST,
            &path,
            &[JSON],
            r#"{"delta": 1, "reason": "r"}"#,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            body["details"]["field"],
            json!("sku"),
            "details for sku {sku:?}: {body}"
        );
    }
    // The longest valid SKU (64 chars, every allowed character class) is accepted.
    let max_sku = format!("Az09_.-{}", "x".repeat(57));
    client
        .set_stock(&max_sku, "wh-1", 2)
        .await
        .expect("PUT stock")
        .expect_stock(&max_sku, 2, "64-char SKU");

    let long_id = "w".repeat(65);
    for id in ["bad$id", long_id.as_str()] {
        let path = format!("/api/v1/warehouses/{id}");
        let body = r#"{"name": "W", "location": {"lat": 1.0, "lon": 1.0}, "priority": 0}"#;
        let err = expect_raw(
            &client,
            Method::PUT,
            &path,
            &[JSON],
            body,
            422,
            "validation_failed",
        )
        .await;
        assert!(
            err["details"]["field"]
                .as_str()
                .is_some_and(|f| !f.is_empty()),
            "warehouse id {id:?}: details should name the field: {err}"
        );
    }
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_get_413() {
    let (cluster, client) = seeded_node().await;
    let addr = cluster.node(1).http_addr();
    let token = cluster.admin_token();
    let huge = format!(
        r#"{{"name": "{}", "location": {{"lat": 1.0, "lon": 1.0}}, "priority": 0}}"#,
        "x".repeat(2 << 20)
    );

    // Declared length: may be refused before the body is read.
    let head = format!(
        "PUT /api/v1/warehouses/wh-big HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        huge.len()
    );
    let response = raw_http(addr, head, huge.clone().into_bytes())
        .await
        .expect("2 MiB request");
    assert_eq!(
        (response.status, response.body["code"].as_str()),
        (413, Some("payload_too_large")),
        "2 MiB body with content-length: {} {}",
        response.head,
        response.body
    );
    assert_error_shape(&response.body, "413 with content-length");

    // Chunked: the limit must hold for streamed bodies too.
    let mut chunked = Vec::new();
    for piece in huge.as_bytes().chunks(256 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "PUT /api/v1/warehouses/wh-big HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let response = raw_http(addr, head, chunked)
        .await
        .expect("2 MiB chunked request");
    assert_eq!(
        (response.status, response.body["code"].as_str()),
        (413, Some("payload_too_large")),
        "2 MiB chunked body: {} {}",
        response.head,
        response.body
    );
    assert_error_shape(&response.body, "413 chunked");

    assert_eq!(
        client
            .get_warehouse("wh-big")
            .await
            .expect("GET warehouse")
            .code(),
        "warehouse_not_found",
        "an oversized body must not create the warehouse"
    );
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_media_types() {
    let (_cluster, client) = seeded_node().await;

    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/warehouses",
        "/api/v1/inventory/sku-1/bogus",
    ] {
        let reply = client.get(path).await.expect("GET");
        reply.expect_error(404, "route_not_found", &format!("GET {path}"));
    }
    for (method, path) in [
        (Method::DELETE, "/api/v1/warehouses/wh-1"),
        (Method::POST, "/api/v1/warehouses/wh-1"),
        (Method::PUT, "/api/v1/inventory/sku-1"),
        (
            Method::GET,
            "/api/v1/inventory/sku-1/warehouses/wh-1/adjustments",
        ),
        (Method::POST, "/health"),
    ] {
        let reply = client
            .raw(method.clone(), path, &[], Vec::new())
            .await
            .expect("request");
        reply.expect_error(405, "method_not_allowed", &format!("{method} {path}"));
    }

    let body = r#"{"name": "W", "location": {"lat": 1.0, "lon": 1.0}, "priority": 0}"#;
    let path = "/api/v1/warehouses/wh-2";
    expect_raw(
        &client,
        Method::PUT,
        path,
        &[],
        body,
        415,
        "unsupported_media_type",
    )
    .await;
    expect_raw(
        &client,
        Method::PUT,
        path,
        &[("content-type", "text/plain")],
        body,
        415,
        "unsupported_media_type",
    )
    .await;
    expect_raw(
        &client,
        Method::POST,
        "/api/v1/inventory/sku-1/warehouses/wh-1/adjustments",
        &[],
        r#"{"delta": -1, "reason": "r"}"#,
        415,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(
        client
            .get_warehouse("wh-2")
            .await
            .expect("GET warehouse")
            .code(),
        "warehouse_not_found",
        "a refused media type must not create wh-2"
    );
    let reply = client
        .raw(
            Method::PUT,
            path,
            &[("content-type", "application/json; charset=utf-8")],
            body.as_bytes().to_vec(),
        )
        .await
        .expect("PUT warehouse");
    let created = reply.ok("PUT warehouse with a charset parameter");
    assert_eq!(
        (&created["id"], &created["name"]),
        (&json!("wh-2"), &json!("W")),
        "{created}"
    );
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn domain_errors_not_found_conflicts_and_insufficient_stock() {
    let (_cluster, client) = seeded_node().await;

    client
        .get_warehouse("nowhere")
        .await
        .expect("GET warehouse")
        .expect_error(404, "warehouse_not_found", "GET unknown warehouse");
    client
        .get_stock("never-stocked", Consistency::Linearizable)
        .await
        .expect("GET stock")
        .expect_error(404, "sku_not_found", "GET never-stocked sku");
    client
        .set_stock("sku-1", "nowhere", 5)
        .await
        .expect("PUT stock")
        .expect_error(404, "warehouse_not_found", "stock in an unknown warehouse");

    let current = client
        .get_stock("sku-1", Consistency::Linearizable)
        .await
        .expect("GET stock");
    let version = current.body["warehouses"][0]["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version in {current}"));
    client
        .set_stock_with(
            "sku-1",
            "wh-1",
            json!({"on_hand": 50, "expected_version": version + 1000}),
            None,
        )
        .await
        .expect("PUT stock")
        .expect_error(409, "version_conflict", "expected_version in the future");
    client
        .adjust("sku-1", "wh-1", -11, "shrinkage", None)
        .await
        .expect("POST adjustment")
        .expect_error(409, "insufficient_stock", "adjust 10 by -11");
    assert_still_serves(&client).await; // stock is still 10, now 11

    let current = client
        .get_stock("sku-1", Consistency::Linearizable)
        .await
        .expect("GET stock");
    let version = current.body["warehouses"][0]["version"]
        .as_u64()
        .expect("version");
    let updated = client
        .set_stock_with(
            "sku-1",
            "wh-1",
            json!({"on_hand": 50, "expected_version": version}),
            None,
        )
        .await
        .expect("PUT stock");
    updated.expect_stock("sku-1", 50, "PUT with the current expected_version");
    assert!(
        updated.version() > version,
        "version must grow: {version} -> {updated}"
    );
    client
        .set_stock_with(
            "sku-1",
            "wh-1",
            json!({"on_hand": 60, "expected_version": version}),
            None,
        )
        .await
        .expect("PUT stock")
        .expect_error(409, "version_conflict", "stale expected_version");
}
