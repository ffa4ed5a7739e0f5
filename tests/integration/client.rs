//! Typed REST client for one node, as the tests see it from outside.
//!
//! Every call returns a [`Reply`] (status, headers, JSON body) or an error when the node could
//! not be reached at all (refused, reset, timed out): tests that kill nodes need to tell those
//! apart from HTTP error responses. Also holds [`raw_http`], a hand-rolled HTTP/1.1 exchange for
//! the cases reqwest cannot express reliably (a 2 MiB body the server refuses before reading it).
//! No process management lives here; that is `harness.rs`, on `ecommerce-testkit`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Per-request timeout. Longer than any election the tests provoke, short enough that a hung
/// node fails the test instead of the whole suite.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP response: status, headers and the body parsed as JSON (a non-JSON body is kept as a
/// JSON string so failure messages still show it).
#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    fn from_parts(status: StatusCode, headers: HeaderMap, bytes: &[u8]) -> Reply {
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The stable error `code` of an error body, or "" when there is none.
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body of a 200 reply; panics with `what` and the whole reply otherwise.
    #[track_caller]
    pub fn ok(self, what: &str) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{what}: expected 200, got {self}"
        );
        self.body
    }

    /// Panics unless the reply has `status` and error `code` and the documented error shape
    /// (`code` string, non-empty `message` string, `details` object or null).
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "{what}: expected {status} {code:?}, got {self}"
        );
        assert_error_shape(&self.body, what);
    }

    /// Panics unless this is a 200 stock level or stock summary of `sku` with exactly
    /// `on_hand` on hand, nothing reserved and `on_hand` available.
    #[track_caller]
    pub fn expect_stock(&self, sku: &str, on_hand: i64, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{what}: expected 200, got {self}"
        );
        let field = |k: &str| self.body.get(k).cloned().unwrap_or(Value::Null);
        assert_eq!(
            (
                field("sku"),
                field("on_hand"),
                field("reserved"),
                field("available")
            ),
            (json!(sku), json!(on_hand), json!(0), json!(on_hand)),
            "{what}: (sku, on_hand, reserved, available) differ from expected in {self}"
        );
    }

    /// `version` of a write reply (the Raft log index of that write).
    #[track_caller]
    pub fn version(&self) -> u64 {
        self.body
            .get("version")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no integer version in {self}"))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status.as_u16(), self.body)?;
        if let Some(retry) = self.header("retry-after") {
            write!(f, " (Retry-After: {retry})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Checks the one documented error shape: `{"code": str, "message": non-empty str, "details":
/// object|null}`.
#[track_caller]
pub fn assert_error_shape(body: &Value, what: &str) {
    let code = body.get("code").and_then(Value::as_str);
    assert!(
        code.is_some_and(|c| !c.is_empty()),
        "{what}: error body has no string `code`: {body}"
    );
    let message = body.get("message").and_then(Value::as_str);
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "{what}: error body has no non-empty string `message`: {body}"
    );
    match body.get("details") {
        Some(Value::Null) | Some(Value::Object(_)) => {}
        other => {
            panic!("{what}: error `details` must be an object or null, got {other:?} in {body}")
        }
    }
}

/// Which read path a stock read takes (`?consistency=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// No query parameter: the documented default (linearizable).
    Default,
    Linearizable,
    Stale,
}

/// A REST client bound to one node's base URL. No connection pooling: nodes are killed and
/// restarted on the same port, and a pooled connection to a dead process would only add noise.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Sent with every request (credentials, see `harness::sign_in`).
    default_headers: Vec<(String, String)>,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Client {
        Client::with_timeout(base, REQUEST_TIMEOUT)
    }

    /// A client whose requests give up after `timeout` instead of [`REQUEST_TIMEOUT`] (for
    /// checking that the node itself answers before some bound).
    pub fn with_timeout(base: impl Into<String>, timeout: Duration) -> Client {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(0)
            .no_proxy()
            .build()
            .expect("build reqwest client");
        Client {
            base: base.into(),
            http,
            default_headers: Vec::new(),
        }
    }

    /// A client of an HTTPS node that trusts only the CA certificate in `ca_pem`.
    pub fn with_ca(base: impl Into<String>, ca_pem: &std::path::Path) -> Client {
        let pem = std::fs::read(ca_pem).expect("read the CA certificate");
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(0)
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
            .build()
            .expect("build reqwest client");
        Client {
            base: base.into(),
            http,
            default_headers: Vec::new(),
        }
    }

    /// This client, sending `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.default_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// This client, sending `Authorization: Bearer <token>` (replacing an earlier one).
    pub fn with_bearer(mut self, token: &str) -> Client {
        self.default_headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        self.with_header("authorization", &format!("Bearer {token}"))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request with an optional JSON body (sent with `Content-Type: application/json`)
    /// and an optional `Idempotency-Key`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply> {
        let mut headers = Vec::new();
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key", key));
        }
        let bytes = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(body)?
            }
            None => Vec::new(),
        };
        self.raw(method, path, &headers, bytes).await
    }

    /// Sends exactly the given headers and body bytes (no implicit content type).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method.clone(), &url);
        for (name, value) in &self.default_headers {
            request = request.header(name, value);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading body of {method} {url}"))?;
        Ok(Reply::from_parts(status, headers, &bytes))
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(Method::PUT, path, Some(body), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(Method::POST, path, Some(body), None).await
    }

    pub async fn health(&self) -> Result<Reply> {
        self.get("/health").await
    }

    pub async fn cluster(&self) -> Result<Reply> {
        self.get("/cluster").await
    }

    /// `PUT /api/v1/warehouses/{id}` with a fixed location and priority 0.
    pub async fn put_warehouse(&self, id: &str, name: &str) -> Result<Reply> {
        let body = json!({"name": name, "location": {"lat": 52.5, "lon": 13.4}, "priority": 0});
        self.put(&format!("/api/v1/warehouses/{id}"), &body).await
    }

    pub async fn get_warehouse(&self, id: &str) -> Result<Reply> {
        self.get(&format!("/api/v1/warehouses/{id}")).await
    }

    pub async fn warehouses(&self) -> Result<Reply> {
        self.get("/api/v1/warehouses").await
    }

    /// `PUT /api/v1/inventory/{sku}/warehouses/{wh}` setting the absolute `on_hand`.
    pub async fn set_stock(&self, sku: &str, wh: &str, on_hand: i64) -> Result<Reply> {
        self.set_stock_with(sku, wh, json!({ "on_hand": on_hand }), None)
            .await
    }

    /// Same as [`Client::set_stock`] with a full body and an optional `Idempotency-Key`.
    pub async fn set_stock_with(
        &self,
        sku: &str,
        wh: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> Result<Reply> {
        let path = format!("/api/v1/inventory/{sku}/warehouses/{wh}");
        self.send(Method::PUT, &path, Some(&body), idempotency_key)
            .await
    }

    /// `POST .../adjustments` with `delta` and `reason`.
    pub async fn adjust(
        &self,
        sku: &str,
        wh: &str,
        delta: i64,
        reason: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Reply> {
        let path = format!("/api/v1/inventory/{sku}/warehouses/{wh}/adjustments");
        let body = json!({ "delta": delta, "reason": reason });
        self.send(Method::POST, &path, Some(&body), idempotency_key)
            .await
    }

    /// `GET /api/v1/inventory/{sku}` with the given consistency.
    pub async fn get_stock(&self, sku: &str, consistency: Consistency) -> Result<Reply> {
        let query = match consistency {
            Consistency::Default => "",
            Consistency::Linearizable => "?consistency=linearizable",
            Consistency::Stale => "?consistency=stale",
        };
        self.get(&format!("/api/v1/inventory/{sku}{query}")).await
    }

    /// `GET /api/v1/events` with optional `after` and `limit`.
    pub async fn events(&self, after: Option<u64>, limit: Option<u64>) -> Result<Reply> {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        self.get(&format!("/api/v1/events{query}")).await
    }

    /// Every event the node serves, following `after` pages of 100 until an empty page.
    pub async fn all_events(&self) -> Result<Vec<Value>> {
        let mut all: Vec<Value> = Vec::new();
        let mut after = None;
        for _ in 0..10_000 {
            let reply = self.events(after, Some(100)).await?;
            if reply.status != StatusCode::OK {
                bail!("GET events after {after:?} on {}: {reply}", self.base);
            }
            let page = reply
                .body
                .get("events")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("no `events` array in {reply}"))?
                .clone();
            let Some(last) = page.last() else {
                return Ok(all);
            };
            let last_id = last
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| anyhow!("event without integer id: {last}"))?;
            if after.is_some_and(|a| last_id <= a) {
                bail!("events page after {after:?} did not advance (last id {last_id})");
            }
            after = Some(last_id);
            all.extend(page);
        }
        bail!("events did not end after 10000 pages")
    }
}

/// A response read off a raw socket.
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Value,
}

/// Sends `head` (request line and headers, ending with an empty line) and then `body` on a
/// fresh TCP connection while reading the response concurrently, so a server that answers
/// early (413 before reading a huge body) and then resets the connection is still observed.
pub async fn raw_http(addr: SocketAddr, head: String, body: Vec<u8>) -> Result<RawResponse> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        // Write errors are expected once the server has answered and closed.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.chunks(64 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let outcome = loop {
        if let Some(done) = parse_raw_response(&buf, false) {
            break Ok(done);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rd.read(&mut chunk)).await {
            Err(_) => break Err(anyhow!("timed out reading the response from {addr}")),
            Ok(Ok(0)) | Ok(Err(_)) => {
                break parse_raw_response(&buf, true).ok_or_else(|| {
                    anyhow!(
                        "connection to {addr} ended before a full response; got {:?}",
                        String::from_utf8_lossy(&buf)
                    )
                })
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    writer.abort();
    outcome
}

/// Parses a complete HTTP/1.1 response out of `buf` (Content-Length or chunked body; with
/// neither, the body runs to the end of the connection, i.e. only when `eof`).
fn parse_raw_response(buf: &[u8], eof: bool) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let rest = &buf[end + 4..];
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let body: Vec<u8> = if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Some(RawResponse { status, head, body })
}

/// Decodes a complete chunked body, or None while it is incomplete.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod raw_parser_tests {
    use super::*;

    #[test]
    fn parses_content_length_bodies_only_when_complete() {
        let full = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 12\r\n\r\n{\"code\":\"x\"}";
        assert!(parse_raw_response(&full[..full.len() - 1], false).is_none());
        let r = parse_raw_response(full, false).expect("complete");
        assert_eq!((r.status, r.body), (413, json!({"code": "x"})));
    }

    #[test]
    fn decodes_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert!(parse_raw_response(&raw[..raw.len() - 3], false).is_none());
        let r = parse_raw_response(raw, false).expect("complete");
        assert_eq!((r.status, r.body), (200, json!({"a": 1})));
    }

    #[test]
    fn without_length_the_body_ends_at_eof() {
        let raw = b"HTTP/1.1 404 Not Found\r\n\r\n{\"code\":\"route_not_found\"}";
        assert!(parse_raw_response(raw, false).is_none());
        let r = parse_raw_response(raw, true).expect("eof");
        assert_eq!(r.body["code"], json!("route_not_found"));
    }
}
