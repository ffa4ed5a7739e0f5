//! Password reset: a single-use token with a deadline, announced by an event.

use super::*;

/// Stores reset token `token_hash` for the account and emits `announce`
/// (which carries the token, or from `IssuePasswordReset` on, the token
/// sealed for the notification side).
pub(super) fn request_password_reset(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
    token_hash: &str,
    ttl_ms: &u64,
    announce: UserEvent,
) -> Result<Response, ApplyError> {
    let Some(_) = live_user(store, user_id)? else {
        // Deleted meanwhile: answer as if done (no enumeration).
        return ok(UsersResponse::ResetRequested);
    };
    let expires_ms = ctx.now_ms.saturating_add(*ttl_ms);
    store::put(
        store,
        RESET_TOKENS,
        &[KeyPart::Str(token_hash)],
        &ResetToken {
            user_id: user_id.to_string(),
            expires_ms,
            used: false,
        },
    )?;
    index_expiry(store, RESET_TOKENS, token_hash, expires_ms)?;
    store.emit(Event::User(announce));
    ok(UsersResponse::ResetRequested)
}

pub(super) fn reset_password(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    token_hash: &str,
    password_hash: &Secret<String>,
) -> Result<Response, ApplyError> {
    let record: Option<ResetToken> = store.get(RESET_TOKENS, &[KeyPart::Str(token_hash)])?;
    let record = match record {
        Some(r) if !r.used && ctx.now_ms < r.expires_ms => r,
        _ => return Err(DomainError::InvalidResetToken.into()),
    };
    let Some(mut user) = live_user(store, &record.user_id)? else {
        return Err(DomainError::InvalidResetToken.into());
    };
    user.password_hash = Some(password_hash.clone());
    user.security_version = user.security_version.saturating_add(1);
    user.version = ctx.version;
    put_user(store, &user)?;
    store::put(
        store,
        RESET_TOKENS,
        &[KeyPart::Str(token_hash)],
        &ResetToken {
            used: true,
            ..record
        },
    )?;
    store.emit(Event::User(UserEvent::PasswordChanged {
        user_id: user.id.clone(),
    }));
    ok(UsersResponse::User(user))
}
