//! Extractors that turn every malformed request into the one error shape:
//! JSON bodies ([`AppJson`]), path parameters ([`AppPath`]), query strings
//! ([`AppQuery`]), and the idempotency header ([`MutationMeta`], through
//! `app::idempotency`, which the gRPC services use too).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use ecommerce_domains::idempotency::{IdempotencyKey, IdempotencyTag, Principal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::error::AppError;
use crate::app::idempotency::{idempotency_key, idempotency_tag};
use crate::app::App;

/// A JSON body; rejections become `malformed_json`, `invalid_body`,
/// `unsupported_media_type` or `payload_too_large`.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => AppError::new(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => AppError::new(ErrorCode::InvalidBody, e.body_text()),
        JsonRejection::MissingJsonContentType(_) => AppError::new(
            ErrorCode::UnsupportedMediaType,
            "expected a body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            AppError::new(
                ErrorCode::PayloadTooLarge,
                "the body is larger than this node accepts",
            )
        }
        other => AppError::new(ErrorCode::InvalidBody, other.body_text()),
    }
}

/// Path parameters; a rejection becomes `invalid_path`.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| AppError::new(ErrorCode::InvalidPath, e.body_text()))
    }
}

/// A query string; a rejection becomes `invalid_query`.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| AppError::new(ErrorCode::InvalidQuery, e.body_text()))
    }
}

/// What a mutating request needs besides its body: its method and path (for
/// the idempotency fingerprint) and its `Idempotency-Key`, if any.
pub struct MutationMeta {
    method: String,
    path: String,
    key: Option<IdempotencyKey>,
}

impl<S: Send + Sync> FromRequestParts<S> for MutationMeta {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The public path (`/api/v1/checkout`), not the one a nested router
        // sees (`/checkout`): gRPC fingerprints name the public route.
        let path = match parts.extensions.get::<OriginalUri>() {
            Some(original) => original.path().to_string(),
            None => parts.uri.path().to_string(),
        };
        Ok(Self {
            method: parts.method.to_string(),
            path,
            key: idempotency_key(&parts.headers)?,
        })
    }
}

impl MutationMeta {
    /// The idempotency tag of this request by `principal` with this (parsed)
    /// body, if it carries a key.
    pub fn tag<B: Serialize>(&self, principal: &Principal, body: &B) -> Option<IdempotencyTag> {
        let key = self.key.as_ref()?;
        Some(idempotency_tag(
            principal,
            key,
            &self.method,
            &self.path,
            body,
        ))
    }

    /// Refuses an `Idempotency-Key` on a route that cannot honour one
    /// (`why`, for the client), rather than ignoring it.
    pub fn refuse_key(&self, why: &str) -> Result<(), AppError> {
        match self.key {
            None => Ok(()),
            Some(_) => Err(AppError::new(
                ErrorCode::InvalidHeader,
                format!("this route does not take an Idempotency-Key: {why}"),
            )),
        }
    }
}

pub use crate::app::Consistency;
use crate::app::ErrorCode;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// `linearizable` (default) or `stale`.
    pub consistency: Option<Consistency>,
}

/// The client's IP address: the TCP peer, or the client a trusted proxy
/// names (`http.trusted_proxies`, see `app::client_addr`).
pub struct ClientIp(pub Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let app = App::from_ref(state);
        Ok(Self(app.client_address(peer, &parts.headers)))
    }
}
