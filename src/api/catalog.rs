//! Catalogue routes: products with variants, and the category tree.
//!
//! Browsing reads default to `consistency=stale` (this node's replica, served
//! from the product cache when hot); pass `consistency=linearizable` to see
//! every acknowledged write.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::catalog::{
    self, CatalogCommand, CatalogId, Category, ImageRef, Product, ProductDraft, Variant,
};
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::listing;
use ecommerce_domains::media::ContentHash;
use ecommerce_domains::money::Money;
use ecommerce_domains::{Actor, Command, DomainError, Response as Reply, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AdminOnly, VendorOrAdmin};
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta};
use super::listings::MoneyDto;
use super::{unexpected, App};
use crate::app::ErrorCode;
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

impl ProductBody {
    /// The validated draft of product `id`, as `actor` sends it.
    pub fn draft(&self, id: &str, actor: &Actor) -> AppResult<ProductDraft> {
        let vendor_id = match (&self.vendor_id, actor.role) {
            (None, Role::Vendor) => Some(actor.user_id.clone()),
            (v, _) => v.clone(),
        };
        let variants = self
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Ok(Variant {
                    sku: Sku::parse(&v.sku)?,
                    attributes: catalog::parse_attributes(
                        &format!("variants[{i}].attributes"),
                        v.attributes.clone(),
                    )?,
                    price: Money::parse(
                        &format!("variants[{i}].price"),
                        v.price.amount,
                        &v.price.currency,
                    )?,
                    weight_grams: v.weight_grams,
                })
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
        let slug = match &self.slug {
            Some(s) => catalog::parse_slug("slug", s)?,
            None => catalog::slugify(&self.name),
        };
        Ok(ProductDraft {
            id: CatalogId::parse("id", id)?,
            slug,
            name: self.name.clone(),
            description: self.description.clone(),
            category_id: self
                .category_id
                .as_deref()
                .map(|c| CatalogId::parse("category_id", c))
                .transpose()?,
            attributes: catalog::parse_attributes("attributes", self.attributes.clone())?,
            images: self
                .images
                .iter()
                .map(|i| {
                    Ok(ImageRef {
                        hash: ContentHash::parse(&i.hash)?.to_string(),
                        alt: i.alt.clone(),
                    })
                })
                .collect::<Result<Vec<_>, DomainError>>()?,
            vendor_id,
            active: self.active.unwrap_or(true),
            variants,
        }
        .validate()?)
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

fn product_reply(settings: &Settings) -> impl FnOnce(Reply) -> AppResult<ProductDto> + '_ {
    move |reply| match reply {
        Reply::Product(p) => Ok(ProductDto::new(&p, settings)),
        other => Err(unexpected(other)),
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
    let tag = meta.tag(&Principal::from(&actor), &body);
    let draft = body.draft(&id, &actor)?;
    let command = CatalogCommand::UpsertProduct { actor, draft };
    let committed = state.propose(Command::Catalog(command), tag).await?;
    Ok(committed.respond(product_reply(&state.settings)))
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
    let command = CatalogCommand::DeleteProduct {
        actor,
        id: CatalogId::parse("id", &id)?,
    };
    let committed = state.propose(Command::Catalog(command), tag).await?;
    Ok(committed.respond(product_reply(&state.settings)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BrowseParams {
    /// `stale` (default for browsing) or `linearizable`.
    pub consistency: Option<Consistency>,
}

/// A product by id or slug, through the cache for stale reads.
pub async fn find_product(
    state: &App,
    by: ProductKey<'_>,
    consistency: Consistency,
) -> AppResult<Arc<Product>> {
    let cache = &state.products;
    if consistency == Consistency::Stale {
        if let ProductKey::Id(id) = by {
            if let Some(hit) = cache.get(id) {
                return Ok(hit);
            }
        }
    }
    let generation = cache.generation();
    let reader = state.read(consistency).await?;
    let found = match by {
        ProductKey::Id(id) => catalog::get_product(&reader, &CatalogId::parse("id", id)?)?,
        ProductKey::Slug(slug) => catalog::product_by_slug(&reader, slug)?,
    };
    drop(reader);
    let product = Arc::new(found.ok_or_else(|| {
        let raw = match by {
            ProductKey::Id(s) | ProductKey::Slug(s) => s,
        };
        AppError::from(DomainError::ProductNotFound(raw.to_string()))
    })?);
    cache.insert(product.clone(), generation);
    Ok(product)
}

#[derive(Clone, Copy)]
pub enum ProductKey<'a> {
    Id(&'a str),
    Slug(&'a str),
}

/// Read a product (deleted products are still answered, with `deleted: true`).
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path), BrowseParams),
    responses((status = 200, body = ProductDto), (status = 404, body = ErrorBody)))]
pub async fn get_product(
    State(state): State<App>,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<BrowseParams>,
) -> AppResult<Json<ProductDto>> {
    let consistency = params.consistency.unwrap_or(Consistency::Stale);
    let product = find_product(&state, ProductKey::Id(&id), consistency).await?;
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
    let consistency = params.consistency.unwrap_or(Consistency::Stale);
    let product = find_product(&state, ProductKey::Slug(&slug), consistency).await?;
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
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::new(
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 100",
        ));
    }
    let after = params
        .after
        .as_deref()
        .map(|a| CatalogId::parse("after", a))
        .transpose()?;
    let reader = state
        .read(params.consistency.unwrap_or(Consistency::Stale))
        .await?;
    let include_all = params.include_unavailable.unwrap_or(false);
    let mut items = Vec::new();
    let mut cursor = after;
    // Skip unavailable products without letting one request walk everything.
    for _ in 0..20 {
        let page = match &params.category {
            Some(c) => {
                let category = CatalogId::parse("category", c)?;
                if catalog::get_category(&reader, &category)?.is_none() {
                    return Err(DomainError::CategoryNotFound(c.clone()).into());
                }
                catalog::products_in_category(&reader, &category, cursor.as_ref(), limit)?
            }
            None => catalog::products_after(&reader, cursor.as_ref(), limit)?,
        };
        let full = page.len() == limit;
        cursor = page.last().map(|p| p.id.clone()).or(cursor);
        items.extend(page.into_iter().filter(|p| include_all || p.sellable()));
        if items.len() >= limit || !full {
            items.truncate(limit);
            let next_after = if full || items.len() == limit {
                items.last().map(|p| p.id.as_str().to_string())
            } else {
                None
            };
            return Ok(Json(ProductList {
                items: items
                    .iter()
                    .map(|p| ProductDto::new(p, &state.settings))
                    .collect(),
                next_after,
            }));
        }
    }
    Ok(Json(ProductList {
        items: items
            .iter()
            .map(|p| ProductDto::new(p, &state.settings))
            .collect(),
        next_after: cursor.map(|c| c.as_str().to_string()),
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

fn category_reply(reply: Reply) -> AppResult<CategoryDto> {
    match reply {
        Reply::Category(c) => Ok(c.into()),
        other => Err(unexpected(other)),
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
    let tag = meta.tag(&Principal::from(&admin), &body);
    let name = listing::parse_name("name", &body.name)?;
    let slug = match &body.slug {
        Some(s) => catalog::parse_slug("slug", s)?,
        None => catalog::slugify(&name),
    };
    let command = CatalogCommand::UpsertCategory {
        id: CatalogId::parse("id", &id)?,
        parent_id: body
            .parent_id
            .as_deref()
            .map(|p| CatalogId::parse("parent_id", p))
            .transpose()?,
        slug,
        name,
        position: body.position,
    };
    let committed = state.propose(Command::Catalog(command), tag).await?;
    Ok(committed.respond(category_reply))
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
    let command = CatalogCommand::DeleteCategory {
        id: CatalogId::parse("id", &id)?,
    };
    let committed = state.propose(Command::Catalog(command), tag).await?;
    Ok(committed.respond(category_reply))
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
    let reader = state
        .read(params.consistency.unwrap_or(Consistency::Stale))
        .await?;
    let all = catalog::categories(&reader)?;
    let mut children: BTreeMap<Option<String>, Vec<Category>> = BTreeMap::new();
    for c in all {
        children
            .entry(c.parent_id.as_ref().map(|p| p.as_str().to_string()))
            .or_default()
            .push(c);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| {
            a.position
                .cmp(&b.position)
                .then_with(|| a.name.cmp(&b.name))
        });
    }
    let mut items = Vec::new();
    let mut stack: Vec<Category> = children.remove(&None).unwrap_or_default();
    stack.reverse();
    while let Some(c) = stack.pop() {
        if let Some(mut kids) = children.remove(&Some(c.id.as_str().to_string())) {
            kids.reverse();
            stack.extend(kids);
        }
        items.push(c.into());
    }
    Ok(Json(CategoryTree { items }))
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

/// Upsert a batch of products (admins; `ecommerce catalog import` sends these).
/// One command: a retry with the same `Idempotency-Key` applies nothing twice.
#[utoipa::path(post, path = "/api/v1/catalog/import", tag = "catalog", request_body = ImportBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_products(
    State(state): State<App>,
    AdminOnly(actor): AdminOnly,
    meta: MutationMeta,
    AppJson(body): AppJson<ImportBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &body);
    if body.products.is_empty() || body.products.len() > catalog::MAX_IMPORT_BATCH {
        return Err(DomainError::validation(
            "products",
            format!("1 to {} products per batch", catalog::MAX_IMPORT_BATCH),
        )
        .into());
    }
    // Products that fail validation here are reported like those the state refuses.
    let mut drafts = Vec::with_capacity(body.products.len());
    let mut early = Vec::new();
    for (i, p) in body.products.iter().enumerate() {
        match p.product.draft(&p.id, &actor) {
            Ok(d) => drafts.push(d),
            Err(e) => early.push((i, p.id.clone(), e)),
        }
    }
    let refused_early: Vec<ImportItemDto> = early
        .into_iter()
        .map(|(_, id, e)| ImportItemDto {
            id,
            version: None,
            error_code: Some(e.body.code.to_string()),
            error: Some(e.body.message),
        })
        .collect();
    let command = CatalogCommand::ImportProducts { actor, drafts };
    let committed = state.propose(Command::Catalog(command), tag).await?;
    Ok(committed.respond(move |reply| match reply {
        Reply::Imported(items) => {
            let mut items: Vec<ImportItemDto> = items
                .into_iter()
                .map(|i| ImportItemDto {
                    id: i.id,
                    version: i.version,
                    error_code: i.error.as_ref().map(|(c, _)| c.clone()),
                    error: i.error.map(|(_, m)| m),
                })
                .chain(refused_early)
                .collect();
            items.sort_by(|a, b| a.id.cmp(&b.id));
            let refused = items.iter().filter(|i| i.error_code.is_some()).count();
            Ok(ImportReport {
                imported: items.len() - refused,
                refused,
                items,
            })
        }
        other => Err(unexpected(other)),
    }))
}
