//! The category tree: categories by id and slug, their subtrees and
//! ancestors, and the commands that create, move and delete them (admins).

use super::*;

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

/// Creates, renames or moves a category; moving takes the subtree along.
pub(super) fn upsert(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    id: &CatalogId,
    parent_id: Option<&CatalogId>,
    slug: &str,
    name: &str,
    position: i32,
) -> Result<Response, ApplyError> {
    if let Some(holder) = store.get::<CatalogId>(CATEGORY_SLUGS, &[KeyPart::Str(slug)])? {
        if &holder != id {
            return Err(DomainError::SlugTaken(slug.to_string()).into());
        }
    }
    if let Some(parent) = parent_id {
        if get_category(store, parent)?.is_none() {
            return Err(DomainError::CategoryNotFound(parent.as_str().to_string()).into());
        }
        // Moving under its own subtree would make a cycle.
        if ancestors(store, parent)?.iter().any(|c| &c.id == id) {
            return Err(DomainError::validation(
                "parent_id",
                "a category cannot move below itself",
            )
            .into());
        }
    }
    let existing = get_category(store, id)?;
    if existing.is_none() && categories(store)?.len() >= MAX_CATEGORIES {
        return Err(
            DomainError::validation("id", format!("at most {MAX_CATEGORIES} categories")).into(),
        );
    }
    if let Some(old) = &existing {
        if old.slug != slug {
            store.delete_raw(CATEGORY_SLUGS, &[KeyPart::Str(&old.slug)]);
        }
    }
    let category = Category {
        id: id.clone(),
        parent_id: parent_id.cloned(),
        slug: slug.to_string(),
        name: name.to_string(),
        position,
        version: ctx.version,
    };
    store::put(store, CATEGORIES, &key(id), &category)?;
    store::put(store, CATEGORY_SLUGS, &[KeyPart::Str(slug)], id)?;
    store.emit(Event::CategoryChanged(category.clone()));
    Ok(Response::Category(category))
}

/// Removes a category that has no children and no products.
pub(super) fn delete(store: &mut dyn StoreMut, id: &CatalogId) -> Result<Response, ApplyError> {
    let category = get_category(store, id)?
        .ok_or_else(|| DomainError::CategoryNotFound(id.as_str().to_string()))?;
    let has_children = categories(store)?
        .iter()
        .any(|c| c.parent_id.as_ref() == Some(id));
    let has_products = !store.scan_raw(BY_CATEGORY, &key(id), None, 1)?.is_empty();
    if has_children || has_products {
        return Err(DomainError::CategoryNotEmpty(id.as_str().to_string()).into());
    }
    store.delete_raw(CATEGORIES, &key(id));
    store.delete_raw(CATEGORY_SLUGS, &[KeyPart::Str(&category.slug)]);
    Ok(Response::Category(category))
}
