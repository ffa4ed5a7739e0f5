//! Accounts: registration, profiles, roles, password changes, deletion.

use super::*;

#[allow(
    clippy::too_many_arguments,
    reason = "one parameter per field of the command, as every handler here"
)]
pub(super) fn register(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
    email: &Email,
    name: &str,
    role: &Role,
    password_hash: &Option<Secret<String>>,
    email_verified: &bool,
) -> Result<Response, ApplyError> {
    if store
        .get_raw(USERS_BY_EMAIL, &[KeyPart::Str(email.as_str())])?
        .is_some()
    {
        return Err(DomainError::EmailTaken.into());
    }
    let user = User {
        password_hash: password_hash.clone(),
        email_verified: *email_verified,
        ..new_user(ctx, user_id, email, name.to_string(), *role)
    };
    insert_user(store, &user)?;
    ok(UsersResponse::User(user))
}

pub(super) fn update_profile(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
    name: &Option<String>,
    shipping_address: &Option<Option<Address>>,
    billing_address: &Option<Option<Address>>,
) -> Result<Response, ApplyError> {
    let mut user = existing_user(store, user_id)?;
    if let Some(name) = name {
        user.name = name.to_string();
    }
    if let Some(a) = shipping_address {
        user.shipping_address = a.clone();
    }
    if let Some(a) = billing_address {
        user.billing_address = a.clone();
    }
    user.version = ctx.version;
    put_user(store, &user)?;
    ok(UsersResponse::User(user))
}

pub(super) fn set_role(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
    role: &Role,
) -> Result<Response, ApplyError> {
    let mut user = existing_user(store, user_id)?;
    if user.role != *role {
        user.role = *role;
        user.security_version = user.security_version.saturating_add(1);
        store.emit(Event::User(UserEvent::UserRoleChanged {
            user_id: user_id.to_string(),
            role: *role,
        }));
    }
    user.version = ctx.version;
    put_user(store, &user)?;
    ok(UsersResponse::User(user))
}

pub(super) fn change_password(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
    password_hash: &Secret<String>,
    expected_security_version: &u64,
) -> Result<Response, ApplyError> {
    let mut user = existing_user(store, user_id)?;
    if user.security_version != *expected_security_version {
        return Err(DomainError::InvalidCredentials.into());
    }
    user.password_hash = Some(password_hash.clone());
    user.security_version = user.security_version.saturating_add(1);
    user.version = ctx.version;
    put_user(store, &user)?;
    store.emit(Event::User(UserEvent::PasswordChanged {
        user_id: user_id.to_string(),
    }));
    ok(UsersResponse::User(user))
}

pub(super) fn delete_user(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
    user_id: &str,
) -> Result<Response, ApplyError> {
    let mut user = existing_user(store, user_id)?;
    if let Some(email) = &user.email {
        store.delete_raw(USERS_BY_EMAIL, &[KeyPart::Str(email.as_str())]);
    }
    let links: Vec<(String, String)> = store.scan(
        SOCIAL_LINKS_BY_USER,
        &[KeyPart::Str(user_id)],
        None,
        MAX_SOCIAL_LINKS,
    )?;
    for (provider, subject) in links {
        store.delete_raw(
            SOCIAL_LINKS,
            &[KeyPart::Str(&provider), KeyPart::Str(&subject)],
        );
        store.delete_raw(
            SOCIAL_LINKS_BY_USER,
            &[
                KeyPart::Str(user_id),
                KeyPart::Str(&provider),
                KeyPart::Str(&subject),
            ],
        );
    }
    user.email = None;
    user.name = String::new();
    user.password_hash = None;
    user.shipping_address = None;
    user.billing_address = None;
    user.email_verified = false;
    user.deleted = true;
    user.security_version = user.security_version.saturating_add(1);
    user.version = ctx.version;
    put_user(store, &user)?;
    store.emit(Event::User(UserEvent::UserDeleted {
        user_id: user_id.to_string(),
    }));
    ok(UsersResponse::User(user))
}
