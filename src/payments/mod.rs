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

/// How a customer pays at checkout, as the client sent it.
#[derive(Clone, serde::Serialize)]
pub enum PaymentInput {
    /// Card details (the sandbox's test cards). Only a reference and the
    /// last four digits are kept.
    Card {
        number: String,
        exp_month: u32,
        exp_year: u32,
        cvc: String,
    },
    /// A payment method the provider already knows.
    Method(String),
}

impl std::fmt::Debug for PaymentInput {
    /// Never prints card details.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Card { .. } => f.write_str("Card(..)"),
            Self::Method(m) => f.debug_tuple("Method").field(m).finish(),
        }
    }
}

/// Why a provider would not take a payment input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPayment(pub String);

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    /// The name stored with payment methods (`PaymentMethod::provider`).
    fn name(&self) -> &'static str;
    /// The payment method a checkout stores for `input`; `today` is (year,
    /// month) by the node's clock, for card expiry.
    fn payment_method(
        &self,
        input: &PaymentInput,
        today: (u32, u32),
    ) -> Result<PaymentMethod, InvalidPayment>;
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
