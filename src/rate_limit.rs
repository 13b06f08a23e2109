//! Requests per minute per key (an API client, a client address), in this
//! instance: governor's keyed limiter, or nothing when the limit is 0.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct KeyedRateLimit<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> KeyedRateLimit<K> {
    /// `per_minute` 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        Self(NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// `Err(seconds to wait)` when `key` is over its rate.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                + 1
        })
    }

    /// Forgets keys whose budget is full again, so that a flood of
    /// distinct addresses does not keep memory (the server calls this every
    /// few minutes).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl KeyedRateLimit<IpAddr> {
    /// Checks a client address (none: not limited). An IPv6 client is its
    /// /64: one subscriber's network, whose addresses it may rotate through
    /// at will.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), u64> {
        match client {
            Some(IpAddr::V6(v6)) => self.check(&IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            ))),
            Some(v4) => self.check(&v4),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64() {
        let limit = KeyedRateLimit::<IpAddr>::new(1);
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(limit.check_client(ip("2001:db8:1:2::1")).is_ok());
        assert!(
            limit.check_client(ip("2001:db8:1:2:ffff::9")).is_err(),
            "same /64"
        );
        assert!(
            limit.check_client(ip("2001:db8:1:3::1")).is_ok(),
            "another /64"
        );
        assert!(limit.check_client(ip("192.0.2.1")).is_ok());
        assert!(
            limit.check_client(ip("192.0.2.2")).is_ok(),
            "IPv4 by address"
        );
        assert!(limit.check_client(None).is_ok());
    }
}
