//! A token bucket per client address, for the public `POST /api/reports`.
//!
//! Each address (an IPv6 address by its /64, which one subscriber usually holds
//! whole) gets `burst` tokens, refilled at `per_hour`; a report takes one. The
//! addresses live only in this map, in memory, to be compared: they are never
//! stored, logged or returned. Full buckets are dropped when the map grows, so it
//! stays small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The map is pruned of full buckets past this many addresses.
const PRUNE_AT: usize = 10_000;

/// What the limiter keys on: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(a) => Client::V4(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug)]
pub(super) struct Limiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<Client, (f64, Instant)>>,
}

impl Limiter {
    pub(super) fn new(burst: u32, per_hour: u32) -> Limiter {
        Limiter {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_hour) / 3600.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip`: `Ok` if there was one, else how long until there is.
    pub(super) fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take_at(ip, Instant::now())
    }

    fn take_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        if buckets.len() >= PRUNE_AT {
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(Client::of(ip)).or_insert((self.burst, now));
        let refilled = (*tokens
            + now.saturating_duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            let wait = if self.per_second > 0.0 {
                (1.0 - refilled) / self.per_second
            } else {
                3600.0
            };
            Err(Duration::from_secs_f64(wait.clamp(1.0, 86_400.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn burst_then_refill_per_address_and_per_slash_64() {
        let l = Limiter::new(2, 3600); // one token a second
        let t0 = Instant::now();
        assert!(l.take_at(ip("192.0.2.1"), t0).is_ok());
        assert!(l.take_at(ip("192.0.2.1"), t0).is_ok());
        let wait = l.take_at(ip("192.0.2.1"), t0).err();
        assert_eq!(wait, Some(Duration::from_secs(1)));
        // Another address has its own bucket; the same /64 shares one.
        assert!(l.take_at(ip("192.0.2.2"), t0).is_ok());
        assert!(l.take_at(ip("2001:db8::1"), t0).is_ok());
        assert!(l.take_at(ip("2001:db8::2"), t0).is_ok());
        assert!(l.take_at(ip("2001:db8::3"), t0).is_err());
        assert!(l.take_at(ip("2001:db8:0:1::1"), t0).is_ok());
        // A v4-mapped v6 address is the v4 address.
        assert!(l.take_at(ip("::ffff:192.0.2.1"), t0).is_err());
        // Time refills.
        assert!(
            l.take_at(ip("192.0.2.1"), t0 + Duration::from_millis(1500))
                .is_ok()
        );
    }
}
