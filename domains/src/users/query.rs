//! Reads of the users domain, for the application layer and the commands.

use super::*;

pub fn get_user(store: &dyn Store, user_id: &str) -> Result<Option<User>, StoreFault> {
    store.get(USERS, &[KeyPart::Str(user_id)])
}

/// The live account with this e-mail address, if any.
pub fn user_by_email(store: &dyn Store, email: &Email) -> Result<Option<User>, StoreFault> {
    let id: Option<String> = store.get(USERS_BY_EMAIL, &[KeyPart::Str(email.as_str())])?;
    match id {
        Some(id) => get_user(store, &id),
        None => Ok(None),
    }
}

pub fn list_users(
    store: &dyn Store,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<User>, StoreFault> {
    let after = after.map(|a| [KeyPart::Str(a)]);
    store.scan(USERS, &[], after.as_ref().map(|a| &a[..]), limit)
}

pub fn get_session(store: &dyn Store, family_id: &str) -> Result<Option<Session>, StoreFault> {
    store.get(SESSIONS, &[KeyPart::Str(family_id)])
}

pub fn key_ring(store: &dyn Store) -> Result<KeyRing, StoreFault> {
    Ok(store
        .get(SIGNING_KEYS, &[KeyPart::Str(KEY_RING)])?
        .unwrap_or_default())
}
