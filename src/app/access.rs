//! Who may call a use case, by role: the checks REST's extractors
//! (`api::auth`) and gRPC's calls (`grpc::call`) both run on the caller they
//! authenticated. Finer rules (a vendor acts only on what it owns, a customer
//! only on their own orders) belong to each use case or to the domain.
//!
//! Nothing here reads credentials: verifying a bearer token is
//! `App::authenticate` (`sessions.rs`), reading it from a request is the
//! transport's.

use ecommerce_domains::{Actor, Role};

use super::{AppError, AppResult};
use crate::app::ErrorCode;

/// A signed-in caller, else `unauthenticated`.
pub fn signed_in(caller: Option<Actor>) -> AppResult<Actor> {
    caller.ok_or_else(unauthenticated)
}

/// A signed-in vendor or admin, else `unauthenticated` or `forbidden`.
pub fn vendor_or_admin(caller: Option<Actor>) -> AppResult<Actor> {
    let actor = signed_in(caller)?;
    require_vendor_or_admin(&actor)?;
    Ok(actor)
}

/// A signed-in admin, else `unauthenticated` or `forbidden`.
pub fn admin_only(caller: Option<Actor>) -> AppResult<Actor> {
    let actor = signed_in(caller)?;
    require_admin(&actor)?;
    Ok(actor)
}

/// `forbidden` unless `actor` is an admin: what an admin-only use case
/// checks of the actor it is given.
pub fn require_admin(actor: &Actor) -> AppResult<()> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(forbidden())
    }
}

/// `forbidden` unless `actor` is a vendor or an admin.
pub fn require_vendor_or_admin(actor: &Actor) -> AppResult<()> {
    if matches!(actor.role, Role::Vendor | Role::Admin) {
        Ok(())
    } else {
        Err(forbidden())
    }
}

pub fn unauthenticated() -> AppError {
    AppError::new(ErrorCode::Unauthenticated, "sign in to use this route")
}

pub fn forbidden() -> AppError {
    AppError::new(ErrorCode::Forbidden, "you are not allowed to do this")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Option<Actor> {
        Some(Actor {
            user_id: "u".into(),
            role,
        })
    }

    #[test]
    fn roles_are_checked_in_order_signed_in_then_role() {
        let code = |r: AppResult<Actor>| r.map(|_| "ok").unwrap_or_else(|e| e.body.code);
        assert_eq!(code(signed_in(None)), "unauthenticated");
        assert_eq!(code(admin_only(None)), "unauthenticated");
        assert_eq!(code(vendor_or_admin(None)), "unauthenticated");
        assert_eq!(code(signed_in(actor(Role::Customer))), "ok");
        assert_eq!(code(admin_only(actor(Role::Vendor))), "forbidden");
        assert_eq!(code(admin_only(actor(Role::Admin))), "ok");
        assert_eq!(code(vendor_or_admin(actor(Role::Customer))), "forbidden");
        assert_eq!(code(vendor_or_admin(actor(Role::Vendor))), "ok");
    }
}
