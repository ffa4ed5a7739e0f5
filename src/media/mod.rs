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
        let fetcher = Fetcher::new(node, blobs.clone(), timeout).map_err(std::io::Error::other)?;
        let fetcher = Arc::new(fetcher);
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

    /// The bytes of `hash` if this node has them (what peers are served).
    pub async fn local(&self, hash: &ContentHash) -> Result<Option<Bytes>, MediaError> {
        let (blobs, hash) = (self.blobs.clone(), hash.clone());
        Ok(tokio::task::spawn_blocking(move || blobs.get(&hash)).await??)
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
