//! Extractors that turn every malformed request into the one error shape:
//! JSON bodies ([`AppJson`]), path parameters ([`AppPath`]), query strings
//! ([`AppQuery`]), and the idempotency header ([`MutationMeta`]).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ecommerce_domains::idempotency::{IdempotencyKey, IdempotencyTag};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

/// A JSON body; rejections become `malformed_json`, `invalid_body`,
/// `unsupported_media_type` or `payload_too_large`.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            "malformed_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::new("invalid_body", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            "unsupported_media_type",
            "expected a body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::new(
                "payload_too_large",
                "the body is larger than this node accepts",
            )
        }
        other => ApiError::new("invalid_body", other.body_text()),
    }
}

/// Path parameters; a rejection becomes `invalid_path`.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::new("invalid_path", e.body_text()))
    }
}

/// A query string; a rejection becomes `invalid_query`.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::new("invalid_query", e.body_text()))
    }
}

/// What a mutating request needs besides its body: its method and path (for
/// the idempotency fingerprint) and its `Idempotency-Key`, if any.
pub struct MutationMeta {
    method: String,
    path: String,
    key: Option<IdempotencyKey>,
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

impl<S: Send + Sync> FromRequestParts<S> for MutationMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let key = match parts.headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(raw) => {
                let raw = raw.to_str().map_err(|_| {
                    ApiError::new("invalid_header", "Idempotency-Key must be visible ASCII")
                })?;
                Some(
                    IdempotencyKey::parse(raw)
                        .map_err(|e| ApiError::new("invalid_header", e.to_string()))?,
                )
            }
        };
        Ok(Self {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            key,
        })
    }
}

impl MutationMeta {
    /// The idempotency tag for a request with this (parsed) body: the key and
    /// a digest of method, path and the body's canonical JSON, so the same
    /// request with other whitespace or field order still matches.
    pub fn tag<B: Serialize>(&self, body: &B) -> Option<IdempotencyTag> {
        let key = self.key.clone()?;
        let mut digest = Sha256::new();
        digest.update(self.method.as_bytes());
        digest.update([0]);
        digest.update(self.path.as_bytes());
        digest.update([0]);
        digest.update(serde_json::to_vec(body).unwrap_or_default());
        Some(IdempotencyTag {
            key,
            fingerprint: hex::encode(digest.finalize()),
        })
    }
}

/// Read consistency requested by a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Read-index: reflects every write acknowledged before the read began.
    #[default]
    Linearizable,
    /// This node's local replica, possibly behind the leader.
    Stale,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// `linearizable` (default) or `stale`.
    pub consistency: Option<Consistency>,
}
