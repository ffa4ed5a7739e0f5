//! The sandbox provider: deterministic, offline, for development and tests.
//!
//! Test card numbers (any future expiry, any CVC):
//!
//! | number | outcome |
//! |---|---|
//! | 4242 4242 4242 4242 | approved |
//! | 4000 0000 0000 0002 | declined (`card_declined`) |
//! | 4000 0000 0000 9995 | declined (`insufficient_funds`) |
//! | 4000 0000 0000 0077 | slow: answers after `payments.sandbox_delay_ms` (a timeout case) |
//!
//! Any other number passing the Luhn check is approved. Checkout turns the
//! number into a payment-method reference (`pm_sandbox_<outcome>`) plus the
//! last four digits: the number itself is never stored or logged.

use std::time::Duration;

use ecommerce_domains::order::PaymentMethod;
use futures::future::BoxFuture;
use futures::FutureExt;
use sha2::{Digest, Sha256};

use super::{
    InvalidPayment, PaymentInput, PaymentProvider, PaymentRequest, ProviderAnswer, ProviderResult,
};

pub const NAME: &str = "sandbox";

/// The sandbox's payment methods, by reference.
pub const METHODS: &[&str] = &[
    "pm_sandbox_approve",
    "pm_sandbox_decline",
    "pm_sandbox_insufficient_funds",
    "pm_sandbox_slow",
];

/// Why a card cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("card_number must be 12 to 19 digits passing the Luhn check")]
    Number,
    #[error("the card has expired or its expiry date is invalid")]
    Expiry,
    #[error("cvc must be 3 or 4 digits")]
    Cvc,
}

fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// Turns a test card into a payment method; `today` is (year, month).
pub fn tokenize(
    number: &str,
    exp_month: u32,
    exp_year: u32,
    cvc: &str,
    today: (u32, u32),
) -> Result<PaymentMethod, CardError> {
    let digits: Vec<u8> = number
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| c.to_digit(10).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or(CardError::Number)?;
    if !(12..=19).contains(&digits.len()) || !luhn_ok(&digits) {
        return Err(CardError::Number);
    }
    if !(1..=12).contains(&exp_month) || (exp_year, exp_month) < today {
        return Err(CardError::Expiry);
    }
    if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::Cvc);
    }
    let canonical: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let outcome = match canonical.as_str() {
        "4000000000000002" => "decline",
        "4000000000009995" => "insufficient_funds",
        "4000000000000077" => "slow",
        _ => "approve",
    };
    let brand = match digits[0] {
        4 => "visa",
        5 => "mastercard",
        3 => "amex",
        _ => "card",
    };
    Ok(PaymentMethod {
        provider: NAME.to_string(),
        reference: format!("pm_sandbox_{outcome}"),
        display: format!("{brand} •••• {}", &canonical[canonical.len() - 4..]),
    })
}

/// The sandbox provider. `delay` is how long the slow card takes to answer.
pub struct Sandbox {
    pub delay: Duration,
}

/// A deterministic provider reference for an operation.
fn reference(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("{prefix}_{}", &hex::encode(digest)[..16])
}

impl Sandbox {
    fn answer(
        &self,
        prefix: &'static str,
        request: PaymentRequest,
    ) -> BoxFuture<'_, ProviderResult> {
        async move {
            let method = request.method.reference.as_str();
            if method == "pm_sandbox_slow" {
                tokio::time::sleep(self.delay).await;
            }
            // Only the authorization can be refused; later operations on an
            // approved authorization succeed.
            let answer = match (prefix, method) {
                ("auth", "pm_sandbox_decline") => ProviderAnswer::Declined {
                    reason: "card_declined".into(),
                },
                ("auth", "pm_sandbox_insufficient_funds") => ProviderAnswer::Declined {
                    reason: "insufficient_funds".into(),
                },
                ("auth", m) if !METHODS.contains(&m) => ProviderAnswer::Declined {
                    reason: "unknown_payment_method".into(),
                },
                _ => ProviderAnswer::Approved {
                    reference: reference(prefix, &request.idempotency_key),
                },
            };
            Ok(answer)
        }
        .boxed()
    }
}

impl PaymentProvider for Sandbox {
    fn name(&self) -> &'static str {
        NAME
    }
    fn payment_method(
        &self,
        input: &PaymentInput,
        today: (u32, u32),
    ) -> Result<PaymentMethod, InvalidPayment> {
        match input {
            PaymentInput::Card {
                number,
                exp_month,
                exp_year,
                cvc,
            } => tokenize(number, *exp_month, *exp_year, cvc, today)
                .map_err(|e| InvalidPayment(e.to_string())),
            PaymentInput::Method(method) if METHODS.contains(&method.as_str()) => {
                Ok(PaymentMethod {
                    provider: NAME.to_string(),
                    reference: method.clone(),
                    display: method.clone(),
                })
            }
            PaymentInput::Method(_) => Err(InvalidPayment("unknown payment method".into())),
        }
    }
    fn authorize(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult> {
        self.answer("auth", request)
    }
    fn capture(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult> {
        self.answer("cap", request)
    }
    fn void(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult> {
        self.answer("void", request)
    }
    fn refund(&self, request: PaymentRequest) -> BoxFuture<'_, ProviderResult> {
        self.answer("ref", request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_domains::money::Money;

    const TODAY: (u32, u32) = (2026, 11);

    #[test]
    fn test_cards_tokenize_without_keeping_the_number() {
        let m = tokenize("4242 4242 4242 4242", 12, 2030, "123", TODAY).unwrap();
        assert_eq!(
            (m.reference.as_str(), m.display.as_str()),
            ("pm_sandbox_approve", "visa •••• 4242")
        );
        assert_eq!(
            tokenize("4000000000000002", 1, 2027, "123", TODAY)
                .unwrap()
                .reference,
            "pm_sandbox_decline"
        );
        assert_eq!(
            tokenize("4242424242424241", 12, 2030, "123", TODAY),
            Err(CardError::Number)
        );
        assert_eq!(
            tokenize("4242424242424242", 10, 2026, "123", TODAY),
            Err(CardError::Expiry)
        );
        assert_eq!(
            tokenize("4242424242424242", 13, 2030, "123", TODAY),
            Err(CardError::Expiry)
        );
        assert_eq!(
            tokenize("4242424242424242", 12, 2030, "12a", TODAY),
            Err(CardError::Cvc)
        );
    }

    #[tokio::test]
    async fn outcomes_are_deterministic() {
        let sandbox = Sandbox {
            delay: Duration::from_millis(1),
        };
        let request = |reference: &str| PaymentRequest {
            amount: Money::parse("amount", 100, "EUR").unwrap(),
            method: PaymentMethod {
                provider: NAME.into(),
                reference: reference.into(),
                display: String::new(),
            },
            authorization: None,
            idempotency_key: "order-1-authorize".into(),
        };
        let a = sandbox
            .authorize(request("pm_sandbox_approve"))
            .await
            .unwrap();
        let b = sandbox
            .authorize(request("pm_sandbox_approve"))
            .await
            .unwrap();
        assert_eq!(a, b, "same key, same answer");
        assert!(matches!(
            sandbox.authorize(request("pm_sandbox_insufficient_funds")).await.unwrap(),
            ProviderAnswer::Declined { reason } if reason == "insufficient_funds"
        ));
        let slow = Sandbox {
            delay: Duration::from_secs(5),
        };
        let answer = super::super::with_timeout(
            Duration::from_millis(10),
            slow.authorize(request("pm_sandbox_slow")),
        );
        assert_eq!(answer.await, Err(super::super::ProviderError::Timeout));
    }
}
