//! What the catalogue stores: products with their variants, attributes and
//! images, categories, and the parsing of ids, slugs and attributes.

use super::*;

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

pub(super) fn check_attributes(
    field: &str,
    raw: &BTreeMap<String, String>,
) -> Result<(), DomainError> {
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
