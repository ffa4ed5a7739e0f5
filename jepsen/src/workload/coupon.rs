//! The coupon workload: a seam, not yet a workload.
//!
//! Coupons do not exist in the API yet (they arrive with the catalogue
//! issue). When they do, this module should: create one coupon with a usage
//! limit L (admin), then let every client check out with it concurrently
//! (one fresh customer per checkout, `Idempotency-Key` per attempt), recording
//! each checkout as `f = "redeem"` (`ok` = order placed with the discount,
//! `fail` = refused, e.g. limit reached, `info` = unknown); finally read the
//! coupon's redemption count and hand both to `checker::coupon::check_coupon`,
//! which is written and tested already. Wire it in `main.rs` where
//! [`Workload::Coupon`](super::Workload::Coupon) is refused today.

/// Why the coupon workload cannot run yet.
pub const UNAVAILABLE: &str =
    "the coupon workload needs coupons in the API (catalogue issue); its checker is ready";
