//! What browsers get besides the API's answers: cross-origin access for
//! the origins the operator lists (`http.cors_allowed_origins`), security
//! headers on every response, and gzip for clients that accept it.
//!
//! Security headers follow OWASP's REST guidance: an API answer is never a
//! page to render, frame or sniff, so it says so (`Content-Security-Policy:
//! default-src 'none'; frame-ancestors 'none'`, `X-Content-Type-Options:
//! nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`), and a
//! node serving TLS asks browsers to use nothing else for a year
//! (`Strict-Transport-Security`). A route that serves a page sets its own
//! policy: these are only added when absent.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, DefaultPredicate};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::carts::CART_TOKEN;
use crate::app::idempotency::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
use crate::config::Settings;

/// What a browser may cache a preflight answer for.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// `router` with CORS, the security headers and compression around it.
pub fn wrap(router: Router, settings: &Settings) -> Router {
    let mut router = router
        .layer(compression())
        .layer(if_absent(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(if_absent(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(if_absent(header::X_FRAME_OPTIONS, "DENY"))
        .layer(if_absent(header::REFERRER_POLICY, "no-referrer"));
    if settings.tls.cert.is_some() {
        router = router.layer(if_absent(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000",
        ));
    }
    match cors(&settings.http.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn if_absent(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// gzip for answers over 1 KiB that are not images (already compressed),
/// gRPC, event streams or backups (large streams, compressed by whoever
/// stores them).
fn compression() -> CompressionLayer<impl Predicate> {
    let predicate = DefaultPredicate::new()
        .and(SizeAbove::new(1024))
        .and(NotForContentType::const_new("application/octet-stream"));
    CompressionLayer::new().gzip(true).compress_when(predicate)
}

/// The CORS layer for `origins` (checked with the settings); `None`
/// when no origin is allowed (browsers then refuse cross-origin calls).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let request_headers = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::IF_NONE_MATCH,
        HeaderName::from_static(IDEMPOTENCY_KEY),
        HeaderName::from_static(CART_TOKEN),
    ];
    let exposed = [
        header::LOCATION,
        header::RETRY_AFTER,
        header::ETAG,
        HeaderName::from_static("x-request-id"),
        HeaderName::from_static(IDEMPOTENT_REPLAYED),
        HeaderName::from_static(CART_TOKEN),
    ];
    // Bearer tokens travel in `Authorization`, never in cookies: no
    // credentials mode, so `*` is safe to offer.
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(request_headers)
            .expose_headers(exposed)
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
