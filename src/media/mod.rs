//! Images and their bytes on this node: content-addressed blob files
//! ([`blobs`]), downloads from peers and the background replication loop
//! ([`fetch`]), header reading and thumbnails ([`imaging`]), and the public
//! URLs other APIs put in their responses ([`media_url`], [`thumbnail_url`]).
//!
//! The replicated state knows images only by hash and metadata
//! (`ecommerce_domains::media`); the bytes stay outside Raft, in
//! `<data_dir>/blobs`, and are not part of snapshots or backups.
//!
//! What must not live here: HTTP handlers (`api/media.rs`) or rules about
//! who may register what (the domain).

pub mod blobs;
pub mod fetch;
pub mod imaging;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ecommerce_domains::media::{ContentHash, ImageType, MediaRecord};
use ecommerce_raft::RaftNode;
use tokio::sync::Semaphore;

use crate::config::Settings;
use blobs::{BlobError, BlobStore};
use fetch::Fetcher;

/// Thumbnails rendered at once (decoding is CPU- and memory-heavy).
const CONCURRENT_RENDERS: usize = 2;

/// The public URL of image `hash`: under `media.cdn_base_url` when set, else
/// the path on any node. Product and other responses use this.
pub fn media_url(settings: &Settings, hash: &ContentHash) -> String {
    let base = settings.media.cdn_base_url.as_deref().unwrap_or("");
    format!("{}/api/v1/media/{hash}", base.trim_end_matches('/'))
}

/// The public URL of the thumbnail of `hash` whose longest side is `size`
/// (one of [`imaging::THUMBNAIL_SIZES`]).
pub fn thumbnail_url(settings: &Settings, hash: &ContentHash, size: u32) -> String {
    format!("{}/thumbnail?size={size}", media_url(settings, hash))
}

/// Why image bytes could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Registered, but neither this node nor a reachable peer has the bytes.
    #[error("the image's bytes are not on this node and no peer provided them: {0}")]
    Unavailable(String),
    /// The bytes are not a decodable image of their type.
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("background task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<std::io::Error> for MediaError {
    fn from(e: std::io::Error) -> Self {
        Self::Blob(e.into())
    }
}

/// A node's media: blob files, the fetcher, and the thumbnail renderer.
pub struct Media {
    pub blobs: BlobStore,
    pub fetcher: Arc<Fetcher>,
    renders: Semaphore,
}

impl Media {
    pub fn open(settings: &Settings, node: Arc<RaftNode>) -> std::io::Result<Self> {
        let blobs = BlobStore::open(&settings.data_dir)?;
        let timeout = Duration::from_millis(settings.media.fetch_timeout_ms);
        let orphan_grace = Duration::from_secs(settings.media.orphan_grace_secs);
        let fetcher = Arc::new(Fetcher::new(node, blobs.clone(), timeout, orphan_grace));
        Ok(Self {
            blobs,
            fetcher,
            renders: Semaphore::new(CONCURRENT_RENDERS),
        })
    }

    /// Stores uploaded bytes (already sniffed and measured) under their hash.
    pub async fn store(&self, hash: ContentHash, bytes: Bytes) -> Result<(), MediaError> {
        let blobs = self.blobs.clone();
        Ok(tokio::task::spawn_blocking(move || blobs.put(&hash, &bytes)).await??)
    }

    /// The verified bytes of `record`, fetched from a peer if need be.
    pub async fn load(&self, record: &MediaRecord) -> Result<Bytes, MediaError> {
        self.fetcher.load(record).await
    }

    /// The thumbnail of `record` at `size` and its type: from the cache on
    /// disk, else rendered from the image (fetched if need be) and cached.
    pub async fn thumbnail(
        &self,
        record: &MediaRecord,
        size: u32,
    ) -> Result<(Bytes, ImageType), MediaError> {
        let ty = imaging::thumbnail_type(record.content_type);
        let (blobs, hash) = (self.blobs.clone(), record.hash.clone());
        if let Some(cached) =
            tokio::task::spawn_blocking(move || blobs.get_thumbnail(&hash, size)).await??
        {
            return Ok((cached, ty));
        }
        let original = self.load(record).await?;
        let _permit = self.renders.acquire().await.expect("never closed");
        let (blobs, hash, source) = (self.blobs.clone(), record.hash.clone(), record.content_type);
        let rendered = tokio::task::spawn_blocking(move || {
            let thumb = imaging::thumbnail(&original, source, size)
                .map_err(|e| MediaError::Undecodable(e.to_string()))?;
            blobs.put_thumbnail(&hash, size, &thumb)?;
            Ok::<_, MediaError>(thumb)
        })
        .await??;
        Ok((Bytes::from(rendered), ty))
    }
}

/// Chunks a blob is sent to a peer in.
const PEER_CHUNK: usize = 256 << 10;

/// What the peer protocol serves other nodes (`FetchBlob`): the verified
/// bytes of a blob this node has, in chunks. Never fetches from elsewhere.
pub struct PeerBlobs(pub BlobStore);

impl ecommerce_raft::BlobSource for PeerBlobs {
    fn open(&self, hash: &str) -> std::io::Result<Option<ecommerce_raft::BlobStream>> {
        let hash = ContentHash::parse(hash)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        if !self.0.contains(&hash) {
            return Ok(None);
        }
        let blobs = self.0.clone();
        let read = async move {
            let verified = tokio::task::spawn_blocking(move || blobs.get(&hash))
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "blob damaged"))?;
            let chunks: Vec<std::io::Result<Bytes>> = (0..verified.len())
                .step_by(PEER_CHUNK)
                .map(|at| Ok(verified.slice(at..verified.len().min(at + PEER_CHUNK))))
                .collect();
            Ok::<_, std::io::Error>(futures::stream::iter(chunks))
        };
        let stream = futures::StreamExt::flatten(futures::StreamExt::map(
            futures::stream::once(read),
            |result| match result {
                Ok(chunks) => futures::StreamExt::boxed(chunks),
                Err(e) => futures::StreamExt::boxed(futures::stream::iter([Err(e)])),
            },
        ));
        Ok(Some(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_use_the_cdn_when_configured() {
        let mut settings = Settings::default();
        let hash = ContentHash::parse(&"ab".repeat(32)).unwrap();
        let h = "ab".repeat(32);
        assert_eq!(media_url(&settings, &hash), format!("/api/v1/media/{h}"));
        settings.media.cdn_base_url = Some("https://cdn.example.com/".into());
        assert_eq!(
            media_url(&settings, &hash),
            format!("https://cdn.example.com/api/v1/media/{h}")
        );
        assert_eq!(
            thumbnail_url(&settings, &hash, 256),
            format!("https://cdn.example.com/api/v1/media/{h}/thumbnail?size=256")
        );
    }
}
