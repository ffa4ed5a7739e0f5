//! What every commerce RPC reads from the request metadata, through the
//! application layer's functions that REST uses too: the caller (the
//! [`Actor`] that `auth::grpc::Authenticate` verified from the bearer token,
//! held to a role by `app::access`), the guest cart (`x-cart-token`, made a
//! [`CartRef`] by `app::carts`), the idempotency tag (`idempotency-key`,
//! scoped to the caller and fingerprinted as the REST request the RPC stands
//! for by `app::idempotency`, so both transports share one record per key);
//! and the way back: an [`AppError`] as a [`Status`], a [`Rendered`] result
//! as a reply.
//!
//! Nothing here knows a rule of the domain or a REST type: rules are the use
//! cases' (`app/`), and `grpc/` never reaches into `api/`.

use std::future::Future;
use std::net::IpAddr;

use ecommerce_domains::idempotency::{IdempotencyTag, Principal};
use ecommerce_domains::{Actor, DomainError};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use super::proto;
use crate::app::access::{admin_only, signed_in};
use crate::app::carts::{unreadable_token, CartRef, CART_TOKEN};
use crate::app::idempotency::{idempotency_key, idempotency_tag, IDEMPOTENT_REPLAYED};
use crate::app::{App, AppError, AppResult, Consistency, Rendered};

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

/// The client's address: the TCP peer, or the client a trusted proxy names
/// in `x-forwarded-for` / `forwarded` (see `app::client_addr`).
pub fn client<T>(request: &Request<T>, app: &App) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip());
    app.client_address(peer, &request.metadata().clone().into_headers())
}

/// Whose cart the call is about: the caller's, else `x-cart-token`'s.
pub fn cart<T>(request: &Request<T>, app: &App) -> AppResult<CartRef> {
    let token = match request.metadata().get(CART_TOKEN) {
        None => None,
        Some(raw) => Some(raw.to_str().map_err(|_| unreadable_token())?),
    };
    CartRef::new(caller(request)?, token, client(request, app))
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

/// The gRPC status of an error: its code's gRPC code ([`ErrorCode::grpc_code`]),
/// the stable error code in the message and in the metadata [`ERROR_CODE`].
pub fn status(e: AppError) -> Status {
    let mut status = Status::new(
        e.code.grpc_code(),
        format!("{}: {}", e.body.code, e.body.message),
    );
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
    use crate::app::ErrorCode;
    use tonic::Code;

    #[test]
    fn statuses_follow_the_error_codes_and_keep_them() {
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
            let code = *ErrorCode::ALL.iter().find(|c| c.as_str() == code).unwrap();
            let status = status(AppError::new(code, "m"));
            let code = code.as_str();
            assert_eq!(status.code(), expected, "{code}");
            assert_eq!(status.message(), format!("{code}: m"));
            assert_eq!(status.metadata().get(ERROR_CODE).unwrap(), code);
        }
    }
}
