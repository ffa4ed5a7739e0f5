//! Money: integer minor units with an ISO 4217 currency code.
//!
//! Rounding rule: amounts are always whole minor units (cents); every
//! multiplication is exact and checked, and no division happens outside the
//! pricing rules, which round half away from zero and document it.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Largest amount in minor units a price or total may reach (10^15: ten
/// trillion units of a two-decimal currency), so sums of lines never overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// A three-letter upper-case ISO 4217 code such as `EUR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_string()))
        } else {
            Err(DomainError::validation(
                "currency",
                "must be a three-letter upper-case ISO 4217 code",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (e.g. cents).
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// A non-negative amount up to [`MAX_AMOUNT`]. A bad currency is
    /// reported on `<field>.currency`.
    pub fn parse(field: &str, amount: i64, currency: &str) -> Result<Self, DomainError> {
        if !(0..=MAX_AMOUNT).contains(&amount) {
            return Err(DomainError::validation(
                field,
                format!("amount must be between 0 and {MAX_AMOUNT} minor units"),
            ));
        }
        let currency = Currency::parse(currency).map_err(|e| match e {
            DomainError::Validation { message, .. } => {
                DomainError::validation(&format!("{field}.currency"), message)
            }
            other => other,
        })?;
        Ok(Self { amount, currency })
    }

    /// Checks a value that did not come through [`Money::parse`] (the fields
    /// are public, and decoding builds values without it): what `parse` would
    /// accept, or its refusal.
    pub fn check(&self, field: &str) -> Result<(), DomainError> {
        Self::parse(field, self.amount, self.currency.as_str()).map(|_| ())
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: 0,
            currency,
        }
    }

    /// `self × quantity`, or `None` past [`MAX_AMOUNT`].
    pub fn times(&self, quantity: u64) -> Option<Self> {
        let amount = i64::try_from(quantity)
            .ok()
            .and_then(|q| self.amount.checked_mul(q))
            .filter(|a| *a <= MAX_AMOUNT)?;
        Some(Self {
            amount,
            currency: self.currency.clone(),
        })
    }

    /// `self + other` in the same currency, or `None` past [`MAX_AMOUNT`] or
    /// across currencies.
    pub fn plus(&self, other: &Self) -> Option<Self> {
        if self.currency != other.currency {
            return None;
        }
        let amount = self
            .amount
            .checked_add(other.amount)
            .filter(|a| *a <= MAX_AMOUNT)?;
        Some(Self {
            amount,
            currency: self.currency.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_checked() {
        let eur = Money::parse("price", 250, "EUR").unwrap();
        assert_eq!(eur.times(4).unwrap().amount, 1000);
        assert!(eur.times(u64::MAX).is_none());
        assert!(Money::parse("price", -1, "EUR").is_err());
        assert_eq!(
            Money::parse("lines[2].price", 1, "eur"),
            Err(DomainError::validation(
                "lines[2].price.currency",
                "must be a three-letter upper-case ISO 4217 code"
            )),
            "a bad currency names the amount it belongs to"
        );
        let usd = Money::parse("price", 1, "USD").unwrap();
        assert!(eur.plus(&usd).is_none());
        assert_eq!(eur.plus(&eur).unwrap().amount, 500);
    }
}
