//! Fixed values of the persisted types, for the golden test: no clock, no
//! random id, so every run encodes the same bytes.
//!
//! Every `Option` is `Some` and every `Vec` holds something, so that a sample
//! built from these reaches every type nested in it (see `enums.rs`).

use std::collections::BTreeMap;

use ecommerce_domains::allocation::Allocation;
use ecommerce_domains::cart::{Cart, CartLine, CartOwner};
use ecommerce_domains::catalog::{CatalogId, Category, ImageRef, Product, ProductDraft, Variant};
use ecommerce_domains::idempotency::{IdempotencyKey, IdempotencyTag, Principal};
use ecommerce_domains::inventory::{
    Location, LowStock, Sku, StockLevel, Threshold, Warehouse, WarehouseId,
};
use ecommerce_domains::listing::Listing;
use ecommerce_domains::media::{ContentHash, ImageType, MediaRecord};
use ecommerce_domains::money::Money;
use ecommerce_domains::order::{
    Address as ShippingAddress, Fulfilment, Hold, Order, OrderLine, OrderStatus, Payment,
    PaymentMethod, PaymentOp, PaymentStatus, PaymentTask, Totals, Transition,
};
use ecommerce_domains::pricing::{
    Coupon, CouponKind, Promotion, PromotionKind, Step, Target, Tier,
};
use ecommerce_domains::users::{
    Address, Email, KeyRing, PendingSocialLogin, ResetToken, Secret, Session, SigningKey,
    SocialIdentity, User,
};
use ecommerce_domains::{Actor, Role};

/// The log-ordered time of every sample (ms).
pub const NOW: u64 = 1_700_000_000_000;
pub const ORDER_ID: u64 = 41;

pub fn sku() -> Sku {
    Sku::parse("TSHIRT-M").unwrap()
}

pub fn warehouse_id() -> WarehouseId {
    WarehouseId::parse("paris-1").unwrap()
}

pub fn eur(amount: i64) -> Money {
    Money::parse("price", amount, "EUR").unwrap()
}

pub fn location() -> Location {
    Location::parse(48.8566, 2.3522).unwrap()
}

pub fn id(raw: &str) -> CatalogId {
    CatalogId::parse("id", raw).unwrap()
}

pub fn hash() -> ContentHash {
    ContentHash::parse(&"ab".repeat(32)).unwrap()
}

pub fn email() -> Email {
    Email::parse("ada@example.com").unwrap()
}

pub fn secret(raw: &str) -> Secret<String> {
    Secret(raw.to_string())
}

pub fn digest(c: char) -> String {
    c.to_string().repeat(64)
}

pub fn customer() -> Actor {
    Actor {
        user_id: "u-ada".into(),
        role: Role::Customer,
    }
}

pub fn vendor() -> Actor {
    Actor {
        user_id: "u-vendor".into(),
        role: Role::Vendor,
    }
}

pub fn admin() -> Actor {
    Actor {
        user_id: "u-admin".into(),
        role: Role::Admin,
    }
}

pub fn attributes() -> BTreeMap<String, String> {
    BTreeMap::from([("size".to_string(), "M".to_string())])
}

// ---- inventory ----

pub fn warehouse() -> Warehouse {
    Warehouse {
        id: warehouse_id(),
        name: "Paris 1".into(),
        location: location(),
        priority: -1,
        version: 3,
    }
}

pub fn stock_level() -> StockLevel {
    StockLevel {
        sku: sku(),
        warehouse_id: warehouse_id(),
        on_hand: 10,
        reserved: 2,
        version: 5,
    }
}

pub fn low_stock() -> LowStock {
    LowStock {
        sku: sku(),
        warehouse_id: Some(warehouse_id()),
        threshold: 5,
        available: 4,
        since_ms: NOW,
    }
}

pub fn threshold() -> Threshold {
    Threshold {
        sku: sku(),
        warehouse_id: Some(warehouse_id()),
        threshold: 5,
        version: 6,
    }
}

// ---- listings, carts, catalogue, pricing ----

pub fn listing() -> Listing {
    Listing {
        sku: sku(),
        name: "T-shirt (M)".into(),
        price: eur(1990),
        vendor_id: Some(vendor().user_id),
        active: true,
        version: 4,
    }
}

pub fn cart() -> Cart {
    Cart {
        owner: CartOwner::User(customer().user_id),
        lines: vec![CartLine {
            sku: sku(),
            quantity: 2,
        }],
        created_ms: NOW - 60_000,
        updated_ms: NOW,
        version: 8,
    }
}

pub fn variant() -> Variant {
    Variant {
        sku: sku(),
        attributes: attributes(),
        price: eur(1990),
        weight_grams: 180,
    }
}

pub fn image() -> ImageRef {
    ImageRef {
        hash: hash().as_str().to_string(),
        alt: "front".into(),
    }
}

pub fn draft() -> ProductDraft {
    ProductDraft {
        id: id("tshirt"),
        slug: "t-shirt".into(),
        name: "T-shirt".into(),
        description: "Cotton".into(),
        category_id: Some(id("clothes")),
        attributes: attributes(),
        images: vec![image()],
        vendor_id: Some(vendor().user_id),
        active: true,
        variants: vec![variant()],
    }
}

pub fn product() -> Product {
    Product {
        id: id("tshirt"),
        slug: "t-shirt".into(),
        name: "T-shirt".into(),
        description: "Cotton".into(),
        category_id: Some(id("clothes")),
        attributes: attributes(),
        images: vec![image()],
        vendor_id: Some(vendor().user_id),
        active: true,
        deleted_ms: Some(NOW),
        variants: vec![variant()],
        created_ms: NOW - 60_000,
        updated_ms: NOW,
        version: 9,
    }
}

pub fn category() -> Category {
    Category {
        id: id("shirts"),
        parent_id: Some(id("clothes")),
        slug: "shirts".into(),
        name: "Shirts".into(),
        position: -2,
        version: 10,
    }
}

pub fn promotion() -> Promotion {
    Promotion {
        id: id("summer"),
        name: "Summer".into(),
        kind: PromotionKind::Tiered {
            tiers: vec![Tier {
                min_quantity: 3,
                unit_price: eur(1500),
            }],
        },
        target: Target::Category(id("clothes")),
        starts_ms: Some(NOW),
        ends_ms: Some(NOW + 86_400_000),
        stackable: true,
        active: true,
        version: 11,
    }
}

pub fn coupon() -> Coupon {
    Coupon {
        code: "WELCOME10".into(),
        kind: CouponKind::Percent { basis_points: 1000 },
        min_subtotal: Some(eur(5000)),
        usage_limit: Some(100),
        per_customer_limit: Some(1),
        used: 7,
        starts_ms: Some(NOW),
        ends_ms: Some(NOW + 86_400_000),
        active: true,
        version: 12,
    }
}

// ---- orders ----

pub fn shipping_address() -> ShippingAddress {
    ShippingAddress {
        name: "Ada Lovelace".into(),
        line1: "1 rue de Rivoli".into(),
        line2: Some("3e étage".into()),
        city: "Paris".into(),
        postal_code: "75001".into(),
        country: "FR".into(),
        location: Some(location()),
    }
}

pub fn payment_method() -> PaymentMethod {
    PaymentMethod {
        provider: "sandbox".into(),
        reference: "pm_card_visa".into(),
        display: "visa •••• 4242".into(),
    }
}

pub fn order() -> Order {
    Order {
        id: ORDER_ID,
        customer_id: customer().user_id,
        status: OrderStatus::Paid,
        lines: vec![OrderLine {
            sku: sku().as_str().to_string(),
            name: "T-shirt (M)".into(),
            vendor_id: Some(vendor().user_id),
            quantity: 2,
            list_price: eur(1990),
            unit_price: eur(1990),
            discount: eur(398),
            line_total: eur(3582),
            explanation: vec![Step {
                rule: "percent".into(),
                promotion_id: Some("summer".into()),
                description: "10 % off".into(),
                line_amount: 3582,
            }],
        }],
        totals: Totals {
            subtotal: eur(3582),
            shipping: eur(0),
            discount: eur(358),
            tax: eur(0),
            total: eur(3224),
        },
        coupon: Some("WELCOME10".into()),
        shipping_address: shipping_address(),
        allocations: vec![Allocation {
            sku: sku(),
            warehouse_id: warehouse_id(),
            quantity: 2,
        }],
        hold: Hold::Held {
            expires_at_ms: NOW + 900_000,
        },
        payment: Payment {
            method: payment_method(),
            amount: eur(3224),
            status: PaymentStatus::Authorized {
                authorization: "auth_1".into(),
            },
        },
        fulfilment: Some(Fulfilment {
            carrier: "La Poste".into(),
            tracking_number: "6A123".into(),
            shipped_at_ms: NOW,
            delivered_at_ms: Some(NOW + 86_400_000),
        }),
        timeline: vec![Transition {
            at_ms: NOW,
            by: "user:u-ada".into(),
            from: Some(OrderStatus::Confirmed),
            to: OrderStatus::Paid,
            reason: "payment authorized".into(),
        }],
        created_ms: NOW - 60_000,
        updated_ms: NOW,
        version: 13,
    }
}

pub fn payment_task() -> PaymentTask {
    PaymentTask {
        order_id: ORDER_ID,
        op: PaymentOp::Capture,
        amount: eur(3224),
        method: payment_method(),
        authorization: Some("auth_1".into()),
        key: format!("order-{ORDER_ID}-capture"),
        created_ms: NOW,
    }
}

// ---- media ----

pub fn media_record() -> MediaRecord {
    MediaRecord {
        hash: hash(),
        content_type: ImageType::Png,
        size: 12_345,
        width: 640,
        height: 480,
        uploaded_by: vendor().user_id,
        origin_node: 2,
        created_ms: NOW,
        version: 14,
    }
}

// ---- users ----

pub fn address() -> Address {
    Address {
        line1: "1 rue de Rivoli".into(),
        line2: Some("3e étage".into()),
        city: "Paris".into(),
        region: Some("Île-de-France".into()),
        postal_code: "75001".into(),
        country: "FR".into(),
    }
}

pub fn user() -> User {
    User {
        id: customer().user_id,
        email: Some(email()),
        name: "Ada".into(),
        role: Role::Customer,
        password_hash: Some(secret("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")),
        email_verified: true,
        shipping_address: Some(address()),
        billing_address: Some(address()),
        security_version: 2,
        created_ms: NOW - 60_000,
        deleted: false,
        version: 15,
    }
}

pub fn session() -> Session {
    Session {
        family_id: "fam-1".into(),
        user_id: customer().user_id,
        current_hash: digest('c'),
        previous: vec![digest('b')],
        user_version: 2,
        expires_ms: NOW + 86_400_000,
        revoked: false,
    }
}

pub fn reset_token() -> ResetToken {
    ResetToken {
        user_id: customer().user_id,
        expires_ms: NOW + 3_600_000,
        used: false,
    }
}

pub fn pending_social() -> PendingSocialLogin {
    PendingSocialLogin {
        provider: "google".into(),
        verifier: secret("verifier-1"),
        nonce: "nonce-1".into(),
        expires_ms: NOW + 600_000,
    }
}

pub fn identity() -> SocialIdentity {
    SocialIdentity {
        provider: "google".into(),
        subject: "1234567890".into(),
        email: Some(email()),
        email_verified: true,
        name: "Ada".into(),
    }
}

pub fn key_ring() -> KeyRing {
    KeyRing {
        active: Some("k2".into()),
        keys: vec![
            SigningKey {
                kid: "k1".into(),
                secret: Secret(vec![1; 32]),
                created_ms: NOW - 86_400_000,
                retired_ms: Some(NOW),
            },
            SigningKey {
                kid: "k2".into(),
                secret: Secret(vec![2; 32]),
                created_ms: NOW,
                retired_ms: None,
            },
        ],
    }
}

// ---- idempotency ----

pub fn tag() -> IdempotencyTag {
    IdempotencyTag {
        key: IdempotencyKey::scoped(
            &Principal::User(customer().user_id),
            &IdempotencyKey::parse("order-17").unwrap(),
        ),
        fingerprint: digest('f'),
    }
}
