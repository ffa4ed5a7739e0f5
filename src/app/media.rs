//! Images: an upload by a vendor or an admin is checked from its own bytes
//! (type by magic bytes, dimensions by decoding the header), stored on this
//! node under its SHA-256, then registered through Raft (hash and metadata,
//! never the bytes). A record never changes once registered.

use bytes::Bytes;
use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::media::{self, ContentHash, ImageType, MediaCommand, MediaRecord, Quota};
use ecommerce_domains::{Actor, Command, DomainError, Response, Role};

use super::access::forbidden;
use super::{unexpected, App, AppError, AppResult, Consistency, Rendered};
use crate::app::ErrorCode;
use crate::media::{blobs, imaging};

/// A registered image, and whether this upload registered it (false when
/// the same bytes were already known).
pub struct Uploaded {
    pub record: MediaRecord,
    pub created: bool,
}

impl App {
    /// Stores and registers the image `bytes` uploaded by `actor` (vendors
    /// and admins). `tag` gives the idempotency tag of the upload once its
    /// hash is known: the fingerprint of an upload is its content.
    pub async fn upload_image(
        &self,
        actor: &Actor,
        bytes: Bytes,
        tag: impl FnOnce(&ContentHash) -> Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Uploaded>> {
        if !media::may_upload(actor) {
            return Err(forbidden());
        }
        let Some(content_type) = ImageType::sniff(&bytes) else {
            let accepted: Vec<_> = ImageType::ALL.iter().map(|t| t.mime()).collect();
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "the file is not a JPEG, PNG, WebP or GIF image",
            )
            .with_details(serde_json::json!({ "accepted": accepted })));
        };
        let examined = bytes.clone();
        let (hash, dimensions) = tokio::task::spawn_blocking(move || {
            (
                blobs::digest(&examined),
                imaging::dimensions(&examined, content_type),
            )
        })
        .await
        .map_err(AppError::internal)?;
        let (width, height) = dimensions.map_err(|e| {
            AppError::new(
                ErrorCode::MediaUndecodable,
                format!("the {} image cannot be read: {e}", content_type.mime()),
            )
        })?;
        let size = bytes.len() as u64;
        media::check_image(size, width, height)?;
        // Refused before the bytes are stored when the quota is already used
        // up (the command checks again, in log order).
        // A known image is not counted again.
        let quota = self.upload_quota(actor);
        {
            let reader = self.read(Consistency::Stale).await?;
            if media::get(&reader, &hash)?.is_none() {
                quota.admit(media::usage(&reader, &actor.user_id)?, size)?;
            }
        }
        self.media.store(hash.clone(), bytes).await?;

        let tag = tag(&hash);
        let command = Command::Media(MediaCommand::RegisterWithinQuota {
            hash,
            content_type,
            size,
            width,
            height,
            uploaded_by: actor.clone(),
            origin_node: self.node_id(),
            quota,
        });
        let committed = self.propose(command, tag).await?;
        Ok(committed.render(|reply| match reply {
            Response::Media { record, created } => Ok(Uploaded { record, created }),
            other => Err(unexpected(other)),
        }))
    }

    /// What `actor` may upload in all: vendors `media.vendor_max_*`, admins
    /// without limit.
    fn upload_quota(&self, actor: &Actor) -> Quota {
        match actor.role {
            Role::Admin => Quota::UNLIMITED,
            _ => Quota {
                max_images: self.settings.media.vendor_max_images,
                max_bytes: self.settings.media.vendor_max_bytes,
            },
        }
    }

    /// The record of image `raw` (a SHA-256 in hex): from this node's replica
    /// when it has it (records never change), else after a linearizable
    /// read, else `media_not_found`.
    pub async fn media_record(&self, raw: &str) -> AppResult<MediaRecord> {
        let hash = ContentHash::parse(raw)
            .map_err(|e| AppError::new(ErrorCode::InvalidPath, e.to_string()))?;
        for consistency in [Consistency::Stale, Consistency::Linearizable] {
            let reader = self.read(consistency).await?;
            if let Some(record) = media::get(&reader, &hash)? {
                return Ok(record);
            }
        }
        Err(DomainError::MediaNotFound(hash.as_str().to_string()).into())
    }
}
