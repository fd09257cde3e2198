//! Newtype identifiers. Each wraps a [`Uuid`]; the types keep a room id from being used as a booking id.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CoreError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id, time-ordered (UUIDv7) with `at` as its timestamp and random low bits.
            pub fn generate(at: DateTime<Utc>) -> Self {
                let secs = u64::try_from(at.timestamp()).unwrap_or(0);
                let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, at.timestamp_subsec_nanos());
                Self(Uuid::new_v7(ts))
            }

            /// Wraps an existing UUID (as read back from the store).
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = CoreError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| CoreError::InvalidId {
                    kind: $kind,
                    input: s.to_owned(),
                })
            }
        }
    };
}

uuid_id!(
    /// One customer organisation (an Entra tenant + a TOPdesk instance).
    TenantId,
    "tenant"
);
uuid_id!(
    /// A room mapping (Exchange room mailbox ↔ TOPdesk location).
    RoomId,
    "room"
);
uuid_id!(
    /// The **match id** of a booking: the ORB record's key, carried to both sides as the idempotency key
    /// (Graph `transactionId` + extended property, TOPdesk external link). Time-ordered UUIDv7.
    BookingId,
    "booking"
);
uuid_id!(
    /// A recurring series; each occurrence is its own booking under it.
    SeriesId,
    "series"
);
uuid_id!(
    /// Ties together every log line, timeline entry and remote call made for one booking's sync work.
    CorrelationId,
    "correlation"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_v7_and_ordered_by_time() {
        let t1 = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let t2 = t1 + chrono::Duration::milliseconds(5);
        let a = BookingId::generate(t1);
        let b = BookingId::generate(t2);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b, "a later id sorts after an earlier one");
        assert_eq!(a.to_string().parse::<BookingId>().unwrap(), a);
    }

    #[test]
    fn a_malformed_id_names_its_kind() {
        let err = "not-a-uuid".parse::<RoomId>().unwrap_err();
        assert!(err.to_string().contains("invalid room id \"not-a-uuid\""), "{err}");
    }
}
