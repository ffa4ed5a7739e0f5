//! What every commerce RPC shares with its REST twin, read from the request
//! metadata through the same functions the REST extractors use: the caller
//! (the [`Actor`] that `auth::grpc::Authenticate` verified from the bearer
//! token), the guest cart (`x-cart-token`),
//! the idempotency tag (`idempotency-key`, scoped to the caller and
//! fingerprinted as the REST request the RPC stands for, so both transports
//! share one record per key); and the way back: an
//! [`AppError`] as a [`Status`], a [`Rendered`] result as a reply.
//!
//! Nothing here parses a request body or knows a rule of the domain: that
//! stays in `api/`.

use std::future::Future;

use axum::http::StatusCode;
use ecommerce_domains::idempotency::{IdempotencyTag, Principal};
use ecommerce_domains::{Actor, DomainError};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use super::proto;
use crate::api::auth::{admin_only, signed_in};
use crate::api::carts::CartRef;
use crate::api::extract::{idempotency_key, idempotency_tag, Consistency, IDEMPOTENT_REPLAYED};
use crate::api::Rendered;
use crate::app::{AppError, AppResult};

/// Metadata key of the stable error code on every error status.
pub const ERROR_CODE: &str = "x-error-code";

/// The caller, if any.
fn caller<T>(request: &Request<T>) -> AppResult<Option<Actor>> {
    Ok(request.extensions().get::<Actor>().cloned())
}

/// A signed-in caller, else `unauthenticated`.
pub fn signed_in_caller<T>(request: &Request<T>) -> AppResult<Actor> {
    signed_in(caller(request)?)
}

/// A signed-in admin, else `unauthenticated` or `forbidden`.
pub fn admin_caller<T>(request: &Request<T>) -> AppResult<Actor> {
    admin_only(caller(request)?)
}

/// Whose cart the call is about: the caller's, else `x-cart-token`'s.
pub fn cart<T>(request: &Request<T>) -> AppResult<CartRef> {
    CartRef::from_headers(caller(request)?, request.metadata().as_ref())
}

/// The idempotency tag of a write by `principal`, if it carries an
/// `idempotency-key`: fingerprinted as the REST request the RPC stands for
/// (`method`, `path`, and the REST `body` built from the message), so a
/// retry over REST with the same key finds the same record, and vice versa.
pub fn tag<T, B: serde::Serialize>(
    request: &Request<T>,
    principal: &Principal,
    method: &str,
    path: &str,
    body: &B,
) -> AppResult<Option<IdempotencyTag>> {
    let key = idempotency_key(request.metadata().as_ref())?;
    Ok(key.map(|key| idempotency_tag(principal, &key, method, path, body)))
}

/// The read consistency a request asks for.
pub fn consistency(raw: i32) -> Consistency {
    match proto::Consistency::try_from(raw) {
        Ok(proto::Consistency::Stale) => Consistency::Stale,
        _ => Consistency::Linearizable,
    }
}

/// A field the REST API requires of its body, absent from a message.
pub fn required<T>(field: &str, value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| DomainError::validation(field, "is required").into())
}

/// The gRPC status of an API error: a code fitting its HTTP status, the
/// stable error code in the message and in the metadata [`ERROR_CODE`].
pub fn status(e: AppError) -> Status {
    let code = match e.status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        // A lost compare-and-set race: retrying the read-modify-write may succeed.
        StatusCode::CONFLICT if e.body.code == "version_conflict" => Code::Aborted,
        StatusCode::CONFLICT => Code::FailedPrecondition,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    let mut status = Status::new(code, format!("{}: {}", e.body.code, e.body.message));
    status
        .metadata_mut()
        .insert(ERROR_CODE, MetadataValue::from_static(e.body.code));
    status
}

/// Answers a read: its value, or the error as a status.
pub async fn read<T>(value: impl Future<Output = AppResult<T>>) -> Result<Response<T>, Status> {
    value.await.map(Response::new).map_err(status)
}

/// Answers a write: the committed result, or the error as a status; a replay
/// of a stored outcome is marked with `idempotent-replayed: true`, on a value
/// or an error alike.
pub async fn write<T>(
    rendered: impl Future<Output = AppResult<Rendered<T>>>,
) -> Result<Response<T>, Status> {
    let rendered = rendered.await.map_err(status)?;
    let mark = |metadata: &mut MetadataMap| {
        if rendered.replayed {
            metadata.insert(IDEMPOTENT_REPLAYED, MetadataValue::from_static("true"));
        }
    };
    match rendered.result {
        Ok(value) => {
            let mut response = Response::new(value);
            mark(response.metadata_mut());
            Ok(response)
        }
        Err(e) => {
            let mut status = status(e);
            mark(status.metadata_mut());
            Err(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_http_status_and_keep_the_code() {
        for (code, expected) in [
            ("invalid_body", Code::InvalidArgument),
            ("validation_failed", Code::InvalidArgument),
            ("unauthenticated", Code::Unauthenticated),
            ("forbidden", Code::PermissionDenied),
            ("order_not_found", Code::NotFound),
            ("insufficient_stock", Code::FailedPrecondition),
            ("version_conflict", Code::Aborted),
            ("no_leader", Code::Unavailable),
            ("timeout", Code::DeadlineExceeded),
            ("internal", Code::Internal),
        ] {
            let status = status(AppError::new(code, "m"));
            assert_eq!(status.code(), expected, "{code}");
            assert_eq!(status.message(), format!("{code}: m"));
            assert_eq!(status.metadata().get(ERROR_CODE).unwrap(), code);
        }
    }
}
