//! The REST API: routes with their time budgets, the service every request
//! goes through, and rendering a use case's answer.
//!
//! Architecture invariant: handlers parse request DTOs into domain types, call
//! the application layer (`app/`) and render its answer; they never touch
//! storage or Raft.

pub mod auth;
pub mod browser;
pub mod carts;
pub mod catalog;
pub mod cluster;
pub mod error;
pub mod events;
pub mod extract;
pub mod inventory;
pub mod listings;
pub mod media;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod pricing;
pub mod search;
pub mod shed;
pub mod social;
pub mod timeouts;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::idempotency::IDEMPOTENT_REPLAYED;
use error::{AppError, AppResult};

use crate::app::ErrorCode;
pub use crate::app::{unexpected, App, Committed, Rendered};

impl Committed {
    /// Renders the outcome: 200 with `render(response)` as JSON, or the domain
    /// error; marks replays of a stored outcome with `Idempotent-Replayed: true`.
    pub fn respond<T: Serialize>(
        self,
        render: impl FnOnce(ecommerce_domains::Response) -> AppResult<T>,
    ) -> Response {
        self.render(render).into_response()
    }
}

impl<T: Serialize> Rendered<T> {
    /// 200 with the value as JSON, or the error; replays are marked with
    /// `Idempotent-Replayed: true`.
    pub fn into_response(self) -> Response {
        let mut response = match self.result {
            Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
            Err(e) => e.into_response(),
        };
        if self.replayed {
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

/// Every route of the node with what wraps every request: request ids,
/// tracing, panics as 500, body limits and timeouts, metrics, admission
/// (`shed`). What `startup` serves.
pub fn service(state: App) -> Router {
    let http = &state.settings.http;
    let admission = shed::Admission::new(http, state.auth.clone());
    let body_read_timeout = Duration::from_millis(http.body_read_timeout_ms);
    let max_body_bytes = http.max_body_bytes;
    let settings = state.settings.clone();
    // A layer added to a `Router` wraps each route, after routing (so
    // `MatchedPath` is known) and around the route's own layers (its budget);
    // the first added is the innermost.
    let routes = router(state)
        .layer(axum::middleware::from_fn_with_state(admission, shed::admit))
        // A pause between two pieces of a body; the deadline on the whole body
        // is `shed::admit`'s (a trickle restarts this one with every byte).
        .layer(RequestBodyTimeoutLayer::new(body_read_timeout))
        .layer(axum::middleware::from_fn(crate::telemetry::track_http))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::new(ErrorCode::Internal, "internal error").into_response()
        }))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
            "x-request-id",
        )))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static("x-request-id"),
            MakeRequestUuid,
        ));
    // Outermost: a preflight is answered before admission, and every
    // answer (a shed or a panic included) gets the headers.
    browser::wrap(routes, &settings)
}

/// Every route of the node, each with its budget (`timeouts`): ordinary
/// routes `http.request_timeout_ms`; the few that wait on purpose their own.
pub fn router(state: App) -> Router {
    let settings = &state.settings;
    let request_budget = Duration::from_millis(settings.http.request_timeout_ms);
    let api = Router::new()
        .route("/warehouses", get(inventory::list_warehouses))
        .route(
            "/warehouses/{id}",
            get(inventory::get_warehouse).put(inventory::put_warehouse),
        )
        .route("/inventory/low-stock", get(inventory::low_stock))
        .route("/inventory/{sku}", get(inventory::get_stock))
        .route("/inventory/{sku}/threshold", put(inventory::set_threshold))
        .route(
            "/inventory/{sku}/warehouses/{warehouse_id}",
            put(inventory::set_stock),
        )
        .route(
            "/inventory/{sku}/warehouses/{warehouse_id}/adjustments",
            post(inventory::adjust_stock),
        )
        .route(
            "/listings/{sku}",
            get(listings::get_listing).put(listings::put_listing),
        )
        .route("/products", get(catalog::list_products))
        .route(
            "/products/{id}",
            get(catalog::get_product)
                .put(catalog::put_product)
                .delete(catalog::delete_product),
        )
        .route(
            "/products/by-slug/{slug}",
            get(catalog::get_product_by_slug),
        )
        .route("/search", get(search::search))
        .route("/search/suggest", get(search::suggest))
        .route("/search/status", get(search::status))
        .route("/categories", get(catalog::list_categories))
        .route("/catalog/import", post(catalog::import_products))
        .route("/promotions", get(pricing::list_promotions))
        .route("/promotions/{id}", put(pricing::put_promotion))
        .route(
            "/coupons/{code}",
            get(pricing::get_coupon).put(pricing::put_coupon),
        )
        .route(
            "/categories/{id}",
            put(catalog::put_category).delete(catalog::delete_category),
        )
        .route("/cart", get(carts::get_cart).delete(carts::clear_cart))
        .route("/cart/lines", post(carts::add_line))
        .route(
            "/cart/lines/{sku}",
            put(carts::set_line).delete(carts::remove_line),
        )
        .route("/cart/merge", post(carts::merge_cart))
        .route("/cart/token", post(carts::new_cart_token))
        .route("/checkout", post(orders::checkout))
        .route("/orders", get(orders::list_orders))
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/orders/{id}/extend-hold", post(orders::extend_hold))
        .route("/orders/{id}/ship", post(orders::ship_order))
        .route("/orders/{id}/deliver", post(orders::deliver_order))
        // users
        .route("/users", get(users::list_users).post(users::create_user))
        .route(
            "/users/{id}",
            get(users::get_user)
                .patch(users::update_user)
                .delete(users::delete_user),
        )
        .route("/users/{id}/role", put(users::set_role))
        .route("/users/{id}/password", post(users::change_password))
        .route("/auth/signing-keys/rotate", post(users::rotate_signing_key))
        .route("/media/{hash}", get(media::get_media))
        .route("/media/{hash}/thumbnail", get(media::get_thumbnail))
        .route("/media/{hash}/meta", get(media::get_meta))
        .route("/openapi.json", get(openapi::serve));
    let ordinary = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/cluster", get(cluster::status))
        .route("/auth/register", post(users::register))
        .route("/auth/login", post(users::login))
        .route("/auth/refresh", post(users::refresh))
        .route("/auth/logout", post(users::logout))
        .route("/auth/password-reset", post(users::request_password_reset))
        .route(
            "/auth/password-reset/confirm",
            post(users::confirm_password_reset),
        )
        .route("/auth/social/{provider}", get(social::begin))
        .route("/auth/social/{provider}/callback", get(social::callback))
        .nest("/api/v1", api)
        .layer(timeouts::budget(request_budget));

    // Routes that wait longer on purpose, each with its own budget.
    let long_poll = request_budget + crate::app::events::MAX_WAIT;
    let upload = Duration::from_millis(settings.media.upload_timeout_ms);
    let membership = timeouts::budget(Duration::from_millis(settings.http.membership_timeout_ms));
    let waiting = Router::new()
        .route(
            "/api/v1/events",
            get(events::list_events).layer(timeouts::budget(long_poll)),
        )
        .route(
            "/api/v1/media",
            // Uploads get their own body limit, above the JSON routes' one.
            post(media::upload).layer((
                timeouts::budget(upload),
                DefaultBodyLimit::max(
                    settings.media.max_upload_bytes + media::MULTIPART_OVERHEAD_BYTES,
                ),
            )),
        )
        .route(
            "/cluster/learners",
            post(cluster::add_learner).layer(membership.clone()),
        )
        .route(
            "/cluster/promote",
            post(cluster::promote).layer(membership.clone()),
        )
        .route(
            "/cluster/remove",
            post(cluster::remove).layer(membership.clone()),
        )
        .route(
            "/cluster/transfer-leader",
            post(cluster::transfer_leader).layer(membership),
        );

    // The whole state, however long it takes: operators' tools, bounded by
    // the state's size. Concurrent digests share one computation (`DigestCache`).
    let whole_state = Router::new()
        .route("/cluster/backup", get(cluster::backup))
        .route("/node/keys", get(cluster::keys))
        .route("/node/keys/rotate-kek", post(cluster::rotate_kek))
        .route(
            "/cluster/digest",
            get(cluster::digest).layer(Extension(Arc::new(cluster::DigestCache::default()))),
        );

    ordinary
        .merge(waiting)
        .merge(whole_state)
        .fallback(ops::route_not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state)
}
