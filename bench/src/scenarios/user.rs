//! A virtual user: one tokio task with its own keep-alive connection to one
//! node, walking a shopper's journey over the public REST API, again and
//! again until its deadline (a user's first journey starts at a random one
//! of steps 1 to 4, second cart line included, so that a window shorter than
//! a journey still sees the journey's mix, not the users' common phase):
//!
//! 1. **browse**: `GET /api/v1/products?limit=20&after={id}` (a product list
//!    page, from a random place in the catalogue);
//! 2. **search**: `GET /api/v1/search?q=product+{i}&limit=20` (every word
//!    must match: a name search that finds a handful of products);
//! 3. **product**: `GET /api/v1/products/{id}`;
//! 4. **cart**: `POST /api/v1/cart/lines`, two distinct SKUs, one request each;
//! 5. **checkout**: `POST /api/v1/checkout` with `Authorization: Bearer` and
//!    a fresh `Idempotency-Key`, paying with the sandbox card that approves.
//!
//! Between two requests the user thinks: an exponential time around a mean
//! (TPC-W's model of a shopper, cut at 10× the mean as TPC-W does), or not at
//! all (the stress scenario). The first request goes out as soon as the
//! connection is made, as a browser's does. A failed step ends the journey
//! early (the next one starts at browse; the cart keeps what it had).
//!
//! Customers: carts and checkout need a signed-in customer, and signing in
//! tens of thousands of accounts (each an argon2 hash and Raft entries) would
//! take longer than the scenarios. So the scenario signs in a pool of
//! customers, and a user borrows one from the cart's first line until its
//! checkout answered (so two users never share a cart), then gives it back.
//! When none is free the user waits (counted and reported: with enough
//! customers it never happens).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::sleep_until;

use super::conn::{Call, Conn};
use super::stats::{lock, Recorder};
use crate::api;
use crate::timeline::Outcome;

/// A think time cut at this many times its mean (TPC-W: 10×).
pub const THINK_CUT: u32 = 10;

/// A think time: exponential with mean `mean`, cut at [`THINK_CUT`] × `mean`
/// (so a user never sits idle for minutes). Zero mean: no think time.
pub fn think_time(rng: &mut impl Rng, mean: Duration) -> Duration {
    if mean.is_zero() {
        return Duration::ZERO;
    }
    // Inverse transform: -ln(U) is exponential with mean 1, U in (0, 1].
    let u: f64 = 1.0 - rng.gen::<f64>();
    let factor = (-u.ln()).min(f64::from(THINK_CUT));
    mean.mul_f64(factor)
}

/// Signed-in customers lent to users for one cart-and-checkout at a time.
pub struct Customers {
    tokens: Vec<String>,
    free: Mutex<Vec<usize>>,
    permits: Arc<Semaphore>,
}

/// A borrowed customer; given back on drop.
pub struct Customer {
    pool: Arc<Customers>,
    index: usize,
    _permit: OwnedSemaphorePermit,
}

impl Customer {
    pub fn token(&self) -> &str {
        &self.pool.tokens[self.index]
    }
}

impl Drop for Customer {
    fn drop(&mut self) {
        lock(&self.pool.free).push(self.index);
    }
}

impl Customers {
    pub fn new(tokens: Vec<String>) -> Arc<Customers> {
        let n = tokens.len();
        Arc::new(Customers {
            tokens,
            free: Mutex::new((0..n).rev().collect()),
            permits: Arc::new(Semaphore::new(n)),
        })
    }

    /// A free customer, waiting for one if all are lent (`None`: the pool
    /// is empty or closed).
    pub async fn borrow(self: &Arc<Self>) -> Option<Customer> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let index = lock(&self.free).pop()?;
        Some(Customer {
            pool: self.clone(),
            index,
            _permit: permit,
        })
    }
}

/// Idempotency keys unique within this process, across scenarios and steps.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// What a user does and until when.
#[derive(Clone)]
pub struct Plan {
    pub node: SocketAddr,
    /// When the user connects (a ramp spreads these).
    pub start_at: Instant,
    /// No request starts after this; a think time ends at it.
    pub deadline: Instant,
    pub think_mean: Duration,
    pub products: usize,
    pub skus: usize,
}

/// The journey's steps, in order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    Browse,
    Search,
    Product,
    FirstLine,
    SecondLine,
    Checkout,
}

impl Step {
    pub const JOURNEY: [Step; 6] = [
        Step::Browse,
        Step::Search,
        Step::Product,
        Step::FirstLine,
        Step::SecondLine,
        Step::Checkout,
    ];

    /// The request kind it is reported under.
    pub fn kind(self) -> &'static str {
        match self {
            Step::Browse => "browse",
            Step::Search => "search",
            Step::Product => "product",
            Step::FirstLine | Step::SecondLine => "cart",
            Step::Checkout => "checkout",
        }
    }
}

pub fn checkout_body() -> Bytes {
    Bytes::from(
        json!({
            "shipping_address": {
                "name": "Bench Customer", "line1": "1 Load St", "city": "Berlin",
                "postal_code": "10115", "country": "DE"
            },
            "payment": {"token": "tok_visa"}
        })
        .to_string(),
    )
}

/// Runs one user to its deadline.
pub async fn run(
    plan: Plan,
    mut rng: StdRng,
    customers: Arc<Customers>,
    rec: Recorder,
    open: Arc<std::sync::atomic::AtomicI64>,
) {
    let mut conn = Conn::new(plan.node, open);
    let checkout = checkout_body();
    sleep_until(plan.start_at.into()).await;
    let mut connected_once = false;
    let mut customer: Option<Customer> = None;
    let mut skus = (0, 0);
    let mut step = rng.gen_range(0..=Step::JOURNEY.len() - 2);
    while Instant::now() < plan.deadline {
        if !conn.is_open() {
            match conn.connect().await {
                Ok(took) => {
                    rec.connected(took, !connected_once);
                    connected_once = true;
                }
                Err(e) => {
                    rec.connect_failed(e.label());
                    // Back off as a user would, then try again.
                    let pause =
                        think_time(&mut rng, plan.think_mean).max(Duration::from_millis(500));
                    sleep_until((Instant::now() + pause).min(plan.deadline).into()).await;
                    continue;
                }
            }
        }
        let s = Step::JOURNEY[step];
        if customer.is_none() && matches!(s, Step::FirstLine | Step::SecondLine) {
            let asked = Instant::now();
            let borrowed = tokio::select! {
                c = customers.borrow() => c,
                () = sleep_until(plan.deadline.into()) => None,
            };
            let Some(c) = borrowed else { break };
            if asked.elapsed() > Duration::from_millis(1) {
                rec.waited_for_customer(asked.elapsed());
            }
            customer = Some(c);
            let a = rng.gen_range(0..plan.skus);
            let b = (a + rng.gen_range(1..plan.skus)) % plan.skus;
            skus = (a, b);
        }
        let token = customer.as_ref().map(Customer::token);
        let call = match s {
            Step::Browse => Call::get(format!(
                "/api/v1/products?limit=20&after={}",
                api::product_id(rng.gen_range(0..plan.products))
            )),
            Step::Search => Call::get(format!(
                "/api/v1/search?q=product+{}&limit=20",
                rng.gen_range(0..plan.products)
            )),
            Step::Product => Call::get(format!(
                "/api/v1/products/{}",
                api::product_id(rng.gen_range(0..plan.products))
            )),
            Step::FirstLine | Step::SecondLine => {
                let i = if s == Step::FirstLine { skus.0 } else { skus.1 };
                Call {
                    method: Method::POST,
                    path: "/api/v1/cart/lines".into(),
                    token,
                    idempotency_key: None,
                    json: Some(Bytes::from(
                        json!({"sku": api::sku(i), "quantity": 1}).to_string(),
                    )),
                }
            }
            Step::Checkout => Call {
                method: Method::POST,
                path: "/api/v1/checkout".into(),
                token,
                idempotency_key: Some(format!(
                    "scenario-{}-{}",
                    std::process::id(),
                    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
                )),
                json: Some(checkout.clone()),
            },
        };
        let started = Instant::now();
        let answer = conn.send(call).await;
        rec.request(s.kind(), &answer, started.elapsed());
        let ok = super::stats::classify(&answer) == Outcome::Ok;
        step = if ok {
            (step + 1) % Step::JOURNEY.len()
        } else {
            0
        };
        if step == 0 {
            // Checkout answered, or the journey broke off: the cart is free.
            // (After a timeout or a broken connection `conn` has dropped it;
            // the next turn connects again.)
            customer = None;
        }
        let pause = think_time(&mut rng, plan.think_mean);
        if !pause.is_zero() {
            sleep_until((Instant::now() + pause).min(plan.deadline).into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{think_time, Customers, THINK_CUT};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::time::Duration;

    #[test]
    fn think_times_are_exponential_and_cut() {
        let mut rng = StdRng::seed_from_u64(7);
        let mean = Duration::from_millis(7000);
        let n = 200_000;
        let samples: Vec<Duration> = (0..n).map(|_| think_time(&mut rng, mean)).collect();
        let cut = mean * THINK_CUT;
        assert!(samples.iter().all(|s| *s <= cut));
        let avg = samples.iter().sum::<Duration>().as_secs_f64() / n as f64;
        // The cut takes e^-10 of the mass: the mean stays within 1 % of 7 s.
        assert!((avg - 7.0).abs() < 0.07, "mean {avg}");
        // Exponential: P(X > mean) = 1/e.
        let above = samples.iter().filter(|s| **s > mean).count() as f64 / n as f64;
        assert!(
            (above - (-1f64).exp()).abs() < 0.01,
            "share above the mean {above}"
        );
        assert_eq!(think_time(&mut rng, Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_customer_is_lent_to_one_user_at_a_time() {
        let pool = Customers::new(vec!["a".into(), "b".into()]);
        let first = pool.borrow().await.unwrap();
        let second = pool.borrow().await.unwrap();
        assert_ne!(first.token(), second.token());
        // Both lent: the next borrower waits until one comes back.
        let waiting = tokio::time::timeout(Duration::from_millis(50), pool.borrow()).await;
        assert!(waiting.is_err());
        let token = first.token().to_string();
        drop(first);
        let third = pool.borrow().await.unwrap();
        assert_eq!(third.token(), token);
    }
}
