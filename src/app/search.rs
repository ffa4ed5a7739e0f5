//! Product search on this node's index (derived from its replica, see
//! `crate::search`): full text with filters and facets, suggestions, and how
//! far the index is behind. Queries run on the blocking pool, a bounded
//! number at once (`search.max_concurrent_queries`).
//!
//! Hits are answered with the replica's current product (through the
//! product cache): one that stopped selling since it was indexed is left out.

use std::sync::Arc;

use ecommerce_domains::catalog::{self, CatalogId, Product};
use ecommerce_domains::DomainError;

use super::catalog::ProductKey;
use super::{App, AppError, AppResult, Consistency};
use crate::app::ErrorCode;
use crate::search::query::Facets;
use crate::search::{SearchError, SearchIndex, SearchRequest, Suggestion};

/// Largest page of results.
pub const MAX_LIMIT: usize = 100;
/// Most suggestions per call.
pub const MAX_SUGGESTIONS: usize = 20;
/// Longest query text, in characters.
pub const MAX_TEXT: usize = 500;

impl From<SearchError> for AppError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Invalid(message) => AppError::new(ErrorCode::InvalidQuery, message),
            SearchError::Raft(e) => e.into(),
            SearchError::Store(e) => e.into(),
            other => AppError::internal(other),
        }
    }
}

/// One result: the product as the replica has it now.
pub struct Hit {
    pub product: Arc<Product>,
    /// Relevance score (relevance sort only).
    pub score: Option<f32>,
    /// The name with matched words in `<em>`, and a fragment of the
    /// description around its matches (text queries only).
    pub highlights: Option<(Option<String>, Option<String>)>,
}

/// A page of results.
pub struct SearchPage {
    /// Matches of the query and filters, over all pages.
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Counts over all matches.
    pub facets: Facets,
    pub next_after: Option<String>,
    /// The last event of this node's log the index reflects.
    pub indexed_event_id: u64,
}

/// How far this node's index is behind its replica.
pub struct IndexStatus {
    pub indexed_event_id: u64,
    pub applied_event_id: u64,
    /// Documents in the index, sellable or not.
    pub documents: u64,
    /// True while the index is rebuilt from the state.
    pub rebuilding: bool,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidQuery, message)
}

/// The bounds every search request keeps, whichever transport built it.
pub fn check(request: &SearchRequest) -> AppResult<()> {
    if !(1..=MAX_LIMIT).contains(&request.limit) {
        return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    if request
        .text
        .as_deref()
        .is_some_and(|t| t.chars().count() > MAX_TEXT)
    {
        return Err(invalid(format!("q must be at most {MAX_TEXT} characters")));
    }
    if let (Some(min), Some(max)) = (request.min_price, request.max_price) {
        if min > max {
            return Err(invalid("min_price must not exceed max_price"));
        }
    }
    Ok(())
}

impl App {
    /// Runs `request`, within category `category` and the ones below it
    /// when given (`category_not_found` if it does not exist).
    pub async fn search(
        &self,
        mut request: SearchRequest,
        category: Option<&str>,
    ) -> AppResult<SearchPage> {
        check(&request)?;
        if let Some(raw) = category {
            let id = CatalogId::parse("category", raw)?;
            let reader = self.read(Consistency::Stale).await?;
            let mut path: Vec<String> = catalog::ancestors(&reader, &id)?
                .into_iter()
                .map(|c| c.id.as_str().to_string())
                .collect();
            drop(reader);
            if path.is_empty() {
                return Err(DomainError::CategoryNotFound(raw.into()).into());
            }
            path.reverse();
            request.category = Some(path);
        }
        let results = self
            .run_query(move |index| index.search(&request))
            .await??;
        let mut hits = Vec::with_capacity(results.hits.len());
        for hit in results.hits {
            let product = match self
                .product(ProductKey::Id(&hit.id), Consistency::Stale)
                .await
            {
                Ok(p) => p,
                Err(e) if e.body.code == ErrorCode::ProductNotFound.as_str() => continue,
                Err(e) => return Err(e),
            };
            if !product.sellable() {
                continue;
            }
            let highlights = results
                .highlighter
                .as_ref()
                .map(|h| h.highlight(&product.name, &product.description));
            hits.push(Hit {
                product,
                score: hit.score,
                highlights,
            });
        }
        Ok(SearchPage {
            total: results.total,
            hits,
            facets: results.facets,
            next_after: results.next_after,
            indexed_event_id: self.search.indexed_event_id(),
        })
    }

    /// Product names matching what was typed so far (the last word as a
    /// prefix), at most `limit` (1 to [`MAX_SUGGESTIONS`]).
    pub async fn suggest(&self, text: String, limit: usize) -> AppResult<Vec<Suggestion>> {
        if !(1..=MAX_SUGGESTIONS).contains(&limit) {
            return Err(invalid(format!(
                "limit must be between 1 and {MAX_SUGGESTIONS}"
            )));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(invalid(format!("q must be at most {MAX_TEXT} characters")));
        }
        Ok(self
            .run_query(move |index| index.suggest(&text, limit))
            .await??)
    }

    /// How far this node's search index is behind its replica.
    pub fn search_status(&self) -> AppResult<IndexStatus> {
        Ok(IndexStatus {
            applied_event_id: self.last_event_id()?,
            indexed_event_id: self.search.indexed_event_id(),
            documents: self.search.documents(),
            rebuilding: self.search.rebuilding(),
        })
    }

    /// Runs `query` on the blocking pool once one of the node's search
    /// permits is free (see `Services::search_queries`).
    async fn run_query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&SearchIndex) -> T + Send + 'static,
    ) -> AppResult<T> {
        let _permit = self
            .search_queries
            .acquire()
            .await
            .map_err(AppError::internal)?;
        let index = self.search.clone();
        tokio::task::spawn_blocking(move || query(&index))
            .await
            .map_err(AppError::internal)
    }
}
