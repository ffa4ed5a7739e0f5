//! The catalogue over HTTP on a 3-node cluster: products with variants owned by vendors,
//! the category tree, stale browsing through the product cache (invalidated when a change is
//! applied), and products feeding carts through their variants' listings.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{eventually, sign_in, Cluster};
use crate::shop::add_to_cart;

fn product(name: &str, category: Option<&str>, price: i64) -> Value {
    json!({
        "name": name,
        "description": "Organic cotton, relaxed fit",
        "category_id": category,
        "attributes": {"material": "cotton"},
        "variants": [
            {"sku": format!("{name}-S"), "attributes": {"size": "S"}, "price": {"amount": price, "currency": "EUR"}, "weight_grams": 180},
            {"sku": format!("{name}-M"), "attributes": {"size": "M"}, "price": {"amount": price + 100, "currency": "EUR"}, "weight_grams": 200}
        ]
    })
}

#[tokio::test]
async fn vendors_manage_their_products_and_browsing_sees_changes() {
    let cluster = Cluster::start(3).await;
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    let (v1, v1_id) = sign_in(&cluster.client(1), "vendor", "v1").await;
    let (v2, _) = sign_in(&cluster.client(2), "vendor", "v2").await;
    let (cus, _) = sign_in(&cluster.client(3), "customer", "cy").await;

    admin
        .put("/api/v1/categories/men", &json!({"name": "Men"}))
        .await
        .unwrap()
        .ok("category");
    admin
        .put(
            "/api/v1/categories/shirts",
            &json!({"name": "Shirts", "parent_id": "men"}),
        )
        .await
        .unwrap()
        .ok("subcategory");
    v1.put("/api/v1/categories/x", &json!({"name": "X"}))
        .await
        .unwrap()
        .expect_error(403, "forbidden", "vendors do not edit categories");

    let uploaded = crate::media::upload(&v1, &crate::media::png(8, 8)).await;
    let hash = uploaded.body["hash"]
        .as_str()
        .expect("uploaded hash")
        .to_string();
    let mut tee = product("Tee", Some("shirts"), 1500);
    tee["images"] = json!([{"hash": hash, "alt": "front"}]);
    let created = v1
        .put("/api/v1/products/tee", &tee)
        .await
        .unwrap()
        .ok("vendor creates a product");
    assert_eq!(
        created["vendor_id"],
        v1_id.as_str(),
        "a vendor's product is its own"
    );
    assert_eq!(created["slug"], "tee");
    assert_eq!(
        created["images"][0]["url"],
        format!("/api/v1/media/{hash}").as_str(),
        "{created}"
    );
    v2.put("/api/v1/products/tee", &product("Tee", None, 1))
        .await
        .unwrap()
        .expect_error(403, "forbidden", "another vendor edits it");
    v2.put("/api/v1/products/tee2", &product("Tee", None, 1))
        .await
        .unwrap()
        .expect_error(409, "slug_taken", "same slug");
    cus.put("/api/v1/products/c1", &product("Mine", None, 1))
        .await
        .unwrap()
        .expect_error(403, "forbidden", "customers do not sell");
    v1.put(
        "/api/v1/products/bad",
        &json!({"name": "Bad", "variants": []}),
    )
    .await
    .unwrap()
    .expect_error(422, "validation_failed", "no variants");
    let mut unknown_image = product("Bad", None, 1);
    unknown_image["images"] = json!([{"hash": "ab".repeat(32)}]);
    v1.put("/api/v1/products/bad", &unknown_image)
        .await
        .unwrap()
        .expect_error(404, "media_not_found", "an image that was never uploaded");
    v1.put("/api/v1/products/bad", &product("Bad", Some("nope"), 1))
        .await
        .unwrap()
        .expect_error(404, "category_not_found", "unknown category");

    // Browsing on node 3: by id, by slug, by the parent category.
    let browse = cluster.client(3);
    let read = |path: String| {
        let browse = browse.clone();
        async move { browse.get(&path).await.unwrap() }
    };
    let seen = eventually(
        "node 3 to see the product",
        Duration::from_secs(10),
        || async move {
            let r = read("/api/v1/products/tee".into()).await;
            if r.status.as_u16() == 200 {
                Ok(r.body)
            } else {
                Err(r.to_string())
            }
        },
    )
    .await;
    assert_eq!(seen["variants"][1]["price"]["amount"], 1600);
    read("/api/v1/products/by-slug/tee".into())
        .await
        .ok("by slug");
    let cached = read("/api/v1/products/tee".into())
        .await
        .ok("a second, cached read");
    assert_eq!(cached["version"], seen["version"]);
    let in_men = read("/api/v1/products?category=men&consistency=linearizable".into())
        .await
        .ok("category listing");
    assert_eq!(in_men["items"][0]["id"], "tee", "{in_men}");
    let tree = read("/api/v1/categories".into()).await.ok("tree");
    let ids: Vec<&str> = tree["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["men", "shirts"]);

    // Variants sell through carts at the catalogue's price.
    let cart = add_to_cart(&cus, "Tee-M", 2).await.ok("add a variant");
    assert_eq!(cart["subtotal"]["amount"], 3200);
    assert_eq!(cart["lines"][0]["name"], "Tee (M)");

    // A price change reaches a node that has the product cached.
    v1.put(
        "/api/v1/products/tee",
        &product("Tee", Some("shirts"), 2000),
    )
    .await
    .unwrap()
    .ok("price change");
    eventually(
        "node 3's stale read to show the new price",
        Duration::from_secs(10),
        || async move {
            let r = read("/api/v1/products/tee".into()).await;
            if r.body["variants"][0]["price"]["amount"] == 2000 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    )
    .await;
    let metrics = browse.get("/metrics").await.unwrap();
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or_default()
            .contains("product_cache_total{outcome=\"hit\"}"),
        "the cache served hits"
    );

    // Soft delete: still readable, no longer sold.
    let deleted = v1
        .send(reqwest::Method::DELETE, "/api/v1/products/tee", None, None)
        .await
        .unwrap()
        .ok("delete");
    assert_eq!(deleted["deleted"], true);
    add_to_cart(&cus, "Tee-S", 1)
        .await
        .expect_error(422, "sku_not_for_sale", "deleted product");
    let gone = read("/api/v1/products?consistency=linearizable".into())
        .await
        .ok("listing");
    assert_eq!(gone["items"], json!([]), "deleted products are not listed");
    admin
        .send(
            reqwest::Method::DELETE,
            "/api/v1/categories/shirts",
            None,
            None,
        )
        .await
        .unwrap()
        .expect_error(409, "category_not_empty", "a category with a product");
}
