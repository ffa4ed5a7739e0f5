//! Product search over HTTP: relevance (an exact name first), typos, filters combined with
//! text, facet counts that add up to the result count, suggestions, sorting with cursors,
//! stock and popularity from events, category moves; and every node's index catching up after
//! a restart (from its checkpoint) and after a snapshot install (rebuilt from the state).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::client::Client;
use crate::harness::{cluster_view, eventually, sign_in, Cluster, STARTUP_TIMEOUT};
use crate::shop::{add_to_cart, checkout, checkout_body, stock, warehouse, CARD_OK};

/// Percent-encodes what the tests put in query strings.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn product(
    name: &str,
    description: &str,
    category: &str,
    vendor: &str,
    sku: &str,
    sizes: &[&str],
    price: i64,
    colour: &str,
) -> Value {
    let variants: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            json!({"sku": format!("{sku}-{size}"), "attributes": {"size": size},
                   "price": {"amount": price + 100 * i as i64, "currency": "EUR"}})
        })
        .collect();
    json!({"name": name, "description": description, "category_id": category,
           "vendor_id": vendor, "attributes": {"colour": colour}, "variants": variants})
}

async fn put_product(client: &Client, id: &str, body: &Value) {
    client
        .put(&format!("/api/v1/products/{id}"), body)
        .await
        .expect("PUT product")
        .ok(&format!("create product {id}"));
}

async fn put_category(admin: &Client, id: &str, parent: Option<&str>) {
    admin
        .put(
            &format!("/api/v1/categories/{id}"),
            &json!({"name": id, "parent_id": parent}),
        )
        .await
        .expect("PUT category")
        .ok(&format!("category {id}"));
}

/// `GET /api/v1/search/status` of a node.
async fn status(client: &Client) -> Result<Value, String> {
    let reply = client
        .get("/api/v1/search/status")
        .await
        .map_err(|e| format!("{e:#}"))?;
    if reply.status != 200 {
        return Err(reply.to_string());
    }
    Ok(reply.body)
}

/// Waits until the index of the node behind `client` reflects event `target`.
async fn wait_indexed(client: &Client, target: u64) {
    let c = client.clone();
    eventually(
        format!("search index of {} to reach event {target}", c.base()),
        STARTUP_TIMEOUT,
        || {
            let c = c.clone();
            async move {
                let s = status(&c).await?;
                match s["indexed_event_id"].as_u64() {
                    Some(i) if i >= target => Ok(()),
                    _ => Err(s.to_string()),
                }
            }
        },
    )
    .await;
}

/// The newest event id applied by the node behind `client` (the leader after a write).
async fn applied_event(client: &Client) -> u64 {
    status(client).await.expect("search status")["applied_event_id"]
        .as_u64()
        .expect("applied_event_id")
}

async fn search(client: &Client, query: &str) -> Value {
    client
        .get(&format!("/api/v1/search?{query}"))
        .await
        .expect("GET search")
        .ok(&format!("search {query}"))
}

fn ids(result: &Value) -> Vec<String> {
    result["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| h["product"]["id"].as_str().expect("id").to_string())
        .collect()
}

fn sum(counts: &Value) -> u64 {
    counts
        .as_array()
        .expect("facet counts")
        .iter()
        .map(|c| c["count"].as_u64().expect("count"))
        .sum()
}

/// The value of an unlabelled metric line of `/metrics`, 0 when absent.
async fn metric(client: &Client, name: &str) -> f64 {
    let reply = client.get("/metrics").await.expect("GET /metrics");
    let text = reply.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A small catalogue: clothing/{shirts, trousers} and home, two vendors.
/// `v1` and `v2` are the vendors' clients and user ids.
async fn seed(admin: &Client, (v1, v1_id): &(Client, String), (v2, v2_id): &(Client, String)) {
    put_category(admin, "clothing", None).await;
    put_category(admin, "shirts", Some("clothing")).await;
    put_category(admin, "trousers", Some("clothing")).await;
    put_category(admin, "home", None).await;
    let cotton = "Soft organic cotton with a relaxed fit";
    put_product(
        v1,
        "red-shirt",
        &product(
            "Red Shirt",
            cotton,
            "shirts",
            v1_id,
            "RS",
            &["S", "M"],
            1500,
            "red",
        ),
    )
    .await;
    put_product(
        v1,
        "red-shirt-dress",
        &product(
            "Classic Shirt Dress in Red",
            "A red dress cut like a shirt; red buttons, red collar",
            "shirts",
            v1_id,
            "RSD",
            &["M"],
            5500,
            "red",
        ),
    )
    .await;
    put_product(
        v2,
        "oxford",
        &product(
            "Blue Oxford Shirt",
            "Woven oxford cloth, button-down collar",
            "shirts",
            v2_id,
            "OX",
            &["M", "L"],
            4500,
            "blue",
        ),
    )
    .await;
    put_product(
        v1,
        "linen-trousers",
        &product(
            "Linen Trousers",
            "Breathable linen for summer; goes with any shirt",
            "trousers",
            v1_id,
            "LT",
            &["M", "L"],
            6000,
            "sand",
        ),
    )
    .await;
    put_product(
        v2,
        "mug",
        &product(
            "Ceramic Mug",
            "Holds a large coffee",
            "home",
            v2_id,
            "MUG",
            &["One"],
            1200,
            "white",
        ),
    )
    .await;
    let mut hidden = product(
        "Striped Shirt",
        cotton,
        "shirts",
        v1_id,
        "ST",
        &["M"],
        2000,
        "red",
    );
    hidden["active"] = json!(false);
    put_product(v1, "striped", &hidden).await;
    put_product(
        v1,
        "gone",
        &product(
            "Vanished Shirt",
            cotton,
            "shirts",
            v1_id,
            "VS",
            &["M"],
            2000,
            "red",
        ),
    )
    .await;
    v1.send(reqwest::Method::DELETE, "/api/v1/products/gone", None, None)
        .await
        .expect("DELETE product")
        .ok("delete product");
}

#[tokio::test]
async fn search_ranks_tolerates_typos_filters_and_counts_facets() {
    let mut cluster = Cluster::start(1).await;
    let leader = cluster.leader().await;
    let node = cluster.client(leader);
    let (admin, _) = sign_in(&node, "admin", "root").await;
    let v1 = sign_in(&node, "vendor", "v1").await;
    let v2 = sign_in(&node, "vendor", "v2").await;
    seed(&admin, &v1, &v2).await;
    wait_indexed(&node, applied_event(&node).await).await;

    // Relevance: the exact name first, matched words highlighted.
    let r = search(&node, &format!("q={}", enc("red shirt"))).await;
    let found = ids(&r);
    assert_eq!(found.first().map(String::as_str), Some("red-shirt"), "{r}");
    assert!(found.contains(&"red-shirt-dress".to_string()), "{r}");
    assert_eq!(
        r["items"][0]["highlights"]["name"], "<em>Red</em> <em>Shirt</em>",
        "{r}"
    );
    assert!(r["items"][0]["score"].as_f64().unwrap() > 0.0);
    // Inactive and deleted products are never found.
    for hidden in ["striped", "vanished"] {
        let r = search(&node, &format!("q={hidden}")).await;
        assert_eq!(r["total"], 0, "{hidden}: {r}");
    }

    // Typos: a transposition in a 6-letter word, two edits in a long one.
    let r = search(&node, "q=oxfrod").await;
    assert_eq!(ids(&r).first().map(String::as_str), Some("oxford"), "{r}");
    assert_eq!(
        r["items"][0]["highlights"]["name"],
        "Blue <em>Oxford</em> Shirt"
    );
    let r = search(&node, "q=trouzerz").await;
    assert_eq!(ids(&r), ["linen-trousers"], "{r}");
    // A SKU, exactly.
    let r = search(&node, "q=OX-L").await;
    assert_eq!(ids(&r).first().map(String::as_str), Some("oxford"), "{r}");

    // Filters combined with text.
    let r = search(&node, "q=shirt&attr.size=L").await;
    assert_eq!(
        ids(&r),
        ["oxford", "linen-trousers"],
        "sizes L; the trousers only mention a shirt: {r}"
    );
    let r = search(&node, &format!("q=shirt&vendor={}&max_price=2000", v1.1)).await;
    assert_eq!(ids(&r), ["red-shirt"], "{r}");
    let r = search(&node, "q=shirt&category=trousers").await;
    assert_eq!(
        ids(&r),
        ["linen-trousers"],
        "its description says shirt: {r}"
    );
    let r = search(&node, "q=shirt&category=home").await;
    assert_eq!(r["total"], 0, "{r}");

    // Facets count every match, adding up to the total; categories count their subtrees.
    let r = search(&node, "category=clothing").await;
    assert_eq!(r["total"], 4, "{r}");
    for facet in ["price", "vendor", "category"] {
        assert_eq!(sum(&r["facets"][facet]), 4, "{facet}: {}", r["facets"]);
    }
    let categories: Vec<(String, u64)> = r["facets"]["category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(categories, [("shirts".into(), 3), ("trousers".into(), 1)]);
    let r = search(&node, "").await;
    assert_eq!(r["total"], 5, "{r}");
    let top: BTreeSet<String> = r["facets"]["category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c["value"].as_str().unwrap(), c["count"]))
        .collect();
    assert_eq!(top, BTreeSet::from(["clothing=4".into(), "home=1".into()]));
    let r = search(&node, "q=shirt&attr.colour=red").await;
    assert_eq!(
        sum(&r["facets"]["price"]),
        r["total"].as_u64().unwrap(),
        "{r}"
    );
    assert_eq!(
        r["facets"]["attributes"]["colour"][0]["value"], "red",
        "{r}"
    );

    // Suggestions: prefixes of names, a typo in a finished word.
    let r = node
        .get("/api/v1/search/suggest?q=red%20sh")
        .await
        .unwrap()
        .ok("suggest");
    assert_eq!(r["items"][0]["name"], "Red Shirt", "{r}");
    let r = node
        .get("/api/v1/search/suggest?q=bleu%20ox")
        .await
        .unwrap()
        .ok("suggest with a typo");
    assert_eq!(r["items"][0]["id"], "oxford", "{r}");

    // Sorting with cursors: every visible product once, cheapest first.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_deref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let r = search(&node, &format!("sort=price_asc&limit=2{cursor}")).await;
        for hit in r["items"].as_array().unwrap() {
            let p = &hit["product"];
            let min = p["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["price"]["amount"].as_i64().unwrap())
                .min()
                .unwrap();
            seen.push((p["id"].as_str().unwrap().to_string(), min));
        }
        match r["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let prices: Vec<i64> = seen.iter().map(|(_, p)| *p).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let unique: BTreeSet<&String> = seen.iter().map(|(id, _)| id).collect();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");

    // Stock (from StockChanged) and popularity (from OrderPlaced).
    let r = search(&node, "in_stock=true").await;
    assert_eq!(r["total"], 0, "nothing stocked yet: {r}");
    warehouse(&admin, "wh", 48.0, 0).await;
    stock(&admin, "OX-L", "wh", 10).await;
    stock(&admin, "MUG-One", "wh", 10).await;
    let (customer, _) = sign_in(&node, "customer", "ann").await;
    add_to_cart(&customer, "OX-L", 3).await.ok("add to cart");
    let placed = checkout(&customer, &checkout_body(CARD_OK), None)
        .await
        .expect("POST checkout");
    assert_eq!(placed.status, 201, "checkout: {placed}");
    wait_indexed(&node, applied_event(&node).await).await;
    let r = search(&node, "in_stock=true&sort=popularity").await;
    assert_eq!(ids(&r), ["oxford", "mug"], "{r}");

    // Moving a category moves its products' facets and filters.
    put_category(&admin, "trousers", Some("home")).await;
    wait_indexed(&node, applied_event(&node).await).await;
    let r = search(&node, "category=home").await;
    assert_eq!(r["total"], 2, "{r}");
    let r = search(&node, "category=clothing").await;
    assert_eq!(r["total"], 3, "{r}");

    // Bad input gets the one error shape.
    for bad in [
        "sort=cheapest",
        "limit=0",
        "after=zz",
        "colour=red",
        "min_price=x",
    ] {
        node.get(&format!("/api/v1/search?{bad}"))
            .await
            .unwrap()
            .expect_error(400, "invalid_query", bad);
    }
    node.get("/api/v1/search?category=nope")
        .await
        .unwrap()
        .expect_error(404, "category_not_found", "unknown category");
}

/// Creates `n` products named "Gadget <prefix> <i>" in category `gadgets`, priced `base + i`.
async fn gadgets((vendor, vendor_id): &(Client, String), prefix: &str, base: i64, n: usize) {
    for i in 0..n {
        put_product(
            vendor,
            &format!("{prefix}-{i}"),
            &product(
                &format!("Gadget {prefix} {i}"),
                "A useful gadget",
                "gadgets",
                vendor_id,
                &format!("{}{i}", prefix.to_uppercase()),
                &["One"],
                base + i as i64,
                "black",
            ),
        )
        .await;
    }
}

/// Waits until every running node's index reflects the leader's newest event, then checks
/// that they all answer `query` alike.
async fn all_agree(cluster: &mut Cluster, query: &str, total: u64) {
    let (leader, _) = cluster.leader_applied().await;
    let target = applied_event(&cluster.client(leader)).await;
    for id in cluster.running_ids() {
        wait_indexed(&cluster.client(id), target).await;
        let r = search(&cluster.client(id), query).await;
        assert_eq!(r["total"], total, "node {id}: {r}");
        assert_eq!(sum(&r["facets"]["price"]), total, "node {id}: {r}");
    }
}

#[tokio::test]
async fn a_restarted_node_resumes_its_index_from_the_checkpoint() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let lagging = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let client = cluster.client(leader);
    let (admin, _) = sign_in(&client, "admin", "root").await;
    let v1 = sign_in(&client, "vendor", "v1").await;
    put_category(&admin, "gadgets", None).await;
    gadgets(&v1, "a", 1000, 5).await;
    all_agree(&mut cluster, "q=gadget", 5).await;

    cluster.kill(lagging);
    gadgets(&v1, "b", 2000, 5).await;
    v1.0.send(reqwest::Method::DELETE, "/api/v1/products/a-0", None, None)
        .await
        .expect("DELETE")
        .ok("delete while the node is down");
    cluster.restart(lagging).await;
    all_agree(&mut cluster, "q=gadget", 9).await;
    let lagger = cluster.client(lagging);
    assert_eq!(
        metric(&lagger, "search_index_rebuilds_total").await,
        0.0,
        "a restart resumes from the checkpoint without a rebuild"
    );
    let r = search(&lagger, "q=gadget&sort=price_desc&limit=1").await;
    assert_eq!(ids(&r), ["b-4"], "{r}");

    // A missing index is rebuilt from the state machine, popularity included.
    let (customer, _) = sign_in(&client, "customer", "cy").await;
    warehouse(&admin, "wh", 48.0, 0).await;
    stock(&admin, "A1-One", "wh", 5).await;
    add_to_cart(&customer, "A1-One", 2).await.ok("add to cart");
    let placed = checkout(&customer, &checkout_body(CARD_OK), None)
        .await
        .expect("POST checkout");
    assert_eq!(placed.status, 201, "checkout: {placed}");
    all_agree(&mut cluster, "q=gadget", 9).await;
    cluster.kill(lagging);
    std::fs::remove_dir_all(cluster.node(lagging).data_dir().join("search"))
        .expect("remove the search index");
    cluster.restart(lagging).await;
    all_agree(&mut cluster, "q=gadget", 9).await;
    let lagger = cluster.client(lagging);
    assert_eq!(metric(&lagger, "search_index_rebuilds_total").await, 1.0);
    for id in cluster.running_ids() {
        let r = search(&cluster.client(id), "in_stock=true&sort=popularity").await;
        assert_eq!(ids(&r), ["a-1"], "node {id}: {r}");
        let r = search(&cluster.client(id), "sort=popularity&limit=1").await;
        assert_eq!(
            ids(&r),
            ["a-1"],
            "node {id}: popularity survives a rebuild: {r}"
        );
    }
}

/// Whether the indexer sees the install happen (and rebuilds) or finds the installed log
/// continuing its checkpoint (and follows it), the index ends up equal to the others'.
#[tokio::test]
async fn a_node_installed_from_a_snapshot_catches_up() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    let leader = cluster.leader().await;
    let lagging = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let client = cluster.client(leader);
    let (admin, _) = sign_in(&client, "admin", "root").await;
    let v1 = sign_in(&client, "vendor", "v1").await;
    put_category(&admin, "gadgets", None).await;
    gadgets(&v1, "a", 1000, 3).await;
    all_agree(&mut cluster, "q=gadget", 3).await;
    let lagging_applied = cluster
        .view(lagging)
        .await
        .applied_index
        .expect("applied_index");

    cluster.kill(lagging);
    // Enough entries for several snapshots, so the leader purges what the node misses.
    gadgets(&v1, "b", 2000, 60).await;
    let leader_client = cluster.client(leader);
    eventually(
        format!("leader to purge its log past {lagging_applied}"),
        STARTUP_TIMEOUT,
        || {
            let c = leader_client.clone();
            async move {
                let view = cluster_view(&c).await?;
                match view.raw["purged_index"].as_u64() {
                    Some(p) if p > lagging_applied => Ok(()),
                    _ => Err(view.raw.to_string()),
                }
            }
        },
    )
    .await;
    cluster.restart(lagging).await;
    all_agree(&mut cluster, "q=gadget", 63).await;
    all_agree(&mut cluster, "category=gadgets&min_price=2050", 10).await;
    let lagger = cluster.client(lagging);
    let r = search(&lagger, "q=gadgte%20b%2059").await;
    assert_eq!(ids(&r).first().map(String::as_str), Some("b-59"), "{r}");
    // The index keeps following the log afterwards.
    gadgets(&v1, "c", 3000, 1).await;
    all_agree(&mut cluster, "q=gadget", 64).await;
    let installs = metric(&lagger, "raft_snapshots_installed_total").await;
    let rebuilds = metric(&lagger, "search_index_rebuilds_total").await;
    eprintln!("node {lagging}: {installs} snapshot install(s), {rebuilds} search index rebuild(s)");
}
