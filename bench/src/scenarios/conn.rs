//! One virtual user's connection: a single HTTP/1.1 keep-alive TCP
//! connection to one node, made with hyper's client connection directly.
//!
//! Why not `reqwest` (which the other benchmarks use): a `reqwest::Client` is a
//! pool that opens connections as it sees fit, and one client per user costs
//! its own pool, resolver and TLS set-up, tens of thousands of times. Here
//! the one connection is explicit: the user connects (timed: the spike
//! reports how long establishment took), sends one request at a time on it,
//! and reconnects only when it broke (counted). A request that timed out
//! leaves the connection in an unknown state, so it is dropped too.
//!
//! Every open connection is counted in a shared gauge, decremented when its
//! driver task ends (the peer closed it, or the user dropped it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest wait for a connection to be established (SYN retransmits
/// included: under a spike the listen backlog overflows and the kernel
/// retries after 1, 3, 7 s...).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for one answer, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What came back for one request.
#[derive(Debug)]
pub enum Answer {
    /// An HTTP answer. `code` is the JSON error body's `code` of a non-2xx
    /// answer (e.g. `overloaded`, `rate_limited`), when it has one.
    Http {
        status: u16,
        code: Option<String>,
        retry_after: bool,
    },
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// The connection broke (reset, closed before the answer).
    Transport,
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    Timeout,
    /// Refused, reset, or out of ports or descriptors (the io error's kind).
    Io(String),
    Handshake,
}

impl ConnectError {
    /// A short label for the error tables.
    pub fn label(&self) -> String {
        match self {
            ConnectError::Timeout => "connect timeout".into(),
            ConnectError::Io(kind) => format!("connect: {kind}"),
            ConnectError::Handshake => "connect: handshake".into(),
        }
    }
}

/// A request to send: method, path (with query), an optional bearer token,
/// an optional `Idempotency-Key`, an optional JSON body.
pub struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub token: Option<&'a str>,
    pub idempotency_key: Option<String>,
    pub json: Option<Bytes>,
}

impl Call<'_> {
    /// An anonymous GET of `path`.
    pub fn get(path: String) -> Self {
        Call {
            method: Method::GET,
            path,
            token: None,
            idempotency_key: None,
            json: None,
        }
    }
}

pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    open: Arc<AtomicI64>,
}

impl Conn {
    /// A user's connection to `addr`, not yet made; `open` counts the
    /// connections alive across all users.
    pub fn new(addr: SocketAddr, open: Arc<AtomicI64>) -> Conn {
        Conn {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
            sender: None,
            open,
        }
    }

    /// Whether a usable connection is there (it may still break on the next
    /// request: the peer can close an idle connection at any time).
    pub fn is_open(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Makes the connection; returns how long it took (TCP and the HTTP/1.1
    /// set-up, which sends nothing: the first request goes out on it).
    pub async fn connect(&mut self) -> Result<Duration, ConnectError> {
        self.sender = None;
        let started = Instant::now();
        let made = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| ConnectError::Io(format!("{:?}", e.kind())))?;
            let _ = tcp.set_nodelay(true);
            http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|_| ConnectError::Handshake)
        })
        .await
        .map_err(|_| ConnectError::Timeout)??;
        let (sender, driver) = made;
        let open = self.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = driver.await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
        self.sender = Some(sender);
        Ok(started.elapsed())
    }

    /// Sends `call` on the open connection and reads the whole answer.
    /// Without an open connection this is a transport error (the caller
    /// connects first).
    pub async fn send(&mut self, call: Call<'_>) -> Answer {
        let Some(sender) = self.sender.as_mut() else {
            return Answer::Transport;
        };
        let mut req = Request::builder()
            .method(call.method)
            .uri(call.path)
            .header(HOST, self.host.clone());
        if let Some(token) = call.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(key) = call.idempotency_key {
            req = req.header("idempotency-key", key);
        }
        if call.json.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let Ok(req) = req.body(Full::new(call.json.unwrap_or_default())) else {
            return Answer::Transport;
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            sender.ready().await.ok()?;
            let reply = sender.send_request(req).await.ok()?;
            let status = reply.status();
            let retry_after = reply.headers().contains_key(RETRY_AFTER);
            let body = reply.into_body().collect().await.ok()?.to_bytes();
            let code = (!status.is_success()).then(|| error_code(&body)).flatten();
            Some(Answer::Http {
                status: status.as_u16(),
                code,
                retry_after,
            })
        })
        .await;
        match answer {
            Ok(Some(a)) => a,
            Ok(None) => {
                self.sender = None;
                Answer::Transport
            }
            Err(_) => {
                self.sender = None;
                Answer::Timeout
            }
        }
    }
}

/// The `code` of an error body `{"code": ..., "message": ...}`.
pub fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("code")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::error_code;

    #[test]
    fn error_codes_come_from_the_json_body() {
        let body = br#"{"code":"overloaded","message":"try later","details":null}"#;
        assert_eq!(error_code(body).as_deref(), Some("overloaded"));
        assert_eq!(error_code(b"Service Unavailable"), None);
        assert_eq!(error_code(br#"{"code":42}"#), None);
    }
}
