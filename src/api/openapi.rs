//! The OpenAPI document, generated from the handlers' annotations and served
//! at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{
    carts, catalog, cluster, error, events, inventory, listings, media, ops, orders, pricing,
    search, social, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ecommerce",
        description = "E-commerce backend on a Raft-replicated embedded store. Every error body is \
            {\"code\", \"message\", \"details\"} with a stable code. Mutating requests accept an \
            `Idempotency-Key` header (those that cannot honour one refuse it), scoped to the \
            caller: the same caller's same key and request replay the stored response (with \
            `Idempotent-Replayed: true`); the same key with a different request is a 422 \
            `idempotency_key_reused`; another caller's use of a key does not count. Reads accept `consistency=linearizable` (default) or `stale`. \
            Credentials: `Authorization: Bearer <access token>` from `/auth/login`."
    ),
    paths(
        ops::health, ops::ready, ops::metrics,
        cluster::status, cluster::add_learner, cluster::promote, cluster::remove, cluster::transfer_leader, cluster::backup, cluster::digest, cluster::keys, cluster::rotate_kek,
        inventory::list_warehouses, inventory::get_warehouse, inventory::put_warehouse,
        inventory::get_stock, inventory::set_stock, inventory::adjust_stock,
        inventory::set_threshold, inventory::low_stock,
        listings::put_listing, listings::get_listing,
        catalog::put_product, catalog::delete_product, catalog::get_product, catalog::get_product_by_slug,
        catalog::list_products, catalog::put_category, catalog::delete_category, catalog::list_categories,
        catalog::import_products,
        pricing::put_promotion, pricing::list_promotions, pricing::put_coupon, pricing::get_coupon,
        carts::get_cart, carts::add_line, carts::set_line, carts::remove_line, carts::clear_cart, carts::merge_cart,
        carts::new_cart_token,
        orders::checkout, orders::list_orders, orders::get_order, orders::cancel_order, orders::extend_hold,
        orders::ship_order, orders::deliver_order,
        events::list_events,
        users::register, users::login, users::refresh, users::logout,
        users::request_password_reset, users::confirm_password_reset, users::rotate_signing_key,
        users::create_user, users::list_users, users::get_user, users::update_user, users::delete_user,
        users::set_role, users::change_password,
        social::begin, social::callback,
        media::upload, media::get_media, media::get_thumbnail, media::get_meta,
        search::search, search::suggest, search::status,
    ),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "cluster", description = "Membership, leadership and backups"),
        (name = "inventory", description = "Warehouses, stock levels and low-stock alerts"),
        (name = "catalog", description = "Products, variants, categories and what each SKU is sold as"),
        (name = "pricing", description = "Promotions and coupons"),
        (name = "carts", description = "Carts of signed-in users and guests"),
        (name = "orders", description = "Checkout and the order workflow"),
        (name = "events", description = "The replicated domain event log"),
        (name = "auth", description = "Registration, login, social sign-in, tokens and password reset"),
        (name = "users", description = "Profiles, addresses, roles and account deletion"),
        (name = "media", description = "Images: upload, bytes, thumbnails (content-addressed, immutable)"),
        (name = "search", description = "Product search, filtered browsing with facets, suggestions"),
    )
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_error_code_route_and_is_valid_json() {
        let doc = ApiDoc::openapi();
        let json = serde_json::to_value(&doc).unwrap();
        for path in [
            "/api/v1/inventory/{sku}",
            "/cluster",
            "/api/v1/events",
            "/api/v1/warehouses/{id}",
            "/api/v1/checkout",
            "/api/v1/orders/{id}/ship",
            "/api/v1/cart/lines/{sku}",
            "/api/v1/media",
            "/api/v1/media/{hash}/thumbnail",
            "/api/v1/search",
            "/api/v1/search/suggest",
        ] {
            assert!(json["paths"].get(path).is_some(), "missing {path}");
        }
    }
}
