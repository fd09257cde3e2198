//! Refusals counted in memory and written as one audit row per tenant and minute.
//!
//! A refused request or item adds one to a counter keyed by (minute of the injected clock, tenant name,
//! reason); nothing is written on the request path. [`RefusalCounter::take`] hands over the counters of
//! finished minutes (or all of them); the intake's flusher turns each (minute, tenant) into one audit row
//! (actor `webhook`, action `webhook.refused`, `at` = the minute, target = the counts by reason as JSON,
//! e.g. `{"bad_client_state":9981,"rate_limited":12}`, `ip` = the sender when all came from one address).
//!
//! Refusals that name no tenant ORB knows cannot be audited for a tenant: they go to a process-wide
//! counter that the flusher logs once per minute.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use orb_core::TenantName;

/// Most tenant names counted per minute; refusals for further names go to the process-wide counter, so
/// requests for made-up names cannot grow the counters without bound.
pub const MAX_TENANTS_PER_MINUTE: usize = 10_000;

/// Why the intake refused a request or an item. [`Refusal::as_str`] is its key in the audit summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// Over the per-address or per-tenant rate limit (`429`).
    RateLimited,
    /// The URL names no tenant ORB knows.
    UnknownTenant,
    /// TOPdesk: no `Authorization: Bearer` token.
    MissingToken,
    /// TOPdesk: the bearer token is not the tenant's.
    BadToken,
    /// TOPdesk: the tenant has no push token configured.
    NoPushToken,
    /// The body is larger than the endpoint accepts.
    BodyTooLarge,
    /// The body could not be read.
    BodyUnreadable,
    /// The body is not what the endpoint expects.
    MalformedBody,
    /// TOPdesk: the hints break the rules.
    InvalidHints,
    /// Graph, EWS: an item (a notification) names a subscription the tenant does not have.
    UnknownSubscription,
    /// Graph: an item's `clientState` does not match its subscription's; EWS: the callback URL's key `k`
    /// does not.
    BadClientState,
    /// The sender's address is outside the tenant's webhook allow-list.
    AddressNotAllowed,
}

impl Refusal {
    /// The reason's key in the audit summary, e.g. `bad_client_state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::UnknownTenant => "unknown_tenant",
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::NoPushToken => "no_push_token",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::MalformedBody => "malformed_body",
            Self::InvalidHints => "invalid_hints",
            Self::UnknownSubscription => "unknown_subscription",
            Self::BadClientState => "bad_client_state",
            Self::AddressNotAllowed => "address_not_allowed",
        }
    }
}

/// The start of the minute `at` falls in.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60), 0).unwrap_or(at)
}

/// Where one tenant-minute's refusals came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sources {
    /// No address was known.
    #[default]
    Unknown,
    /// All from this address.
    One(IpAddr),
    /// From more than one address.
    Many,
}

impl Sources {
    fn add(&mut self, address: Option<IpAddr>) {
        *self = match (*self, address) {
            (current, None) => current,
            (Self::Unknown, Some(a)) => Self::One(a),
            (Self::One(b), Some(a)) if a == b => Self::One(a),
            _ => Self::Many,
        };
    }

    fn merge(&mut self, other: Self) {
        match other {
            Self::Unknown => {}
            Self::One(a) => self.add(Some(a)),
            Self::Many => *self = Self::Many,
        }
    }
}

/// One tenant's refusals in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Refusals by reason.
    pub counts: BTreeMap<Refusal, u64>,
    /// Their senders.
    pub sources: Sources,
}

impl Summary {
    /// All refusals of the summary.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The counts as the audit row's JSON target, keys sorted: `{"bad_client_state":9981,"rate_limited":12}`.
    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> =
            self.counts.iter().map(|(r, n)| (r.as_str().to_owned(), (*n).into())).collect();
        serde_json::Value::Object(map).to_string()
    }

    fn merge(&mut self, other: Self) {
        for (reason, n) in other.counts {
            *self.counts.entry(reason).or_default() += n;
        }
        self.sources.merge(other.sources);
    }
}

/// What [`RefusalCounter::take`] hands over.
#[derive(Debug, Default)]
pub struct Taken {
    /// Per (minute, tenant name).
    pub tenants: Vec<((DateTime<Utc>, TenantName), Summary)>,
    /// Refusals naming no known tenant, per minute.
    pub unattributed: Vec<(DateTime<Utc>, u64)>,
}

#[derive(Debug, Default)]
struct Counts {
    tenants: BTreeMap<(DateTime<Utc>, TenantName), Summary>,
    unattributed: BTreeMap<DateTime<Utc>, u64>,
    unattributed_total: u64,
    /// Tenant names counted per minute.
    names: BTreeMap<DateTime<Utc>, usize>,
}

/// The in-memory refusal counters.
#[derive(Debug, Default)]
pub struct RefusalCounter {
    counts: Mutex<Counts>,
}

impl RefusalCounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` refusals at `now` for `tenant` (`None`: no tenant ORB knows) from `address`.
    pub fn count(
        &self,
        now: DateTime<Utc>,
        tenant: Option<&TenantName>,
        reason: Refusal,
        address: Option<IpAddr>,
        n: u64,
    ) {
        let minute = minute_of(now);
        let mut counts = self.lock();
        let key = tenant.map(|t| (minute, t.clone()));
        let known = key.as_ref().is_some_and(|k| counts.tenants.contains_key(k));
        let names = counts.names.get(&minute).copied().unwrap_or_default();
        match key {
            Some(key) if known || names < MAX_TENANTS_PER_MINUTE => {
                if !known {
                    *counts.names.entry(minute).or_default() += 1;
                }
                let summary = counts.tenants.entry(key).or_default();
                *summary.counts.entry(reason).or_default() += n;
                summary.sources.add(address);
            }
            _ => counts.add_unattributed(minute, n),
        }
    }

    /// Removes and returns the counters of minutes before `before` (all of them when `None`).
    pub fn take(&self, before: Option<DateTime<Utc>>) -> Taken {
        let mut counts = self.lock();
        let due = |minute: &DateTime<Utc>| before.is_none_or(|b| *minute < b);
        let keys: Vec<_> = counts.tenants.keys().filter(|(m, _)| due(m)).cloned().collect();
        let tenants = keys.into_iter().filter_map(|k| counts.tenants.remove_entry(&k)).collect();
        let minutes: Vec<_> = counts.unattributed.keys().filter(|m| due(m)).copied().collect();
        let unattributed = minutes.into_iter().filter_map(|m| counts.unattributed.remove_entry(&m)).collect();
        counts.names.retain(|m, _| !due(m));
        Taken { tenants, unattributed }
    }

    /// Puts a summary back (its row could not be written), to be taken again later.
    pub fn put_back(&self, minute: DateTime<Utc>, tenant: TenantName, summary: Summary) {
        let mut counts = self.lock();
        let key = (minute, tenant);
        if !counts.tenants.contains_key(&key) {
            *counts.names.entry(minute).or_default() += 1;
        }
        counts.tenants.entry(key).or_default().merge(summary);
    }

    /// Moves a summary whose tenant turned out unknown to the process-wide counter.
    pub fn unattribute(&self, minute: DateTime<Utc>, n: u64) {
        self.lock().add_unattributed(minute, n);
    }

    /// Refusals that named no known tenant since the process started.
    pub fn unattributed_total(&self) -> u64 {
        self.lock().unattributed_total
    }
}

impl Counts {
    fn add_unattributed(&mut self, minute: DateTime<Utc>, n: u64) {
        *self.unattributed.entry(minute).or_default() += n;
        self.unattributed_total += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn one_summary_per_tenant_and_minute() {
        let counter = RefusalCounter::default();
        let t = TenantName::parse("contoso").unwrap();
        let ip = |n: u8| Some(IpAddr::from([10, 0, 0, n]));
        counter.count(at(0), Some(&t), Refusal::BadClientState, ip(1), 9981);
        counter.count(at(59), Some(&t), Refusal::RateLimited, ip(1), 12);
        counter.count(at(61), Some(&t), Refusal::BadToken, ip(2), 1);
        counter.count(at(61), None, Refusal::UnknownTenant, ip(3), 4);

        let taken = counter.take(Some(minute_of(at(61))));
        assert_eq!(taken.tenants.len(), 1, "only the finished minute");
        let ((minute, name), summary) = &taken.tenants[0];
        assert_eq!((*minute, name), (minute_of(at(0)), &t));
        assert_eq!(summary.to_json(), r#"{"bad_client_state":9981,"rate_limited":12}"#);
        assert_eq!(summary.total(), 9993);
        assert_eq!(summary.sources, Sources::One(IpAddr::from([10, 0, 0, 1])));
        assert!(taken.unattributed.is_empty());

        let rest = counter.take(None);
        assert_eq!(rest.tenants.len(), 1);
        assert_eq!(rest.unattributed, vec![(minute_of(at(61)), 4)]);
        assert_eq!(counter.unattributed_total(), 4);
        assert!(counter.take(None).tenants.is_empty(), "taken once");

        let ((m, n), s) = rest.tenants.into_iter().next().unwrap();
        counter.put_back(m, n.clone(), s.clone());
        counter.count(at(62), Some(&n), Refusal::BadToken, ip(4), 2);
        let again = counter.take(None);
        assert_eq!(again.tenants[0].1.to_json(), r#"{"bad_token":3}"#, "put back and merged");
        assert_eq!(again.tenants[0].1.sources, Sources::Many);
    }

    #[test]
    fn made_up_names_beyond_the_cap_are_unattributed() {
        let counter = RefusalCounter::default();
        for i in 0..MAX_TENANTS_PER_MINUTE + 5 {
            let name = TenantName::parse(&format!("t{i}")).unwrap();
            counter.count(at(0), Some(&name), Refusal::RateLimited, None, 1);
        }
        let taken = counter.take(None);
        assert_eq!(taken.tenants.len(), MAX_TENANTS_PER_MINUTE);
        assert_eq!(taken.unattributed, vec![(at(0), 5)]);
    }
}
