//! Images over REST: multipart upload by vendors and admins, the bytes and
//! thumbnails with CDN-friendly cache headers, and metadata (`app::media`
//! holds the use cases; peers fetch blobs over the peer protocol).
//!
//! An upload's type comes from its magic bytes, never from what the client
//! claims. The bytes are stored on this node first, then one command
//! registers the hash and metadata (never the bytes) through Raft.
//!
//! Reads need no linearizable barrier when the record is already here: a
//! record never changes once registered. Only a miss is confirmed with a
//! linearizable read before answering 404.

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::media::{self, ImageType, MediaRecord};
use ecommerce_domains::DomainError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::SignedIn;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppPath, AppQuery, MutationMeta};
use super::App;
use crate::app::access::forbidden;
use crate::app::idempotency::IDEMPOTENT_REPLAYED;
use crate::app::media::Uploaded;
use crate::app::ErrorCode;
use crate::config::Settings;
use crate::media::imaging::THUMBNAIL_SIZES;
use crate::media::{media_url, thumbnail_url, MediaError};

/// Images never change under their URL: any cache may keep them for a year.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Room for the multipart framing around the file, on top of `media.max_upload_bytes`.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 << 10;

/// The upload form: one file field named `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// A JPEG, PNG, WebP or GIF image, at most `media.max_upload_bytes` (10 MiB by default).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThumbnailDto {
    /// Longest side in pixels.
    pub size: u32,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaDto {
    /// SHA-256 of the bytes (64 hex digits); also the `ETag`.
    pub hash: String,
    /// `image/jpeg`, `image/png`, `image/webp` or `image/gif`, from the bytes.
    pub content_type: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
    pub uploaded_by: String,
    /// The node that first stored the bytes.
    pub origin_node: u64,
    pub created_ms: u64,
    pub version: u64,
    /// Public URL of the image (under `media.cdn_base_url` when configured).
    pub url: String,
    pub thumbnails: Vec<ThumbnailDto>,
}

impl MediaDto {
    pub fn new(settings: &Settings, record: MediaRecord) -> Self {
        let thumbnails = THUMBNAIL_SIZES
            .iter()
            .map(|&size| ThumbnailDto {
                size,
                url: thumbnail_url(settings, &record.hash, size),
            })
            .collect();
        Self {
            url: media_url(settings, &record.hash),
            thumbnails,
            hash: record.hash.as_str().to_string(),
            content_type: record.content_type.mime().to_string(),
            size: record.size,
            width: record.width,
            height: record.height,
            uploaded_by: record.uploaded_by,
            origin_node: record.origin_node,
            created_ms: record.created_ms,
            version: record.version,
        }
    }
}

impl From<MediaError> for AppError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Unavailable(_) => Self::new(ErrorCode::Unavailable, e.to_string()),
            MediaError::Undecodable(_) => Self::new(ErrorCode::MediaUndecodable, e.to_string()),
            MediaError::Blob(_) | MediaError::Task(_) => Self::internal(e),
        }
    }
}

fn too_large(max: usize) -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        format!("the image is larger than {max} bytes"),
    )
    .with_details(serde_json::json!({ "max_bytes": max }))
}

fn multipart_error(e: MultipartError, max: usize) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else if super::timeouts::is_body_timeout(&e) {
        AppError::new(
            ErrorCode::RequestTimeout,
            "the upload stalled: no data arrived for http.body_read_timeout_ms",
        )
    } else {
        AppError::new(ErrorCode::InvalidBody, e.body_text())
    }
}

fn invalid_form(message: &str) -> AppError {
    AppError::new(
        ErrorCode::InvalidBody,
        format!("{message}; send multipart/form-data with one file field named `file`"),
    )
}

/// Reads the one `file` field, at most `max` bytes. An oversized file is
/// refused after the rest of the body (up to the route's limit) is read, so
/// the client sees the answer instead of a reset connection.
async fn read_file(multipart: &mut Multipart, max: usize) -> AppResult<Bytes> {
    let mut file: Option<Vec<u8>> = None;
    let mut oversized = false;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, max))?
    {
        if field.name() != Some("file") {
            let name = field.name().unwrap_or("").to_string();
            return Err(invalid_form(&format!("unexpected field {name:?}")));
        }
        if file.is_some() {
            return Err(invalid_form("more than one `file` field"));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
            if buf.len() + chunk.len() > max {
                oversized = true;
                while let Ok(Some(_)) = field.chunk().await {}
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        if oversized {
            break;
        }
        file = Some(buf);
    }
    if oversized {
        while let Ok(Some(mut rest)) = multipart.next_field().await {
            while let Ok(Some(_)) = rest.chunk().await {}
        }
        return Err(too_large(max));
    }
    file.map(Bytes::from)
        .ok_or_else(|| invalid_form("no `file` field"))
}

/// Upload an image (vendors and admins). The type is taken from the bytes;
/// the image is stored under its SHA-256. Uploading an image that is already
/// registered answers 200 with its record.
#[utoipa::path(post, path = "/api/v1/media", tag = "media",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = MediaDto, description = "Registered"),
        (status = 200, body = MediaDto, description = "Already registered"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody, description = "Not a JPEG, PNG, WebP or GIF"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn upload(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    meta: MutationMeta,
    multipart: Result<Multipart, MultipartRejection>,
) -> AppResult<Response> {
    // A customer is refused before its body is read.
    if !media::may_upload(&actor) {
        return Err(forbidden());
    }
    let mut multipart = multipart.map_err(|_| {
        AppError::new(
            ErrorCode::UnsupportedMediaType,
            "expected a multipart/form-data body with one file field named `file`",
        )
    })?;
    let max = state.settings.media.max_upload_bytes;
    let bytes = read_file(&mut multipart, max).await?;
    let principal = Principal::from(&actor);
    let rendered = state
        .upload_image(&actor, bytes, |hash| {
            meta.tag(&principal, &serde_json::json!({ "sha256": hash }))
        })
        .await?;
    let mut response = match rendered.result {
        Ok(Uploaded { record, created }) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let location = format!("/api/v1/media/{}", record.hash);
            let mut response =
                (status, Json(MediaDto::new(&state.settings, record))).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err(e) => e.into_response(),
    };
    if rendered.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Whether `If-None-Match` names `etag` (or `*`); weak tags compare equal.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// 200 with the bytes, or 304 when the client's copy is current; both with
/// the immutable cache headers.
fn image_response(etag: String, body: Option<(Bytes, ImageType)>) -> Response {
    let mut response = match body {
        Some((bytes, ty)) => {
            let mut r = Body::from(bytes).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty.mime()));
            r.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        None => StatusCode::NOT_MODIFIED.into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_IMMUTABLE),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

/// The image's bytes, served by any node (fetched from a peer if this node
/// does not have them yet). `ETag` is the quoted hash; `If-None-Match`
/// answers 304.
#[utoipa::path(get, path = "/api/v1/media/{hash}", tag = "media", params(("hash" = String, Path)),
    responses((status = 200, description = "The image", content(("image/jpeg"), ("image/png"), ("image/webp"), ("image/gif"))),
        (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_media(
    State(state): State<App>,
    AppPath(raw): AppPath<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let record = state.media_record(&raw).await?;
    let etag = format!("\"{}\"", record.hash);
    if matches_etag(&headers, &etag) {
        return Ok(image_response(etag, None));
    }
    let bytes = state.media.load(&record).await?;
    Ok(image_response(etag, Some((bytes, record.content_type))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailParams {
    /// Longest side in pixels: 64, 256 or 512.
    pub size: u32,
}

/// A thumbnail: the image scaled to fit `size` × `size` (never enlarged),
/// as JPEG for JPEG images and PNG otherwise. Rendered once per node and
/// cached on disk.
#[utoipa::path(get, path = "/api/v1/media/{hash}/thumbnail", tag = "media",
    params(("hash" = String, Path), ThumbnailParams),
    responses((status = 200, description = "The thumbnail", content(("image/jpeg"), ("image/png"))),
        (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Size not offered, or the image cannot be decoded"),
        (status = 503, body = ErrorBody)))]
pub async fn get_thumbnail(
    State(state): State<App>,
    AppPath(raw): AppPath<String>,
    AppQuery(params): AppQuery<ThumbnailParams>,
    headers: HeaderMap,
) -> AppResult<Response> {
    if !THUMBNAIL_SIZES.contains(&params.size) {
        return Err(AppError::from(DomainError::validation(
            "size",
            format!("must be one of {THUMBNAIL_SIZES:?}"),
        ))
        .with_details(serde_json::json!({ "field": "size", "allowed": THUMBNAIL_SIZES })));
    }
    let record = state.media_record(&raw).await?;
    let etag = format!("\"{}-{}\"", record.hash, params.size);
    if matches_etag(&headers, &etag) {
        return Ok(image_response(etag, None));
    }
    let thumbnail = state.media.thumbnail(&record, params.size).await?;
    Ok(image_response(etag, Some(thumbnail)))
}

/// What is known about an image: type, size, dimensions, uploader, URLs.
#[utoipa::path(get, path = "/api/v1/media/{hash}/meta", tag = "media", params(("hash" = String, Path)),
    responses((status = 200, body = MediaDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_meta(
    State(state): State<App>,
    AppPath(raw): AppPath<String>,
) -> AppResult<Json<MediaDto>> {
    let record = state.media_record(&raw).await?;
    Ok(Json(MediaDto::new(&state.settings, record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = "\"abc\"";
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(matches_etag(&with("\"abc\""), etag));
        assert!(matches_etag(&with("\"x\", W/\"abc\""), etag));
        assert!(matches_etag(&with("*"), etag));
        assert!(!matches_etag(&with("\"abcd\""), etag));
        assert!(!matches_etag(&HeaderMap::new(), etag));
    }

    #[test]
    fn media_errors_keep_their_codes() {
        let e = AppError::from(MediaError::Unavailable("x".into()));
        assert_eq!((e.status.as_u16(), e.body.code), (503, "unavailable"));
        let e = AppError::from(MediaError::Undecodable("x".into()));
        assert_eq!((e.status.as_u16(), e.body.code), (422, "media_undecodable"));
    }
}
