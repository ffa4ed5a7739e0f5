//! The sandbox provider: deterministic, offline, for development and tests.
//!
//! It takes the test tokens a provider's client library would hand a shop
//! (named after Stripe's), never card numbers:
//!
//! | token | payment method | outcome |
//! |---|---|---|
//! | `tok_visa` | visa •••• 4242 | approved |
//! | `tok_mastercard` | mastercard •••• 4444 | approved |
//! | `tok_chargeDeclined` | visa •••• 0002 | declined (`card_declined`) |
//! | `tok_chargeDeclinedInsufficientFunds` | visa •••• 9995 | declined (`insufficient_funds`) |
//! | `tok_sandbox_slow` | visa •••• 0077 | answers after `payments.sandbox_delay_ms` (a timeout case) |
//!
//! A token becomes a payment-method reference (`pm_sandbox_<outcome>`) and
//! its display; the references themselves are accepted as `method`.

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

/// The test tokens: (token, method reference, display).
pub const TOKENS: &[(&str, &str, &str)] = &[
    ("tok_visa", "pm_sandbox_approve", "visa •••• 4242"),
    (
        "tok_mastercard",
        "pm_sandbox_approve",
        "mastercard •••• 4444",
    ),
    ("tok_chargeDeclined", "pm_sandbox_decline", "visa •••• 0002"),
    (
        "tok_chargeDeclinedInsufficientFunds",
        "pm_sandbox_insufficient_funds",
        "visa •••• 9995",
    ),
    ("tok_sandbox_slow", "pm_sandbox_slow", "visa •••• 0077"),
];

/// The payment method test token `token` stands for.
pub fn method_of_token(token: &str) -> Option<PaymentMethod> {
    TOKENS
        .iter()
        .find(|(t, _, _)| *t == token)
        .map(|(_, reference, display)| PaymentMethod {
            provider: NAME.to_string(),
            reference: reference.to_string(),
            display: display.to_string(),
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
    fn payment_method(&self, input: &PaymentInput) -> Result<PaymentMethod, InvalidPayment> {
        match input {
            PaymentInput::Token(token) => method_of_token(token).ok_or_else(|| {
                InvalidPayment("unknown payment token (the sandbox takes its test tokens)".into())
            }),
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

    #[test]
    fn test_tokens_stand_for_their_methods() {
        let m = method_of_token("tok_visa").unwrap();
        assert_eq!(
            (m.reference.as_str(), m.display.as_str()),
            ("pm_sandbox_approve", "visa •••• 4242")
        );
        let sandbox = Sandbox {
            delay: Duration::from_millis(1),
        };
        let method = |input| sandbox.payment_method(&input);
        assert_eq!(
            method(PaymentInput::Token("tok_chargeDeclined".into()))
                .unwrap()
                .reference,
            "pm_sandbox_decline"
        );
        assert!(method(PaymentInput::Token("tok_unknown".into())).is_err());
        assert!(method(PaymentInput::Method("pm_sandbox_slow".into())).is_ok());
        assert!(method(PaymentInput::Method("pm_other".into())).is_err());
        for (token, reference, _) in TOKENS {
            assert!(METHODS.contains(reference), "{token}");
        }
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
