//! Search routes: full-text search and filtered browsing with facets,
//! prefix suggestions, and the index's progress.
//!
//! The index is this node's (derived from its replica, see `crate::search`):
//! results are as fresh as `indexed_event_id`, which every answer carries.
//! Hits are rendered from the replica's current product (through the product
//! cache); one that stopped selling since it was indexed is left out.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::catalog::ProductDto;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::AppQuery;
use super::App;
use crate::app::search::MAX_LIMIT;
use crate::app::ErrorCode;
use crate::search::query::{Cursor, FacetCount};
use crate::search::{SearchRequest, SortBy, PRICE_BUCKETS};

/// Query parameters of `GET /api/v1/search` (documentation; parsed by hand
/// because of the open-ended `attr.<name>` parameters).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Words to look for in names, descriptions, attributes and SKUs (typos
    /// tolerated; the last word may be a prefix). Absent: filtered browsing.
    pub q: Option<String>,
    /// Only this category and the categories below it.
    pub category: Option<String>,
    /// Lowest variant price at least this, in minor units (cents).
    pub min_price: Option<u64>,
    /// Lowest variant price at most this, in minor units.
    pub max_price: Option<u64>,
    /// Only this vendor (repeat for alternatives).
    pub vendor: Option<String>,
    /// Only products with a variant in stock.
    pub in_stock: Option<bool>,
    /// `relevance` (default with `q`), `price_asc`, `price_desc`, `newest`
    /// (default without `q`), `popularity` (units ordered).
    pub sort: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<usize>,
    /// `attr.<name>=<value>`, e.g. `attr.size=M`: products (or a variant) with
    /// that attribute value. Repeat a name for alternatives; names all apply.
    #[serde(rename = "attr.<name>")]
    #[param(rename = "attr.<name>")]
    pub attr: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Highlights {
    /// The name with matched words in `<em>` (HTML-escaped), when it matched.
    pub name: Option<String>,
    /// A fragment of the description around its matches, when it matched.
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub product: ProductDto,
    /// Relevance score (relevance sort only).
    pub score: Option<f32>,
    pub highlights: Option<Highlights>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FacetCountDto {
    pub value: String,
    pub count: u64,
}

impl From<FacetCount> for FacetCountDto {
    fn from(c: FacetCount) -> Self {
        Self {
            value: c.value,
            count: c.count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBucketDto {
    /// e.g. "1000-2500", or "50000-" for the open last bucket.
    pub value: String,
    /// Minor units, inclusive.
    pub min: u64,
    /// Minor units, exclusive; absent for the last bucket.
    pub max: Option<u64>,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsDto {
    /// Children of the filtered category (top-level categories without a
    /// filter), each counting the matches in its whole subtree.
    pub category: Vec<FacetCountDto>,
    /// By the lowest variant price.
    pub price: Vec<PriceBucketDto>,
    pub vendor: Vec<FacetCountDto>,
    /// Attribute name → value counts (product and variant attributes).
    pub attributes: BTreeMap<String, Vec<FacetCountDto>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Matches of the query and filters, over all pages.
    pub total: usize,
    pub items: Vec<SearchHit>,
    /// Counts over all matches (not just this page).
    pub facets: FacetsDto,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
    /// The last event of this node's log that the index reflects.
    pub indexed_event_id: u64,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidQuery, message)
}

fn parse_u64(key: &str, value: &str) -> AppResult<u64> {
    value.parse().map_err(|_| {
        invalid(format!(
            "{key} must be a non-negative integer (minor units)"
        ))
    })
}

/// The request a query string asks for (its bounds are checked by the use
/// case); `category` is returned separately because its path is read from
/// the state.
fn parse_request(pairs: Vec<(String, String)>) -> AppResult<(SearchRequest, Option<String>)> {
    let mut req = SearchRequest::browse(20);
    let mut sort = None;
    let mut category = None;
    for (key, value) in pairs {
        match key.as_str() {
            "q" => req.text = Some(value),
            "category" => category = Some(value),
            "min_price" => req.min_price = Some(parse_u64(&key, &value)?),
            "max_price" => req.max_price = Some(parse_u64(&key, &value)?),
            "vendor" => req.vendors.push(value),
            "in_stock" => {
                req.in_stock = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("in_stock must be true or false")),
                }
            }
            "sort" => {
                sort = Some(SortBy::parse(&value).ok_or_else(|| {
                    invalid("sort must be relevance, price_asc, price_desc, newest or popularity")
                })?)
            }
            "after" => {
                req.after = Some(
                    Cursor::parse(&value)
                        .ok_or_else(|| invalid("after must be a next_after of this search"))?,
                )
            }
            "limit" => {
                req.limit = value
                    .parse()
                    .map_err(|_| invalid(format!("limit must be between 1 and {MAX_LIMIT}")))?
            }
            "consistency" => {} // Search always reads this node's index.
            other => match other.strip_prefix("attr.") {
                Some(name) if !name.is_empty() => req.attributes.push((name.to_string(), value)),
                _ => return Err(invalid(format!("unknown query parameter {other}"))),
            },
        }
    }
    let has_text = req.text.as_deref().is_some_and(|t| !t.trim().is_empty());
    req.sort = sort.unwrap_or(if has_text {
        SortBy::Relevance
    } else {
        SortBy::Newest
    });
    Ok((req, category))
}

/// Search products: full text with typo tolerance, filters, facets, sorting,
/// highlighting and cursor pagination. Without `q`, a filtered listing.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody),
        (status = 404, description = "unknown category", body = ErrorBody)))]
pub async fn search(
    State(state): State<App>,
    AppQuery(pairs): AppQuery<Vec<(String, String)>>,
) -> AppResult<Json<SearchResponse>> {
    let (req, category) = parse_request(pairs)?;
    let results = state.search(req, category.as_deref()).await?;
    let items = results
        .hits
        .into_iter()
        .map(|hit| SearchHit {
            product: ProductDto::new(&hit.product, &state.settings),
            score: hit.score,
            highlights: hit
                .highlights
                .map(|(name, description)| Highlights { name, description }),
        })
        .collect();
    let f = results.facets;
    let price = f
        .price
        .into_iter()
        .map(|c| {
            let (min, max) = PRICE_BUCKETS
                .iter()
                .find(|(from, _)| crate::search::price_bucket(*from) == c.value)
                .copied()
                .unwrap_or((0, None));
            PriceBucketDto {
                value: c.value,
                min,
                max,
                count: c.count,
            }
        })
        .collect();
    let list = |v: Vec<FacetCount>| v.into_iter().map(Into::into).collect();
    Ok(Json(SearchResponse {
        total: results.total,
        items,
        facets: FacetsDto {
            category: list(f.category),
            price,
            vendor: list(f.vendor),
            attributes: f
                .attributes
                .into_iter()
                .map(|(k, v)| (k, list(v)))
                .collect(),
        },
        next_after: results.next_after,
        indexed_event_id: results.indexed_event_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SuggestParams {
    /// What the user typed so far.
    pub q: String,
    /// At most this many suggestions, 1 to 20 (default 10).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionDto {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestResponse {
    /// Best match first, then the most popular.
    pub items: Vec<SuggestionDto>,
}

/// Autocomplete: product names matching what was typed so far (the last word
/// as a prefix; longer words tolerate a typo).
#[utoipa::path(get, path = "/api/v1/search/suggest", tag = "search", params(SuggestParams),
    responses((status = 200, body = SuggestResponse), (status = 400, body = ErrorBody)))]
pub async fn suggest(
    State(state): State<App>,
    AppQuery(params): AppQuery<SuggestParams>,
) -> AppResult<Json<SuggestResponse>> {
    let limit = params.limit.unwrap_or(10);
    let found = state.suggest(params.q, limit).await?;
    Ok(Json(SuggestResponse {
        items: found
            .into_iter()
            .map(|s| SuggestionDto {
                id: s.id,
                name: s.name,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchStatus {
    /// The last event the index reflects.
    pub indexed_event_id: u64,
    /// The last event this node applied.
    pub applied_event_id: u64,
    pub lag_events: u64,
    /// Documents in the index, sellable or not.
    pub documents: u64,
    /// True while the index is rebuilt from the state (queries see the previous index).
    pub rebuilding: bool,
}

/// How far this node's search index is behind its replica.
#[utoipa::path(get, path = "/api/v1/search/status", tag = "search",
    responses((status = 200, body = SearchStatus)))]
pub async fn status(State(state): State<App>) -> AppResult<Json<SearchStatus>> {
    let status = state.search_status()?;
    Ok(Json(SearchStatus {
        indexed_event_id: status.indexed_event_id,
        applied_event_id: status.applied_event_id,
        lag_events: status
            .applied_event_id
            .saturating_sub(status.indexed_event_id),
        documents: status.documents,
        rebuilding: status.rebuilding,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::search::MAX_TEXT;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_strings_become_requests() {
        let (req, category) = parse_request(pairs(&[
            ("q", "red shirt"),
            ("category", "men"),
            ("min_price", "1000"),
            ("attr.size", "M"),
            ("attr.size", "L"),
            ("vendor", "v1"),
            ("in_stock", "true"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(category.as_deref(), Some("men"));
        assert_eq!(req.sort, SortBy::Relevance, "text sorts by relevance");
        assert_eq!(req.min_price, Some(1000));
        assert_eq!(req.attributes.len(), 2);
        assert!(req.in_stock);
        assert_eq!(req.limit, 5);
        let (req, _) = parse_request(pairs(&[("q", "  ")])).unwrap();
        assert_eq!(req.sort, SortBy::Newest, "browsing sorts newest first");
        for bad in [
            ("limit", "0"),
            ("limit", "101"),
            ("sort", "cheapest"),
            ("in_stock", "yes"),
            ("min_price", "-1"),
            ("after", "nonsense"),
            ("colour", "red"),
            ("attr.", "x"),
        ] {
            let err = checked(pairs(&[bad])).unwrap_err();
            assert_eq!(err.body.code, "invalid_query", "{bad:?}");
        }
        let err = checked(pairs(&[("min_price", "5"), ("max_price", "4")])).unwrap_err();
        assert_eq!(err.body.code, "invalid_query");
        let long = "x".repeat(MAX_TEXT + 1);
        let err = checked(pairs(&[("q", long.as_str())])).unwrap_err();
        assert_eq!(err.body.code, "invalid_query");
    }

    /// What the route answers before running a query: the parse, then the
    /// use case's bounds.
    fn checked(pairs: Vec<(String, String)>) -> AppResult<SearchRequest> {
        let (req, _) = parse_request(pairs)?;
        crate::app::search::check(&req)?;
        Ok(req)
    }
}
