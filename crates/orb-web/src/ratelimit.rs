//! Rate limits of the hook routes: one bucket per source address and one per tenant name (`governor`'s
//! GCRA), both on the injected clock.
//!
//! The address is checked first and a request it refuses does not use up its tenant's quota, so a flood
//! from one address can spend at most that address's quota of the tenant's: with the per-tenant quota
//! larger than the per-address one, senders from other addresses still get through. Checking touches no
//! store.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use orb_core::{Clock, TenantName};

/// Default [`RateLimits::per_address_per_minute`].
pub const DEFAULT_PER_ADDRESS_PER_MINUTE: u32 = 6_000;
/// Default [`RateLimits::per_tenant_per_minute`].
pub const DEFAULT_PER_TENANT_PER_MINUTE: u32 = 12_000;

/// How many hook requests the intake takes per minute. Each is a bucket of that many requests that
/// refills evenly over a minute, so a burst of the full amount is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per minute from one source address (all tenants together).
    pub per_address_per_minute: NonZeroU32,
    /// Requests per minute to one tenant's hook URLs (all addresses together).
    pub per_tenant_per_minute: NonZeroU32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_address_per_minute: NonZeroU32::new(DEFAULT_PER_ADDRESS_PER_MINUTE).expect("not zero"),
            per_tenant_per_minute: NonZeroU32::new(DEFAULT_PER_TENANT_PER_MINUTE).expect("not zero"),
        }
    }
}

/// The injected clock as governor sees it: the time since the limiter was made.
#[derive(Debug, Clone)]
struct InjectedClock {
    clock: Arc<dyn Clock>,
    origin: DateTime<Utc>,
}

impl governor::clock::Clock for InjectedClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        // A clock set back reads as no time passed (never negative).
        (self.clock.now() - self.origin).to_std().unwrap_or_default()
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, InjectedClock, NoOpMiddleware<Duration>>;

/// The intake's two limiters.
#[derive(Debug)]
pub(crate) struct HookLimiter {
    clock: InjectedClock,
    by_address: Keyed<IpAddr>,
    by_tenant: Keyed<TenantName>,
}

impl HookLimiter {
    pub(crate) fn new(limits: RateLimits, clock: Arc<dyn Clock>) -> Self {
        let clock = InjectedClock { origin: clock.now(), clock };
        fn keyed<K: Clone + Eq + std::hash::Hash>(per_minute: NonZeroU32, clock: &InjectedClock) -> Keyed<K> {
            RateLimiter::new(Quota::per_minute(per_minute), DefaultKeyedStateStore::default(), clock.clone())
        }
        Self {
            by_address: keyed(limits.per_address_per_minute, &clock),
            by_tenant: keyed(limits.per_tenant_per_minute, &clock),
            clock,
        }
    }

    /// `Ok` when a request from `address` to `tenant` may be served (and counts it), else how long the
    /// sender should wait. A request without a known address or tenant skips that check.
    pub(crate) fn check(&self, address: Option<IpAddr>, tenant: Option<&TenantName>) -> Result<(), Duration> {
        use governor::clock::Clock as _;
        if let Some(address) = address {
            self.by_address.check_key(&address).map_err(|n| n.wait_time_from(self.clock.now()))?;
        }
        if let Some(tenant) = tenant {
            self.by_tenant.check_key(tenant).map_err(|n| n.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// Forgets the keys whose buckets are full again (memory stays bounded by recent senders).
    pub(crate) fn forget_idle(&self) {
        self.by_address.retain_recent();
        self.by_address.shrink_to_fit();
        self.by_tenant.retain_recent();
        self.by_tenant.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use orb_core::FixedClock;

    use super::*;

    #[test]
    fn address_first_then_tenant_and_time_refills() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = FixedClock::new(at);
        let limits = RateLimits {
            per_address_per_minute: NonZeroU32::new(2).unwrap(),
            per_tenant_per_minute: NonZeroU32::new(3).unwrap(),
        };
        let limiter = HookLimiter::new(limits, Arc::new(clock.clone()));
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t = TenantName::parse("t").unwrap();
        assert!(limiter.check(Some(a), Some(&t)).is_ok());
        assert!(limiter.check(Some(a), Some(&t)).is_ok());
        let wait = limiter.check(Some(a), Some(&t)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30), "one request refills every 30 s");
        // The address's refusal did not spend the tenant's quota: one more from b fits, then the tenant
        // is full.
        assert!(limiter.check(Some(b), Some(&t)).is_ok());
        assert!(limiter.check(Some(b), Some(&t)).is_err());
        assert!(limiter.check(None, None).is_ok(), "nothing to key on, nothing to limit");
        clock.advance(chrono::Duration::seconds(30));
        assert!(limiter.check(Some(a), None).is_ok(), "refilled by the injected clock");
    }
}
