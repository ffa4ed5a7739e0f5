//! Rate limits for the `/auth` routes (governor, GCRA), per client IP and per
//! account, kept in process on each node: a client spreading attempts over n
//! nodes gets at most n times the quota, which the limits are sized for.
//!
//! Account keys are SHA-256 digests of the normalised e-mail, so the limiter's
//! memory holds no personal data.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::AuthSettings;

/// Above this many tracked keys, idle ones are dropped before the next check.
const MAX_TRACKED: usize = 100_000;

pub struct Limits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
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
            per_ip: RateLimiter::keyed(quota(settings.attempts_per_ip_per_minute)),
            per_account: RateLimiter::keyed(quota(settings.attempts_per_account_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        if self.per_ip.len() > MAX_TRACKED {
            self.per_ip.retain_recent();
        }
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))
    }

    /// `account` is a digest of the normalised e-mail (see [`super::tokens::digest`]).
    pub fn check_account(&self, account: &str) -> Result<(), RetryAfter> {
        if self.per_account.len() > MAX_TRACKED {
            self.per_account.retain_recent();
        }
        self.per_account
            .check_key(&account.to_string())
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_a_burst_then_a_wait() {
        let settings = AuthSettings {
            attempts_per_account_per_minute: 3,
            ..AuthSettings::default()
        };
        let limits = Limits::new(&settings);
        for _ in 0..3 {
            limits.check_account("a").unwrap();
        }
        let RetryAfter(wait) = limits.check_account("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        limits.check_account("b").unwrap();
    }
}
