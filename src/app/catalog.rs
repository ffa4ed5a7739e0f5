//! The catalogue: products with variants (written by their vendor or an
//! admin, imported in batches by admins) and the category tree (admins).
//!
//! Browsing reads usually come at `Consistency::Stale` (the transports'
//! default for them): a product by id is then served from the hot-product
//! cache when it is there.

use std::collections::BTreeMap;
use std::sync::Arc;

use ecommerce_domains::catalog::{
    self, CatalogCommand, CatalogId, Category, ImageRef, ImportItem, Product, ProductDraft, Variant,
};
use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::listing;
use ecommerce_domains::media::ContentHash;
use ecommerce_domains::money::Money;
use ecommerce_domains::{Actor, Command, DomainError, Response, Role};
use serde::Serialize;

use super::access::{require_admin, require_vendor_or_admin};
use super::{unexpected, App, AppError, AppResult, Consistency, MoneyInput, Rendered};
use crate::app::ErrorCode;

/// One variant of a product as the client wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct VariantRequest {
    pub sku: String,
    pub attributes: BTreeMap<String, String>,
    pub price: MoneyInput,
    pub weight_grams: u64,
}

/// An image of a product: the hash of an uploaded image and its alt text.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRequest {
    pub hash: String,
    pub alt: String,
}

/// Creating or replacing a product. Its serialized form (the REST body's
/// JSON) is the request's idempotency fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct ProductRequest {
    pub name: String,
    /// A slug of the name when `None`.
    pub slug: Option<String>,
    pub description: String,
    pub category_id: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<ImageRequest>,
    /// The selling vendor: a vendor may only name itself, and is the default
    /// for its own products; `None` for the shop's.
    pub vendor_id: Option<String>,
    /// True when `None`.
    pub active: Option<bool>,
    pub variants: Vec<VariantRequest>,
}

/// One product of an import, with its id.
#[derive(Debug, Clone, Serialize)]
pub struct ImportProductRequest {
    pub id: String,
    #[serde(flatten)]
    pub product: ProductRequest,
}

/// Upserting up to [`catalog::MAX_IMPORT_BATCH`] products in one command.
#[derive(Debug, Clone, Serialize)]
pub struct ImportRequest {
    pub products: Vec<ImportProductRequest>,
}

/// An import's result, in product-id order.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub imported: usize,
    pub refused: usize,
    pub items: Vec<ImportItem>,
}

/// Creating, renaming or moving a category.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryRequest {
    pub name: String,
    /// A slug of the name when `None`.
    pub slug: Option<String>,
    /// `None` for a top-level category; changing it moves the whole subtree.
    pub parent_id: Option<String>,
    pub position: i32,
}

/// How a product is looked up.
#[derive(Clone, Copy)]
pub enum ProductKey<'a> {
    Id(&'a str),
    Slug(&'a str),
}

/// A page of products in id order.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    /// Only products in this category or below it.
    pub category: Option<String>,
    /// Continue after this product id.
    pub after: Option<String>,
    /// 1 to 100; 20 when `None`.
    pub limit: Option<usize>,
    /// Include inactive and deleted products.
    pub include_unavailable: bool,
    pub consistency: Consistency,
}

/// How many pages of unavailable products one listing request may skip
/// before it answers with what it has (and a cursor to go on from).
const MAX_SKIPPED_PAGES: usize = 20;

impl ProductRequest {
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
        let images = self
            .images
            .iter()
            .map(|i| {
                Ok(ImageRef {
                    hash: ContentHash::parse(&i.hash)?.to_string(),
                    alt: i.alt.clone(),
                })
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
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
            images,
            vendor_id,
            active: self.active.unwrap_or(true),
            variants,
        }
        .validate()?)
    }
}

fn product_reply(reply: Response) -> AppResult<Product> {
    match reply {
        Response::Product(p) => Ok(*p),
        other => Err(unexpected(other)),
    }
}

fn category_reply(reply: Response) -> AppResult<Category> {
    match reply {
        Response::Category(c) => Ok(c),
        other => Err(unexpected(other)),
    }
}

impl App {
    /// A product by id or slug (deleted ones too), through the hot-product
    /// cache for stale reads by id; else `product_not_found`.
    pub async fn product(
        &self,
        by: ProductKey<'_>,
        consistency: Consistency,
    ) -> AppResult<Arc<Product>> {
        let cache = &self.products;
        if consistency == Consistency::Stale {
            if let ProductKey::Id(id) = by {
                if let Some(hit) = cache.get(id) {
                    return Ok(hit);
                }
            }
        }
        let generation = cache.generation();
        let reader = self.read(consistency).await?;
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

    /// A page of products in id order, optionally within a category subtree,
    /// and the id to continue after. Unavailable products are skipped unless
    /// asked for, at most `MAX_SKIPPED_PAGES` (20) pages of them per call.
    pub async fn products(
        &self,
        query: &ProductQuery,
    ) -> AppResult<(Vec<Product>, Option<String>)> {
        let limit = query.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(AppError::new(
                ErrorCode::InvalidQuery,
                "limit must be between 1 and 100",
            ));
        }
        let mut cursor = query
            .after
            .as_deref()
            .map(|a| CatalogId::parse("after", a))
            .transpose()?;
        let category = query
            .category
            .as_deref()
            .map(|c| CatalogId::parse("category", c))
            .transpose()?;
        let reader = self.read(query.consistency).await?;
        if let Some(category) = &category {
            if catalog::get_category(&reader, category)?.is_none() {
                return Err(DomainError::CategoryNotFound(category.as_str().into()).into());
            }
        }
        let mut items = Vec::new();
        for _ in 0..MAX_SKIPPED_PAGES {
            let page = match &category {
                Some(c) => catalog::products_in_category(&reader, c, cursor.as_ref(), limit)?,
                None => catalog::products_after(&reader, cursor.as_ref(), limit)?,
            };
            let full = page.len() == limit;
            cursor = page.last().map(|p| p.id.clone()).or(cursor);
            items.extend(
                page.into_iter()
                    .filter(|p| query.include_unavailable || p.sellable()),
            );
            if items.len() >= limit || !full {
                items.truncate(limit);
                let next_after = (full || items.len() == limit)
                    .then(|| items.last().map(|p| p.id.as_str().to_string()))
                    .flatten();
                return Ok((items, next_after));
            }
        }
        Ok((items, cursor.map(|c| c.as_str().to_string())))
    }

    /// Creates or replaces product `id` (its vendor, or an admin).
    pub async fn put_product(
        &self,
        actor: &Actor,
        id: &str,
        request: &ProductRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Product>> {
        require_vendor_or_admin(actor)?;
        let draft = request.draft(id, actor)?;
        let command = CatalogCommand::UpsertProduct {
            actor: actor.clone(),
            draft,
        };
        let committed = self.propose(Command::Catalog(command), tag).await?;
        Ok(committed.render(product_reply))
    }

    /// Soft-deletes product `id` (its vendor, or an admin): it stays readable
    /// by id, its SKUs stop selling.
    pub async fn delete_product(
        &self,
        actor: &Actor,
        id: &str,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Product>> {
        require_vendor_or_admin(actor)?;
        let command = CatalogCommand::DeleteProduct {
            actor: actor.clone(),
            id: CatalogId::parse("id", id)?,
        };
        let committed = self.propose(Command::Catalog(command), tag).await?;
        Ok(committed.render(product_reply))
    }

    /// Upserts a batch of products as one command (admins): each is written
    /// or refused on its own, those that fail validation here included.
    pub async fn import_products(
        &self,
        admin: &Actor,
        request: &ImportRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<ImportReport>> {
        require_admin(admin)?;
        let count = request.products.len();
        if count == 0 || count > catalog::MAX_IMPORT_BATCH {
            return Err(DomainError::validation(
                "products",
                format!("1 to {} products per batch", catalog::MAX_IMPORT_BATCH),
            )
            .into());
        }
        let mut drafts = Vec::with_capacity(count);
        let mut refused_early = Vec::new();
        for p in &request.products {
            match p.product.draft(&p.id, admin) {
                Ok(d) => drafts.push(d),
                Err(e) => refused_early.push(ImportItem {
                    id: p.id.clone(),
                    version: None,
                    error: Some((e.body.code.to_string(), e.body.message)),
                }),
            }
        }
        let command = CatalogCommand::ImportProducts {
            actor: admin.clone(),
            drafts,
        };
        let committed = self.propose(Command::Catalog(command), tag).await?;
        Ok(committed.render(move |reply| match reply {
            Response::Imported(items) => Ok(import_report(items, refused_early)),
            other => Err(unexpected(other)),
        }))
    }

    /// Creates, renames or moves category `id` (admins).
    pub async fn put_category(
        &self,
        admin: &Actor,
        id: &str,
        request: &CategoryRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Category>> {
        require_admin(admin)?;
        let name = listing::parse_name("name", &request.name)?;
        let slug = match &request.slug {
            Some(s) => catalog::parse_slug("slug", s)?,
            None => catalog::slugify(&name),
        };
        let command = CatalogCommand::UpsertCategory {
            id: CatalogId::parse("id", id)?,
            parent_id: request
                .parent_id
                .as_deref()
                .map(|p| CatalogId::parse("parent_id", p))
                .transpose()?,
            slug,
            name,
            position: request.position,
        };
        let committed = self.propose(Command::Catalog(command), tag).await?;
        Ok(committed.render(category_reply))
    }

    /// Removes category `id`, which must have no subcategories and no
    /// products (admins).
    pub async fn delete_category(
        &self,
        admin: &Actor,
        id: &str,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Category>> {
        require_admin(admin)?;
        let command = CatalogCommand::DeleteCategory {
            id: CatalogId::parse("id", id)?,
        };
        let committed = self.propose(Command::Catalog(command), tag).await?;
        Ok(committed.render(category_reply))
    }

    /// Every category, parents before children, siblings by position then name.
    pub async fn category_tree(&self, consistency: Consistency) -> AppResult<Vec<Category>> {
        let reader = self.read(consistency).await?;
        Ok(tree_order(catalog::categories(&reader)?))
    }
}

/// The domain's per-product results and those refused before proposing,
/// in product-id order.
fn import_report(items: Vec<ImportItem>, refused_early: Vec<ImportItem>) -> ImportReport {
    let mut items: Vec<ImportItem> = items.into_iter().chain(refused_early).collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    let refused = items.iter().filter(|i| i.error.is_some()).count();
    ImportReport {
        imported: items.len().saturating_sub(refused),
        refused,
        items,
    }
}

/// `categories` depth first: parents before children, siblings by position
/// then name.
fn tree_order(categories: Vec<Category>) -> Vec<Category> {
    let mut children: BTreeMap<Option<String>, Vec<Category>> = BTreeMap::new();
    for c in categories {
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
    let mut ordered = Vec::new();
    let mut stack: Vec<Category> = children.remove(&None).unwrap_or_default();
    stack.reverse();
    while let Some(c) = stack.pop() {
        if let Some(mut kids) = children.remove(&Some(c.id.as_str().to_string())) {
            kids.reverse();
            stack.extend(kids);
        }
        ordered.push(c);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(id: &str, parent: Option<&str>, position: i32, name: &str) -> Category {
        Category {
            id: CatalogId::parse("id", id).unwrap(),
            parent_id: parent.map(|p| CatalogId::parse("parent_id", p).unwrap()),
            slug: id.into(),
            name: name.into(),
            position,
            version: 1,
        }
    }

    #[test]
    fn the_tree_lists_parents_before_children_and_siblings_by_position_then_name() {
        let ordered = tree_order(vec![
            category("shoes", Some("clothes"), 2, "Shoes"),
            category("hats", Some("clothes"), 1, "Hats"),
            category("books", None, 0, "Books"),
            category("clothes", None, 0, "Clothes"),
            category("caps", Some("hats"), 0, "Caps"),
            category("boots", Some("clothes"), 2, "Boots"),
        ]);
        let ids: Vec<&str> = ordered.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["books", "clothes", "hats", "caps", "boots", "shoes"]);
    }

    #[test]
    fn an_import_report_merges_both_refusals_in_id_order() {
        let report = import_report(
            vec![
                ImportItem {
                    id: "b".into(),
                    version: Some(7),
                    error: None,
                },
                ImportItem {
                    id: "d".into(),
                    version: None,
                    error: Some(("category_not_found".into(), "no".into())),
                },
            ],
            vec![ImportItem {
                id: "a".into(),
                version: None,
                error: Some(("validation_failed".into(), "bad".into())),
            }],
        );
        assert_eq!((report.imported, report.refused), (1, 2));
        let ids: Vec<&str> = report.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "d"]);
    }

    #[test]
    fn a_vendor_s_product_defaults_to_the_vendor_and_a_bad_variant_names_its_field() {
        let vendor = Actor {
            user_id: "v1".into(),
            role: Role::Vendor,
        };
        let mut request = ProductRequest {
            name: "Blue Shirt".into(),
            slug: None,
            description: String::new(),
            category_id: None,
            attributes: BTreeMap::new(),
            images: vec![],
            vendor_id: None,
            active: None,
            variants: vec![VariantRequest {
                sku: "SHIRT-1".into(),
                attributes: BTreeMap::new(),
                price: MoneyInput {
                    amount: 1999,
                    currency: "EUR".into(),
                },
                weight_grams: 200,
            }],
        };
        let draft = request.draft("shirt", &vendor).unwrap();
        assert_eq!(draft.vendor_id.as_deref(), Some("v1"));
        assert_eq!(draft.slug, "blue-shirt");
        assert!(draft.active);

        request.variants[0].price.currency = "euro".into();
        let error = request.draft("shirt", &vendor).unwrap_err();
        assert!(
            error.body.message.contains("variants[0].price"),
            "{error:?}"
        );
    }
}
