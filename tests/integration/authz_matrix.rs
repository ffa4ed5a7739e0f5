//! The authorization matrix: every route of the node × {anonymous, customer, other customer,
//! vendor, other vendor, admin} → the expected status, checked against a real node.
//!
//! The set of routes is not this file's opinion: it is read from the node's OpenAPI document,
//! and every path literal registered in `src/api/mod.rs` must appear in that document. A route
//! added later without a row here (or without being documented) fails
//! [`every_route_has_a_matrix_row`] before any request is sent.
//!
//! "Customer" owns the profile rows' target (`{id}` is the customer's own id); the "other"
//! actors are the same roles without ownership. Rows whose success would destroy an actor
//! (deleting an account, changing its password) target a spare account or stop at validation
//! (422), which is still past the authorization check.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;
use crate::harness::{config_file, sign_in, Cluster};

const ACTORS: [&str; 6] = [
    "anonymous",
    "customer",
    "other customer",
    "vendor",
    "other vendor",
    "admin",
];

/// Routes the node serves that are not operations of its OpenAPI document.
const NON_API_ROUTES: &[(&str, &str)] = &[("GET", "/api/v1/openapi.json")];

/// (method, OpenAPI path, expected status for each of [`ACTORS`]).
const MATRIX: &[(&str, &str, [u16; 6])] = &[
    // operations: public
    ("GET", "/health", [200; 6]),
    ("GET", "/ready", [200; 6]),
    ("GET", "/metrics", [200; 6]),
    ("GET", "/api/v1/openapi.json", [200; 6]),
    // cluster: status is public (readiness probes, joining nodes); changes need an admin
    // (or the operator token). Admin requests carry an empty body: 400 is past authorization.
    ("GET", "/cluster", [200; 6]),
    ("POST", "/cluster/learners", [401, 403, 403, 403, 403, 400]),
    ("POST", "/cluster/promote", [401, 403, 403, 403, 403, 400]),
    ("POST", "/cluster/remove", [401, 403, 403, 403, 403, 400]),
    (
        "POST",
        "/cluster/transfer-leader",
        [401, 403, 403, 403, 403, 400],
    ),
    ("GET", "/cluster/backup", [401, 403, 403, 403, 403, 200]),
    // a node's keys: the operator's (a request without a JSON body is past authorization)
    ("GET", "/node/keys", [401, 403, 403, 403, 403, 200]),
    (
        "POST",
        "/node/keys/rotate-kek",
        [401, 403, 403, 403, 403, 415],
    ),
    // inventory: reads are public, writes are the admin's
    ("GET", "/api/v1/warehouses", [200; 6]),
    ("GET", "/api/v1/warehouses/{id}", [200; 6]),
    (
        "PUT",
        "/api/v1/warehouses/{id}",
        [401, 403, 403, 403, 403, 200],
    ),
    ("GET", "/api/v1/inventory/{sku}", [200; 6]),
    (
        "PUT",
        "/api/v1/inventory/{sku}/warehouses/{warehouse_id}",
        [401, 403, 403, 403, 403, 200],
    ),
    (
        "POST",
        "/api/v1/inventory/{sku}/warehouses/{warehouse_id}/adjustments",
        [401, 403, 403, 403, 403, 200],
    ),
    // the event log carries reset tokens: admins only
    ("GET", "/api/v1/events", [401, 403, 403, 403, 403, 200]),
    // auth: open to everyone (register makes a new address each time)
    ("POST", "/auth/register", [201; 6]),
    ("POST", "/auth/login", [200; 6]),
    ("POST", "/auth/refresh", [200; 6]),
    ("POST", "/auth/logout", [204; 6]),
    ("POST", "/auth/password-reset", [202; 6]),
    // social sign-in is public; this node configures no provider
    ("GET", "/auth/social/{provider}", [404; 6]),
    ("GET", "/auth/social/{provider}/callback", [404; 6]),
    // a made-up token: 400 invalid_reset_token for everyone alike
    ("POST", "/auth/password-reset/confirm", [400; 6]),
    (
        "POST",
        "/api/v1/auth/signing-keys/rotate",
        [401, 403, 403, 403, 403, 200],
    ),
    // commerce: thresholds and low-stock alerts are the admin's
    (
        "PUT",
        "/api/v1/inventory/{sku}/threshold",
        [401, 403, 403, 403, 403, 200],
    ),
    (
        "GET",
        "/api/v1/inventory/low-stock",
        [401, 403, 403, 403, 403, 200],
    ),
    // listings: anyone reads; the listing's vendor (here: none) or an admin writes
    ("GET", "/api/v1/listings/{sku}", [200; 6]),
    (
        "PUT",
        "/api/v1/listings/{sku}",
        [401, 403, 403, 403, 403, 200],
    ),
    // carts: signed-in users and guests alike; a guest without a cart token has no cart
    // (422 cart_empty), merging a guest cart needs a signed-in user
    ("GET", "/api/v1/cart", [200; 6]),
    ("DELETE", "/api/v1/cart", [422, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/cart/lines", [200; 6]),
    (
        "PUT",
        "/api/v1/cart/lines/{sku}",
        [422, 200, 200, 200, 200, 200],
    ),
    (
        "DELETE",
        "/api/v1/cart/lines/{sku}",
        [422, 200, 200, 200, 200, 200],
    ),
    ("POST", "/api/v1/cart/merge", [401, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/cart/token", [200; 6]),
    // orders: `{id}` is the customer's order (unpaid: its card is the sandbox's slow one).
    // Anyone else is told it does not exist (404); the owner may not ship or deliver (403);
    // an admin reaches the workflow (409: not paid yet). Checkout of an empty cart: 422.
    ("POST", "/api/v1/checkout", [401, 422, 422, 422, 422, 422]),
    ("GET", "/api/v1/orders", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/orders/{id}", [401, 200, 404, 404, 404, 200]),
    (
        "POST",
        "/api/v1/orders/{id}/extend-hold",
        [401, 200, 404, 404, 404, 200],
    ),
    (
        "POST",
        "/api/v1/orders/{id}/ship",
        [401, 403, 404, 404, 404, 409],
    ),
    (
        "POST",
        "/api/v1/orders/{id}/deliver",
        [401, 403, 404, 404, 404, 409],
    ),
    (
        "POST",
        "/api/v1/orders/{id}/cancel",
        [401, 200, 404, 404, 404, 200],
    ),
    // media: anyone reads (an unknown hash here: 404 for all); vendors and admins upload
    // (a JSON body: 415 once past authorization)
    ("POST", "/api/v1/media", [401, 403, 403, 415, 415, 415]),
    ("GET", "/api/v1/media/{hash}", [404; 6]),
    ("GET", "/api/v1/media/{hash}/thumbnail", [404; 6]),
    ("GET", "/api/v1/media/{hash}/meta", [404; 6]),
    // catalogue, pricing, search
    ("GET", "/api/v1/products", [200; 6]),
    ("GET", "/api/v1/products/{id}", [404; 6]),
    // (an empty body: 400 once past authorization; the product does not exist: 404)
    (
        "PUT",
        "/api/v1/products/{id}",
        [401, 403, 403, 400, 400, 400],
    ),
    (
        "DELETE",
        "/api/v1/products/{id}",
        [401, 403, 403, 404, 404, 404],
    ),
    ("GET", "/api/v1/products/by-slug/{slug}", [404; 6]),
    ("GET", "/api/v1/categories", [200; 6]),
    (
        "PUT",
        "/api/v1/categories/{id}",
        [401, 403, 403, 403, 403, 400],
    ),
    (
        "DELETE",
        "/api/v1/categories/{id}",
        [401, 403, 403, 403, 403, 404],
    ),
    (
        "POST",
        "/api/v1/catalog/import",
        [401, 403, 403, 403, 403, 422],
    ),
    ("GET", "/api/v1/promotions", [200; 6]),
    (
        "PUT",
        "/api/v1/promotions/{id}",
        [401, 403, 403, 400, 400, 400],
    ),
    (
        "GET",
        "/api/v1/coupons/{code}",
        [401, 403, 403, 403, 403, 404],
    ),
    (
        "PUT",
        "/api/v1/coupons/{code}",
        [401, 403, 403, 403, 403, 422],
    ),
    ("GET", "/api/v1/search", [200; 6]),
    ("GET", "/api/v1/search/suggest", [200; 6]),
    ("GET", "/api/v1/search/status", [200; 6]),
    // hashes the whole state: an admin's (or the operator's) tool
    ("GET", "/cluster/digest", [401, 403, 403, 403, 403, 200]),
    // users
    ("GET", "/api/v1/users", [401, 403, 403, 403, 403, 200]),
    ("POST", "/api/v1/users", [401, 403, 403, 403, 403, 201]),
    ("GET", "/api/v1/users/{id}", [401, 200, 403, 403, 403, 200]),
    (
        "PATCH",
        "/api/v1/users/{id}",
        [401, 200, 403, 403, 403, 200],
    ),
    // target: a spare customer account, deleted by the admin at the end of the row
    (
        "DELETE",
        "/api/v1/users/{id}",
        [401, 403, 403, 403, 403, 200],
    ),
    (
        "PUT",
        "/api/v1/users/{id}/role",
        [401, 403, 403, 403, 403, 200],
    ),
    // a too-short new password: the owner gets 422 weak_password; nobody else, not even
    // an admin, may change someone's password
    (
        "POST",
        "/api/v1/users/{id}/password",
        [401, 422, 403, 403, 403, 403],
    ),
];

/// Everything the requests of one matrix run need.
struct Ctx {
    customer_id: String,
    order_id: String,
    spare_id: String,
    /// A node URL for building fresh anonymous clients.
    base: String,
}

/// Route path literals registered in the router's source.
fn registered_paths() -> Vec<String> {
    let source = include_str!("../../src/api/mod.rs");
    let mut paths = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let start = rest.find('"').expect("a path literal after .route(");
        let end = rest[start + 1..].find('"').expect("closing quote") + start + 1;
        paths.push(rest[start + 1..end].to_string());
    }
    assert!(
        paths.len() > 10,
        "could not read routes from src/api/mod.rs: {paths:?}"
    );
    paths
}

/// (METHOD, path) of every operation in the OpenAPI document.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths object") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn every_route_has_a_matrix_row() {
    let cluster = Cluster::start(1).await;
    let doc = cluster
        .client(1)
        .get("/api/v1/openapi.json")
        .await
        .expect("GET openapi")
        .ok("openapi document");
    let mut documented = documented_operations(&doc);
    documented.extend(
        NON_API_ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    let paths: BTreeSet<&str> = documented.iter().map(|(_, p)| p.as_str()).collect();
    let undocumented: Vec<String> = registered_paths()
        .into_iter()
        .filter(|p| !paths.contains(p.as_str()) && !paths.contains(format!("/api/v1{p}").as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes registered in src/api/mod.rs but missing from the OpenAPI document and from \
         NON_API_ROUTES (document them, then add matrix rows): {undocumented:?}"
    );
    let in_matrix: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = documented.difference(&in_matrix).collect();
    assert!(
        missing.is_empty(),
        "routes without an authorization-matrix row in tests/integration/authz_matrix.rs: {missing:?}"
    );
    let stale: Vec<_> = in_matrix.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

/// The concrete request of a matrix row for `actor` (index into [`ACTORS`]).
async fn request(method: &str, template: &str, actor: usize, ctx: &Ctx) -> (String, Option<Value>) {
    let unique = format!("{}-{actor}-{}", method.to_lowercase(), uuid_like());
    let customer = ctx.customer_id.as_str();
    let path = template
        .replace("{hash}", &"ab".repeat(32))
        .replace("{slug}", "mx-slug")
        .replace("{code}", "MXCODE")
        .replace("{sku}", "mx-sku")
        .replace("{warehouse_id}", "mx-wh")
        .replace("{provider}", "google");
    let path = match (method, template) {
        ("DELETE", "/api/v1/users/{id}") => path.replace("{id}", &ctx.spare_id),
        (_, p) if p.starts_with("/api/v1/orders/") => path.replace("{id}", &ctx.order_id),
        (_, "/api/v1/warehouses/{id}") => path.replace("{id}", "mx-wh"),
        (_, p) if p.starts_with("/api/v1/products/") => path.replace("{id}", "mx-product"),
        (_, p) if p.starts_with("/api/v1/categories/") => path.replace("{id}", "mx-cat"),
        (_, p) if p.starts_with("/api/v1/promotions/") => path.replace("{id}", "mx-promo"),
        _ => path.replace("{id}", customer),
    };
    let path = if template.ends_with("/thumbnail") {
        format!("{path}?size=64")
    } else if template.ends_with("/suggest") {
        format!("{path}?q=mx")
    } else {
        path
    };
    let body = match (method, template) {
        ("PUT", "/api/v1/warehouses/{id}") => {
            Some(json!({"name": "Matrix", "location": {"lat": 1.0, "lon": 2.0}}))
        }
        ("PUT", "/api/v1/inventory/{sku}/warehouses/{warehouse_id}") => {
            Some(json!({"on_hand": 10}))
        }
        ("POST", "/api/v1/inventory/{sku}/warehouses/{warehouse_id}/adjustments") => {
            Some(json!({"delta": 1}))
        }
        ("POST", p) if p.starts_with("/cluster/") => Some(json!({})),
        ("POST", "/auth/register") => Some(json!({
            "email": format!("{unique}@matrix.test"), "password": "matrix password 1", "name": "M"
        })),
        ("POST", "/api/v1/users") => Some(json!({
            "email": format!("{unique}@matrix.test"), "password": "matrix password 1",
            "name": "M", "role": "vendor"
        })),
        ("POST", "/auth/login") => Some(spare_login()),
        ("POST", "/auth/refresh") | ("POST", "/auth/logout") => {
            // A fresh session per request, from an anonymous login.
            let reply = Client::new(ctx.base.clone())
                .post("/auth/login", &spare_login())
                .await
                .expect("login for a refresh token")
                .ok("login for a refresh token");
            Some(json!({ "refresh_token": reply["refresh_token"] }))
        }
        ("POST", "/auth/password-reset") => Some(json!({"email": "nobody@matrix.test"})),
        ("POST", "/auth/password-reset/confirm") => Some(json!({
            "token": "made-up-token", "new_password": "a new password 1"
        })),
        ("PATCH", "/api/v1/users/{id}") => Some(json!({"name": format!("Renamed {actor}")})),
        ("PUT", "/api/v1/users/{id}/role") => Some(json!({"role": "customer"})),
        ("POST", "/api/v1/users/{id}/password") => Some(json!({
            "current_password": "whatever", "new_password": "short"
        })),
        ("POST", "/api/v1/auth/signing-keys/rotate") => None,
        ("PUT", "/api/v1/inventory/{sku}/threshold") => Some(json!({"threshold": 1})),
        ("POST", "/api/v1/catalog/import") => Some(json!({"products": []})),
        // (an empty body: 400 once past authorization)
        ("PUT", "/api/v1/products/{id}")
        | ("PUT", "/api/v1/categories/{id}")
        | ("PUT", "/api/v1/promotions/{id}")
        | ("PUT", "/api/v1/coupons/{code}") => Some(json!({})),
        ("PUT", "/api/v1/listings/{sku}") => Some(json!({
            "name": "Matrix thing", "price": {"amount": 500, "currency": "EUR"}
        })),
        ("POST", "/api/v1/cart/lines") => Some(json!({"sku": "mx-sku", "quantity": 1})),
        ("PUT", "/api/v1/cart/lines/{sku}") => Some(json!({"quantity": 1})),
        ("POST", "/api/v1/cart/merge") => {
            Some(json!({"cart_token": "matrix-guest-token-0123456789"}))
        }
        ("POST", "/api/v1/checkout") => Some(crate::shop::checkout_body(crate::shop::CARD_OK)),
        ("POST", "/api/v1/orders/{id}/extend-hold") => Some(json!({"ttl_secs": 600})),
        ("POST", "/api/v1/orders/{id}/ship") => {
            Some(json!({"carrier": "DHL", "tracking_number": "MX1"}))
        }
        ("POST", "/api/v1/orders/{id}/cancel") => Some(json!({})),
        _ => None,
    };
    (path, body)
}

/// The matrix's spare login account (registered before the run).
fn spare_login() -> Value {
    json!({"email": "login@matrix.test", "password": "matrix password 1"})
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn authorization_matrix() {
    // Many logins of one account from one address: lift the rate limits for this run.
    let (_dir, config) = config_file(
        "[auth]\nattempts_per_account_per_minute = 1000\nattempts_per_ip_per_minute = 10000\n",
    );
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let anonymous = cluster.client(1);
    let admin = cluster.admin_client(1);
    let (customer, customer_id) = sign_in(&anonymous, "customer", "alice").await;
    let (other_customer, _) = sign_in(&anonymous, "customer", "bob").await;
    let (vendor, _) = sign_in(&anonymous, "vendor", "vera").await;
    let (other_vendor, _) = sign_in(&anonymous, "vendor", "victor").await;
    let (_, spare_id) = sign_in(&anonymous, "customer", "spare").await;
    anonymous
        .post(
            "/auth/register",
            &json!({"email": "login@matrix.test", "password": "matrix password 1", "name": "L"}),
        )
        .await
        .expect("register the login account");
    admin
        .put_warehouse("mx-wh", "Matrix")
        .await
        .expect("PUT warehouse")
        .ok("seed warehouse");
    admin
        .set_stock("mx-sku", "mx-wh", 5)
        .await
        .expect("PUT stock")
        .ok("seed stock");
    admin
        .put(
            "/api/v1/listings/mx-sku",
            &json!({"name": "Matrix", "price": {"amount": 100, "currency": "EUR"}}),
        )
        .await
        .expect("PUT listing")
        .ok("seed listing");
    crate::shop::add_to_cart(&customer, "mx-sku", 1)
        .await
        .ok("the customer's cart");
    let placed = crate::shop::checkout(
        &customer,
        &crate::shop::checkout_body(crate::shop::CARD_SLOW),
        None,
    )
    .await
    .expect("checkout");
    let order_id = crate::shop::order_id(&placed);
    let clients = [
        anonymous.clone(),
        customer,
        other_customer,
        vendor,
        other_vendor,
        admin,
    ];
    let ctx = Ctx {
        customer_id,
        order_id,
        spare_id,
        base: cluster.node(1).url(),
    };

    let mut failures = Vec::new();
    for (method, template, expected) in MATRIX {
        for (actor, client) in clients.iter().enumerate() {
            let (path, body) = request(method, template, actor, &ctx).await;
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let reply = client
                .send(method.clone(), &path, body.as_ref(), None)
                .await
                .unwrap_or_else(|e| panic!("{method} {path} as {}: {e:#}", ACTORS[actor]));
            if reply.status.as_u16() != expected[actor] {
                failures.push(format!(
                    "{method} {template} as {}: expected {}, got {reply}",
                    ACTORS[actor], expected[actor]
                ));
            }
            if reply.status.as_u16() == 401 || reply.status.as_u16() == 403 {
                let code = if reply.status.as_u16() == 401 {
                    "unauthenticated"
                } else {
                    "forbidden"
                };
                if reply.code() != code {
                    failures.push(format!(
                        "{method} {template} as {}: code {reply}",
                        ACTORS[actor]
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} authorization-matrix mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
