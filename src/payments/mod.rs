//! The payment port: what the order workflow asks of a payment provider
//! (authorize, capture, void, refund), and the built-in sandbox provider.
//!
//! Providers are called by the leader's payment worker (`crate::workers`),
//! never by the state machine; their answers come back as commands. Every
//! call carries an idempotency key (`order-<id>-<operation>`), so a call
//! repeated after a timeout or a leader change is one operation at the
//! provider.

pub mod sandbox;

use std::time::Duration;

use ecommerce_domains::money::Money;
use ecommerce_domains::order::PaymentMethod;
use futures::future::BoxFuture;

/// One call to a provider.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub amount: Money,
    pub method: PaymentMethod,
    /// The authorization a capture, void or refund refers to.
    pub authorization: Option<String>,
    pub idempotency_key: String,
}

/// A provider's definite answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderAnswer {
    Approved { reference: String },
    Declined { reason: String },
}

/// No definite answer: the call may be retried with the same key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

pub type ProviderResult = Result<ProviderAnswer, ProviderError>;

/// How a customer pays at checkout, as the client sent it. Never card data:
/// the client gives its card to the provider (its hosted fields or SDK) and
/// sends the node the provider's token (PCI DSS SAQ A).
#[derive(Clone, serde::Serialize)]
pub enum PaymentInput {
    /// A provider's one-time token for a payment method (Stripe `tok_…`; the
    /// sandbox's test tokens).
    Token(String),
    /// A payment method the provider already knows.
    Method(String),
}

impl std::fmt::Debug for PaymentInput {
    /// Prints which kind of input, not the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(..)"),
            Self::Method(m) => f.debug_tuple("Method").field(m).finish(),
        }
    }
}

/// Whether `text` holds something that looks like a card number: a run of 13
/// to 19 digits (single spaces or dashes between them allowed) starting with
/// 2 to 6, the first digits of the card networks, that passes the Luhn
/// check. Such a request is refused before anything of it is stored,
/// fingerprinted or logged (`raw_card_data_refused`).
pub fn looks_like_card_number(text: &str) -> bool {
    let mut digits: Vec<u8> = Vec::new();
    let mut last_was_separator = false;
    let check = |digits: &mut Vec<u8>| {
        let found =
            (13..=19).contains(&digits.len()) && (2..=6).contains(&digits[0]) && luhn_ok(digits);
        digits.clear();
        found
    };
    for c in text.chars() {
        match c {
            '0'..='9' => {
                digits.push(c as u8 - b'0');
                last_was_separator = false;
            }
            ' ' | '-' if !digits.is_empty() && !last_was_separator => last_was_separator = true,
            _ => {
                if check(&mut digits) {
                    return true;
                }
                last_was_separator = false;
            }
        }
    }
    check(&mut digits)
}

/// The Luhn checksum of a card number's digits.
pub fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            match (i % 2 == 1, d * 2) {
                (true, x) if x > 9 => x - 9,
                (true, x) => x,
                (false, _) => d,
            }
        })
        .sum();
    sum % 10 == 0
}

/// Why a provider would not take a payment input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPayment(pub String);

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    /// The name stored with payment methods (`PaymentMethod::provider`).
    fn name(&self) -> &'static str;
    /// The payment method a checkout stores for `input`.
    fn payment_method(&self, input: &PaymentInput) -> Result<PaymentMethod, InvalidPayment>;
    fn authorize(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult>;
    fn capture(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult>;
    fn void(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult>;
    fn refund(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult>;
}

/// Runs one provider call under `timeout`.
pub async fn with_timeout(
    timeout: Duration,
    call: BoxFuture<'_, ProviderResult>,
) -> ProviderResult {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(ProviderError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_found_wherever_they_are_written() {
        for text in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "card: 5555555555554444, thanks",
            "378282246310005",
        ] {
            assert!(looks_like_card_number(text), "{text}");
        }
        for text in [
            "4242424242424241",        // fails Luhn
            "1234567812345670",        // no network starts with 1
            "4242 4242",               // too short
            "10115",                   // a postal code
            "42424242424242424242424", // too long a run
            "4242  4242 4242 4242",    // two separators: two short runs
            "tok_visa",
        ] {
            assert!(!looks_like_card_number(text), "{text}");
        }
    }
}
