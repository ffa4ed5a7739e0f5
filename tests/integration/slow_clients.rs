//! Slow clients, as an attacker would be one: hundreds of connections that send a request
//! body a few bytes at a time must not stop anyone else. (They used to: the load shedder's
//! permit was taken before the body was read, so 256 of them held every permit and every
//! other request got 503.) The node runs with its default settings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{access_token, eventually, test_account, Cluster};

/// Slow connections: more than `http.max_in_flight` (256).
const SLOW_CONNECTIONS: usize = 300;

/// How a slow connection ended.
#[derive(Debug, PartialEq, Eq)]
enum SlowEnd {
    /// 408 with the `request_timeout` error body.
    TimedOut,
    /// Closed (or reset) without a response.
    Closed,
    /// Any other answer: a failure of the test.
    Other(String),
}

/// Opens a connection, sends the head of a login whose body is 200 bytes long, then two
/// bytes every 500 ms (it would need 50 s) while reading what the node answers.
async fn trickle(addr: std::net::SocketAddr, ready: Arc<AtomicUsize>) -> SlowEnd {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return SlowEnd::Other(format!("connect: {e}")),
    };
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 200\r\n\r\n{{"
    );
    if let Err(e) = wr.write_all(head.as_bytes()).await {
        return SlowEnd::Other(format!("sending the head: {e}"));
    }
    ready.fetch_add(1, Ordering::SeqCst);
    let writer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if wr.write_all(b"  ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    if answer.is_empty() {
        return SlowEnd::Closed;
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    if text.starts_with("HTTP/1.1 408") && text.contains("\"code\":\"request_timeout\"") {
        SlowEnd::TimedOut
    } else {
        SlowEnd::Other(text)
    }
}

#[tokio::test]
async fn slow_bodies_do_not_stop_a_normal_client() {
    // 300 sockets here and as many on the node (which raises its own limit).
    let _ = rlimit::increase_nofile_limit(4096);
    let cluster = Cluster::start(1).await;
    let client = cluster.client(1);
    let addr = cluster.node(1).http_addr();
    // The account the normal client signs in with, made before the flood.
    access_token(&client, "customer", "patient").await;
    let (email, password) = test_account("customer", "patient");
    let login = serde_json::json!({ "email": email, "password": password });

    let started = Instant::now();
    let ready = Arc::new(AtomicUsize::new(0));
    let slow: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|_| tokio::spawn(trickle(addr, ready.clone())))
        .collect();
    eventually(
        "every slow connection to send its head",
        Duration::from_secs(10),
        || {
            let ready = ready.clone();
            async move {
                match ready.load(Ordering::SeqCst) {
                    n if n == SLOW_CONNECTIONS => Ok(()),
                    n => Err(format!("{n} of {SLOW_CONNECTIONS}")),
                }
            }
        },
    )
    .await;
    // Give the node a moment to read the heads it was sent (as in the test of shedding).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile, a normal client: 50 reads through the shedder and a login.
    let mut latencies = Vec::new();
    for i in 0..50 {
        let at = Instant::now();
        let reply = client.get("/api/v1/products").await.expect("GET products");
        latencies.push(at.elapsed());
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "read {i} during the flood: {reply}"
        );
    }
    let at = Instant::now();
    let reply = client.post("/auth/login", &login).await.expect("login");
    latencies.push(at.elapsed());
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "login during the flood: {reply}"
    );
    let flood_still_on = slow.iter().all(|task| !task.is_finished());
    assert!(
        flood_still_on,
        "some slow connection ended before the normal client was done ({:?} in): \
         the test did not overlap them",
        started.elapsed()
    );

    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let max = latencies[latencies.len() - 1];
    println!(
        "normal client under {SLOW_CONNECTIONS} slow bodies: {} requests, p50 {:?}, p99 {p99:?}, max {max:?}",
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    assert!(
        p99 < Duration::from_secs(1),
        "p99 {p99:?} under {SLOW_CONNECTIONS} slow bodies"
    );

    // The slow connections end at the node's body-read timeout (10 s by default): 408 or
    // closed, none served and none left hanging.
    let mut timed_out = 0;
    for task in slow {
        let end = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a slow connection still open 30 s later")
            .expect("slow connection task");
        match end {
            SlowEnd::TimedOut => timed_out += 1,
            SlowEnd::Closed => {}
            SlowEnd::Other(answer) => panic!("a slow connection got {answer:?}"),
        }
    }
    let took = started.elapsed();
    println!("{timed_out} of {SLOW_CONNECTIONS} slow connections got 408 request_timeout after {took:?}; the rest were closed");
    assert!(timed_out > 0, "no slow connection got the 408 answer");
    assert!(
        took >= Duration::from_secs(9),
        "the slow connections ended after {took:?}, before the body-read timeout"
    );
}
