//! Social sign-in: pending sign-ins and the links from a provider identity
//! to an account.

use super::*;

pub(super) fn begin_social_login(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    state_hash: &str,
    pending: &PendingSocialLogin,
    ttl_ms: &u64,
) -> Result<Response, ApplyError> {
    let key = [KeyPart::Str(state_hash)];
    if store.get_raw(SOCIAL_PENDING, &key)?.is_some() {
        return Err(DomainError::validation("state", "is already in use").into());
    }
    let pending = PendingSocialLogin {
        expires_ms: ctx.now_ms.saturating_add(*ttl_ms),
        ..pending.clone()
    };
    store::put(store, SOCIAL_PENDING, &key, &pending)?;
    index_expiry(store, SOCIAL_PENDING, state_hash, pending.expires_ms)?;
    ok(UsersResponse::SocialLoginBegun)
}

pub(super) fn take_social_login(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    state_hash: &str,
    provider: &str,
) -> Result<Response, ApplyError> {
    let key = [KeyPart::Str(state_hash)];
    let pending: Option<PendingSocialLogin> = store.get(SOCIAL_PENDING, &key)?;
    match pending {
        Some(p) if p.provider == *provider && ctx.now_ms < p.expires_ms => {
            store.delete_raw(SOCIAL_PENDING, &key);
            ok(UsersResponse::SocialLoginTaken(p))
        }
        _ => Err(DomainError::InvalidSocialState.into()),
    }
}

pub(super) fn social_sign_in(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    identity: &SocialIdentity,
    new_user_id: &str,
    family_id: &str,
    token_hash: &str,
    ttl_ms: &u64,
) -> Result<Response, ApplyError> {
    if get_session(store, family_id)?.is_some() {
        return Err(DomainError::validation("family_id", "is already in use").into());
    }
    let link_key = [
        KeyPart::Str(&identity.provider),
        KeyPart::Str(&identity.subject),
    ];
    let linked: Option<String> = store.get(SOCIAL_LINKS, &link_key)?;
    let linked = match linked {
        Some(id) => live_user(store, &id)?,
        None => None,
    };
    let user = match linked {
        Some(user) => user,
        None => {
            // Link by e-mail only when the provider vouches for it.
            let email = match (&identity.email, identity.email_verified) {
                (Some(email), true) => email,
                _ => return Err(DomainError::EmailNotVerified.into()),
            };
            let user = match user_by_email(store, email)? {
                Some(mut user) if !user.deleted => {
                    if !user.email_verified {
                        // Whoever registered this address without
                        // proving it owned it loses the password and
                        // its sessions (account pre-hijacking).
                        user.password_hash = None;
                        user.email_verified = true;
                        user.security_version = user.security_version.saturating_add(1);
                        user.version = ctx.version;
                        put_user(store, &user)?;
                    }
                    user
                }
                _ => {
                    let name =
                        parse_name(&identity.name).unwrap_or_else(|_| email.as_str().to_string());
                    let user = User {
                        email_verified: true,
                        ..new_user(ctx, new_user_id, email, name, Role::Customer)
                    };
                    insert_user(store, &user)?;
                    user
                }
            };
            store::put(store, SOCIAL_LINKS, &link_key, &user.id)?;
            store::put(
                store,
                SOCIAL_LINKS_BY_USER,
                &[
                    KeyPart::Str(&user.id),
                    KeyPart::Str(&identity.provider),
                    KeyPart::Str(&identity.subject),
                ],
                &(&identity.provider, &identity.subject),
            )?;
            store.emit(Event::User(UserEvent::SocialIdentityLinked {
                user_id: user.id.clone(),
                provider: identity.provider.clone(),
            }));
            user
        }
    };
    new_session(store, ctx, user, family_id, token_hash, *ttl_ms)
}
