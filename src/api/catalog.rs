//! Catalogue routes: products with variants, and the category tree.
//!
//! Browsing reads default to `consistency=stale` (this node's replica, served
//! from the product cache when hot); pass `consistency=linearizable` to see
//! every acknowledged write.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::catalog::{Category, Product};
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::media::ContentHash;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AdminOnly, VendorOrAdmin};
use super::error::{AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta};
use super::listings::MoneyDto;
use super::App;
use crate::app::catalog::{
    self, CategoryRequest, ImageRequest, ImportProductRequest, ImportRequest, ProductKey,
    ProductQuery, ProductRequest, VariantRequest,
};
use crate::config::Settings;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBody {
    pub sku: String,
    /// e.g. {"size": "M", "colour": "blue"}.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub price: MoneyDto,
    #[serde(default)]
    pub weight_grams: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageBody {
    /// SHA-256 of an uploaded image (`POST /api/v1/media`).
    pub hash: String,
    #[serde(default)]
    pub alt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    pub name: String,
    /// Defaults to a slug of the name.
    pub slug: Option<String>,
    #[serde(default)]
    pub description: String,
    pub category_id: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub images: Vec<ImageBody>,
    /// The selling vendor; a vendor may only name itself (and is the default
    /// for a vendor's products). Absent for the shop's own products.
    pub vendor_id: Option<String>,
    /// Defaults to true.
    pub active: Option<bool>,
    pub variants: Vec<VariantBody>,
}

impl From<ProductBody> for ProductRequest {
    fn from(body: ProductBody) -> Self {
        Self {
            name: body.name,
            slug: body.slug,
            description: body.description,
            category_id: body.category_id,
            attributes: body.attributes,
            images: body
                .images
                .into_iter()
                .map(|i| ImageRequest {
                    hash: i.hash,
                    alt: i.alt,
                })
                .collect(),
            vendor_id: body.vendor_id,
            active: body.active,
            variants: body
                .variants
                .into_iter()
                .map(|v| VariantRequest {
                    sku: v.sku,
                    attributes: v.attributes,
                    price: v.price.into(),
                    weight_grams: v.weight_grams,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariantDto {
    pub sku: String,
    pub attributes: BTreeMap<String, String>,
    pub price: MoneyDto,
    pub weight_grams: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageDto {
    pub hash: String,
    pub alt: String,
    /// Under `media.cdn_base_url` when configured.
    pub url: String,
    pub thumbnail_url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductDto {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub category_id: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<ImageDto>,
    pub vendor_id: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub variants: Vec<VariantDto>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub version: u64,
}

/// Thumbnail size used in product responses.
const THUMBNAIL: u32 = 256;

impl ProductDto {
    pub fn new(p: &Product, settings: &Settings) -> Self {
        Self {
            id: p.id.as_str().to_string(),
            slug: p.slug.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            category_id: p.category_id.as_ref().map(|c| c.as_str().to_string()),
            attributes: p.attributes.clone(),
            images: p
                .images
                .iter()
                .filter_map(|i| {
                    let hash = ContentHash::parse(&i.hash).ok()?;
                    Some(ImageDto {
                        hash: i.hash.clone(),
                        alt: i.alt.clone(),
                        url: crate::media::media_url(settings, &hash),
                        thumbnail_url: crate::media::thumbnail_url(settings, &hash, THUMBNAIL),
                    })
                })
                .collect(),
            vendor_id: p.vendor_id.clone(),
            active: p.active,
            deleted: p.deleted_ms.is_some(),
            variants: p
                .variants
                .iter()
                .map(|v| VariantDto {
                    sku: v.sku.as_str().to_string(),
                    attributes: v.attributes.clone(),
                    price: v.price.clone().into(),
                    weight_grams: v.weight_grams,
                })
                .collect(),
            created_ms: p.created_ms,
            updated_ms: p.updated_ms,
            version: p.version,
        }
    }
}

/// Create or replace product `id` (its vendor, or an admin).
#[utoipa::path(put, path = "/api/v1/products/{id}", tag = "catalog", request_body = ProductBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ProductDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_product(
    State(state): State<App>,
    VendorOrAdmin(actor): VendorOrAdmin,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ProductBody>,
) -> AppResult<Response> {
    let request = ProductRequest::from(body);
    let tag = meta.tag(&Principal::from(&actor), &request);
    let rendered = state.put_product(&actor, &id, &request, tag).await?;
    Ok(rendered
        .map(|p| ProductDto::new(&p, &state.settings))
        .into_response())
}

/// Soft-delete a product: it stays readable by id (`deleted: true`), its SKUs stop selling.
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ProductDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_product(
    State(state): State<App>,
    VendorOrAdmin(actor): VendorOrAdmin,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &());
    let rendered = state.delete_product(&actor, &id, tag).await?;
    Ok(rendered
        .map(|p| ProductDto::new(&p, &state.settings))
        .into_response())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BrowseParams {
    /// `stale` (default for browsing) or `linearizable`.
    pub consistency: Option<Consistency>,
}

impl BrowseParams {
    fn consistency(&self) -> Consistency {
        self.consistency.unwrap_or(Consistency::Stale)
    }
}

/// Read a product (deleted products are still answered, with `deleted: true`).
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path), BrowseParams),
    responses((status = 200, body = ProductDto), (status = 404, body = ErrorBody)))]
pub async fn get_product(
    State(state): State<App>,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<BrowseParams>,
) -> AppResult<Json<ProductDto>> {
    let product = state
        .product(ProductKey::Id(&id), params.consistency())
        .await?;
    Ok(Json(ProductDto::new(&product, &state.settings)))
}

/// Read a product by its slug.
#[utoipa::path(get, path = "/api/v1/products/by-slug/{slug}", tag = "catalog",
    params(("slug" = String, Path), BrowseParams),
    responses((status = 200, body = ProductDto), (status = 404, body = ErrorBody)))]
pub async fn get_product_by_slug(
    State(state): State<App>,
    AppPath(slug): AppPath<String>,
    AppQuery(params): AppQuery<BrowseParams>,
) -> AppResult<Json<ProductDto>> {
    let product = state
        .product(ProductKey::Slug(&slug), params.consistency())
        .await?;
    Ok(Json(ProductDto::new(&product, &state.settings)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProductListParams {
    /// Only products in this category or below it.
    pub category: Option<String>,
    /// Continue after this product id.
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<usize>,
    /// Include inactive and deleted products (their vendor or admins).
    pub include_unavailable: Option<bool>,
    pub consistency: Option<Consistency>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    /// In product-id order.
    pub items: Vec<ProductDto>,
    pub next_after: Option<String>,
}

/// List products in id order, optionally within a category subtree. For
/// text search, filters, facets and sorting use `/api/v1/search`.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ProductListParams),
    responses((status = 200, body = ProductList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_products(
    State(state): State<App>,
    AppQuery(params): AppQuery<ProductListParams>,
) -> AppResult<Json<ProductList>> {
    let query = ProductQuery {
        category: params.category,
        after: params.after,
        limit: params.limit,
        include_unavailable: params.include_unavailable.unwrap_or(false),
        consistency: params.consistency.unwrap_or(Consistency::Stale),
    };
    let (products, next_after) = state.products(&query).await?;
    Ok(Json(ProductList {
        items: products
            .iter()
            .map(|p| ProductDto::new(p, &state.settings))
            .collect(),
        next_after,
    }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    pub name: String,
    /// Defaults to a slug of the name.
    pub slug: Option<String>,
    /// Absent for a top-level category. Changing it moves the whole subtree.
    pub parent_id: Option<String>,
    #[serde(default)]
    pub position: i32,
}

impl From<CategoryBody> for CategoryRequest {
    fn from(body: CategoryBody) -> Self {
        Self {
            name: body.name,
            slug: body.slug,
            parent_id: body.parent_id,
            position: body.position,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryDto {
    pub id: String,
    pub parent_id: Option<String>,
    pub slug: String,
    pub name: String,
    pub position: i32,
    pub version: u64,
}

impl From<Category> for CategoryDto {
    fn from(c: Category) -> Self {
        Self {
            id: c.id.as_str().to_string(),
            parent_id: c.parent_id.map(|p| p.as_str().to_string()),
            slug: c.slug,
            name: c.name,
            position: c.position,
            version: c.version,
        }
    }
}

/// Create, rename or move a category (admins).
#[utoipa::path(put, path = "/api/v1/categories/{id}", tag = "catalog", request_body = CategoryBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CategoryDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_category(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<CategoryBody>,
) -> AppResult<Response> {
    let request = CategoryRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state.put_category(&admin, &id, &request, tag).await?;
    Ok(rendered.map(CategoryDto::from).into_response())
}

/// Remove a category with no subcategories and no products (admins).
#[utoipa::path(delete, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CategoryDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_category(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &());
    let rendered = state.delete_category(&admin, &id, tag).await?;
    Ok(rendered.map(CategoryDto::from).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryTree {
    /// Every category, parents before children, siblings by position then name.
    pub items: Vec<CategoryDto>,
}

/// The whole category tree.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog", params(BrowseParams),
    responses((status = 200, body = CategoryTree)))]
pub async fn list_categories(
    State(state): State<App>,
    AppQuery(params): AppQuery<BrowseParams>,
) -> AppResult<Json<CategoryTree>> {
    let categories = state.category_tree(params.consistency()).await?;
    Ok(Json(CategoryTree {
        items: categories.into_iter().map(CategoryDto::from).collect(),
    }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportProduct {
    pub id: String,
    #[serde(flatten)]
    pub product: ProductBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// 1 to 500 products, each applied or refused on its own.
    pub products: Vec<ImportProduct>,
}

impl From<ImportBody> for ImportRequest {
    fn from(body: ImportBody) -> Self {
        Self {
            products: body
                .products
                .into_iter()
                .map(|p| ImportProductRequest {
                    id: p.id,
                    product: p.product.into(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportItemDto {
    pub id: String,
    /// Set when the product was written.
    pub version: Option<u64>,
    /// The stable error code when it was refused.
    pub error_code: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    pub imported: usize,
    pub refused: usize,
    pub items: Vec<ImportItemDto>,
}

impl From<catalog::ImportReport> for ImportReport {
    fn from(report: catalog::ImportReport) -> Self {
        Self {
            imported: report.imported,
            refused: report.refused,
            items: report
                .items
                .into_iter()
                .map(|i| {
                    let (error_code, error) = i.error.unzip();
                    ImportItemDto {
                        id: i.id,
                        version: i.version,
                        error_code,
                        error,
                    }
                })
                .collect(),
        }
    }
}

/// Upsert a batch of products (admins; `ecommerce catalog import` sends these).
/// One command: a retry with the same `Idempotency-Key` applies nothing twice.
#[utoipa::path(post, path = "/api/v1/catalog/import", tag = "catalog", request_body = ImportBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_products(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    meta: MutationMeta,
    AppJson(body): AppJson<ImportBody>,
) -> AppResult<Response> {
    let request = ImportRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state.import_products(&admin, &request, tag).await?;
    Ok(rendered.map(ImportReport::from).into_response())
}
