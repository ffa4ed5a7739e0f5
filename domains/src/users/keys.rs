//! The signing key ring: a first key, and rotation with a grace period.

use super::*;

pub(super) fn ensure_signing_key(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    kid: &str,
    secret: &Secret<Vec<u8>>,
) -> Result<Response, ApplyError> {
    let mut ring = key_ring(store)?;
    if let Some(active) = ring.active_key() {
        return ok(UsersResponse::SigningKey {
            kid: active.kid.clone(),
        });
    }
    validate_key(kid, secret)?;
    ring.keys.push(SigningKey {
        kid: kid.to_string(),
        secret: secret.clone(),
        created_ms: ctx.now_ms,
        retired_ms: None,
    });
    ring.active = Some(kid.to_string());
    store::put(store, SIGNING_KEYS, &[KeyPart::Str(KEY_RING)], &ring)?;
    store.emit(Event::User(UserEvent::SigningKeyRotated {
        kid: kid.to_string(),
    }));
    ok(UsersResponse::SigningKey {
        kid: kid.to_string(),
    })
}

pub(super) fn rotate_signing_key(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    kid: &str,
    secret: &Secret<Vec<u8>>,
    retain_ms: &u64,
) -> Result<Response, ApplyError> {
    let mut ring = key_ring(store)?;
    validate_key(kid, secret)?;
    if ring.key(kid).is_some() {
        return Err(DomainError::validation("kid", "is already in use").into());
    }
    let now = ctx.now_ms;
    ring.keys.retain(|k| {
        k.retired_ms
            .is_none_or(|retired| now < retired.saturating_add(*retain_ms))
    });
    for key in &mut ring.keys {
        key.retired_ms.get_or_insert(now);
    }
    ring.keys.push(SigningKey {
        kid: kid.to_string(),
        secret: secret.clone(),
        created_ms: now,
        retired_ms: None,
    });
    ring.active = Some(kid.to_string());
    store::put(store, SIGNING_KEYS, &[KeyPart::Str(KEY_RING)], &ring)?;
    store.emit(Event::User(UserEvent::SigningKeyRotated {
        kid: kid.to_string(),
    }));
    ok(UsersResponse::SigningKey {
        kid: kid.to_string(),
    })
}

pub(super) fn validate_key(kid: &str, secret: &Secret<Vec<u8>>) -> Result<(), DomainError> {
    if kid.is_empty() || kid.len() > 64 {
        return Err(DomainError::validation("kid", "must be 1 to 64 characters"));
    }
    if secret.0.len() < 32 {
        return Err(DomainError::validation(
            "secret",
            "must be at least 32 bytes",
        ));
    }
    Ok(())
}
