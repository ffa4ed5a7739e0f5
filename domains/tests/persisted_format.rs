//! The persisted format, pinned by a golden file. Over 600 lines: one value of
//! every variant of every persisted enum, in one list so none can be left out.
//!
//! Raft log entries, snapshots, backups, idempotency records, events and every
//! table record are stored with bincode (serde, `config::standard()`: see
//! `domains::store::encode` and `ecommerce_storage::codec`). bincode writes an
//! enum's *variant index* and a struct's fields in order, with no names: a
//! variant inserted mid-enum, two variants swapped, or a field added to an
//! existing variant or struct makes every stored value decode as something
//! else, or not at all. Persisted enums are therefore append-only, and this
//! test enforces it: it encodes one value of every variant of every persisted
//! enum, and a value of every stored record type, and compares the bytes
//! with `tests/golden/persisted_format.txt` (one `name<TAB>hex` line each).
//!
//! How completeness is enforced:
//!
//! - **Every variant of a listed enum, by the compiler.** Each enum's samples
//!   are written with `variants!` as `Variant => sample` pairs. The macro
//!   expands to a `match` over the enum with one arm per pair and no wildcard,
//!   so a variant added without a sample does not compile (E0004,
//!   non-exhaustive patterns, pointing here); a variant listed twice is an
//!   unreachable pattern (an error under clippy's `-D warnings`) and a
//!   duplicate name. Each sample is then checked to be of the variant it is
//!   listed under.
//! - **Every persisted enum, at run time.** Every sample is walked by a
//!   serializer that notes each enum it holds (`persisted_format/enums.rs`);
//!   an enum found anywhere in a stored value without a `variants!` list of
//!   its own fails `every_enum_in_a_stored_value_has_its_list_of_samples`.
//! - **Every table, at run time.** Each table in `domains::TABLES`, and the
//!   idempotency tables, must have a sample of what `apply` stores there
//!   (`every_table_has_a_sample`). The four private index-entry types are
//!   captured from a short run of real commands (`persisted_format/scenario.rs`),
//!   which also checks that what `apply` writes to the other tables it touches
//!   decodes as the type sampled for them.
//!
//! When bytes differ the test names each value, shows the first differing
//! bytes and what the golden bytes decode to today, and states the rule. A
//! value appended since (a new variant at the end, a new table) fails too,
//! until the golden file is regenerated:
//! `UPDATE_GOLDEN=1 cargo test -p ecommerce-domains --test persisted_format`.

use std::collections::BTreeSet;
use std::path::Path;

use ecommerce_domains::allocation::{Shortage, Strategy};
use ecommerce_domains::cart::{CartCommand, CartOwner, LineMode};
use ecommerce_domains::catalog::{CatalogCommand, ImportItem};
use ecommerce_domains::command::{Applied, Outcome};
use ecommerce_domains::inventory::InventoryCommand;
use ecommerce_domains::listing::ListingCommand;
use ecommerce_domains::media::{ImageType, MediaCommand};
use ecommerce_domains::order::{
    Hold, OrderCommand, OrderStatus, PaymentOp, PaymentResult, PaymentStatus,
};
use ecommerce_domains::pricing::{CouponKind, PricingCommand, PromotionKind, Target, Tier};
use ecommerce_domains::users::{UserCommand, UserEvent, UsersResponse};
use ecommerce_domains::{
    cart, catalog, idempotency, inventory, listing, media, order, pricing, users,
};
use ecommerce_domains::{
    Command, DomainError, Envelope, Event, EventRecord, Response, Role, SystemCommand, TABLES,
};

// The crate root of an integration test resolves `mod x;` in `tests/`: the
// helpers sit in `tests/persisted_format/`, which Cargo does not build alone.
#[path = "persisted_format/enums.rs"]
mod enums;
#[path = "persisted_format/fixtures.rs"]
mod fixtures;
#[path = "persisted_format/golden.rs"]
mod golden;
#[path = "persisted_format/scenario.rs"]
mod scenario;

use fixtures::*;
use golden::Sample;

/// One sample per variant of an enum: `variants!(Enum { Variant => value, ... })`.
///
/// Expands to a `match` over `Enum` with an arm `Enum::Variant { .. }` per
/// pair and no wildcard: leaving a variant out is a compile error here.
macro_rules! variants {
    ($enum:ident { $($variant:ident => $sample:expr),+ $(,)? }) => {{
        fn exhaustive(value: &$enum) -> &'static str {
            match value {
                $($enum::$variant { .. } => stringify!($variant),)+
            }
        }
        vec![$({
            let sample: $enum = $sample;
            assert_eq!(
                exhaustive(&sample),
                stringify!($variant),
                "the sample listed under {}::{} is of another variant",
                stringify!($enum),
                stringify!($variant),
            );
            Sample::new(concat!(stringify!($enum), "::", stringify!($variant)), &sample)
        }),+]
    }};
}

fn golden_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/persisted_format.txt")
}

/// Every sample, in the golden file's order.
struct Samples {
    /// One list per enum, one sample per variant.
    enums: Vec<Vec<Sample>>,
    /// What each table stores: (table, sample).
    tables: Vec<(&'static str, Sample)>,
    /// Whole stored or exchanged values: log entries, event records...
    others: Vec<Sample>,
}

impl Samples {
    fn all(&self) -> Vec<&Sample> {
        let enums = self.enums.iter().flatten();
        let tables = self.tables.iter().map(|(_, s)| s);
        enums.chain(tables).chain(&self.others).collect()
    }
}

fn samples() -> Samples {
    let mut enums = vec![
        commands(),
        inventory_commands(),
        listing_commands(),
        cart_commands(),
        order_commands(),
        system_commands(),
        user_commands(),
        media_commands(),
        catalog_commands(),
        pricing_commands(),
        responses(),
        users_responses(),
        outcomes(),
        events(),
        user_events(),
        domain_errors(),
    ];
    enums.extend(nested_enums());
    Samples {
        enums,
        tables: tables(),
        others: others(),
    }
}

#[test]
fn persisted_encodings_match_the_golden_file() {
    golden::check(&golden_path(), &samples().all());
}

#[test]
fn every_enum_in_a_stored_value_has_its_list_of_samples() {
    let samples = samples();
    let mut listed = BTreeSet::new();
    for list in &samples.enums {
        let (name, _) = list[0].enums.outermost.expect("an enum sample");
        for s in list {
            assert_eq!(
                s.enums.outermost.map(|(n, _)| n),
                Some(name),
                "{} is listed with {name}",
                s.name
            );
        }
        assert!(listed.insert(name), "two lists of samples for {name}");
    }
    let mut missing = Vec::new();
    for s in samples.all() {
        for name in s.enums.seen.keys() {
            if !listed.contains(name) {
                missing.push(format!("{name} (inside {})", s.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these enums are persisted but have no `variants!` list in persisted_format.rs \
         (add one, with a sample of every variant):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_table_has_a_sample() {
    let samples = samples();
    let sampled: BTreeSet<&str> = samples.tables.iter().map(|(t, _)| *t).collect();
    let expected: BTreeSet<&str> = TABLES
        .iter()
        .copied()
        .chain([idempotency::RECORDS, idempotency::EXPIRY])
        .collect();
    let missing: Vec<_> = expected.difference(&sampled).collect();
    let unknown: Vec<_> = sampled.difference(&expected).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "tables without a sample of what `apply` stores there: {missing:?}; \
         samples of tables that do not exist: {unknown:?}"
    );
}

#[test]
fn what_apply_writes_decodes_as_the_type_sampled_for_its_table() {
    let samples = samples();
    for (table, bytes) in scenario::run().writes {
        let Some((_, sample)) = samples.tables.iter().find(|(t, _)| *t == table) else {
            panic!("the scenario wrote to {table}, which has no sample");
        };
        if let Some(Err(why)) = sample.reread.as_ref().map(|reread| reread(&bytes)) {
            panic!(
                "apply wrote to {table} a value that does not decode as {}: {why}",
                sample.name
            );
        }
    }
}

// ---- commands ----

fn commands() -> Vec<Sample> {
    variants!(Command {
        Inventory => Command::Inventory(InventoryCommand::SetThreshold {
            sku: sku(),
            warehouse_id: None,
            threshold: Some(3),
        }),
        Listing => Command::Listing(listing_upsert()),
        Cart => Command::Cart(CartCommand::Clear {
            owner: CartOwner::Guest(digest('9')),
        }),
        Order => Command::Order(OrderCommand::ExpireHolds),
        System => Command::System(SystemCommand::ExpireIdempotency { ttl_ms: 86_400_000 }),
        Users => Command::Users(Box::new(UserCommand::ExpireAuth)),
        Media => Command::Media(media_register()),
        Catalog => Command::Catalog(CatalogCommand::DeleteCategory { id: id("shirts") }),
        Pricing => Command::Pricing(PricingCommand::UpsertCoupon { coupon: coupon() }),
        Batch => Command::Batch(vec![
            envelope(None, Command::Order(OrderCommand::ExpireHolds)),
            envelope(Some(tag()), Command::Users(Box::new(UserCommand::ExpireAuth))),
        ]),
    })
}

fn envelope(idempotency: Option<idempotency::IdempotencyTag>, command: Command) -> Envelope {
    Envelope {
        now_ms: NOW,
        idempotency,
        command,
    }
}

fn listing_upsert() -> ListingCommand {
    ListingCommand::Upsert {
        actor: vendor(),
        sku: sku(),
        name: "T-shirt (M)".into(),
        price: eur(1990),
        vendor_id: Some(vendor().user_id),
        active: true,
    }
}

fn media_register() -> MediaCommand {
    MediaCommand::Register {
        hash: hash(),
        content_type: ImageType::Webp,
        size: 12_345,
        width: 640,
        height: 480,
        uploaded_by: vendor(),
        origin_node: 2,
    }
}

fn inventory_commands() -> Vec<Sample> {
    variants!(InventoryCommand {
        UpsertWarehouse => InventoryCommand::UpsertWarehouse {
            id: warehouse_id(),
            name: "Paris 1".into(),
            location: location(),
            priority: -1,
        },
        SetStock => InventoryCommand::SetStock {
            sku: sku(),
            warehouse_id: warehouse_id(),
            on_hand: 10,
            expected_version: Some(5),
        },
        AdjustStock => InventoryCommand::AdjustStock {
            sku: sku(),
            warehouse_id: warehouse_id(),
            delta: -3,
            reason: Some("damaged".into()),
        },
        SetThreshold => InventoryCommand::SetThreshold {
            sku: sku(),
            warehouse_id: Some(warehouse_id()),
            threshold: Some(5),
        },
    })
}

fn listing_commands() -> Vec<Sample> {
    variants!(ListingCommand {
        Upsert => listing_upsert(),
    })
}

fn cart_commands() -> Vec<Sample> {
    variants!(CartCommand {
        SetLine => CartCommand::SetLine {
            owner: CartOwner::User(customer().user_id),
            sku: sku(),
            quantity: 2,
            mode: LineMode::Set,
        },
        Merge => CartCommand::Merge {
            guest: CartOwner::Guest(digest('9')),
            user: CartOwner::User(customer().user_id),
        },
        Clear => CartCommand::Clear {
            owner: CartOwner::User(customer().user_id),
        },
        Expire => CartCommand::Expire { idle_ms: 604_800_000 },
    })
}

fn order_commands() -> Vec<Sample> {
    variants!(OrderCommand {
        Checkout => OrderCommand::Checkout {
            actor: customer(),
            cart: CartOwner::User(customer().user_id),
            shipping_address: shipping_address(),
            strategy: Strategy::Nearest,
            hold_ttl_ms: 900_000,
            payment_method: payment_method(),
            coupon: Some("WELCOME10".into()),
        },
        ExtendHold => OrderCommand::ExtendHold {
            actor: customer(),
            order_id: ORDER_ID,
            ttl_ms: 300_000,
        },
        Cancel => OrderCommand::Cancel {
            actor: customer(),
            order_id: ORDER_ID,
            reason: "changed my mind".into(),
        },
        Ship => OrderCommand::Ship {
            actor: vendor(),
            order_id: ORDER_ID,
            carrier: "La Poste".into(),
            tracking_number: "6A123".into(),
        },
        Deliver => OrderCommand::Deliver {
            actor: admin(),
            order_id: ORDER_ID,
        },
        PaymentResult => OrderCommand::PaymentResult {
            order_id: ORDER_ID,
            op: PaymentOp::Authorize,
            result: PaymentResult::Succeeded {
                reference: "auth_1".into(),
            },
        },
        ExpireHolds => OrderCommand::ExpireHolds,
    })
}

fn system_commands() -> Vec<Sample> {
    variants!(SystemCommand {
        ExpireIdempotency => SystemCommand::ExpireIdempotency { ttl_ms: 86_400_000 },
        CompactEvents => SystemCommand::CompactEvents {
            retention_ms: 30 * 86_400_000,
            keep_events: 10_000_000,
            max_removed: 10_000,
        },
    })
}

fn user_commands() -> Vec<Sample> {
    let user_id = || customer().user_id;
    variants!(UserCommand {
        Register => UserCommand::Register {
            user_id: user_id(),
            email: email(),
            name: "Ada".into(),
            role: Role::Customer,
            password_hash: Some(secret("$argon2id$hash")),
            email_verified: false,
        },
        UpdateProfile => UserCommand::UpdateProfile {
            user_id: user_id(),
            name: Some("Ada L.".into()),
            shipping_address: Some(Some(address())),
            billing_address: Some(None),
        },
        SetRole => UserCommand::SetRole {
            user_id: user_id(),
            role: Role::Vendor,
        },
        ChangePassword => UserCommand::ChangePassword {
            user_id: user_id(),
            password_hash: secret("$argon2id$new"),
            expected_security_version: 2,
        },
        StartSession => UserCommand::StartSession {
            user_id: user_id(),
            family_id: "fam-1".into(),
            token_hash: digest('c'),
            ttl_ms: 86_400_000,
            expected_security_version: 2,
        },
        RefreshSession => UserCommand::RefreshSession {
            family_id: "fam-1".into(),
            presented_hash: digest('c'),
            new_hash: digest('d'),
            ttl_ms: 86_400_000,
        },
        RevokeSession => UserCommand::RevokeSession {
            family_id: "fam-1".into(),
            presented_hash: digest('d'),
        },
        RequestPasswordReset => UserCommand::RequestPasswordReset {
            user_id: user_id(),
            token_hash: digest('e'),
            token: secret("reset-token"),
            ttl_ms: 3_600_000,
        },
        ResetPassword => UserCommand::ResetPassword {
            token_hash: digest('e'),
            password_hash: secret("$argon2id$reset"),
        },
        DeleteUser => UserCommand::DeleteUser { user_id: user_id() },
        EnsureSigningKey => UserCommand::EnsureSigningKey {
            kid: "k1".into(),
            secret: users::Secret(vec![1; 32]),
        },
        RotateSigningKey => UserCommand::RotateSigningKey {
            kid: "k2".into(),
            secret: users::Secret(vec![2; 32]),
            retain_ms: 900_000,
        },
        BeginSocialLogin => UserCommand::BeginSocialLogin {
            state_hash: digest('5'),
            pending: pending_social(),
            ttl_ms: 600_000,
        },
        TakeSocialLogin => UserCommand::TakeSocialLogin {
            state_hash: digest('5'),
            provider: "google".into(),
        },
        SocialSignIn => UserCommand::SocialSignIn {
            identity: identity(),
            new_user_id: "u-new".into(),
            family_id: "fam-2".into(),
            token_hash: digest('a'),
            ttl_ms: 86_400_000,
        },
        ExpireAuth => UserCommand::ExpireAuth,
        IssuePasswordReset => UserCommand::IssuePasswordReset {
            user_id: user_id(),
            token_hash: digest('e'),
            delivery: "sealed-token".into(),
            ttl_ms: 3_600_000,
        },
    })
}

fn media_commands() -> Vec<Sample> {
    variants!(MediaCommand {
        Register => media_register(),
        RegisterWithinQuota => MediaCommand::RegisterWithinQuota {
            hash: hash(),
            content_type: ImageType::Png,
            size: 2_048,
            width: 32,
            height: 16,
            uploaded_by: vendor(),
            origin_node: 3,
            quota: media::Quota {
                max_images: 10_000,
                max_bytes: 10 << 30,
            },
        },
    })
}

fn catalog_commands() -> Vec<Sample> {
    variants!(CatalogCommand {
        UpsertProduct => CatalogCommand::UpsertProduct {
            actor: vendor(),
            draft: draft(),
        },
        DeleteProduct => CatalogCommand::DeleteProduct {
            actor: admin(),
            id: id("tshirt"),
        },
        UpsertCategory => CatalogCommand::UpsertCategory {
            id: id("shirts"),
            parent_id: Some(id("clothes")),
            slug: "shirts".into(),
            name: "Shirts".into(),
            position: 2,
        },
        DeleteCategory => CatalogCommand::DeleteCategory { id: id("shirts") },
        ImportProducts => CatalogCommand::ImportProducts {
            actor: admin(),
            drafts: vec![draft()],
        },
    })
}

fn pricing_commands() -> Vec<Sample> {
    variants!(PricingCommand {
        UpsertPromotion => PricingCommand::UpsertPromotion {
            actor: admin(),
            promotion: promotion(),
        },
        UpsertCoupon => PricingCommand::UpsertCoupon { coupon: coupon() },
    })
}

// ---- results, events, errors ----

fn responses() -> Vec<Sample> {
    variants!(Response {
        Warehouse => Response::Warehouse(warehouse()),
        Stock => Response::Stock(stock_level()),
        Threshold => Response::Threshold(threshold()),
        Listing => Response::Listing(listing()),
        Cart => Response::Cart(cart()),
        Order => Response::Order(Box::new(order())),
        Expired => Response::Expired { removed: 3 },
        Users => Response::Users(Box::new(UsersResponse::SessionRevoked)),
        Media => Response::Media {
            record: media_record(),
            created: true,
        },
        Product => Response::Product(Box::new(product())),
        Category => Response::Category(category()),
        Promotion => Response::Promotion(promotion()),
        Coupon => Response::Coupon(coupon()),
        Imported => Response::Imported(vec![
            ImportItem {
                id: "tshirt".into(),
                version: Some(9),
                error: None,
            },
            ImportItem {
                id: "mug".into(),
                version: None,
                error: Some(("slug_taken".into(), "the slug \"mug\" is already used".into())),
            },
        ]),
    })
}

fn users_responses() -> Vec<Sample> {
    variants!(UsersResponse {
        User => UsersResponse::User(user()),
        Session => UsersResponse::Session {
            user: user(),
            family_id: "fam-1".into(),
        },
        RefreshReused => UsersResponse::RefreshReused,
        SessionRevoked => UsersResponse::SessionRevoked,
        ResetRequested => UsersResponse::ResetRequested,
        SigningKey => UsersResponse::SigningKey { kid: "k2".into() },
        SocialLoginBegun => UsersResponse::SocialLoginBegun,
        SocialLoginTaken => UsersResponse::SocialLoginTaken(pending_social()),
    })
}

/// `Outcome` is `Result<Response, DomainError>`: serde's `Result` is an enum
/// too (`Ok` = 0, `Err` = 1), stored in every idempotency record.
fn outcomes() -> Vec<Sample> {
    variants!(Outcome {
        Ok => Ok(Response::Expired { removed: 1 }),
        Err => Err(DomainError::Forbidden),
    })
}

fn events() -> Vec<Sample> {
    variants!(Event {
        WarehouseUpserted => Event::WarehouseUpserted(warehouse()),
        StockChanged => Event::StockChanged {
            level: stock_level(),
            delta: -2,
            reserved_delta: 2,
            reason: Some("checkout".into()),
        },
        User => Event::User(UserEvent::UserDeleted {
            user_id: customer().user_id,
        }),
        StockLow => Event::StockLow(low_stock()),
        BackInStock => Event::BackInStock(low_stock()),
        ListingUpserted => Event::ListingUpserted(listing()),
        OrderPlaced => Event::OrderPlaced(Box::new(order())),
        OrderStatusChanged => Event::OrderStatusChanged {
            order_id: ORDER_ID,
            customer_id: customer().user_id,
            from: "confirmed".into(),
            to: "paid".into(),
            reason: "payment authorized".into(),
        },
        PaymentUpdated => Event::PaymentUpdated {
            order_id: ORDER_ID,
            status: PaymentStatus::Voided,
        },
        MediaRegistered => Event::MediaRegistered(media_record()),
        ProductChanged => Event::ProductChanged(Box::new(product())),
        CategoryChanged => Event::CategoryChanged(category()),
    })
}

fn user_events() -> Vec<Sample> {
    let user_id = || customer().user_id;
    variants!(UserEvent {
        UserRegistered => UserEvent::UserRegistered {
            user_id: user_id(),
            role: Role::Customer,
        },
        UserRoleChanged => UserEvent::UserRoleChanged {
            user_id: user_id(),
            role: Role::Admin,
        },
        PasswordChanged => UserEvent::PasswordChanged { user_id: user_id() },
        PasswordResetRequested => UserEvent::PasswordResetRequested {
            user_id: user_id(),
            token: secret("reset-token"),
            expires_ms: NOW + 3_600_000,
        },
        UserDeleted => UserEvent::UserDeleted { user_id: user_id() },
        SigningKeyRotated => UserEvent::SigningKeyRotated { kid: "k2".into() },
        SocialIdentityLinked => UserEvent::SocialIdentityLinked {
            user_id: user_id(),
            provider: "google".into(),
        },
        PasswordResetIssued => UserEvent::PasswordResetIssued {
            user_id: user_id(),
            delivery: "sealed-token".into(),
            expires_ms: NOW + 3_600_000,
        },
    })
}

fn domain_errors() -> Vec<Sample> {
    let s = |raw: &str| raw.to_string();
    variants!(DomainError {
        Validation => DomainError::validation("quantity", "must be between 0 and 10000"),
        WarehouseNotFound => DomainError::WarehouseNotFound(s("paris-1")),
        SkuNotFound => DomainError::SkuNotFound(s("TSHIRT-M")),
        VersionConflict => DomainError::VersionConflict {
            expected: 4,
            actual: 5,
        },
        InsufficientStock => DomainError::InsufficientStock {
            sku: s("TSHIRT-M"),
            warehouse_id: s("paris-1"),
            requested: 3,
            available: 2,
        },
        IdempotencyKeyReused => DomainError::IdempotencyKeyReused,
        EmailTaken => DomainError::EmailTaken,
        InvalidCredentials => DomainError::InvalidCredentials,
        InvalidRefreshToken => DomainError::InvalidRefreshToken,
        InvalidResetToken => DomainError::InvalidResetToken,
        UserNotFound => DomainError::UserNotFound(s("u-ada")),
        WeakPassword => DomainError::WeakPassword {
            message: s("must be at least 12 characters long"),
        },
        Forbidden => DomainError::Forbidden,
        ListingNotFound => DomainError::ListingNotFound(s("TSHIRT-M")),
        SkuNotForSale => DomainError::SkuNotForSale(s("TSHIRT-M")),
        CurrencyMismatch => DomainError::CurrencyMismatch {
            cart: s("EUR"),
            sku: s("USD"),
        },
        CartEmpty => DomainError::CartEmpty,
        OutOfStock => DomainError::OutOfStock(vec![Shortage {
            sku: s("TSHIRT-M"),
            requested: 3,
            available: 2,
        }]),
        OrderNotFound => DomainError::OrderNotFound(ORDER_ID),
        InvalidTransition => DomainError::InvalidTransition {
            from: s("cancelled"),
            to: s("paid"),
        },
        HoldNotActive => DomainError::HoldNotActive(ORDER_ID),
        MediaNotFound => DomainError::MediaNotFound(hash().as_str().to_string()),
        ProductNotFound => DomainError::ProductNotFound(s("tshirt")),
        CategoryNotFound => DomainError::CategoryNotFound(s("shirts")),
        SlugTaken => DomainError::SlugTaken(s("t-shirt")),
        SkuTaken => DomainError::SkuTaken(s("TSHIRT-M")),
        CategoryNotEmpty => DomainError::CategoryNotEmpty(s("clothes")),
        CouponNotApplicable => DomainError::CouponNotApplicable {
            code: s("WELCOME10"),
            reason: s("the subtotal is below the minimum"),
        },
        CouponNotFound => DomainError::CouponNotFound(s("WELCOME10")),
        InvalidSocialState => DomainError::InvalidSocialState,
        EmailNotVerified => DomainError::EmailNotVerified,
        Internal => DomainError::Internal,
        UploadQuotaExceeded => DomainError::UploadQuotaExceeded {
            images: 3,
            bytes: 30_000,
            max_images: 3,
            max_bytes: 1 << 20,
        },
    })
}

/// The enums nested in commands and records.
fn nested_enums() -> Vec<Vec<Sample>> {
    vec![
        variants!(Role {
            Customer => Role::Customer,
            Vendor => Role::Vendor,
            Admin => Role::Admin,
        }),
        variants!(CartOwner {
            User => CartOwner::User(customer().user_id),
            Guest => CartOwner::Guest(digest('9')),
        }),
        variants!(LineMode {
            Add => LineMode::Add,
            Set => LineMode::Set,
        }),
        variants!(Strategy {
            Priority => Strategy::Priority,
            Nearest => Strategy::Nearest,
            HighestStock => Strategy::HighestStock,
        }),
        variants!(OrderStatus {
            Draft => OrderStatus::Draft,
            Confirmed => OrderStatus::Confirmed,
            Paid => OrderStatus::Paid,
            Shipped => OrderStatus::Shipped,
            Delivered => OrderStatus::Delivered,
            Cancelled => OrderStatus::Cancelled,
        }),
        variants!(Hold {
            Held => Hold::Held {
                expires_at_ms: NOW + 900_000,
            },
            Committed => Hold::Committed,
            Consumed => Hold::Consumed,
            Released => Hold::Released,
        }),
        variants!(PaymentStatus {
            Pending => PaymentStatus::Pending,
            Authorized => PaymentStatus::Authorized {
                authorization: "auth_1".into(),
            },
            Captured => PaymentStatus::Captured {
                authorization: "auth_1".into(),
                capture: "cap_1".into(),
            },
            Declined => PaymentStatus::Declined {
                reason: "insufficient funds".into(),
            },
            Failed => PaymentStatus::Failed {
                reason: "timeout".into(),
            },
            Voided => PaymentStatus::Voided,
            Refunded => PaymentStatus::Refunded {
                refund: "ref_1".into(),
            },
            ActionFailed => PaymentStatus::ActionFailed {
                operation: PaymentOp::Refund,
                reason: "already refunded".into(),
            },
        }),
        variants!(PaymentOp {
            Authorize => PaymentOp::Authorize,
            Capture => PaymentOp::Capture,
            Void => PaymentOp::Void,
            Refund => PaymentOp::Refund,
        }),
        variants!(PaymentResult {
            Succeeded => PaymentResult::Succeeded {
                reference: "cap_1".into(),
            },
            Declined => PaymentResult::Declined {
                reason: "insufficient funds".into(),
            },
            Failed => PaymentResult::Failed {
                reason: "timeout".into(),
            },
        }),
        variants!(ImageType {
            Jpeg => ImageType::Jpeg,
            Png => ImageType::Png,
            Webp => ImageType::Webp,
            Gif => ImageType::Gif,
        }),
        variants!(Target {
            All => Target::All,
            Product => Target::Product(id("tshirt")),
            Category => Target::Category(id("clothes")),
            Vendor => Target::Vendor(vendor().user_id),
            Sku => Target::Sku(sku()),
        }),
        variants!(PromotionKind {
            Percent => PromotionKind::Percent { basis_points: 1000 },
            AmountOff => PromotionKind::AmountOff { per_unit: eur(200) },
            SalePrice => PromotionKind::SalePrice {
                unit_price: eur(1490),
            },
            Tiered => PromotionKind::Tiered {
                tiers: vec![Tier {
                    min_quantity: 3,
                    unit_price: eur(1500),
                }],
            },
        }),
        variants!(CouponKind {
            Percent => CouponKind::Percent { basis_points: 1500 },
            AmountOff => CouponKind::AmountOff { amount: eur(500) },
        }),
    ]
}

// ---- what the tables hold ----

/// A sample of the value each table stores, named after the table and the type.
fn tables() -> Vec<(&'static str, Sample)> {
    fn at<T>(table: &'static str, type_name: &str, value: T) -> (&'static str, Sample)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
    {
        (
            table,
            Sample::new(format!("table {table}: {type_name}"), &value),
        )
    }
    let mut tables = vec![
        at(inventory::WAREHOUSES, "Warehouse", warehouse()),
        at(inventory::STOCK, "StockLevel", stock_level()),
        at(inventory::THRESHOLDS, "Threshold", threshold()),
        at(inventory::LOW_STOCK, "LowStock", low_stock()),
        at(listing::LISTINGS, "Listing", listing()),
        at(catalog::PRODUCTS, "Product", product()),
        at(catalog::PRODUCT_SLUGS, "CatalogId", id("tshirt")),
        at(catalog::SKU_PRODUCTS, "CatalogId", id("tshirt")),
        at(catalog::BY_CATEGORY, "CatalogId", id("tshirt")),
        at(catalog::CATEGORIES, "Category", category()),
        at(catalog::CATEGORY_SLUGS, "CatalogId", id("shirts")),
        at(pricing::PROMOTIONS, "Promotion", promotion()),
        at(pricing::COUPONS, "Coupon", coupon()),
        at(pricing::REDEMPTIONS, "u64 (uses)", 2u64),
        at(cart::CARTS, "Cart", cart()),
        at(order::ORDERS, "Order", order()),
        at(order::BY_CUSTOMER, "OrderId", ORDER_ID),
        at(order::BY_VENDOR, "OrderId", ORDER_ID),
        at(order::BY_TIME, "OrderId", ORDER_ID),
        at(order::PAYMENT_TASKS, "PaymentTask", payment_task()),
        at(media::MEDIA, "MediaRecord", media_record()),
        at(
            media::MEDIA_USAGE,
            "MediaUsage",
            media::MediaUsage {
                images: 2,
                bytes: 24_690,
            },
        ),
        at(users::USERS, "User", user()),
        at(
            users::USERS_BY_EMAIL,
            "String (user id)",
            customer().user_id,
        ),
        at(users::SESSIONS, "Session", session()),
        at(users::RESET_TOKENS, "ResetToken", reset_token()),
        at(users::SIGNING_KEYS, "KeyRing", key_ring()),
        at(
            users::SOCIAL_PENDING,
            "PendingSocialLogin",
            pending_social(),
        ),
        at(users::SOCIAL_LINKS, "String (user id)", customer().user_id),
        at(
            users::SOCIAL_LINKS_BY_USER,
            "(String, String) (provider, subject)",
            ("google".to_string(), "1234567890".to_string()),
        ),
        at(
            idempotency::RECORDS,
            "IdempotencyRecord",
            idempotency::IdempotencyRecord {
                fingerprint: digest('f'),
                created_ms: NOW,
                log_index: 40,
                outcome: Ok(Response::Stock(stock_level())),
            },
        ),
    ];
    // The private index entries, as `apply` writes them.
    let writes = scenario::run().writes;
    for (table, type_name, command) in [
        (
            cart::CART_EXPIRY,
            "cart::ExpiryEntry",
            "CartCommand::SetLine",
        ),
        (
            order::HOLD_EXPIRY,
            "order::HoldEntry",
            "OrderCommand::Checkout",
        ),
        (
            users::AUTH_EXPIRY,
            "users::ExpiryEntry",
            "UserCommand::BeginSocialLogin",
        ),
        (
            idempotency::EXPIRY,
            "idempotency::ExpiryEntry",
            "an envelope with a key",
        ),
    ] {
        let (_, bytes) = writes
            .iter()
            .find(|(t, _)| *t == table)
            .unwrap_or_else(|| panic!("the scenario wrote nothing to {table}"));
        let name = format!("table {table}: {type_name} (private, as {command} writes it)");
        tables.push((table, Sample::opaque(name, bytes.clone())));
    }
    tables
}

/// Whole values stored or exchanged beyond the tables.
fn others() -> Vec<Sample> {
    let command = Command::Order(OrderCommand::Cancel {
        actor: customer(),
        order_id: ORDER_ID,
        reason: "changed my mind".into(),
    });
    vec![
        Sample::new(
            "Envelope (log entry) without idempotency",
            &envelope(None, command.clone()),
        ),
        Sample::new(
            "Envelope (log entry) with idempotency",
            &envelope(Some(tag()), command),
        ),
        Sample::new(
            "EventRecord (events column family)",
            &EventRecord {
                id: 42,
                log_index: 40,
                timestamp_ms: NOW,
                event: Event::StockLow(low_stock()),
            },
        ),
        Sample::new(
            "Applied (a forwarded write's answer between nodes)",
            &Applied {
                outcome: Err(DomainError::CartEmpty),
                replayed: true,
                log_index: 40,
            },
        ),
    ]
}
