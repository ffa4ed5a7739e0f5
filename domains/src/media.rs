//! Media: images known by the SHA-256 of their bytes.
//!
//! The replicated state holds only what identifies and describes an image
//! ([`MediaRecord`]: hash, type, size, dimensions, uploader, the node that
//! first stored the bytes). The bytes themselves never enter the log or the
//! state machine: each node keeps them in its own blob directory and fetches
//! the ones it lacks from a peer (`src/media/`).
//!
//! What lives here: the hash newtype, content sniffing by magic bytes (pure),
//! the registration command and its rules. What must not: file I/O, HTTP,
//! image decoding.
//!
//! A record never changes once written, so a node that has it can serve it
//! without a linearizable read; registering a known hash again is a no-op
//! success.

use serde::{Deserialize, Serialize};

use crate::check;
use crate::command::{ApplyContext, Response};
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, ApplyError, DomainError, Event, Role};

/// Media records keyed by hash.
pub const MEDIA: &str = "media_records";
/// What each uploader's images add up to ([`MediaUsage`]), keyed by user id;
/// written by [`MediaCommand::RegisterWithinQuota`].
pub const MEDIA_USAGE: &str = "media_usage";

/// Widest or tallest image accepted, in pixels.
pub const MAX_DIMENSION: u32 = 16_384;
/// Most pixels an image may have (what a thumbnail must decode).
pub const MAX_PIXELS: u64 = 40_000_000;

/// The SHA-256 of a blob's bytes: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContentHash(String);

impl ContentHash {
    /// Parses 64 hex digits (either case; kept in lowercase).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(DomainError::validation(
                "hash",
                "must be a SHA-256 as 64 hex digits",
            ))
        }
    }

    /// The hash of a 32-byte SHA-256 digest.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        use std::fmt::Write;
        let mut s = String::with_capacity(64);
        for b in digest {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The image types the shop accepts, recognised by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl ImageType {
    pub const ALL: [ImageType; 4] = [Self::Jpeg, Self::Png, Self::Webp, Self::Gif];

    /// The type of `head` (the first bytes of a file), whatever a client
    /// claimed; `None` for anything else. Twelve bytes are enough.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match head {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            _ => None,
        }
    }

    /// The MIME type served in `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
        }
    }
}

/// A registered image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub hash: ContentHash,
    pub content_type: ImageType,
    /// Bytes.
    pub size: u64,
    pub width: u32,
    pub height: u32,
    /// The user who first registered it.
    pub uploaded_by: String,
    /// The node that stored the bytes first: peers fetch from it first.
    pub origin_node: u64,
    /// Log-ordered time of the registration.
    pub created_ms: u64,
    pub version: u64,
}

/// What one uploader's registered images add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUsage {
    pub images: u64,
    pub bytes: u64,
}

/// How much an uploader may register in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub max_images: u64,
    pub max_bytes: u64,
}

impl Quota {
    /// No limit (admins).
    pub const UNLIMITED: Quota = Quota {
        max_images: u64::MAX,
        max_bytes: u64::MAX,
    };

    /// Refuses one more image of `size` bytes on top of `usage`.
    pub fn admit(&self, usage: MediaUsage, size: u64) -> Result<MediaUsage, DomainError> {
        let after = MediaUsage {
            images: usage.images.saturating_add(1),
            bytes: usage.bytes.saturating_add(size),
        };
        if after.images > self.max_images || after.bytes > self.max_bytes {
            return Err(DomainError::UploadQuotaExceeded {
                images: usage.images,
                bytes: usage.bytes,
                max_images: self.max_images,
                max_bytes: self.max_bytes,
            });
        }
        Ok(after)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MediaCommand {
    /// Records an image whose bytes `origin_node` already stored.
    Register {
        hash: ContentHash,
        content_type: ImageType,
        size: u64,
        width: u32,
        height: u32,
        uploaded_by: Actor,
        origin_node: u64,
    },
    /// [`MediaCommand::Register`], counted against the uploader's `quota`
    /// (and in its [`MediaUsage`]); a known hash is not counted again.
    RegisterWithinQuota {
        hash: ContentHash,
        content_type: ImageType,
        size: u64,
        width: u32,
        height: u32,
        uploaded_by: Actor,
        origin_node: u64,
        quota: Quota,
    },
}

/// What both registration commands carry, borrowed.
struct Registration<'a> {
    hash: &'a ContentHash,
    content_type: ImageType,
    size: u64,
    width: u32,
    height: u32,
    uploaded_by: &'a Actor,
    origin_node: u64,
    /// `None`: not counted against a quota (the command from before quotas).
    quota: Option<&'a Quota>,
}

impl MediaCommand {
    fn registration(&self) -> Registration<'_> {
        match self {
            Self::Register {
                hash,
                content_type,
                size,
                width,
                height,
                uploaded_by,
                origin_node,
            } => Registration {
                hash,
                content_type: *content_type,
                size: *size,
                width: *width,
                height: *height,
                uploaded_by,
                origin_node: *origin_node,
                quota: None,
            },
            Self::RegisterWithinQuota {
                hash,
                content_type,
                size,
                width,
                height,
                uploaded_by,
                origin_node,
                quota,
            } => Registration {
                hash,
                content_type: *content_type,
                size: *size,
                width: *width,
                height: *height,
                uploaded_by,
                origin_node: *origin_node,
                quota: Some(quota),
            },
        }
    }

    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        let r = self.registration();
        check::canonical("hash", r.hash, ContentHash::parse(r.hash.as_str()))?;
        check::opaque("uploaded_by", &r.uploaded_by.user_id)?;
        check_image(r.size, r.width, r.height)
    }
}

/// Who may upload: vendors and admins.
pub fn may_upload(actor: &Actor) -> bool {
    matches!(actor.role, Role::Vendor | Role::Admin)
}

pub fn apply(
    command: &MediaCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    let Registration {
        hash,
        content_type,
        size,
        width,
        height,
        uploaded_by,
        origin_node,
        quota,
    } = command.registration();
    // The sizes were checked with the other fields (`validate`).
    if !may_upload(uploaded_by) {
        return Err(DomainError::Forbidden.into());
    }
    if let Some(existing) = get(store, hash)? {
        return Ok(Response::Media {
            record: existing,
            created: false,
        });
    }
    if let Some(quota) = quota {
        let after = quota.admit(usage(store, &uploaded_by.user_id)?, size)?;
        store::put(
            store,
            MEDIA_USAGE,
            &[KeyPart::Str(&uploaded_by.user_id)],
            &after,
        )?;
    }
    let record = MediaRecord {
        hash: hash.clone(),
        content_type,
        size,
        width,
        height,
        uploaded_by: uploaded_by.user_id.clone(),
        origin_node,
        created_ms: ctx.now_ms,
        version: ctx.version,
    };
    store::put(store, MEDIA, &[KeyPart::Str(hash.as_str())], &record)?;
    store.emit(Event::MediaRegistered(record.clone()));
    Ok(Response::Media {
        record,
        created: true,
    })
}

/// What `uploader`'s registered images add up to: its [`MEDIA_USAGE`] row,
/// or, before its first quota-counted upload, the sum over the records
/// (images registered before quotas existed count too).
pub fn usage(store: &dyn Store, uploader: &str) -> Result<MediaUsage, StoreFault> {
    if let Some(usage) = store.get(MEDIA_USAGE, &[KeyPart::Str(uploader)])? {
        return Ok(usage);
    }
    let mut total = MediaUsage::default();
    let mut after: Option<ContentHash> = None;
    loop {
        let page = scan(store, after.as_ref(), USAGE_PAGE)?;
        for record in page.iter().filter(|r| r.uploaded_by == uploader) {
            total.images = total.images.saturating_add(1);
            total.bytes = total.bytes.saturating_add(record.size);
        }
        if page.len() < USAGE_PAGE {
            return Ok(total);
        }
        after = page.last().map(|r| r.hash.clone());
    }
}

/// Records read at once while summing an uploader's images.
const USAGE_PAGE: usize = 1000;

/// Refuses empty files and images too large to thumbnail.
pub fn check_image(size: u64, width: u32, height: u32) -> Result<(), DomainError> {
    if size == 0 {
        return Err(DomainError::validation("file", "is empty"));
    }
    let fits = (1..=MAX_DIMENSION).contains(&width) && (1..=MAX_DIMENSION).contains(&height);
    if !fits || u64::from(width).saturating_mul(u64::from(height)) > MAX_PIXELS {
        return Err(DomainError::validation(
            "file",
            format!(
                "is {width}x{height} pixels; at most {MAX_DIMENSION} per side and {MAX_PIXELS} in all"
            ),
        ));
    }
    Ok(())
}

pub fn get(store: &dyn Store, hash: &ContentHash) -> Result<Option<MediaRecord>, StoreFault> {
    store.get(MEDIA, &[KeyPart::Str(hash.as_str())])
}

/// Records in hash order after `after`, at most `limit`.
pub fn scan(
    store: &dyn Store,
    after: Option<&ContentHash>,
    limit: usize,
) -> Result<Vec<MediaRecord>, StoreFault> {
    let after = after.map(|h| [KeyPart::Str(h.as_str())]);
    store.scan(MEDIA, &[], after.as_ref().map(|a| &a[..]), limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    // Commands apply as the state machine applies them (idempotency, savepoint).
    use crate::store::memory::{apply, MemoryStore};

    fn actor(role: Role) -> Actor {
        Actor {
            user_id: "v1".into(),
            role,
        }
    }

    fn register(hash: &ContentHash, role: Role, origin: u64) -> MediaCommand {
        MediaCommand::Register {
            hash: hash.clone(),
            content_type: ImageType::Png,
            size: 100,
            width: 10,
            height: 20,
            uploaded_by: actor(role),
            origin_node: origin,
        }
    }

    fn ctx(log_index: u64) -> ApplyContext {
        ApplyContext {
            log_index,
            version: log_index,
            now_ms: 1000 + log_index,
        }
    }

    #[test]
    fn sniffing_knows_the_four_formats_by_their_magic_bytes() {
        assert_eq!(
            ImageType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageType::Png)
        );
        assert_eq!(ImageType::sniff(b"GIF89a\x01\x00"), Some(ImageType::Gif));
        assert_eq!(ImageType::sniff(b"GIF87a\x01\x00"), Some(ImageType::Gif));
        assert_eq!(
            ImageType::sniff(b"RIFF\x24\0\0\0WEBPVP8 "),
            Some(ImageType::Webp)
        );
        for other in [
            &b""[..],
            b"\xFF\xD8",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            b"%PDF-1.7",
            b"RIFF\x24\0\0\0WAVEfmt ",
            b"GIF88a",
            b"\x89PNX\r\n\x1a\n",
        ] {
            assert_eq!(ImageType::sniff(other), None, "{other:?}");
        }
    }

    #[test]
    fn hashes_are_64_hex_digits_kept_in_lowercase() {
        let upper = "AB".repeat(32);
        assert_eq!(
            ContentHash::parse(&upper).unwrap().as_str(),
            "ab".repeat(32)
        );
        for bad in [
            "",
            "ab",
            &"g".repeat(64),
            &"a".repeat(65),
            "../../etc/passwd",
        ] {
            assert!(ContentHash::parse(bad).is_err(), "{bad:?}");
        }
        let digest = [0x0f; 32];
        assert_eq!(ContentHash::from_digest(&digest).as_str(), "0f".repeat(32));
    }

    #[test]
    fn registering_twice_is_a_no_op_success_with_one_event() {
        let mut store = MemoryStore::default();
        let hash = ContentHash::parse(&"a1".repeat(32)).unwrap();
        let first = apply(&register(&hash, Role::Vendor, 2), &ctx(5), &mut store).unwrap();
        let Ok(Response::Media { record, created }) = first else {
            panic!("{first:?}")
        };
        assert!(created);
        assert_eq!((record.origin_node, record.version), (2, 5));
        assert_eq!(record.uploaded_by, "v1");
        let again = apply(&register(&hash, Role::Admin, 3), &ctx(9), &mut store).unwrap();
        assert_eq!(
            again,
            Ok(Response::Media {
                record: record.clone(),
                created: false
            })
        );
        assert_eq!(store.events, vec![Event::MediaRegistered(record.clone())]);
        assert_eq!(get(&store, &hash).unwrap(), Some(record.clone()));
        assert_eq!(scan(&store, None, 10).unwrap(), vec![record]);
        assert!(scan(&store, Some(&hash), 10).unwrap().is_empty());
    }

    #[test]
    fn customers_and_oversized_or_empty_images_are_refused_without_a_trace() {
        let mut store = MemoryStore::default();
        let hash = ContentHash::parse(&"b2".repeat(32)).unwrap();
        let refused = apply(&register(&hash, Role::Customer, 1), &ctx(1), &mut store).unwrap();
        assert_eq!(refused, Err(DomainError::Forbidden));
        let huge = MediaCommand::Register {
            hash: hash.clone(),
            content_type: ImageType::Png,
            size: 100,
            width: MAX_DIMENSION,
            height: MAX_DIMENSION,
            uploaded_by: actor(Role::Vendor),
            origin_node: 1,
        };
        let refused = apply(&huge, &ctx(2), &mut store).unwrap();
        assert_eq!(refused.unwrap_err().code(), "validation_failed");
        assert!(check_image(0, 1, 1).is_err());
        assert!(check_image(1, 0, 1).is_err());
        assert!(check_image(1, MAX_DIMENSION, 100).is_ok());
        assert!(store.tables.is_empty() && store.events.is_empty());
    }

    fn within(hash: &ContentHash, size: u64, quota: Quota) -> MediaCommand {
        MediaCommand::RegisterWithinQuota {
            hash: hash.clone(),
            content_type: ImageType::Png,
            size,
            width: 10,
            height: 20,
            uploaded_by: actor(Role::Vendor),
            origin_node: 1,
            quota,
        }
    }

    #[test]
    fn a_quota_counts_each_new_image_once_and_the_ones_from_before_quotas() {
        let mut store = MemoryStore::default();
        let hashes: Vec<ContentHash> = (1u8..=4)
            .map(|b| ContentHash::from_digest(&[b; 32]))
            .collect();
        let quota = Quota {
            max_images: 3,
            max_bytes: 1_000,
        };
        // Registered before quotas: counted from the records.
        apply(&register(&hashes[0], Role::Vendor, 1), &ctx(1), &mut store)
            .unwrap()
            .unwrap();
        assert_eq!(
            usage(&store, "v1").unwrap(),
            MediaUsage {
                images: 1,
                bytes: 100
            }
        );
        let created = |outcome: crate::Outcome| match outcome {
            Ok(Response::Media { created, .. }) => created,
            other => panic!("{other:?}"),
        };
        assert!(created(
            apply(&within(&hashes[1], 300, quota), &ctx(2), &mut store).unwrap()
        ));
        // The same image again is not counted.
        assert!(!created(
            apply(&within(&hashes[1], 300, quota), &ctx(3), &mut store).unwrap()
        ));
        assert_eq!(
            usage(&store, "v1").unwrap(),
            MediaUsage {
                images: 2,
                bytes: 400
            }
        );
        // 400 + 700 bytes is over 1 000: refused, nothing written.
        assert_eq!(
            apply(&within(&hashes[2], 700, quota), &ctx(4), &mut store).unwrap(),
            Err(DomainError::UploadQuotaExceeded {
                images: 2,
                bytes: 400,
                max_images: 3,
                max_bytes: 1_000
            })
        );
        assert!(get(&store, &hashes[2]).unwrap().is_none());
        assert!(created(
            apply(&within(&hashes[2], 600, quota), &ctx(5), &mut store).unwrap()
        ));
        // A fourth image is one too many, whatever its size.
        assert!(matches!(
            apply(&within(&hashes[3], 1, quota), &ctx(6), &mut store).unwrap(),
            Err(DomainError::UploadQuotaExceeded { images: 3, .. })
        ));
    }
}
