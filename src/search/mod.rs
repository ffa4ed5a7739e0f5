//! Product search: a tantivy index on every node, derived from the replicated
//! state and event log (never replicated itself, never a source of truth).
//!
//! - [`SearchIndex`] (here): the schema, opening `<data_dir>/search/`, the
//!   checkpoint stored in each commit's payload, and the reader queries use.
//! - `indexer.rs`: follows the event log from the checkpoint, turns products
//!   into documents, rebuilds from the state machine when it must.
//! - `query.rs`: a parsed [`SearchRequest`] becomes a tantivy query, sort key,
//!   cursor and facets; suggestions; highlighting.
//!
//! Nothing here proposes a command or writes to RocksDB.

pub mod indexer;
pub mod query;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tantivy::schema::{
    Facet, FacetOptions, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, ReloadPolicy};

pub use query::{SearchRequest, SearchResults, SortBy, Suggestion};

/// Bumped whenever the schema or what goes into a document changes: an index
/// written by another version is thrown away and rebuilt.
pub const SCHEMA_VERSION: u32 = 1;

/// Tokenizer of the full-text fields: words, lower-cased, accents folded.
pub const TEXT_TOKENIZER: &str = "product_text";
/// Tokenizer of exact-match fields (whole name, SKU): one lower-cased token.
pub const KEYWORD_TOKENIZER: &str = "product_keyword";

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("search index i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] ecommerce_domains::store::StoreFault),
    #[error(transparent)]
    Raft(#[from] ecommerce_raft::Error),
    /// The request cannot be answered as asked (a bad cursor...): the caller's fault.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// The fields of a product document.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Product id (exact, stored): the document's key.
    pub id: Field,
    pub name: Field,
    pub description: Field,
    /// Attribute names and values of the product and its variants.
    pub attributes: Field,
    /// SKUs as words ("TSHIRT-M" → "tshirt", "m").
    pub skus: Field,
    /// The whole name and every whole SKU, lower-cased: exact matches rank first.
    pub exact: Field,
    /// The product's category and all its ancestors (ids), for subtree filters.
    pub category: Field,
    pub vendor: Field,
    /// `name=value` for every attribute of the product and its variants.
    pub attr: Field,
    /// Facet paths: `/category/<root>/.../<leaf>`, `/vendor/<id>`, `/price/<bucket>`, `/attr/<name=value>`.
    pub facet: Field,
    /// Lowest variant price in minor units.
    pub price: Field,
    pub created: Field,
    /// Units ordered (from `OrderPlaced` events).
    pub popularity: Field,
    /// 1 when some variant has available stock.
    pub in_stock: Field,
    /// A stable hash of the id: breaks ties so cursors are total.
    pub tiebreak: Field,
    /// 1 for a sellable product (active, not deleted). Others stay in the
    /// index, invisible, so that what was derived for them (popularity)
    /// survives until they sell again.
    pub visible: Field,
}

fn build_schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(KEYWORD_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        name: b.add_text_field("name", text.clone().set_stored()),
        description: b.add_text_field("description", text.clone()),
        attributes: b.add_text_field("attributes", text.clone()),
        skus: b.add_text_field("skus", text),
        exact: b.add_text_field("exact", keyword),
        category: b.add_text_field("category", STRING),
        vendor: b.add_text_field("vendor", STRING),
        attr: b.add_text_field("attr", STRING),
        facet: b.add_facet_field("facet", FacetOptions::default()),
        price: b.add_u64_field("price", INDEXED | FAST),
        created: b.add_u64_field("created", FAST),
        popularity: b.add_u64_field("popularity", FAST),
        in_stock: b.add_u64_field("in_stock", INDEXED | FAST),
        tiebreak: b.add_u64_field("tiebreak", FAST),
        visible: b.add_u64_field("visible", INDEXED),
    };
    (b.build(), fields)
}

fn register_tokenizers(index: &Index) {
    let text = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build();
    let keyword = TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .build();
    index.tokenizers().register(TEXT_TOKENIZER, text);
    index.tokenizers().register(KEYWORD_TOKENIZER, keyword);
}

/// What the index has seen, stored as the payload of every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub schema: u32,
    /// The last event reflected in the index (0: none).
    pub event_id: u64,
    /// The log index of that event: a replica whose event `event_id` has
    /// another log index holds other data (a restored backup...), and the
    /// index is rebuilt.
    pub log_index: u64,
}

/// Price buckets for the price facet, in minor units: `[from, to)`.
pub const PRICE_BUCKETS: &[(u64, Option<u64>)] = &[
    (0, Some(1_000)),
    (1_000, Some(2_500)),
    (2_500, Some(5_000)),
    (5_000, Some(10_000)),
    (10_000, Some(25_000)),
    (25_000, Some(50_000)),
    (50_000, None),
];

/// The facet value of the bucket holding `amount`, e.g. "1000-2500" or "50000-".
pub fn price_bucket(amount: u64) -> String {
    for (from, to) in PRICE_BUCKETS {
        match to {
            Some(to) if amount < *to => return format!("{from}-{to}"),
            None => return format!("{from}-"),
            _ => {}
        }
    }
    unreachable!("the last bucket is open")
}

/// The index of one node, shared by the indexer and the query handlers.
pub struct SearchIndex {
    pub(crate) index: Index,
    pub(crate) reader: IndexReader,
    pub fields: Fields,
    dir: PathBuf,
    indexed_event_id: AtomicU64,
    rebuilding: AtomicBool,
}

impl SearchIndex {
    /// Opens the index in `dir`, or creates an empty one when it is missing,
    /// unreadable or of another schema version (the indexer then rebuilds it).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = build_schema();
        let index = match Self::open_existing(dir, &schema) {
            Some(index) => index,
            None => {
                // Derived state: whatever is there can be thrown away.
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                Index::create_in_dir(dir, schema)?
            }
        };
        register_tokenizers(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let this = Self {
            index,
            reader,
            fields,
            dir: dir.to_path_buf(),
            indexed_event_id: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
        };
        let checkpoint = this.checkpoint()?;
        this.indexed_event_id
            .store(checkpoint.map_or(0, |c| c.event_id), Ordering::SeqCst);
        Ok(this)
    }

    fn open_existing(dir: &Path, schema: &Schema) -> Option<Index> {
        if !dir.join("meta.json").exists() {
            return None;
        }
        let index = match Index::open_in_dir(dir) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "search index unreadable; rebuilding it");
                return None;
            }
        };
        let payload = index.load_metas().ok()?.payload;
        let version = payload
            .and_then(|p| serde_json::from_str::<Checkpoint>(&p).ok())
            .map(|c| c.schema);
        if version != Some(SCHEMA_VERSION) || &index.schema() != schema {
            tracing::info!(
                found = ?version,
                expected = SCHEMA_VERSION,
                "search index of another version; rebuilding it"
            );
            return None;
        }
        Some(index)
    }

    /// The checkpoint of the last commit (`None` for a new index).
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let metas = self.index.load_metas()?;
        Ok(metas
            .payload
            .and_then(|p| serde_json::from_str::<Checkpoint>(&p).ok()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last event the searchable index reflects.
    pub fn indexed_event_id(&self) -> u64 {
        self.indexed_event_id.load(Ordering::SeqCst)
    }

    pub(crate) fn set_indexed_event_id(&self, id: u64) {
        self.indexed_event_id.store(id, Ordering::SeqCst);
    }

    /// True while the index is being rebuilt from the state machine (queries
    /// see the previous index until the rebuild commits).
    pub fn rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::SeqCst)
    }

    pub(crate) fn set_rebuilding(&self, on: bool) {
        self.rebuilding.store(on, Ordering::SeqCst);
    }

    /// Documents in the index (sellable or not).
    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// The category facet of a product whose category path (root first) is `path`.
pub fn category_facet(path: &[String]) -> Facet {
    Facet::from_path(std::iter::once("category").chain(path.iter().map(String::as_str)))
}

/// A stable 64-bit hash of a product id (FNV-1a): the tie-breaker of every sort.
pub fn tiebreak(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_buckets_cover_every_amount() {
        assert_eq!(price_bucket(0), "0-1000");
        assert_eq!(price_bucket(999), "0-1000");
        assert_eq!(price_bucket(1_000), "1000-2500");
        assert_eq!(price_bucket(49_999), "25000-50000");
        assert_eq!(price_bucket(u64::MAX), "50000-");
    }

    #[test]
    fn an_index_of_another_version_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(index.checkpoint().unwrap(), None);
        drop(index);
        // No checkpoint payload: treated as another version, recreated empty.
        let index = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(index.documents(), 0);
    }
}
