//! Rate limits for anonymous clients (governor, GCRA), kept in process on
//! each node: a client spreading attempts over n nodes gets at most n times
//! the quota, which the limits are sized for. Clients are counted by
//! network (`app::client_addr::network`: an IPv4 address, an IPv6 /64).
//!
//! - `/auth` attempts: per client network, and per account *and* client
//!   network. Guessing one account's password from one network is slowed
//!   down to the quota, while the owner, from another network, still signs
//!   in: there is no account-wide lock for an attacker to trigger.
//! - Guest carts: new carts per network and in all, and guest cart writes
//!   per network ([`GuestLimits`]).
//!
//! Account keys are SHA-256 digests of the normalised e-mail, so the limiter's
//! memory holds no personal data.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::app::client_addr::network;
use crate::config::{AuthSettings, CommerceSettings};

/// Above this many tracked keys, idle ones are dropped before the next check.
const MAX_TRACKED: usize = 100_000;

pub struct Limits {
    per_network: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    clock: DefaultClock,
}

/// How long to wait before the next attempt is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

impl Limits {
    pub fn new(settings: &AuthSettings) -> Self {
        Self {
            per_network: RateLimiter::keyed(quota(settings.attempts_per_ip_per_minute)),
            per_account: RateLimiter::keyed(quota(settings.attempts_per_account_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// An attempt from client `ip` (counted by its network).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        check_keyed(&self.per_network, &network(ip), &self.clock)
    }

    /// An attempt on `account` (a digest of the normalised e-mail, see
    /// [`super::tokens::digest`]) from client `ip`'s network; a signed-in
    /// caller's own attempts (no address) share one bucket.
    pub fn check_account(&self, account: &str, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        let key = (account.to_string(), ip.map(network));
        check_keyed(&self.per_account, &key, &self.clock)
    }
}

/// Counts one event for `key`, dropping idle keys first when too many are tracked.
fn check_keyed<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    clock: &DefaultClock,
) -> Result<(), RetryAfter> {
    if limiter.len() > MAX_TRACKED {
        limiter.retain_recent();
    }
    limiter
        .check_key(key)
        .map_err(|not_until| RetryAfter(not_until.wait_time_from(clock.now())))
}

/// Limits on what guests (callers without an account) do with carts.
pub struct GuestLimits {
    carts_per_network: DefaultKeyedRateLimiter<IpAddr>,
    carts: DefaultDirectRateLimiter,
    writes_per_network: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl GuestLimits {
    pub fn new(settings: &CommerceSettings) -> Self {
        Self {
            carts_per_network: RateLimiter::keyed(quota(
                settings.guest_carts_per_network_per_minute,
            )),
            carts: RateLimiter::direct(quota(settings.guest_carts_per_minute)),
            writes_per_network: RateLimiter::keyed(quota(
                settings.guest_writes_per_network_per_minute,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// A new guest cart for client `ip` (`None`: an unknown client, counted
    /// in all only).
    pub fn check_new_cart(&self, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        if let Some(ip) = ip {
            check_keyed(&self.carts_per_network, &network(ip), &self.clock)?;
        }
        self.carts
            .check()
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))
    }

    /// A guest's cart write from client `ip`.
    pub fn check_write(&self, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        match ip {
            Some(ip) => check_keyed(&self.writes_per_network, &network(ip), &self.clock),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_account_is_slowed_per_network_and_its_owner_elsewhere_still_gets_in() {
        let settings = AuthSettings {
            attempts_per_account_per_minute: 3,
            ..AuthSettings::default()
        };
        let limits = Limits::new(&settings);
        let attacker = ip("2001:db8:bad:1::1");
        for _ in 0..3 {
            limits.check_account("a", attacker).unwrap();
        }
        let RetryAfter(wait) = limits.check_account("a", attacker).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another address of the same /64 is the same attacker.
        assert!(limits
            .check_account("a", ip("2001:db8:bad:1::ffff"))
            .is_err());
        // The owner, from home, and another account from the attacker's network.
        limits.check_account("a", ip("198.51.100.7")).unwrap();
        limits.check_account("b", attacker).unwrap();
    }

    #[test]
    fn guest_carts_are_limited_per_network_and_in_all() {
        let settings = CommerceSettings {
            guest_carts_per_network_per_minute: 2,
            guest_carts_per_minute: 3,
            guest_writes_per_network_per_minute: 2,
            ..crate::config::Settings::default().commerce
        };
        let limits = GuestLimits::new(&settings);
        limits.check_new_cart(ip("203.0.113.1")).unwrap();
        limits.check_new_cart(ip("203.0.113.1")).unwrap();
        assert!(limits.check_new_cart(ip("203.0.113.1")).is_err());
        limits.check_new_cart(ip("203.0.113.2")).unwrap();
        // Three carts in all this minute: the next network waits too.
        assert!(limits.check_new_cart(ip("203.0.113.3")).is_err());

        limits.check_write(ip("2001:db8::1")).unwrap();
        limits.check_write(ip("2001:db8::2")).unwrap();
        assert!(limits.check_write(ip("2001:db8::3")).is_err(), "one /64");
        limits.check_write(ip("2001:db8:0:1::1")).unwrap();
    }
}
