//! The catalogue: products with variants, and a category tree.
//!
//! A product (name, description, category, attributes, images, vendor,
//! active flag, slug) has one or more variants, each with its SKU, attributes,
//! list price and weight. Inventory and carts stay keyed by SKU: upserting a
//! product writes the [`Listing`] of each variant, so carts and checkout see
//! the catalogue's names and prices. Deleting is soft: the record stays (order
//! history refers to it), its listings stop selling.
//!
//! Slugs and SKUs are unique across the catalogue; since every change is one
//! command in log order, two products racing for one slug cannot both win.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::check;
use crate::command::{ApplyContext, Response};
use crate::inventory::{parse_identifier, Sku};
use crate::listing::{self, Listing};
use crate::money::Money;
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, ApplyError, DomainError, Event};

pub const PRODUCTS: &str = "catalog_products";
/// slug → product id.
pub const PRODUCT_SLUGS: &str = "catalog_product_slugs";
/// sku → product id.
pub const SKU_PRODUCTS: &str = "catalog_sku_products";
/// (category id, product id) → product id.
pub const BY_CATEGORY: &str = "catalog_products_by_category";
pub const CATEGORIES: &str = "catalog_categories";
/// slug → category id.
pub const CATEGORY_SLUGS: &str = "catalog_category_slugs";

/// Most categories the tree may hold (bounds a walk of the whole tree).
pub const MAX_CATEGORIES: usize = 10_000;
pub const MAX_VARIANTS: usize = 100;
pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_IMAGES: usize = 20;

mod model;
pub use model::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Creates or replaces a product (the owning vendor or an admin).
    UpsertProduct { actor: Actor, draft: ProductDraft },
    /// Soft-deletes a product: it stays readable by id, its SKUs stop selling.
    DeleteProduct { actor: Actor, id: CatalogId },
    /// Creates, renames or moves a category (admins). Moving takes the subtree along.
    UpsertCategory {
        id: CatalogId,
        parent_id: Option<CatalogId>,
        slug: String,
        name: String,
        position: i32,
    },
    /// Removes a category that has no children and no products.
    DeleteCategory { id: CatalogId },
    /// Upserts many products at once (bulk import, admins): each is applied
    /// or refused on its own, and the result says which.
    ImportProducts {
        actor: Actor,
        drafts: Vec<ProductDraft>,
    },
}

/// Most products one import command carries.
pub const MAX_IMPORT_BATCH: usize = 500;

/// What happened to one product of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportItem {
    pub id: String,
    /// The product's version when it was written.
    pub version: Option<u64>,
    /// The stable code and message when it was refused.
    pub error: Option<(String, String)>,
}

mod categories;

pub use categories::{ancestors, categories, get_category, subtree};

impl CatalogCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]). The
    /// drafts of an import are checked one by one as they apply, so that a bad
    /// one is refused alone.
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::UpsertProduct { draft, .. } => draft.check(),
            Self::DeleteProduct { id, .. } | Self::DeleteCategory { id } => id.check(),
            Self::UpsertCategory {
                id,
                parent_id,
                slug,
                name,
                ..
            } => {
                id.check()?;
                if let Some(p) = parent_id {
                    p.check()?;
                }
                parse_slug("slug", slug)?;
                check::text("name", name, 200)
            }
            Self::ImportProducts { drafts, .. } => {
                check::at_most("products", drafts.len() as u64, MAX_IMPORT_BATCH as u64)
            }
        }
    }
}

fn key(id: &CatalogId) -> [KeyPart<'_>; 1] {
    [KeyPart::Str(id.as_str())]
}

pub fn get_product(store: &dyn Store, id: &CatalogId) -> Result<Option<Product>, StoreFault> {
    store.get(PRODUCTS, &key(id))
}

pub fn product_by_slug(store: &dyn Store, slug: &str) -> Result<Option<Product>, StoreFault> {
    match store.get::<CatalogId>(PRODUCT_SLUGS, &[KeyPart::Str(slug)])? {
        Some(id) => get_product(store, &id),
        None => Ok(None),
    }
}

pub fn product_of_sku(store: &dyn Store, sku: &Sku) -> Result<Option<Product>, StoreFault> {
    match store.get::<CatalogId>(SKU_PRODUCTS, &[KeyPart::Str(sku.as_str())])? {
        Some(id) => get_product(store, &id),
        None => Ok(None),
    }
}

/// Products in the subtree of `category`, in product-id order, after `after`, at most `limit`.
pub fn products_in_category(
    store: &dyn Store,
    category: &CatalogId,
    after: Option<&CatalogId>,
    limit: usize,
) -> Result<Vec<Product>, StoreFault> {
    let mut ids: Vec<CatalogId> = Vec::new();
    for c in subtree(store, category)? {
        let after_key = after.map(|a| [KeyPart::Str(c.as_str()), KeyPart::Str(a.as_str())]);
        let found: Vec<CatalogId> = store.scan(
            BY_CATEGORY,
            &key(&c),
            after_key.as_ref().map(|k| &k[..]),
            limit,
        )?;
        ids.extend(found);
    }
    ids.sort();
    ids.truncate(limit);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = get_product(store, &id)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Every product in id order after `after`, at most `limit` (for index rebuilds and exports).
pub fn products_after(
    store: &dyn Store,
    after: Option<&CatalogId>,
    limit: usize,
) -> Result<Vec<Product>, StoreFault> {
    let after_key = after.map(key);
    store.scan(PRODUCTS, &[], after_key.as_ref().map(|k| &k[..]), limit)
}

fn variant_name(product: &str, variant: &Variant) -> String {
    if variant.attributes.is_empty() {
        return product.to_string();
    }
    let attrs: Vec<&str> = variant.attributes.values().map(String::as_str).collect();
    let mut name = format!("{product} ({})", attrs.join(", "));
    if name.chars().count() > 200 {
        name = name.chars().take(200).collect();
    }
    name
}

/// Writes the listing of every variant, and stops selling SKUs in `dropped`.
fn write_listings(
    store: &mut dyn StoreMut,
    product: &Product,
    dropped: &[Sku],
    ctx: &ApplyContext,
) -> Result<(), StoreFault> {
    for v in &product.variants {
        let listing = Listing {
            sku: v.sku.clone(),
            name: variant_name(&product.name, v),
            price: v.price.clone(),
            vendor_id: product.vendor_id.clone(),
            active: product.sellable(),
            version: ctx.version,
        };
        store::put(
            store,
            listing::LISTINGS,
            &[KeyPart::Str(v.sku.as_str())],
            &listing,
        )?;
    }
    for sku in dropped {
        if let Some(mut l) = listing::get(store, sku)? {
            l.active = false;
            l.version = ctx.version;
            store::put(store, listing::LISTINGS, &[KeyPart::Str(sku.as_str())], &l)?;
        }
        store.delete_raw(SKU_PRODUCTS, &[KeyPart::Str(sku.as_str())]);
    }
    Ok(())
}

fn upsert_product(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    actor: &Actor,
    draft: &ProductDraft,
) -> Result<Response, ApplyError> {
    draft.check()?;
    let existing = get_product(store, &draft.id)?;
    let owner_ok = |vendor: &Option<String>| match vendor {
        Some(v) => actor.may_manage_vendor(v),
        None => actor.is_admin(),
    };
    if !owner_ok(&draft.vendor_id) || existing.as_ref().is_some_and(|p| !owner_ok(&p.vendor_id)) {
        return Err(DomainError::Forbidden.into());
    }
    if let Some(holder) = store.get::<CatalogId>(PRODUCT_SLUGS, &[KeyPart::Str(&draft.slug)])? {
        if holder != draft.id {
            return Err(DomainError::SlugTaken(draft.slug.clone()).into());
        }
    }
    for v in &draft.variants {
        if let Some(holder) =
            store.get::<CatalogId>(SKU_PRODUCTS, &[KeyPart::Str(v.sku.as_str())])?
        {
            if holder != draft.id {
                return Err(DomainError::SkuTaken(v.sku.as_str().to_string()).into());
            }
        } else if let Some(l) = listing::get(store, &v.sku)? {
            // A SKU listed on its own (not by a product) belongs to its vendor.
            if !owner_ok(&l.vendor_id) {
                return Err(DomainError::SkuTaken(v.sku.as_str().to_string()).into());
            }
        }
    }
    if let Some(c) = &draft.category_id {
        if get_category(store, c)?.is_none() {
            return Err(DomainError::CategoryNotFound(c.as_str().to_string()).into());
        }
    }
    // Images must have been uploaded (registered) first.
    for image in &draft.images {
        let known = match crate::media::ContentHash::parse(&image.hash) {
            Ok(hash) => crate::media::get(store, &hash)?.is_some(),
            Err(_) => false,
        };
        if !known {
            return Err(DomainError::MediaNotFound(image.hash.clone()).into());
        }
    }
    // Unlink what the previous version had.
    let mut dropped = Vec::new();
    if let Some(old) = &existing {
        if old.slug != draft.slug {
            store.delete_raw(PRODUCT_SLUGS, &[KeyPart::Str(&old.slug)]);
        }
        if let Some(c) = &old.category_id {
            store.delete_raw(
                BY_CATEGORY,
                &[KeyPart::Str(c.as_str()), KeyPart::Str(old.id.as_str())],
            );
        }
        dropped = old
            .variants
            .iter()
            .filter(|v| !draft.variants.iter().any(|n| n.sku == v.sku))
            .map(|v| v.sku.clone())
            .collect();
    }
    let product = Product {
        id: draft.id.clone(),
        slug: draft.slug.clone(),
        name: draft.name.clone(),
        description: draft.description.clone(),
        category_id: draft.category_id.clone(),
        attributes: draft.attributes.clone(),
        images: draft.images.clone(),
        vendor_id: draft.vendor_id.clone(),
        active: draft.active,
        deleted_ms: None,
        variants: draft.variants.clone(),
        created_ms: existing.as_ref().map_or(ctx.now_ms, |p| p.created_ms),
        updated_ms: ctx.now_ms,
        version: ctx.version,
    };
    store::put(store, PRODUCTS, &key(&product.id), &product)?;
    store::put(
        store,
        PRODUCT_SLUGS,
        &[KeyPart::Str(&product.slug)],
        &product.id,
    )?;
    for v in &product.variants {
        store::put(
            store,
            SKU_PRODUCTS,
            &[KeyPart::Str(v.sku.as_str())],
            &product.id,
        )?;
    }
    if let Some(c) = &product.category_id {
        store::put(
            store,
            BY_CATEGORY,
            &[KeyPart::Str(c.as_str()), KeyPart::Str(product.id.as_str())],
            &product.id,
        )?;
    }
    write_listings(store, &product, &dropped, ctx)?;
    store.emit(Event::ProductChanged(Box::new(product.clone())));
    Ok(Response::Product(Box::new(product)))
}

pub fn apply(
    command: &CatalogCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        CatalogCommand::UpsertProduct { actor, draft } => upsert_product(store, ctx, actor, draft),
        CatalogCommand::ImportProducts { actor, drafts } => {
            if !actor.is_admin() {
                return Err(DomainError::Forbidden.into());
            }
            let mut items = Vec::with_capacity(drafts.len());
            for draft in drafts {
                // A refused product writes nothing (checks come before writes).
                let item = match upsert_product(store, ctx, actor, draft) {
                    Ok(_) => ImportItem {
                        id: draft.id.as_str().to_string(),
                        version: Some(ctx.version),
                        error: None,
                    },
                    Err(ApplyError::Refused(e)) => ImportItem {
                        id: draft.id.as_str().to_string(),
                        version: None,
                        error: Some((e.code().to_string(), e.to_string())),
                    },
                    Err(fault @ ApplyError::Fault(_)) => return Err(fault),
                };
                items.push(item);
            }
            Ok(Response::Imported(items))
        }
        CatalogCommand::DeleteProduct { actor, id } => {
            let Some(mut product) = get_product(store, id)? else {
                return Err(DomainError::ProductNotFound(id.as_str().to_string()).into());
            };
            let allowed = match &product.vendor_id {
                Some(v) => actor.may_manage_vendor(v),
                None => actor.is_admin(),
            };
            if !allowed {
                return Err(DomainError::Forbidden.into());
            }
            if product.deleted_ms.is_some() {
                return Ok(Response::Product(Box::new(product)));
            }
            product.deleted_ms = Some(ctx.now_ms);
            product.updated_ms = ctx.now_ms;
            product.version = ctx.version;
            store::put(store, PRODUCTS, &key(&product.id), &product)?;
            write_listings(store, &product, &[], ctx)?;
            store.emit(Event::ProductChanged(Box::new(product.clone())));
            Ok(Response::Product(Box::new(product)))
        }
        CatalogCommand::UpsertCategory {
            id,
            parent_id,
            slug,
            name,
            position,
        } => categories::upsert(store, ctx, id, parent_id.as_ref(), slug, name, *position),
        CatalogCommand::DeleteCategory { id } => categories::delete(store, id),
    }
}

#[cfg(test)]
mod tests;
