//! Coupons: codes, whether one applies to an order ([`coupon_discount`]),
//! and their redemption at checkout.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CouponKind {
    Percent { basis_points: u32 },
    AmountOff { amount: Money },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// Upper case, 3 to 40 characters of A-Z 0-9 - _.
    pub code: String,
    pub kind: CouponKind,
    pub min_subtotal: Option<Money>,
    pub usage_limit: Option<u64>,
    pub per_customer_limit: Option<u64>,
    pub used: u64,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    pub active: bool,
    pub version: u64,
}

/// A coupon code as typed: trimmed and upper-cased.
pub fn parse_code(raw: &str) -> Result<String, DomainError> {
    let code = raw.trim().to_ascii_uppercase();
    let ok = (3..=40).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(code)
    } else {
        Err(DomainError::validation(
            "code",
            "must be 3 to 40 characters of A-Z 0-9 - _",
        ))
    }
}

impl Coupon {
    /// Everything the API checks of a coupon, money included.
    pub fn check(&self) -> Result<(), DomainError> {
        check::canonical("code", &self.code, parse_code(&self.code))?;
        match &self.kind {
            CouponKind::Percent { basis_points } if (1..=FULL).contains(basis_points) => {}
            CouponKind::Percent { .. } => {
                return Err(DomainError::validation("percent_bp", "must be 1 to 10000"))
            }
            CouponKind::AmountOff { amount } => amount.check("amount_off")?,
        }
        match &self.min_subtotal {
            Some(min) => min.check("min_subtotal"),
            None => Ok(()),
        }
    }
}

/// The discount a coupon gives on `subtotal` (pure), or why it does not apply.
pub fn coupon_discount(
    coupon: &Coupon,
    subtotal: &Money,
    now_ms: u64,
    customer_uses: u64,
) -> Result<Money, DomainError> {
    let refuse = |why: &str| {
        Err(DomainError::CouponNotApplicable {
            code: coupon.code.clone(),
            reason: why.to_string(),
        })
    };
    if !coupon.active
        || coupon.starts_ms.is_some_and(|s| now_ms < s)
        || coupon.ends_ms.is_some_and(|e| now_ms >= e)
    {
        return refuse("not active now");
    }
    if coupon.usage_limit.is_some_and(|l| coupon.used >= l) {
        return refuse("usage limit reached");
    }
    if coupon
        .per_customer_limit
        .is_some_and(|l| customer_uses >= l)
    {
        return refuse("you already used it");
    }
    if let Some(min) = &coupon.min_subtotal {
        if min.currency != subtotal.currency || subtotal.amount < min.amount {
            return refuse("the order does not reach its minimum");
        }
    }
    let amount = match &coupon.kind {
        CouponKind::Percent { basis_points } => percent_of(subtotal.amount, *basis_points),
        CouponKind::AmountOff { amount } if amount.currency == subtotal.currency => amount.amount,
        CouponKind::AmountOff { .. } => return refuse("it is in another currency"),
    };
    Ok(money(within(amount, subtotal.amount), &subtotal.currency))
}

pub fn get_coupon(store: &dyn Store, code: &str) -> Result<Option<Coupon>, StoreFault> {
    store.get(COUPONS, &[KeyPart::Str(code)])
}

pub fn customer_uses(store: &dyn Store, code: &str, customer: &str) -> Result<u64, StoreFault> {
    Ok(store
        .get::<u64>(REDEMPTIONS, &[KeyPart::Str(code), KeyPart::Str(customer)])?
        .unwrap_or(0))
}

/// Redeems a coupon once for `customer` (inside the checkout command).
pub(crate) fn redeem(
    store: &mut dyn StoreMut,
    coupon: &Coupon,
    customer: &str,
    ctx: &ApplyContext,
) -> Result<(), StoreFault> {
    let uses = customer_uses(store, &coupon.code, customer)?;
    store::put(
        store,
        REDEMPTIONS,
        &[KeyPart::Str(&coupon.code), KeyPart::Str(customer)],
        &uses.saturating_add(1),
    )?;
    let mut next = coupon.clone();
    next.used = next.used.saturating_add(1);
    next.version = ctx.version;
    store::put(store, COUPONS, &[KeyPart::Str(&coupon.code)], &next)
}

/// Creates or replaces a coupon (admins); `used` is kept from the stored one.
pub(super) fn upsert(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    coupon: &Coupon,
) -> Result<Response, ApplyError> {
    let used = get_coupon(store, &coupon.code)?.map_or(0, |c| c.used);
    let stored = Coupon {
        used,
        version: ctx.version,
        ..coupon.clone()
    };
    store::put(store, COUPONS, &[KeyPart::Str(&stored.code)], &stored)?;
    Ok(Response::Coupon(stored))
}
