//! Sessions: refresh-token families started, refreshed (rotation with reuse
//! detection) and revoked.

use super::*;

pub(super) fn start_session(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
    family_id: &str,
    token_hash: &str,
    ttl_ms: &u64,
    expected_security_version: &u64,
) -> Result<Response, ApplyError> {
    let user = match get_user(store, user_id)? {
        Some(u) if !u.deleted && u.security_version == *expected_security_version => u,
        _ => return Err(DomainError::InvalidCredentials.into()),
    };
    if get_session(store, family_id)?.is_some() {
        return Err(DomainError::validation("family_id", "is already in use").into());
    }
    new_session(store, ctx, user, family_id, token_hash, *ttl_ms)
}

pub(super) fn refresh_session(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    family_id: &str,
    presented_hash: &str,
    new_hash: &str,
    ttl_ms: &u64,
) -> Result<Response, ApplyError> {
    let Some(mut session) = get_session(store, family_id)? else {
        return Err(DomainError::InvalidRefreshToken.into());
    };
    if session
        .previous
        .iter()
        .any(|h| eq_digest(h, presented_hash))
    {
        if !session.revoked {
            session.revoked = true;
            put_session(store, &session)?;
        }
        return ok(UsersResponse::RefreshReused);
    }
    if !eq_digest(&session.current_hash, presented_hash) {
        return Err(DomainError::InvalidRefreshToken.into());
    }
    let user = match get_user(store, &session.user_id)? {
        Some(u) if session_is_live(&session, &u, ctx.now_ms) => u,
        _ => return Err(DomainError::InvalidRefreshToken.into()),
    };
    let old = std::mem::replace(&mut session.current_hash, new_hash.to_string());
    session.previous.push(old);
    if session.previous.len() > MAX_PREVIOUS_TOKENS {
        session.previous.remove(0);
    }
    session.expires_ms = ctx.now_ms.saturating_add(*ttl_ms);
    put_session(store, &session)?;
    ok(UsersResponse::Session {
        user,
        family_id: family_id.to_string(),
    })
}

pub(super) fn revoke_session(
    store: &mut dyn StoreMut,
    family_id: &str,
    presented_hash: &str,
) -> Result<Response, ApplyError> {
    let Some(mut session) = get_session(store, family_id)? else {
        return Err(DomainError::InvalidRefreshToken.into());
    };
    let known = eq_digest(&session.current_hash, presented_hash)
        || session
            .previous
            .iter()
            .any(|h| eq_digest(h, presented_hash));
    if !known {
        return Err(DomainError::InvalidRefreshToken.into());
    }
    if !session.revoked {
        session.revoked = true;
        put_session(store, &session)?;
    }
    ok(UsersResponse::SessionRevoked)
}

pub(super) fn put_session(store: &mut dyn StoreMut, session: &Session) -> Result<(), StoreFault> {
    store::put(
        store,
        SESSIONS,
        &[KeyPart::Str(&session.family_id)],
        session,
    )?;
    index_expiry(store, SESSIONS, &session.family_id, session.expires_ms)
}

/// Starts session `family_id` of `user` with its first refresh-token digest.
pub(super) fn new_session(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    user: User,
    family_id: &str,
    token_hash: &str,
    ttl_ms: u64,
) -> Result<Response, ApplyError> {
    put_session(
        store,
        &Session {
            family_id: family_id.to_string(),
            user_id: user.id.clone(),
            current_hash: token_hash.to_string(),
            previous: Vec::new(),
            user_version: user.security_version,
            expires_ms: ctx.now_ms.saturating_add(ttl_ms),
            revoked: false,
        },
    )?;
    ok(UsersResponse::Session {
        user,
        family_id: family_id.to_string(),
    })
}

/// True when `session` may authorise requests for `user` at `now_ms`.
pub fn session_is_live(session: &Session, user: &User, now_ms: u64) -> bool {
    !session.revoked
        && !user.deleted
        && session.user_id == user.id
        && session.user_version == user.security_version
        && now_ms < session.expires_ms
}
