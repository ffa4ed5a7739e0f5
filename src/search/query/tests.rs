use super::*;
use crate::search::{register_tokenizers, TEXT_TOKENIZER};

fn analyzer() -> TextAnalyzer {
    let index = tantivy::Index::create_in_ram(super::super::build_schema().0);
    register_tokenizers(&index);
    index.tokenizers().get(TEXT_TOKENIZER).unwrap()
}

#[test]
fn words_are_folded_deduplicated_and_tolerate_typos_by_length() {
    let w = words(&mut analyzer(), "Café  CAFÉ t-shirt Sweatshirts");
    let texts: Vec<&str> = w.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(texts, ["cafe", "t", "shirt", "sweatshirts"]);
    let distances: Vec<u8> = w.iter().map(|w| w.distance).collect();
    assert_eq!(distances, [1, 0, 1, 2]);
    assert!(w[3].prefix, "the last word may still be typed");
    assert!(!w[0].prefix);
    let w = words(&mut analyzer(), "red shirt ");
    assert!(!w[1].prefix, "a trailing space ends the word");
    assert!(words(&mut analyzer(), " -- ").is_empty());
}

#[test]
fn cursors_round_trip_and_reject_garbage() {
    let c = Cursor {
        primary: u64::MAX - 1990,
        tiebreak: 42,
    };
    assert_eq!(Cursor::parse(&c.encode()), Some(c));
    assert_eq!(Cursor::parse("zz.1"), None);
    assert_eq!(Cursor::parse("12"), None);
}

#[test]
fn sort_keys_order_every_sort_descending() {
    // Cheaper first under price_asc: a larger key.
    assert!(primary_key(SortBy::PriceAsc, 0.0, 100) > primary_key(SortBy::PriceAsc, 0.0, 200));
    assert!(primary_key(SortBy::PriceDesc, 0.0, 200) > primary_key(SortBy::PriceDesc, 0.0, 100));
    assert!(primary_key(SortBy::Relevance, 2.5, 0) > primary_key(SortBy::Relevance, 0.7, 0));
    assert!(primary_key(SortBy::Relevance, 0.0, 0) < primary_key(SortBy::Relevance, 1e-6, 0));
    assert_eq!(SortBy::parse("popularity"), Some(SortBy::Popularity));
    assert_eq!(SortBy::parse("cheapest"), None);
}

#[test]
fn filters_and_text_make_one_boolean_query() {
    let (_, f) = super::super::build_schema();
    let mut req = SearchRequest::browse(10);
    req.category = Some(vec!["men".into(), "shirts".into()]);
    req.min_price = Some(1000);
    req.attributes = vec![
        ("size".into(), "M".into()),
        ("size".into(), "L".into()),
        ("colour".into(), "red".into()),
    ];
    req.vendors = vec!["v1".into()];
    req.in_stock = true;
    let w = words(&mut analyzer(), "red shrit");
    let q = build_query(&f, &req, &w, Some("red shrit"));
    let rendered = format!("{q:?}");
    // Visibility, two words, the exact-name bonus, the phrase bonus, then six filters
    // (category, price, one per attribute name, vendor, stock).
    let b = q.downcast_ref::<BooleanQuery>().unwrap();
    assert_eq!(b.clauses().len(), 1 + 2 + 2 + 6, "{rendered}");
    assert!(
        rendered.contains("shirts"),
        "category filter on the leaf id"
    );
    assert!(rendered.contains("Fuzzy"), "typo tolerance: {rendered}");
    let musts = b
        .clauses()
        .iter()
        .filter(|(o, _)| *o == Occur::Must)
        .count();
    assert_eq!(musts, 1 + 2 + 6);
    // No text: everything visible.
    let q = build_query(&f, &SearchRequest::browse(10), &[], None);
    assert_eq!(q.downcast_ref::<BooleanQuery>().unwrap().clauses().len(), 2);
}

fn product(
    id: &str,
    name: &str,
    price: u64,
    sizes: &[&str],
) -> ecommerce_domains::catalog::Product {
    use ecommerce_domains::catalog::{CatalogId, Product, Variant};
    use ecommerce_domains::inventory::Sku;
    use ecommerce_domains::money::Money;
    Product {
        id: CatalogId::parse("id", id).unwrap(),
        slug: id.into(),
        name: name.into(),
        description: format!("All about the {name}"),
        category_id: None,
        attributes: Default::default(),
        images: vec![],
        vendor_id: Some("v1".into()),
        active: true,
        deleted_ms: None,
        variants: sizes
            .iter()
            .map(|s| Variant {
                sku: Sku::parse(&format!("{id}-{s}")).unwrap(),
                attributes: [("size".to_string(), s.to_string())].into(),
                price: Money::parse("price", price as i64, "EUR").unwrap(),
                weight_grams: 1,
            })
            .collect(),
        created_ms: price,
        updated_ms: 0,
        version: 1,
    }
}

#[test]
fn an_index_answers_text_filters_facets_and_pages() {
    use crate::search::indexer::Derived;
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(dir.path()).unwrap();
    let catalogue = [
        (
            "p1",
            "Red Shirt",
            1500,
            &["S", "M"][..],
            vec!["men", "shirts"],
        ),
        (
            "p2",
            "Classic Shirt Dress in Red",
            5500,
            &["M"][..],
            vec!["women"],
        ),
        (
            "p3",
            "Blue Oxford Shirt",
            4500,
            &["M", "L"][..],
            vec!["men", "shirts"],
        ),
        ("p4", "Ceramic Mug", 1200, &["One"][..], vec!["home"]),
    ];
    let mut hidden = product("p5", "Red Shirt Sold Out", 100, &["M"]);
    hidden.active = false;
    let docs = catalogue
        .iter()
        .map(|(id, name, price, sizes, path)| {
            let derived = Derived {
                category_path: path.iter().map(|s| s.to_string()).collect(),
                in_stock: *id == "p3",
                popularity: 0,
            };
            (product(id, name, *price, sizes), derived)
        })
        .chain([(hidden, Derived::default())]);
    assert_eq!(index.load(docs).unwrap(), 5);

    let mut req = SearchRequest::browse(10);
    req.text = Some("red shirt".into());
    req.sort = SortBy::Relevance;
    let r = index.search(&req).unwrap();
    let ids: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"], "exact name first; inactive never");
    let (name, _) = r.highlighter.unwrap().highlight("Red Shirt", "");
    assert_eq!(name.as_deref(), Some("<em>Red</em> <em>Shirt</em>"));

    req.text = Some("oxfrod".into());
    assert_eq!(index.search(&req).unwrap().hits[0].id, "p3", "typo");

    let mut req = SearchRequest::browse(10);
    req.category = Some(vec!["men".into()]);
    let r = index.search(&req).unwrap();
    assert_eq!(r.total, 2);
    let price_total: u64 = r.facets.price.iter().map(|c| c.count).sum();
    assert_eq!(price_total, 2);
    assert_eq!(
        r.facets.category,
        [FacetCount {
            value: "shirts".into(),
            count: 2
        }]
    );
    assert_eq!(
        r.facets.attributes["size"][0],
        FacetCount {
            value: "M".into(),
            count: 2
        }
    );
    req.category = None;
    req.in_stock = true;
    assert_eq!(index.search(&req).unwrap().total, 1);

    // Pages of one, cheapest first, each product once.
    let mut req = SearchRequest::browse(1);
    req.sort = SortBy::PriceAsc;
    let mut seen = vec![];
    loop {
        let r = index.search(&req).unwrap();
        seen.extend(r.hits.iter().map(|h| h.id.clone()));
        match r.next_after {
            Some(next) => req.after = Cursor::parse(&next),
            None => break,
        }
    }
    assert_eq!(seen, ["p4", "p1", "p3", "p2"]);

    let s = index.suggest("red sh", 5).unwrap();
    assert_eq!(s[0].name, "Red Shirt");
    assert!(index.suggest("mu", 5).unwrap().iter().any(|s| s.id == "p4"));
}
