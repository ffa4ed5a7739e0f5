//! An in-process cache of hot products for stale (browsing) reads,
//! invalidated when the state machine applies a change to a product.
//!
//! Race: a reader that read a product just before a change was applied must
//! not put the old version in the cache after the invalidation ran. Every
//! invalidation bumps a generation; a reader notes the generation before
//! reading and inserts only if it did not move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ecommerce_domains::catalog::Product;
use ecommerce_domains::Event;
use moka::sync::Cache;

use super::Feed;

pub struct ProductCache {
    cache: Cache<String, Arc<Product>>,
    generation: AtomicU64,
}

impl ProductCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::new(capacity),
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Product>> {
        let hit = self.cache.get(id);
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("product_cache_total", "outcome" => outcome).increment(1);
        hit
    }

    /// Call before reading the store; pass the result to [`ProductCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `product` unless something was invalidated since `generation`.
    pub fn insert(&self, product: Arc<Product>, generation: u64) {
        if self.generation.load(Ordering::SeqCst) == generation {
            self.cache.insert(product.id.as_str().to_string(), product);
            // An invalidation between the check and the insert must still win.
            if self.generation.load(Ordering::SeqCst) != generation {
                self.cache.invalidate_all();
            }
        }
    }

    fn invalidate(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(id);
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    /// The event-log handler that keeps the cache honest.
    pub fn apply(&self, feed: Feed<'_>) {
        match feed {
            Feed::Gap => self.clear(),
            Feed::Events(events) => {
                for record in events {
                    if let Event::ProductChanged(p) = &record.event {
                        self.invalidate(p.id.as_str());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_domains::catalog::CatalogId;

    fn product(id: &str, version: u64) -> Arc<Product> {
        Arc::new(Product {
            id: CatalogId::parse("id", id).unwrap(),
            slug: id.into(),
            name: id.into(),
            description: String::new(),
            category_id: None,
            attributes: Default::default(),
            images: vec![],
            vendor_id: None,
            active: true,
            deleted_ms: None,
            variants: vec![],
            created_ms: 0,
            updated_ms: 0,
            version,
        })
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let cache = ProductCache::new(100);
        let before = cache.generation();
        cache.invalidate("p1"); // a change applied while the reader was reading
        cache.insert(product("p1", 1), before);
        assert!(cache.get("p1").is_none());
        let now = cache.generation();
        cache.insert(product("p1", 2), now);
        assert_eq!(cache.get("p1").unwrap().version, 2);
        cache.invalidate("p1");
        assert!(cache.get("p1").is_none());
    }
}
