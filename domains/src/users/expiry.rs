//! Expiry of sessions, reset tokens and pending social sign-ins, in
//! deadline order through one index.

use super::*;

pub(super) fn expire_auth(
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    let removed = expire_due(store, ctx.now_ms)?;
    Ok(Response::Expired { removed })
}

/// Notes that the record `id` of `table` expires at `expires_ms`. A record
/// whose expiry moves later (a refreshed session) gets one entry per expiry;
/// the sweep removes a record only once its own `expires_ms` has passed.
pub(super) fn index_expiry(
    store: &mut dyn StoreMut,
    table: &'static str,
    id: &str,
    expires_ms: u64,
) -> Result<(), StoreFault> {
    store::put(
        store,
        AUTH_EXPIRY,
        &[
            KeyPart::U64(expires_ms),
            KeyPart::Str(table),
            KeyPart::Str(id),
        ],
        &ExpiryEntry {
            expires_ms,
            table: table.to_string(),
            id: id.to_string(),
        },
    )
}

/// When the earliest indexed auth record expires (the sweeper asks this
/// before proposing anything).
pub fn next_auth_expiry(store: &dyn Store) -> Result<Option<u64>, StoreFault> {
    let first: Vec<ExpiryEntry> = store.scan(AUTH_EXPIRY, &[], None, 1)?;
    Ok(first.first().map(|e| e.expires_ms))
}

/// Sweeps up to [`EXPIRE_BATCH`] due expiry entries; removes each record
/// whose own expiry has passed. Returns the number of entries swept.
pub(super) fn expire_due(store: &mut dyn StoreMut, now_ms: u64) -> Result<u64, StoreFault> {
    let due: Vec<ExpiryEntry> = store.scan(AUTH_EXPIRY, &[], None, EXPIRE_BATCH)?;
    let mut swept: u64 = 0;
    for entry in due.iter().take_while(|e| e.expires_ms <= now_ms) {
        store.delete_raw(
            AUTH_EXPIRY,
            &[
                KeyPart::U64(entry.expires_ms),
                KeyPart::Str(&entry.table),
                KeyPart::Str(&entry.id),
            ],
        );
        swept = swept.saturating_add(1);
        let key = [KeyPart::Str(&entry.id)];
        let (table, expires_ms) = match entry.table.as_str() {
            SESSIONS => (
                SESSIONS,
                store.get::<Session>(SESSIONS, &key)?.map(|r| r.expires_ms),
            ),
            RESET_TOKENS => (
                RESET_TOKENS,
                store
                    .get::<ResetToken>(RESET_TOKENS, &key)?
                    .map(|r| r.expires_ms),
            ),
            SOCIAL_PENDING => (
                SOCIAL_PENDING,
                store
                    .get::<PendingSocialLogin>(SOCIAL_PENDING, &key)?
                    .map(|r| r.expires_ms),
            ),
            _ => continue,
        };
        if expires_ms.is_some_and(|at| at <= now_ms) {
            store.delete_raw(table, &key);
        }
    }
    Ok(swept)
}
