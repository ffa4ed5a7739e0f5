//! Reads of orders: listings by customer, vendor or time, and what the
//! leader's workers look for (payment tasks, the next hold to expire).

use super::*;

/// Newest first: keys sort by descending id.
pub(super) fn newest_first(id: OrderId) -> KeyPart<'static> {
    KeyPart::U64(u64::MAX.saturating_sub(id))
}

/// Which orders a listing walks.
pub enum Scope<'a> {
    Customer(&'a str),
    Vendor(&'a str),
    All,
}

/// Filters of an order listing.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<OrderStatus>,
    pub created_from_ms: Option<u64>,
    pub created_to_ms: Option<u64>,
}

/// Most index entries one listing call examines, so a filter that matches
/// little cannot make one request walk every order.
pub const MAX_EXAMINED: usize = 10_000;

/// Orders newest first, starting after order `before` (exclusive), at most
/// `limit` matching `filter`; with the id to continue from if more may follow.
pub fn list(
    store: &dyn Store,
    scope: Scope<'_>,
    filter: &Filter,
    before: Option<OrderId>,
    limit: usize,
) -> Result<(Vec<Order>, Option<OrderId>), StoreFault> {
    let (table, owner) = match scope {
        Scope::Customer(c) => (BY_CUSTOMER, Some(c)),
        Scope::Vendor(v) => (BY_VENDOR, Some(v)),
        Scope::All => (BY_TIME, None),
    };
    let prefix: Vec<KeyPart<'_>> = owner.map(KeyPart::Str).into_iter().collect();
    let mut after: Option<Vec<KeyPart<'_>>> = before.map(|id| {
        let mut k = prefix.clone();
        k.push(newest_first(id));
        k
    });
    let mut out = Vec::new();
    let mut examined: usize = 0;
    const PAGE: usize = 256;
    loop {
        let ids: Vec<OrderId> = store.scan(table, &prefix, after.as_deref(), PAGE)?;
        for id in &ids {
            examined = examined.saturating_add(1);
            let Some(order) = get(store, *id)? else {
                continue;
            };
            if filter.created_to_ms.is_some_and(|to| order.created_ms > to) {
                continue;
            }
            if filter
                .created_from_ms
                .is_some_and(|from| order.created_ms < from)
            {
                // Newest first: everything after this is older still.
                return Ok((out, None));
            }
            if filter.status.is_none_or(|s| s == order.status) {
                out.push(order);
                if out.len() == limit {
                    return Ok((out, Some(*id)));
                }
            }
            if examined >= MAX_EXAMINED {
                return Ok((out, Some(*id)));
            }
        }
        let Some(last) = ids.last() else {
            return Ok((out, None));
        };
        if ids.len() < PAGE {
            return Ok((out, None));
        }
        let mut k = prefix.clone();
        k.push(newest_first(*last));
        after = Some(k);
    }
}

/// Pending payment tasks, oldest orders first, for the leader's worker.
pub fn payment_tasks(store: &dyn Store, limit: usize) -> Result<Vec<PaymentTask>, StoreFault> {
    store.scan(PAYMENT_TASKS, &[], None, limit)
}

/// The earliest hold expiry, for the leader's sweeper.
pub fn next_hold_expiry(store: &dyn Store) -> Result<Option<u64>, StoreFault> {
    let first: Vec<HoldEntry> = store.scan(HOLD_EXPIRY, &[], None, 1)?;
    Ok(first.first().map(|e| e.expires_at_ms))
}
