//! Keeps the search index up to date: follows the event log from the
//! checkpoint stored in the last commit, and rebuilds from the state machine
//! when the index is missing, a snapshot was installed, or the checkpoint does
//! not match this replica's log.
//!
//! Events only say which products to look at again (`ProductChanged`,
//! `StockChanged` of one of its SKUs, `CategoryChanged` of a category above
//! it, `OrderPlaced` with one of its SKUs); the document is always rebuilt from
//! the replica's current state, so replaying an event twice is harmless. The
//! one figure that is not in the state is popularity (units ordered): it lives
//! in the index and grows with each `OrderPlaced` after the checkpoint. A
//! rebuild recounts it from the orders table up to the log index of the event
//! it checkpoints, so no order is counted twice or missed.
//!
//! The indexer runs on the blocking pool; queries never wait for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecommerce_domains::catalog::{self, CatalogId, Product};
use ecommerce_domains::inventory::{self, Sku};
use ecommerce_domains::order::{self, Order};
use ecommerce_domains::store::{KeyPart, Store, StoreExt};
use ecommerce_domains::{Event, EventRecord};
use ecommerce_raft::{RaftNode, Reader};
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::{Facet, IndexRecordOption};
use tantivy::{IndexWriter, TantivyDocument, Term};

use super::query::ATTR_SEP;
use super::{
    category_facet, price_bucket, tiebreak, Checkpoint, Result, SearchError, SearchIndex,
    SCHEMA_VERSION,
};

/// Events read and applied per commit at most.
const PAGE: usize = 1024;
/// Products (and orders) read from the state per page of a rebuild.
const REBUILD_PAGE: usize = 500;
/// The writer's indexing buffer.
const WRITER_MEMORY_BYTES: usize = 32 << 20;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Committed something; there may be more.
    Progress,
    /// Caught up with the log.
    Idle,
    /// The replica is installing a snapshot: rebuild once it is done.
    Installing,
}

pub struct Indexer {
    index: Arc<SearchIndex>,
    node: Arc<RaftNode>,
    writer: IndexWriter,
    checkpoint: Checkpoint,
    needs_rebuild: bool,
}

fn installing(e: &SearchError) -> bool {
    matches!(e, SearchError::Raft(ecommerce_raft::Error::Installing))
}

fn reader(node: &RaftNode) -> Result<Reader<'_>> {
    Reader::new(node.storage()).ok_or(SearchError::Raft(ecommerce_raft::Error::Installing))
}

impl Indexer {
    pub fn open(index: Arc<SearchIndex>, node: Arc<RaftNode>) -> Result<Self> {
        let writer = index
            .index
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let stored = index.checkpoint()?;
        let needs_rebuild = stored.is_none();
        if needs_rebuild {
            tracing::info!(dir = %index.dir().display(), "no search index; building it from the state");
        }
        Ok(Self {
            index,
            node,
            writer,
            checkpoint: stored.unwrap_or_default(),
            needs_rebuild,
        })
    }

    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// One unit of work: a rebuild, or the next page of events.
    pub fn step(&mut self) -> Result<Step> {
        let result = if self.needs_rebuild {
            self.rebuild().map(|()| Step::Progress)
        } else {
            self.follow()
        };
        match result {
            Err(e) if installing(&e) => {
                // Whatever was staged belongs to a state that is being replaced.
                self.writer.rollback()?;
                self.needs_rebuild = true;
                Ok(Step::Installing)
            }
            Err(e) => {
                self.writer.rollback()?;
                Err(e)
            }
            ok => ok,
        }
    }

    /// Applies the events after the checkpoint, if any.
    fn follow(&mut self) -> Result<Step> {
        let from = self.checkpoint.event_id;
        let applied = self.node.last_event_id()?;
        metrics::gauge!("search_applied_event_id").set(applied as f64);
        metrics::gauge!("search_index_lag_events").set(applied.saturating_sub(from) as f64);
        if applied < from {
            tracing::warn!(
                indexed = from,
                applied,
                "search index is ahead of this replica's event log; rebuilding"
            );
            self.needs_rebuild = true;
            return Ok(Step::Progress);
        }
        // Read the checkpointed event again: it must still be the one indexed.
        let mut events = self.node.events_after(from.saturating_sub(1), PAGE + 1)?;
        if from > 0 {
            let same = events
                .first()
                .is_some_and(|e| e.id == from && e.log_index == self.checkpoint.log_index);
            if !same {
                tracing::warn!(
                    indexed = from,
                    "search checkpoint does not match this replica's event log; rebuilding"
                );
                self.needs_rebuild = true;
                return Ok(Step::Progress);
            }
            events.remove(0);
        }
        let Some(last) = events.last() else {
            return Ok(Step::Idle);
        };
        if events[0].id != from + 1 {
            self.needs_rebuild = true;
            return Ok(Step::Progress);
        }
        let next = Checkpoint {
            schema: SCHEMA_VERSION,
            event_id: last.id,
            log_index: last.log_index,
        };
        self.apply(&events)?;
        self.commit(next)?;
        Ok(Step::Progress)
    }

    /// Re-indexes every product the events touch.
    fn apply(&mut self, events: &[EventRecord]) -> Result<()> {
        let node = self.node.clone();
        let reader = reader(&node)?;
        let mut dirty: BTreeSet<CatalogId> = BTreeSet::new();
        let mut ordered: HashMap<CatalogId, u64> = HashMap::new();
        let mut owners = SkuOwners::default();
        for record in events {
            match &record.event {
                Event::ProductChanged(p) => {
                    dirty.insert(p.id.clone());
                }
                Event::CategoryChanged(c) => {
                    // Maybe moved: every product below it has a new path.
                    let mut after: Option<CatalogId> = None;
                    loop {
                        let page = catalog::products_in_category(
                            &reader,
                            &c.id,
                            after.as_ref(),
                            REBUILD_PAGE,
                        )?;
                        after = page.last().map(|p| p.id.clone());
                        let full = page.len() == REBUILD_PAGE;
                        dirty.extend(page.into_iter().map(|p| p.id));
                        if !full {
                            break;
                        }
                    }
                }
                Event::StockChanged { level, .. } => {
                    if let Some(id) = owners.get(&reader, level.sku.as_str())? {
                        dirty.insert(id);
                    }
                }
                Event::OrderPlaced(order) => {
                    for line in &order.lines {
                        if let Some(id) = owners.get(&reader, &line.sku)? {
                            *ordered.entry(id.clone()).or_default() += line.quantity;
                            dirty.insert(id);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut paths = CategoryPaths::default();
        let searcher = self.index.reader.searcher();
        for id in dirty {
            self.writer
                .delete_term(Term::from_field_text(self.index.fields.id, id.as_str()));
            let Some(product) = catalog::get_product(&reader, &id)? else {
                continue;
            };
            let before = stored_popularity(&self.index, &searcher, id.as_str())?;
            let popularity = before + ordered.get(&id).copied().unwrap_or(0);
            let doc = document_from_state(&self.index, &reader, &mut paths, &product, popularity)?;
            self.writer.add_document(doc)?;
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: Checkpoint) -> Result<()> {
        let started = Instant::now();
        let payload = serde_json::to_string(&checkpoint).map_err(std::io::Error::other)?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.index.reader.reload()?;
        self.checkpoint = checkpoint;
        self.index.set_indexed_event_id(checkpoint.event_id);
        metrics::histogram!("search_index_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::gauge!("search_indexed_event_id").set(checkpoint.event_id as f64);
        metrics::gauge!("search_index_documents").set(self.index.documents() as f64);
        Ok(())
    }

    /// Replaces the whole index with one built from the replica's state,
    /// checkpointed at the newest event when the rebuild started.
    fn rebuild(&mut self) -> Result<()> {
        let started = Instant::now();
        self.index.set_rebuilding(true);
        let result = self.rebuild_inner();
        self.index.set_rebuilding(false);
        let checkpoint = result?;
        self.needs_rebuild = false;
        metrics::counter!("search_index_rebuilds_total").increment(1);
        tracing::info!(
            event_id = checkpoint.event_id,
            documents = self.index.documents(),
            seconds = started.elapsed().as_secs_f64(),
            "search index rebuilt from the state"
        );
        Ok(())
    }

    fn rebuild_inner(&mut self) -> Result<Checkpoint> {
        let node = self.node.clone();
        // The state read below is at or after this event; events after it are
        // applied afterwards (and re-reading a product is idempotent).
        let (last, last_version) = {
            let _guard = reader(&node)?;
            node.event_and_version_marks()?
        };
        let log_index = match last {
            0 => 0,
            n => node
                .events_after(n - 1, 1)?
                .first()
                .map_or(0, |e| e.log_index),
        };
        self.writer.delete_all_documents()?;
        let popularity = popularity_up_to(&node, last_version)?;
        let mut paths = CategoryPaths::default();
        let mut after: Option<CatalogId> = None;
        loop {
            let reader = reader(&node)?;
            let page = catalog::products_after(&reader, after.as_ref(), REBUILD_PAGE)?;
            for product in &page {
                let units = popularity.get(&product.id).copied().unwrap_or(0);
                let doc = document_from_state(&self.index, &reader, &mut paths, product, units)?;
                self.writer.add_document(doc)?;
            }
            after = page.last().map(|p| p.id.clone());
            if page.len() < REBUILD_PAGE {
                break;
            }
        }
        let checkpoint = Checkpoint {
            schema: SCHEMA_VERSION,
            event_id: last,
            log_index,
        };
        self.commit(checkpoint)?;
        Ok(checkpoint)
    }
}

/// Units ordered per product, over the orders numbered `up_to` or below
/// (order ids are command versions, which increase along the log).
fn popularity_up_to(node: &RaftNode, up_to: u64) -> Result<HashMap<CatalogId, u64>> {
    let mut out: HashMap<CatalogId, u64> = HashMap::new();
    let mut owners = SkuOwners::default();
    let mut after: Option<u64> = None;
    loop {
        let reader = reader(node)?;
        let key = after.map(|a| [KeyPart::U64(a)]);
        let page: Vec<Order> = reader.scan(
            order::ORDERS,
            &[],
            key.as_ref().map(|k| &k[..]),
            REBUILD_PAGE,
        )?;
        for o in page.iter().filter(|o| o.id <= up_to) {
            for line in &o.lines {
                if let Some(id) = owners.get(&reader, &line.sku)? {
                    *out.entry(id).or_default() += line.quantity;
                }
            }
        }
        after = page.last().map(|o| o.id);
        if page.len() < REBUILD_PAGE || after.is_some_and(|a| a > up_to) {
            return Ok(out);
        }
    }
}

/// SKU → owning product, remembered for one batch.
#[derive(Default)]
struct SkuOwners(HashMap<String, Option<CatalogId>>);

impl SkuOwners {
    fn get(&mut self, store: &dyn Store, sku: &str) -> Result<Option<CatalogId>> {
        if let Some(known) = self.0.get(sku) {
            return Ok(known.clone());
        }
        let owner = match Sku::parse(sku) {
            Ok(sku) => catalog::product_of_sku(store, &sku)?.map(|p| p.id),
            Err(_) => None,
        };
        self.0.insert(sku.to_string(), owner.clone());
        Ok(owner)
    }
}

/// Category → path of ids from the root, remembered for one batch.
#[derive(Default)]
struct CategoryPaths(HashMap<CatalogId, Vec<String>>);

impl CategoryPaths {
    fn get(&mut self, store: &dyn Store, id: &CatalogId) -> Result<Vec<String>> {
        if let Some(known) = self.0.get(id) {
            return Ok(known.clone());
        }
        let mut path: Vec<String> = catalog::ancestors(store, id)?
            .into_iter()
            .map(|c| c.id.as_str().to_string())
            .collect();
        path.reverse();
        self.0.insert(id.clone(), path.clone());
        Ok(path)
    }
}

/// The popularity the index holds for `id` (0 when absent).
fn stored_popularity(index: &SearchIndex, searcher: &tantivy::Searcher, id: &str) -> Result<u64> {
    let query = TermQuery::new(
        Term::from_field_text(index.fields.id, id),
        IndexRecordOption::Basic,
    );
    let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
    let Some((_, address)) = found.first() else {
        return Ok(0);
    };
    let segment = searcher.segment_reader(address.segment_ord);
    let column = segment.fast_fields().u64("popularity")?;
    Ok(column.first(address.doc_id).unwrap_or(0))
}

/// What a product's document needs besides the product, read from the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    /// Category ids from the root down to the product's category.
    pub category_path: Vec<String>,
    /// Some variant has available stock.
    pub in_stock: bool,
    /// Units ordered.
    pub popularity: u64,
}

fn derive(
    store: &dyn Store,
    paths: &mut CategoryPaths,
    product: &Product,
    popularity: u64,
) -> Result<Derived> {
    let category_path = match &product.category_id {
        Some(c) => paths.get(store, c)?,
        None => vec![],
    };
    let mut in_stock = false;
    for variant in &product.variants {
        if inventory::sku_stock(store, &variant.sku)?.is_some_and(|s| s.available > 0) {
            in_stock = true;
            break;
        }
    }
    Ok(Derived {
        category_path,
        in_stock,
        popularity,
    })
}

fn document_from_state(
    index: &SearchIndex,
    store: &dyn Store,
    paths: &mut CategoryPaths,
    product: &Product,
    popularity: u64,
) -> Result<TantivyDocument> {
    let derived = derive(store, paths, product, popularity)?;
    Ok(document(index, product, &derived))
}

/// The document of `product`.
pub fn document(index: &SearchIndex, product: &Product, derived: &Derived) -> TantivyDocument {
    let f = &index.fields;
    let mut doc = TantivyDocument::default();
    doc.add_text(f.id, product.id.as_str());
    doc.add_text(f.name, &product.name);
    doc.add_text(f.description, &product.description);
    doc.add_text(f.exact, &product.name);
    doc.add_u64(f.visible, u64::from(product.sellable()));
    doc.add_u64(f.created, product.created_ms);
    doc.add_u64(f.popularity, derived.popularity);
    doc.add_u64(f.tiebreak, tiebreak(product.id.as_str()));
    let price = product
        .min_price()
        .map_or(0, |m| u64::try_from(m.amount).unwrap_or(0));
    doc.add_u64(f.price, price);
    doc.add_facet(f.facet, Facet::from_path(["price", &price_bucket(price)]));
    if let Some(vendor) = &product.vendor_id {
        doc.add_text(f.vendor, vendor);
        doc.add_facet(f.facet, Facet::from_path(["vendor", vendor.as_str()]));
    }
    if !derived.category_path.is_empty() {
        for id in &derived.category_path {
            doc.add_text(f.category, id);
        }
        doc.add_facet(f.facet, category_facet(&derived.category_path));
    }
    let mut attributes: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (k, v) in &product.attributes {
        attributes.insert((k, v));
    }
    for variant in &product.variants {
        for (k, v) in &variant.attributes {
            attributes.insert((k, v));
        }
        doc.add_text(f.skus, variant.sku.as_str());
        doc.add_text(f.exact, variant.sku.as_str());
    }
    for (k, v) in attributes {
        doc.add_text(f.attributes, format!("{k} {v}"));
        let pair = format!("{k}{ATTR_SEP}{v}");
        doc.add_text(f.attr, &pair);
        doc.add_facet(f.facet, Facet::from_path(["attr", pair.as_str()]));
    }
    doc.add_u64(f.in_stock, u64::from(derived.in_stock));
    doc
}

impl SearchIndex {
    /// Replaces the contents of an index that no node follows (benchmarks,
    /// offline tools) with `products`, in one commit without a checkpoint
    /// event: a node opening it rebuilds it from its state.
    pub fn load(&self, products: impl IntoIterator<Item = (Product, Derived)>) -> Result<u64> {
        let mut writer: IndexWriter = self.index.writer(WRITER_MEMORY_BYTES * 4)?;
        writer.delete_all_documents()?;
        let mut n = 0;
        for (product, derived) in products {
            writer.add_document(document(self, &product, &derived))?;
            n += 1;
        }
        writer.commit()?;
        self.reader.reload()?;
        Ok(n)
    }
}

/// Follows the event log into the index for as long as the node runs,
/// pausing `commit_pause` after each commit (`search.commit_interval_ms`), so
/// a stream of events does not commit once per event.
pub async fn run(index: Arc<SearchIndex>, node: Arc<RaftNode>, commit_pause: Duration) {
    let mut applied = node.subscribe_applied();
    let opened = {
        let (index, node) = (index.clone(), node.clone());
        tokio::task::spawn_blocking(move || Indexer::open(index, node)).await
    };
    let mut indexer = match opened {
        Ok(Ok(indexer)) => indexer,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot open the search index writer; search stays stale");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "search indexer start panicked");
            return;
        }
    };
    let mut failures: u32 = 0;
    loop {
        let outcome = tokio::task::spawn_blocking(move || {
            let step = indexer.step();
            (indexer, step)
        })
        .await;
        let step;
        (indexer, step) = match outcome {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(error = %e, "search indexer panicked; search stays stale");
                return;
            }
        };
        match step {
            Ok(Step::Progress) => {
                failures = 0;
                tokio::time::sleep(commit_pause).await;
            }
            Ok(Step::Idle) => {
                failures = 0;
                // Wake on the next apply, or look again in a while (lag gauge, installs).
                let _ = tokio::time::timeout(Duration::from_secs(1), applied.changed()).await;
            }
            Ok(Step::Installing) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => {
                failures = failures.saturating_add(1);
                metrics::counter!("search_index_failures_total").increment(1);
                tracing::warn!(error = %e, failures, "search indexing failed; retrying");
                let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                tokio::time::sleep(pause).await;
            }
        }
    }
}
