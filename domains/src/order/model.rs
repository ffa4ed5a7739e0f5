//! What an order is: its lines, totals, hold, payment, fulfilment and
//! timeline, and the payment tasks of the outbox.

use super::*;

pub type OrderId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Draft,
    Confirmed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Confirmed => "confirmed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Draft,
            Self::Confirmed,
            Self::Paid,
            Self::Shipped,
            Self::Delivered,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// The workflow's legal moves.
    pub fn can_become(self, to: Self) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Draft, Confirmed)
                | (Confirmed, Paid)
                | (Paid, Shipped)
                | (Shipped, Delivered)
                | (Draft | Confirmed | Paid, Cancelled)
        )
    }
}

/// A shipping address. `location` (optional) lets the nearest-warehouse strategy work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub location: Option<Location>,
}

impl Address {
    /// Checks every field; `location` is checked by [`Location::parse`] before.
    pub fn validate(self) -> Result<Self, DomainError> {
        let text = |field: &str, v: &str, max: usize| {
            if v.trim().is_empty() || v.chars().count() > max {
                Err(DomainError::validation(
                    field,
                    format!("must be 1 to {max} characters"),
                ))
            } else {
                Ok(())
            }
        };
        text("shipping_address.name", &self.name, 200)?;
        text("shipping_address.line1", &self.line1, 200)?;
        if let Some(l2) = &self.line2 {
            if l2.chars().count() > 200 {
                return Err(DomainError::validation(
                    "shipping_address.line2",
                    "must be at most 200 characters",
                ));
            }
        }
        text("shipping_address.city", &self.city, 100)?;
        text("shipping_address.postal_code", &self.postal_code, 20)?;
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(DomainError::validation(
                "shipping_address.country",
                "must be an ISO 3166-1 alpha-2 code such as FR",
            ));
        }
        Ok(self)
    }
}

/// A line as bought: the price is a snapshot taken at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub vendor_id: Option<String>,
    pub quantity: u64,
    pub list_price: Money,
    /// After sale and tiered prices.
    pub unit_price: Money,
    /// Taken off by promotions.
    pub discount: Money,
    pub line_total: Money,
    /// How the price was reached.
    pub explanation: Vec<pricing::Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub subtotal: Money,
    pub shipping: Money,
    pub discount: Money,
    pub tax: Money,
    pub total: Money,
}

/// The stock an order holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Reserved; returned to stock at `expires_at_ms` unless paid first.
    Held { expires_at_ms: u64 },
    /// Reserved for a paid order; no longer expires.
    Committed,
    /// Shipped: the units left the warehouse.
    Consumed,
    /// Returned to available stock.
    Released,
}

impl Hold {
    /// Its name in the APIs: `held`, `committed`, `consumed` or `released`.
    pub fn name(&self) -> &'static str {
        match self {
            Hold::Held { .. } => "held",
            Hold::Committed => "committed",
            Hold::Consumed => "consumed",
            Hold::Released => "released",
        }
    }

    /// When a held reservation returns to stock.
    pub fn expires_at_ms(&self) -> Option<u64> {
        match self {
            Hold::Held { expires_at_ms } => Some(*expires_at_ms),
            _ => None,
        }
    }
}

/// What the customer pays with: a provider and the provider's reference to a
/// payment method (never a card number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub provider: String,
    pub reference: String,
    /// What may be shown, e.g. "visa •••• 4242".
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Authorization requested, no answer yet.
    Pending,
    Authorized {
        authorization: String,
    },
    Captured {
        authorization: String,
        capture: String,
    },
    Declined {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Voided,
    Refunded {
        refund: String,
    },
    /// A capture, void or refund the provider refused: needs an operator.
    ActionFailed {
        operation: PaymentOp,
        reason: String,
    },
}

impl PaymentStatus {
    /// Its name in the APIs: `pending`, `authorized`, `captured`,
    /// `declined`, `failed`, `voided`, `refunded` or `action_failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized { .. } => "authorized",
            Self::Captured { .. } => "captured",
            Self::Declined { .. } => "declined",
            Self::Failed { .. } => "failed",
            Self::Voided => "voided",
            Self::Refunded { .. } => "refunded",
            Self::ActionFailed { .. } => "action_failed",
        }
    }

    /// The provider's authorization, while it stands.
    pub fn authorization(&self) -> Option<&str> {
        match self {
            Self::Authorized { authorization } | Self::Captured { authorization, .. } => {
                Some(authorization)
            }
            _ => None,
        }
    }

    /// Why the payment did not go through, for people.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Declined { reason } | Self::Failed { reason } => Some(reason.clone()),
            Self::ActionFailed { operation, reason } => {
                Some(format!("{operation:?} failed: {reason}").to_lowercase())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub method: PaymentMethod,
    pub amount: Money,
    pub status: PaymentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at_ms: u64,
    pub delivered_at_ms: Option<u64>,
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at_ms: u64,
    /// `user:<id>` or `system`.
    pub by: String,
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: String,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub totals: Totals,
    /// The coupon redeemed by this order.
    pub coupon: Option<String>,
    pub shipping_address: Address,
    pub allocations: Vec<Allocation>,
    pub hold: Hold,
    pub payment: Payment,
    pub fulfilment: Option<Fulfilment>,
    pub timeline: Vec<Transition>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub version: u64,
}

impl Order {
    pub fn vendors(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| l.vendor_id.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// True when `actor` may see (part of) this order; see [`Order::visible_to`].
    pub fn is_visible_to(&self, actor: &Actor) -> bool {
        actor.is_admin()
            || self.customer_id == actor.user_id
            || (actor.role == Role::Vendor
                && self
                    .lines
                    .iter()
                    .any(|l| l.vendor_id.as_deref() == Some(actor.user_id.as_str())))
    }

    /// What `actor` may see of this order, or `None` if nothing.
    /// Customers see their own orders, admins all; a vendor sees the lines it
    /// sells (with their allocations), the address it ships to, and the
    /// status and timeline, but not other vendors' lines, totals or payment.
    pub fn visible_to(&self, actor: &Actor) -> Option<Order> {
        if actor.is_admin() || self.customer_id == actor.user_id {
            return Some(self.clone());
        }
        if actor.role != Role::Vendor {
            return None;
        }
        let mine = |vendor: &Option<String>| vendor.as_deref() == Some(actor.user_id.as_str());
        let lines: Vec<OrderLine> = self
            .lines
            .iter()
            .filter(|l| mine(&l.vendor_id))
            .cloned()
            .collect();
        if lines.is_empty() {
            return None;
        }
        let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
        let currency = self.totals.total.currency.clone();
        let subtotal = lines
            .iter()
            .try_fold(Money::zero(currency.clone()), |acc, l| {
                acc.plus(&l.line_total)
            })
            .unwrap_or_else(|| Money::zero(currency.clone()));
        Some(Order {
            allocations: self
                .allocations
                .iter()
                .filter(|a| skus.contains(&a.sku.as_str()))
                .cloned()
                .collect(),
            lines,
            totals: Totals {
                subtotal: subtotal.clone(),
                shipping: Money::zero(currency.clone()),
                discount: Money::zero(currency.clone()),
                tax: Money::zero(currency),
                total: subtotal,
            },
            payment: Payment {
                method: PaymentMethod {
                    provider: String::new(),
                    reference: String::new(),
                    display: String::new(),
                },
                ..self.payment.clone()
            },
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOp {
    Authorize,
    Capture,
    Void,
    Refund,
}

impl PaymentOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// A provider call the leader's payment worker must make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTask {
    pub order_id: OrderId,
    pub op: PaymentOp,
    pub amount: Money,
    pub method: PaymentMethod,
    /// The authorization a capture, void or refund refers to.
    pub authorization: Option<String>,
    /// Also the provider's idempotency key: `order-<id>-<op>`.
    pub key: String,
    pub created_ms: u64,
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentResult {
    Succeeded {
        reference: String,
    },
    Declined {
        reason: String,
    },
    /// No usable answer (timeouts, errors) after the worker's retries.
    Failed {
        reason: String,
    },
}

impl PaymentMethod {
    pub(crate) fn check(&self) -> Result<(), DomainError> {
        check::text("payment.provider", &self.provider, 100)?;
        check::text("payment.reference", &self.reference, 500)?;
        check::optional_text("payment.display", &self.display, 200)
    }
}
