use super::*;
// Commands apply as the state machine applies them (idempotency, savepoint).
use crate::store::memory::{apply, MemoryStore};
use crate::{Outcome, Role};

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
