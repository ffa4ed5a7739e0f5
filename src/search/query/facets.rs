//! Facet counts of a search: the children of the filtered category, price
//! buckets, vendors and attribute values, each ordered for display.

use std::collections::BTreeMap;

use tantivy::collector::FacetCounts;
use tantivy::schema::Facet;

use super::ATTR_SEP;
use crate::search::PRICE_BUCKETS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    /// Children of the filtered category (or the top level), each counting
    /// the products in its whole subtree.
    pub category: Vec<FacetCount>,
    /// Buckets of the lowest variant price, in bucket order.
    pub price: Vec<FacetCount>,
    pub vendor: Vec<FacetCount>,
    pub attributes: BTreeMap<String, Vec<FacetCount>>,
}

fn children(counts: &FacetCounts, parent: &Facet) -> Vec<(String, u64)> {
    counts
        .get(parent.clone())
        .filter_map(|(facet, count)| {
            let last = facet.to_path().last()?.to_string();
            Some((last, count))
        })
        .collect()
}

fn by_count(mut v: Vec<FacetCount>) -> Vec<FacetCount> {
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v
}

pub(super) fn facets_of(counts: &FacetCounts, category_parent: &Facet) -> Facets {
    let category = children(counts, category_parent)
        .into_iter()
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    let price_counts: BTreeMap<String, u64> = children(counts, &Facet::from_path(["price"]))
        .into_iter()
        .collect();
    let price = PRICE_BUCKETS
        .iter()
        .filter_map(|(from, _)| {
            let value = crate::search::price_bucket(*from);
            let count = *price_counts.get(&value)?;
            Some(FacetCount { value, count })
        })
        .collect();
    let vendor = children(counts, &Facet::from_path(["vendor"]))
        .into_iter()
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    let mut attributes: BTreeMap<String, Vec<FacetCount>> = BTreeMap::new();
    for (pair, count) in children(counts, &Facet::from_path(["attr"])) {
        if let Some((name, value)) = pair.split_once(ATTR_SEP) {
            attributes
                .entry(name.to_string())
                .or_default()
                .push(FacetCount {
                    value: value.to_string(),
                    count,
                });
        }
    }
    Facets {
        category: by_count(category),
        price,
        vendor: by_count(vendor),
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k, by_count(v)))
            .collect(),
    }
}
