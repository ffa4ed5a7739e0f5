//! Getting the bytes of registered images onto this node.
//!
//! [`Fetcher`] downloads a blob from a peer over the peer protocol
//! (`FetchBlob`, mutual TLS, streamed in chunks): from the node that stored
//! it first, then from every other member (peer addresses from the Raft
//! membership). What arrives is kept only if its
//! SHA-256 and size are those registered. One download per hash at a time.
//!
//! [`replicate`] is the background loop every node runs: it follows the event
//! log (`MediaRegistered`) from the applied state, and scans every record at
//! start and every `media.reconcile_interval_secs` (which covers a node that
//! joined by snapshot, or a restored one, or a lost file); blobs it cannot
//! get yet are retried with a growing pause. A GET of an image this loop has
//! not fetched yet fetches it on the spot ([`Fetcher::load`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ecommerce_domains::media::{self, ContentHash, MediaRecord};
use ecommerce_domains::Event;
use ecommerce_raft::{RaftNode, Reader};
use futures::StreamExt;
use tokio::time::Instant;

use super::blobs::{BlobError, BlobStore};
use super::MediaError;

/// Downloads running at once in the background loop.
const CONCURRENT_FETCHES: usize = 4;
/// Records read per page while reconciling, events per page while following.
const PAGE: usize = 1000;
/// Longest pause between two attempts at a blob no peer could provide.
const MAX_RETRY: Duration = Duration::from_secs(60);

pub struct Fetcher {
    node: Arc<RaftNode>,
    blobs: BlobStore,
    /// Deadline of one download.
    timeout: Duration,
    /// How old a blob without a record must be before it is removed.
    orphan_grace: Duration,
    /// One lock per hash being fetched, so concurrent misses download once.
    in_flight: Mutex<HashMap<ContentHash, Arc<tokio::sync::Mutex<()>>>>,
}

impl Fetcher {
    pub fn new(
        node: Arc<RaftNode>,
        blobs: BlobStore,
        timeout: Duration,
        orphan_grace: Duration,
    ) -> Self {
        Self {
            node,
            blobs,
            timeout,
            orphan_grace,
            in_flight: Mutex::default(),
        }
    }

    /// The verified bytes of `record`, from this node's disk or else a peer's.
    pub async fn load(&self, record: &MediaRecord) -> Result<Bytes, MediaError> {
        if let Some(bytes) = self.local(&record.hash).await? {
            return Ok(bytes);
        }
        self.fetch(record).await
    }

    /// Makes sure this node has the bytes of `record` (without reading them
    /// when it does).
    pub async fn ensure(&self, record: &MediaRecord) -> Result<(), MediaError> {
        if self.blobs.contains(&record.hash) {
            return Ok(());
        }
        self.fetch(record).await.map(drop)
    }

    async fn local(&self, hash: &ContentHash) -> Result<Option<Bytes>, MediaError> {
        let (blobs, hash) = (self.blobs.clone(), hash.clone());
        Ok(tokio::task::spawn_blocking(move || blobs.get(&hash)).await??)
    }

    async fn fetch(&self, record: &MediaRecord) -> Result<Bytes, MediaError> {
        let lock = self
            .in_flight
            .lock()
            .expect("in-flight fetches")
            .entry(record.hash.clone())
            .or_default()
            .clone();
        let result = {
            let _one_at_a_time = lock.lock().await;
            match self.local(&record.hash).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => self.fetch_from_peers(record).await,
                Err(e) => Err(e),
            }
        };
        drop(lock);
        self.in_flight
            .lock()
            .expect("in-flight fetches")
            .retain(|_, l| Arc::strong_count(l) > 1);
        result
    }

    /// Tries the origin node first, then every other member.
    async fn fetch_from_peers(&self, record: &MediaRecord) -> Result<Bytes, MediaError> {
        let mut peers: Vec<_> = self
            .node
            .status()
            .members
            .into_iter()
            .filter(|m| m.node_id != self.node.id)
            .collect();
        peers.sort_by_key(|m| (m.node_id != record.origin_node, m.node_id));
        let mut failures = Vec::new();
        for peer in peers {
            match self.fetch_from(peer.node_id, &peer.peer_addr, record).await {
                Ok(bytes) => {
                    metrics::counter!("media_blob_fetches_total", "outcome" => "ok").increment(1);
                    tracing::debug!(hash = %record.hash, peer = peer.node_id, "blob fetched");
                    return Ok(bytes);
                }
                Err(e) => failures.push(format!("node {}: {e}", peer.node_id)),
            }
        }
        metrics::counter!("media_blob_fetches_total", "outcome" => "failed").increment(1);
        let reason = if failures.is_empty() {
            "no other member".to_string()
        } else {
            failures.join("; ")
        };
        tracing::warn!(hash = %record.hash, %reason, "no peer could provide a blob");
        Err(MediaError::Unavailable(reason))
    }

    async fn fetch_from(
        &self,
        id: u64,
        peer_addr: &str,
        record: &MediaRecord,
    ) -> Result<Bytes, String> {
        let download = async {
            let mut stream = self
                .node
                .fetch_blob(id, peer_addr, record.hash.as_str(), self.timeout)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "does not have it".to_string())?;
            let expected = usize::try_from(record.size).map_err(|e| e.to_string())?;
            let mut body = Vec::with_capacity(expected.min(16 << 20));
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                if body.len() + chunk.len() > expected {
                    return Err(format!("sent more than the {expected} bytes registered"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, String>(body)
        };
        let body = tokio::time::timeout(self.timeout, download)
            .await
            .map_err(|_| format!("no complete answer within {:?}", self.timeout))??;
        let bytes = Bytes::from(body);
        let (blobs, hash, kept) = (self.blobs.clone(), record.hash.clone(), bytes.clone());
        match tokio::task::spawn_blocking(move || blobs.put(&hash, &kept)).await {
            Ok(Ok(())) => Ok(bytes),
            Ok(Err(e @ BlobError::Mismatch { .. })) => Err(format!("sent bad bytes: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A blob this node lacks, and when to try it again.
struct Pending {
    record: MediaRecord,
    due: Instant,
    pause: Duration,
}

/// The background loop: follows registrations and fetches what is missing.
pub async fn replicate(fetcher: Arc<Fetcher>, retry: Duration, reconcile_every: Duration) {
    let node = fetcher.node.clone();
    let mut applied = node.subscribe_applied();
    let mut pending: BTreeMap<ContentHash, Pending> = BTreeMap::new();
    let mut checkpoint = None;
    let mut next_reconcile = Instant::now();
    loop {
        if Instant::now() >= next_reconcile || checkpoint.is_none() {
            let scan = fetcher.clone();
            let scanned = tokio::task::spawn_blocking(move || reconcile(&scan))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match scanned {
                Ok((last_event, missing)) => {
                    for record in missing {
                        want(&fetcher, &mut pending, record);
                    }
                    checkpoint = Some(last_event);
                    next_reconcile = Instant::now() + reconcile_every;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "media reconcile postponed");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            }
        }
        if let Some(after) = checkpoint {
            match follow(&fetcher, after, &mut pending) {
                Ok(last) => checkpoint = Some(last),
                Err(e) => tracing::debug!(error = %e, "reading media registrations postponed"),
            }
        }
        fetch_due(&fetcher, &mut pending, retry).await;
        metrics::gauge!("media_blobs_missing").set(pending.len() as f64);

        let wake = pending
            .values()
            .map(|p| p.due)
            .min()
            .unwrap_or(next_reconcile)
            .min(next_reconcile);
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

fn want(fetcher: &Fetcher, pending: &mut BTreeMap<ContentHash, Pending>, record: MediaRecord) {
    if !pending.contains_key(&record.hash) && !fetcher.blobs.contains(&record.hash) {
        pending.insert(
            record.hash.clone(),
            Pending {
                record,
                due: Instant::now(),
                pause: Duration::ZERO,
            },
        );
    }
}

/// Every registered blob this node lacks, and the event id the scan covers
/// (read first, so nothing registered meanwhile is skipped). Blocking.
fn reconcile(fetcher: &Fetcher) -> Result<(u64, Vec<MediaRecord>), String> {
    let mut missing = Vec::new();
    let last_event = fetcher.node.last_event_id().map_err(|e| e.to_string())?;
    let mut after: Option<ContentHash> = None;
    loop {
        let page = {
            let reader = Reader::new(fetcher.node.storage()).ok_or("installing a snapshot")?;
            media::scan(&reader, after.as_ref(), PAGE).map_err(|e| e.to_string())?
        };
        let full = page.len() == PAGE;
        after = page.last().map(|r| r.hash.clone());
        missing.extend(
            page.into_iter()
                .filter(|r| !fetcher.blobs.contains(&r.hash)),
        );
        if !full {
            remove_orphans(fetcher)?;
            return Ok((last_event, missing));
        }
    }
}

/// Removes the blob files no registered image names, once older than
/// `media.orphan_grace_secs`: an upload stores its bytes before proposing
/// the registration, so a refused or lost registration leaves its file
/// behind. The grace covers a registration still on its way (or not yet
/// applied on this replica); storing the same bytes again restarts it.
fn remove_orphans(fetcher: &Fetcher) -> Result<(), String> {
    let before = std::time::SystemTime::now()
        .checked_sub(fetcher.orphan_grace)
        .unwrap_or(std::time::UNIX_EPOCH);
    let candidates = fetcher
        .blobs
        .stored_before(before)
        .map_err(|e| e.to_string())?;
    if candidates.is_empty() {
        return Ok(());
    }
    let reader = Reader::new(fetcher.node.storage()).ok_or("installing a snapshot")?;
    for hash in candidates {
        if media::get(&reader, &hash)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            fetcher.blobs.remove(&hash).map_err(|e| e.to_string())?;
            metrics::counter!("media_blobs_orphaned_total").increment(1);
            tracing::info!(%hash, "removed a blob no registered image names");
        }
    }
    Ok(())
}

/// Queues the blobs registered by events after `after`; returns the new checkpoint.
fn follow(
    fetcher: &Fetcher,
    mut after: u64,
    pending: &mut BTreeMap<ContentHash, Pending>,
) -> Result<u64, String> {
    loop {
        let records = fetcher
            .node
            .events_after(after, PAGE)
            .map_err(|e| e.to_string())?;
        let full = records.len() == PAGE;
        for record in records {
            after = record.id;
            if let Event::MediaRegistered(m) = record.event {
                want(fetcher, pending, m);
            }
        }
        if !full {
            return Ok(after);
        }
    }
}

async fn fetch_due(
    fetcher: &Fetcher,
    pending: &mut BTreeMap<ContentHash, Pending>,
    retry: Duration,
) {
    let now = Instant::now();
    let due: Vec<MediaRecord> = pending
        .values()
        .filter(|p| p.due <= now)
        .map(|p| p.record.clone())
        .collect();
    let results: Vec<_> = futures::stream::iter(due)
        .map(|record| async move {
            let result = fetcher.ensure(&record).await;
            (record.hash, result)
        })
        .buffer_unordered(CONCURRENT_FETCHES)
        .collect()
        .await;
    for (hash, result) in results {
        match result {
            Ok(()) => {
                pending.remove(&hash);
            }
            Err(_) => {
                if let Some(p) = pending.get_mut(&hash) {
                    p.pause = (p.pause * 2).clamp(retry, MAX_RETRY.max(retry));
                    p.due = Instant::now() + p.pause;
                }
            }
        }
    }
}
