//! The event feed `GET /api/v1/events`: one `StockChanged` event per stock write, in write
//! order, with increasing ids and the log index of the write; `after`/`limit` pagination
//! that neither skips nor repeats; and a follower serving the very same events.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::client::Client;
use crate::harness::Cluster;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn id_of(event: &Value) -> u64 {
    event["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without integer id: {event}"))
}

/// `events` array of a 200 `GET /api/v1/events` reply.
async fn page(client: &Client, after: Option<u64>, limit: u64) -> (Vec<Value>, Value) {
    let body = client
        .events(after, Some(limit))
        .await
        .expect("GET events")
        .ok(&format!(
            "GET events after {after:?} limit {limit} on {}",
            client.base()
        ));
    let events = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array in {body}"))
        .clone();
    (events, body)
}

#[tokio::test]
async fn events_are_ordered_paginated_and_served_by_followers() {
    let started_ms = now_ms();
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let leader = cluster.leader().await;
    let on_leader = cluster.admin_client(leader);
    on_leader
        .put_warehouse("wh-e", "Main")
        .await
        .expect("PUT warehouse")
        .ok("create warehouse");

    // (sku, log index) of every stock write, in the order they were acknowledged.
    let mut writes: Vec<(String, u64)> = Vec::new();
    for i in 0..8i64 {
        let via = ids[i as usize % ids.len()];
        let sku = format!("ev-{i}");
        let reply = cluster
            .admin_client(via)
            .set_stock(&sku, "wh-e", i + 1)
            .await
            .expect("PUT stock");
        reply.expect_stock(&sku, i + 1, &format!("write {sku} via node {via}"));
        writes.push((sku, reply.version()));
    }
    let reply = on_leader
        .adjust("ev-0", "wh-e", 4, "restock", None)
        .await
        .expect("POST adjustment");
    reply.expect_stock("ev-0", 5, "adjust ev-0");
    writes.push(("ev-0".into(), reply.version()));
    let finished_ms = now_ms();

    let (all, body) = page(&on_leader, None, 1000).await;
    assert!(!all.is_empty(), "no events at all: {body}");
    assert_eq!(
        body["last_id"],
        json!(id_of(all.last().expect("non-empty"))),
        "last_id of a page holding every event must be the newest id: {body}"
    );
    for pair in all.windows(2) {
        assert!(
            id_of(&pair[0]) < id_of(&pair[1]),
            "event ids must strictly increase: {} then {}",
            pair[0],
            pair[1]
        );
        assert!(
            pair[0]["log_index"].as_u64() <= pair[1]["log_index"].as_u64(),
            "log_index must not go backwards: {} then {}",
            pair[0],
            pair[1]
        );
    }
    for event in &all {
        let ts = event["timestamp_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("event without integer timestamp_ms: {event}"));
        assert!(
            started_ms.saturating_sub(60_000) <= ts && ts <= finished_ms + 60_000,
            "timestamp_ms {ts} is not within the test run [{started_ms}, {finished_ms}]: {event}"
        );
    }

    let stock_events: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == json!("StockChanged"))
        .collect();
    let seen: Vec<(String, Option<u64>)> = stock_events
        .iter()
        .map(|e| (e["data"].to_string(), e["log_index"].as_u64()))
        .collect();
    assert_eq!(
        stock_events.len(),
        writes.len(),
        "one StockChanged event per stock write expected; writes {writes:?}, events {seen:?}"
    );
    for (event, (sku, version)) in stock_events.iter().zip(&writes) {
        assert_eq!(
            event["log_index"].as_u64(),
            Some(*version),
            "event for the write of {sku} must carry that write's log index {version}: {event}"
        );
        assert!(
            event["data"].to_string().contains(&format!("\"{sku}\"")),
            "event at log index {version} should be about {sku}: {event}"
        );
    }

    // Pages of 3 follow each other exactly.
    let mut paged: Vec<Value> = Vec::new();
    let mut after = None;
    loop {
        let (events, body) = page(&on_leader, after, 3).await;
        assert!(
            events.len() <= 3,
            "limit 3 returned {} events: {body}",
            events.len()
        );
        if let Some(a) = after {
            assert!(
                events.iter().all(|e| id_of(e) > a),
                "page after {a} holds an id <= {a}: {body}"
            );
        }
        let Some(last) = events.last() else { break };
        let expected = (all.len() - paged.len()).min(3);
        assert_eq!(
            events.len(),
            expected,
            "page after {after:?} should hold {expected}: {body}"
        );
        after = Some(id_of(last));
        paged.extend(events);
        assert!(
            paged.len() <= all.len(),
            "pagination returned more events than exist"
        );
    }
    assert_eq!(
        paged, all,
        "paging by 3 (left) differs from one big page (right)"
    );

    let middle = all.len() / 2;
    let (tail, body) = page(&on_leader, Some(id_of(&all[middle])), 1000).await;
    assert_eq!(
        tail,
        all[middle + 1..].to_vec(),
        "after the middle id: {body}"
    );
    let (none, body) = page(
        &on_leader,
        Some(id_of(all.last().expect("non-empty"))),
        1000,
    )
    .await;
    assert!(none.is_empty(), "nothing comes after the newest id: {body}");

    // Followers serve the same feed once they have applied everything.
    let (leader, applied) = cluster.leader_applied().await;
    for id in ids.into_iter().filter(|id| *id != leader) {
        cluster.wait_applied(id, applied).await;
        let on_follower = cluster
            .admin_client(id)
            .all_events()
            .await
            .expect("events on follower");
        assert_eq!(
            on_follower, all,
            "events on follower {id} (left) differ from the leader's (right)"
        );
        let (first_page, _) = page(&cluster.admin_client(id), None, 3).await;
        assert_eq!(
            first_page,
            all[..all.len().min(3)].to_vec(),
            "first page on follower {id}"
        );
    }
}

#[tokio::test]
async fn compacted_events_answer_410_with_the_oldest_id_left() {
    // A budget of 3 events, looked after every second.
    let (_dir, config) =
        crate::harness::config_file("[events]\nmax_events = 3\ncompact_interval_secs = 1\n");
    let cluster = Cluster::start_with(3, &["--config", &config]).await;
    let admin = cluster.admin_client(1);
    admin
        .put_warehouse("wh-c", "Main")
        .await
        .expect("PUT warehouse")
        .ok("a warehouse");
    for i in 0..6 {
        admin
            .set_stock("sku-c", "wh-c", 10 + i)
            .await
            .expect("PUT stock")
            .expect_stock("sku-c", 10 + i, "a stock write");
    }
    // The leader compacts down to the newest three.
    let oldest = crate::harness::eventually(
        "the log compacted",
        std::time::Duration::from_secs(20),
        || async {
            let reply = admin
                .events(Some(0), Some(100))
                .await
                .map_err(|e| e.to_string())?;
            if reply.status == 410 {
                Ok(reply)
            } else {
                Err(format!("still {reply}"))
            }
        },
    )
    .await;
    oldest.expect_error(410, "events_compacted", "reading from the start");
    let oldest_id = oldest.body["details"]["oldest_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no oldest_id in {oldest}"));

    // From the oldest left, the rest is there, in order, on every node; the
    // last three are the stock writes.
    for node in cluster.ids() {
        let client = cluster.admin_client(node);
        let (events, _) = page(&client, Some(oldest_id - 1), 100).await;
        assert!(!events.is_empty() && events.len() <= 3, "{events:?}");
        assert_eq!(id_of(&events[0]), oldest_id);
        assert_eq!(
            events.last().unwrap()["data"]["level"]["on_hand"],
            15,
            "{events:?}"
        );
        let earlier = client.events(Some(oldest_id - 2), Some(10)).await.unwrap();
        assert_eq!(earlier.status, 410, "node {node}: {earlier}");
    }

    // The gRPC stream says so too, rather than starting past the gap.
    use ecommerce::grpc::proto::event_service_client::EventServiceClient;
    use ecommerce::grpc::proto::SubscribeRequest;
    let endpoint = format!("http://{}", cluster.node(1).grpc_addr());
    let mut request = tonic::Request::new(SubscribeRequest { after: 0 });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", cluster.admin_token())
            .parse()
            .expect("metadata value"),
    );
    let mut stream = EventServiceClient::connect(endpoint)
        .await
        .expect("connect event service")
        .subscribe(request)
        .await
        .expect("subscribe")
        .into_inner();
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .expect("an answer within 10 s")
        .expect_err("a compacted checkpoint is an error, not a stream from later on");
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
}
