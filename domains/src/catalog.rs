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
use crate::command::{ApplyContext, Outcome, Response};
use crate::inventory::{parse_identifier, Sku};
use crate::listing::{self, Listing};
use crate::money::Money;
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, DomainError, Event};

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

/// A product or category id: 1 to 64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CatalogId(String);

impl CatalogId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        parse_identifier(field, raw, b".").map(Self)
    }
    /// What [`CatalogId::parse`] checks, for a value that did not come through it.
    pub fn check(&self) -> Result<(), DomainError> {
        Self::parse("id", &self.0).map(|_| ())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A slug: 1 to 100 characters of lower-case letters, digits and single dashes.
pub fn parse_slug(field: &str, raw: &str) -> Result<String, DomainError> {
    let ok = !raw.is_empty()
        && raw.len() <= 100
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-')
        && !raw.contains("--");
    if ok {
        Ok(raw.to_string())
    } else {
        Err(DomainError::validation(
            field,
            "must be 1 to 100 characters of a-z 0-9 and single dashes",
        ))
    }
}

/// A slug made from a name: "Blue T-Shirt (M)" → "blue-t-shirt-m".
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 100 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "product".to_string()
    } else {
        slug
    }
}

/// Attribute names and values (size, colour...): at most [`MAX_ATTRIBUTES`],
/// names 1–50 characters, values 1–200.
pub fn parse_attributes(
    field: &str,
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, DomainError> {
    check_attributes(field, &raw)?;
    Ok(raw)
}

fn check_attributes(field: &str, raw: &BTreeMap<String, String>) -> Result<(), DomainError> {
    if raw.len() > MAX_ATTRIBUTES {
        return Err(DomainError::validation(
            field,
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    for (k, v) in raw {
        if k.trim().is_empty() || k.chars().count() > 50 {
            return Err(DomainError::validation(
                field,
                "names must be 1 to 50 characters",
            ));
        }
        if v.trim().is_empty() || v.chars().count() > 200 {
            return Err(DomainError::validation(
                field,
                "values must be 1 to 200 characters",
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// SHA-256 (hex) of the uploaded image.
    pub hash: String,
    pub alt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub sku: Sku,
    pub attributes: BTreeMap<String, String>,
    pub price: Money,
    pub weight_grams: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: CatalogId,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub category_id: Option<CatalogId>,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<ImageRef>,
    pub vendor_id: Option<String>,
    pub active: bool,
    /// Set when soft-deleted.
    pub deleted_ms: Option<u64>,
    pub variants: Vec<Variant>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub version: u64,
}

impl Product {
    /// For sale: active and not deleted.
    pub fn sellable(&self) -> bool {
        self.active && self.deleted_ms.is_none()
    }

    /// The lowest variant price.
    pub fn min_price(&self) -> Option<&Money> {
        self.variants
            .iter()
            .map(|v| &v.price)
            .min_by_key(|m| m.amount)
    }
}

/// What a client sends for a product; validated in [`ProductDraft::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDraft {
    pub id: CatalogId,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub category_id: Option<CatalogId>,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<ImageRef>,
    pub vendor_id: Option<String>,
    pub active: bool,
    pub variants: Vec<Variant>,
}

impl ProductDraft {
    /// Checks what can be checked without the state.
    pub fn validate(self) -> Result<Self, DomainError> {
        let name = listing::parse_name("name", &self.name)?;
        self.check()?;
        Ok(Self { name, ..self })
    }

    /// Everything [`ProductDraft::validate`] checks and what the API parsed
    /// before (ids, SKUs, prices, attributes), for a draft in a command.
    pub fn check(&self) -> Result<(), DomainError> {
        self.id.check()?;
        check::text("name", &self.name, 200)?;
        if let Some(c) = &self.category_id {
            c.check()?;
        }
        if let Some(v) = &self.vendor_id {
            check::opaque("vendor_id", v)?;
        }
        check_attributes("attributes", &self.attributes)?;
        for v in &self.variants {
            v.sku.check()?;
            check_attributes("variants.attributes", &v.attributes)?;
            v.price.check("variants.price")?;
        }
        if self.description.chars().count() > 20_000 {
            return Err(DomainError::validation(
                "description",
                "must be at most 20000 characters",
            ));
        }
        parse_slug("slug", &self.slug)?;
        if self.variants.is_empty() || self.variants.len() > MAX_VARIANTS {
            return Err(DomainError::validation(
                "variants",
                format!("a product has 1 to {MAX_VARIANTS} variants"),
            ));
        }
        let skus: BTreeSet<&Sku> = self.variants.iter().map(|v| &v.sku).collect();
        if skus.len() != self.variants.len() {
            return Err(DomainError::validation("variants", "SKUs must be distinct"));
        }
        if self.images.len() > MAX_IMAGES {
            return Err(DomainError::validation(
                "images",
                format!("at most {MAX_IMAGES} images"),
            ));
        }
        for image in &self.images {
            let ok = image.hash.len() == 64
                && image
                    .hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok || image.alt.chars().count() > 300 {
                return Err(DomainError::validation(
                    "images",
                    "hash must be a lower-case hex SHA-256 and alt at most 300 characters",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: CatalogId,
    pub parent_id: Option<CatalogId>,
    pub slug: String,
    pub name: String,
    /// Order among siblings (lower first).
    pub position: i32,
    pub version: u64,
}

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

macro_rules! domain {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

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

pub fn get_category(store: &dyn Store, id: &CatalogId) -> Result<Option<Category>, StoreFault> {
    store.get(CATEGORIES, &key(id))
}

/// Every category (at most [`MAX_CATEGORIES`]).
pub fn categories(store: &dyn Store) -> Result<Vec<Category>, StoreFault> {
    store.scan(CATEGORIES, &[], None, MAX_CATEGORIES)
}

/// `root` and every category below it.
pub fn subtree(store: &dyn Store, root: &CatalogId) -> Result<Vec<CatalogId>, StoreFault> {
    let all = categories(store)?;
    let mut children: BTreeMap<&CatalogId, Vec<&CatalogId>> = BTreeMap::new();
    for c in &all {
        if let Some(p) = &c.parent_id {
            children.entry(p).or_default().push(&c.id);
        }
    }
    let mut out = vec![root.clone()];
    let mut seen = BTreeSet::from([root]);
    let mut i = 0usize;
    while let Some(current) = out.get(i) {
        if let Some(kids) = children.get(current) {
            // A stored cycle (apply never makes one) must not loop for ever.
            let fresh: Vec<CatalogId> = kids
                .iter()
                .filter(|k| seen.insert(**k))
                .map(|k| (*k).clone())
                .collect();
            out.extend(fresh);
        }
        i = i.saturating_add(1);
    }
    Ok(out)
}

/// The categories from `id` up to its root (first `id` itself).
pub fn ancestors(store: &dyn Store, id: &CatalogId) -> Result<Vec<Category>, StoreFault> {
    let mut out = Vec::new();
    let mut next = Some(id.clone());
    while let Some(current) = next {
        if out.len() > MAX_CATEGORIES {
            break;
        }
        let Some(c) = get_category(store, &current)? else {
            break;
        };
        next = c.parent_id.clone();
        out.push(c);
    }
    Ok(out)
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
) -> Result<Outcome, StoreFault> {
    if let Err(e) = draft.check() {
        return Ok(Err(e));
    }
    let existing = get_product(store, &draft.id)?;
    let owner_ok = |vendor: &Option<String>| match vendor {
        Some(v) => actor.may_manage_vendor(v),
        None => actor.is_admin(),
    };
    if !owner_ok(&draft.vendor_id) || existing.as_ref().is_some_and(|p| !owner_ok(&p.vendor_id)) {
        return Ok(Err(DomainError::Forbidden));
    }
    if let Some(holder) = store.get::<CatalogId>(PRODUCT_SLUGS, &[KeyPart::Str(&draft.slug)])? {
        if holder != draft.id {
            return Ok(Err(DomainError::SlugTaken(draft.slug.clone())));
        }
    }
    for v in &draft.variants {
        if let Some(holder) =
            store.get::<CatalogId>(SKU_PRODUCTS, &[KeyPart::Str(v.sku.as_str())])?
        {
            if holder != draft.id {
                return Ok(Err(DomainError::SkuTaken(v.sku.as_str().to_string())));
            }
        } else if let Some(l) = listing::get(store, &v.sku)? {
            // A SKU listed on its own (not by a product) belongs to its vendor.
            if !owner_ok(&l.vendor_id) {
                return Ok(Err(DomainError::SkuTaken(v.sku.as_str().to_string())));
            }
        }
    }
    if let Some(c) = &draft.category_id {
        if get_category(store, c)?.is_none() {
            return Ok(Err(DomainError::CategoryNotFound(c.as_str().to_string())));
        }
    }
    // Images must have been uploaded (registered) first.
    for image in &draft.images {
        let known = match crate::media::ContentHash::parse(&image.hash) {
            Ok(hash) => crate::media::get(store, &hash)?.is_some(),
            Err(_) => false,
        };
        if !known {
            return Ok(Err(DomainError::MediaNotFound(image.hash.clone())));
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
    Ok(Ok(Response::Product(Box::new(product))))
}

pub fn apply(
    command: &CatalogCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Outcome, StoreFault> {
    match command {
        CatalogCommand::UpsertProduct { actor, draft } => upsert_product(store, ctx, actor, draft),
        CatalogCommand::ImportProducts { actor, drafts } => {
            if !actor.is_admin() {
                return Ok(Err(DomainError::Forbidden));
            }
            let mut items = Vec::with_capacity(drafts.len());
            for draft in drafts {
                // A refused product writes nothing (checks come before writes).
                let item = match upsert_product(store, ctx, actor, draft)? {
                    Ok(_) => ImportItem {
                        id: draft.id.as_str().to_string(),
                        version: Some(ctx.version),
                        error: None,
                    },
                    Err(e) => ImportItem {
                        id: draft.id.as_str().to_string(),
                        version: None,
                        error: Some((e.code().to_string(), e.to_string())),
                    },
                };
                items.push(item);
            }
            Ok(Ok(Response::Imported(items)))
        }
        CatalogCommand::DeleteProduct { actor, id } => {
            let Some(mut product) = get_product(store, id)? else {
                return Ok(Err(DomainError::ProductNotFound(id.as_str().to_string())));
            };
            let allowed = match &product.vendor_id {
                Some(v) => actor.may_manage_vendor(v),
                None => actor.is_admin(),
            };
            if !allowed {
                return Ok(Err(DomainError::Forbidden));
            }
            if product.deleted_ms.is_some() {
                return Ok(Ok(Response::Product(Box::new(product))));
            }
            product.deleted_ms = Some(ctx.now_ms);
            product.updated_ms = ctx.now_ms;
            product.version = ctx.version;
            store::put(store, PRODUCTS, &key(&product.id), &product)?;
            write_listings(store, &product, &[], ctx)?;
            store.emit(Event::ProductChanged(Box::new(product.clone())));
            Ok(Ok(Response::Product(Box::new(product))))
        }
        CatalogCommand::UpsertCategory {
            id,
            parent_id,
            slug,
            name,
            position,
        } => {
            if let Some(holder) = store.get::<CatalogId>(CATEGORY_SLUGS, &[KeyPart::Str(slug)])? {
                if &holder != id {
                    return Ok(Err(DomainError::SlugTaken(slug.clone())));
                }
            }
            if let Some(parent) = parent_id {
                if get_category(store, parent)?.is_none() {
                    return Ok(Err(DomainError::CategoryNotFound(
                        parent.as_str().to_string(),
                    )));
                }
                // Moving under its own subtree would make a cycle.
                if ancestors(store, parent)?.iter().any(|c| &c.id == id) {
                    return Ok(Err(DomainError::validation(
                        "parent_id",
                        "a category cannot move below itself",
                    )));
                }
            }
            let existing = get_category(store, id)?;
            if existing.is_none() && categories(store)?.len() >= MAX_CATEGORIES {
                return Ok(Err(DomainError::validation(
                    "id",
                    format!("at most {MAX_CATEGORIES} categories"),
                )));
            }
            if let Some(old) = &existing {
                if &old.slug != slug {
                    store.delete_raw(CATEGORY_SLUGS, &[KeyPart::Str(&old.slug)]);
                }
            }
            let category = Category {
                id: id.clone(),
                parent_id: parent_id.clone(),
                slug: slug.clone(),
                name: name.clone(),
                position: *position,
                version: ctx.version,
            };
            store::put(store, CATEGORIES, &key(id), &category)?;
            store::put(store, CATEGORY_SLUGS, &[KeyPart::Str(slug)], id)?;
            store.emit(Event::CategoryChanged(category.clone()));
            Ok(Ok(Response::Category(category)))
        }
        CatalogCommand::DeleteCategory { id } => {
            let category = domain!(Ok::<_, StoreFault>(
                get_category(store, id)?
                    .ok_or_else(|| DomainError::CategoryNotFound(id.as_str().to_string()))
            ));
            let has_children = categories(store)?
                .iter()
                .any(|c| c.parent_id.as_ref() == Some(id));
            let has_products = !store.scan_raw(BY_CATEGORY, &key(id), None, 1)?.is_empty();
            if has_children || has_products {
                return Ok(Err(DomainError::CategoryNotEmpty(id.as_str().to_string())));
            }
            store.delete_raw(CATEGORIES, &key(id));
            store.delete_raw(CATEGORY_SLUGS, &[KeyPart::Str(&category.slug)]);
            Ok(Ok(Response::Category(category)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Commands apply as the state machine applies them (idempotency, savepoint).
    use crate::store::memory::{apply, MemoryStore};
    use crate::Role;

    fn ctx(i: u64) -> ApplyContext {
        ApplyContext {
            log_index: i,
            version: i,
            now_ms: i * 10,
        }
    }
    fn actor(id: &str, role: Role) -> Actor {
        Actor {
            user_id: id.into(),
            role,
        }
    }
    fn id(raw: &str) -> CatalogId {
        CatalogId::parse("id", raw).unwrap()
    }
    fn draft(pid: &str, slug: &str, vendor: Option<&str>, skus: &[&str]) -> ProductDraft {
        ProductDraft {
            id: id(pid),
            slug: slug.into(),
            name: format!("Product {pid}"),
            description: "Soft cotton".into(),
            category_id: None,
            attributes: BTreeMap::new(),
            images: vec![],
            vendor_id: vendor.map(str::to_string),
            active: true,
            variants: skus
                .iter()
                .map(|s| Variant {
                    sku: Sku::parse(s).unwrap(),
                    attributes: BTreeMap::from([("size".to_string(), s.to_string())]),
                    price: Money::parse("price", 500, "EUR").unwrap(),
                    weight_grams: 200,
                })
                .collect(),
        }
        .validate()
        .unwrap()
    }
    fn upsert(s: &mut MemoryStore, who: &Actor, d: ProductDraft, i: u64) -> Outcome {
        let command = CatalogCommand::UpsertProduct {
            actor: who.clone(),
            draft: d,
        };
        apply(&command, &ctx(i), s).unwrap()
    }

    #[test]
    fn vendors_own_their_products_and_skus_and_slugs_are_unique() {
        let mut s = MemoryStore::default();
        let v1 = actor("v1", Role::Vendor);
        let v2 = actor("v2", Role::Vendor);
        upsert(
            &mut s,
            &v1,
            draft("p1", "tee", Some("v1"), &["T-S", "T-M"]),
            1,
        )
        .unwrap();
        let l = listing::get(&s, &Sku::parse("T-M").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.name.as_str(), l.vendor_id.as_deref(), l.active),
            ("Product p1 (T-M)", Some("v1"), true)
        );
        // Another vendor can neither edit p1, claim its slug or SKUs, nor sell as v1.
        let out = upsert(&mut s, &v2, draft("p1", "tee", Some("v2"), &["T-S"]), 2);
        assert_eq!(out.unwrap_err(), DomainError::Forbidden);
        let out = upsert(&mut s, &v2, draft("p2", "tee", Some("v2"), &["X"]), 3);
        assert_eq!(out.unwrap_err().code(), "slug_taken");
        let out = upsert(&mut s, &v2, draft("p2", "tee-2", Some("v2"), &["T-M"]), 4);
        assert_eq!(out.unwrap_err().code(), "sku_taken");
        let out = upsert(&mut s, &v2, draft("p2", "tee-2", Some("v1"), &["Y"]), 5);
        assert_eq!(out.unwrap_err(), DomainError::Forbidden);
        // Dropping a variant stops selling its SKU and frees it.
        upsert(
            &mut s,
            &v1,
            draft("p1", "tee-shirt", Some("v1"), &["T-S"]),
            6,
        )
        .unwrap();
        assert!(
            !listing::get(&s, &Sku::parse("T-M").unwrap())
                .unwrap()
                .unwrap()
                .active
        );
        assert!(product_by_slug(&s, "tee").unwrap().is_none());
        assert_eq!(
            product_by_slug(&s, "tee-shirt").unwrap().unwrap().id,
            id("p1")
        );
        // The freed slug is anyone's; the SKU stays its vendor's.
        let out = upsert(&mut s, &v2, draft("p2", "tee", Some("v2"), &["T-M"]), 7);
        assert_eq!(out.unwrap_err().code(), "sku_taken");
        upsert(&mut s, &v2, draft("p2", "tee", Some("v2"), &["V2-M"]), 7).unwrap();
        upsert(&mut s, &v1, draft("p3", "tee-3", Some("v1"), &["T-M"]), 7).unwrap();
        // Soft delete keeps the record and stops selling.
        let delete = CatalogCommand::DeleteProduct {
            actor: actor("root", Role::Admin),
            id: id("p1"),
        };
        apply(&delete, &ctx(8), &mut s).unwrap().unwrap();
        let p1 = get_product(&s, &id("p1")).unwrap().unwrap();
        assert_eq!(p1.deleted_ms, Some(80));
        assert!(
            !listing::get(&s, &Sku::parse("T-S").unwrap())
                .unwrap()
                .unwrap()
                .active
        );
    }

    #[test]
    fn category_tree_moves_subtrees_and_refuses_cycles() {
        let mut s = MemoryStore::default();
        let cat = |cid: &str, parent: Option<&str>| CatalogCommand::UpsertCategory {
            id: id(cid),
            parent_id: parent.map(id),
            slug: cid.to_lowercase(),
            name: cid.into(),
            position: 0,
        };
        for (i, (c, p)) in [
            ("men", None),
            ("shirts", Some("men")),
            ("tees", Some("shirts")),
            ("women", None),
        ]
        .into_iter()
        .enumerate()
        {
            apply(&cat(c, p), &ctx(i as u64 + 1), &mut s)
                .unwrap()
                .unwrap();
        }
        let mut d = draft("p1", "tee", None, &["A"]);
        d.category_id = Some(id("tees"));
        upsert(&mut s, &actor("root", Role::Admin), d, 10).unwrap();
        let in_men = products_in_category(&s, &id("men"), None, 10).unwrap();
        assert_eq!(in_men.len(), 1, "descendants count");
        let err = apply(&cat("men", Some("tees")), &ctx(11), &mut s).unwrap();
        assert_eq!(err.unwrap_err().code(), "validation_failed");
        apply(&cat("shirts", Some("women")), &ctx(12), &mut s)
            .unwrap()
            .unwrap();
        assert!(products_in_category(&s, &id("men"), None, 10)
            .unwrap()
            .is_empty());
        assert_eq!(
            products_in_category(&s, &id("women"), None, 10)
                .unwrap()
                .len(),
            1
        );
        let names: Vec<String> = ancestors(&s, &id("tees"))
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["tees", "shirts", "women"]);
        let err = apply(
            &CatalogCommand::DeleteCategory { id: id("tees") },
            &ctx(13),
            &mut s,
        )
        .unwrap();
        assert_eq!(err.unwrap_err().code(), "category_not_empty");
    }

    #[test]
    fn slugs_and_drafts_are_checked() {
        assert_eq!(slugify("Blue T-Shirt (M)"), "blue-t-shirt-m");
        assert_eq!(slugify("!!!"), "product");
        assert!(parse_slug("slug", "a--b").is_err());
        assert!(parse_slug("slug", "Ab").is_err());
        let mut d = draft("p1", "tee", None, &["A"]);
        d.variants.push(d.variants[0].clone());
        assert_eq!(d.validate().unwrap_err().code(), "validation_failed");
    }
}
