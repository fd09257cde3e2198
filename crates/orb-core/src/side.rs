//! Small closed vocabularies: sides, appointment types, sync status. Each has a stable text form used in
//! the store and in logs (`as_str` / `FromStr`), so renaming a Rust variant never changes stored data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable text form (stored in the database, shown in logs).
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = CoreError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(CoreError::UnknownVariant { kind: $kind, input: other.to_owned() }),
                }
            }
        }
    };
}

text_enum!(
    /// One of the two systems ORB keeps in step.
    Side, "side" {
        /// Exchange Online, through Microsoft Graph.
        Exchange => "exchange",
        /// TOPdesk Reservations, through its REST API.
        Topdesk => "topdesk",
    }
);

impl Side {
    /// The side that is not this one.
    pub const fn other(self) -> Self {
        match self {
            Self::Exchange => Self::Topdesk,
            Self::Topdesk => Self::Exchange,
        }
    }
}

text_enum!(
    /// What kind of calendar item a booking stands for (Graph's `event.type`).
    AppointmentType, "appointment type" {
        /// A meeting that does not recur.
        Single => "single",
        /// An occurrence of a series, unchanged from the pattern.
        Occurrence => "occurrence",
        /// An occurrence that was changed (time, room) on its own.
        Exception => "exception",
        /// The series itself (the pattern); kept for the series row, not synced as a room booking.
        SeriesMaster => "seriesMaster",
    }
);

text_enum!(
    /// The last known state of a booking on one side.
    SyncStatus, "sync status" {
        /// ORB has not written or seen this side yet.
        Pending => "pending",
        /// This side holds what ORB last decided.
        Synced => "synced",
        /// The last write to this side failed; see the failure fields of the record.
        Failed => "failed",
        /// The booking is cancelled on this side.
        Cancelled => "cancelled",
        /// The room declined the meeting (Exchange) or TOPdesk refused the reservation.
        Declined => "declined",
        /// Both sides changed; waiting for the conflict policy or an admin.
        Conflict => "conflict",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for s in Side::ALL {
            assert_eq!(s.as_str().parse::<Side>().unwrap(), *s);
        }
        for t in AppointmentType::ALL {
            assert_eq!(t.as_str().parse::<AppointmentType>().unwrap(), *t);
        }
        for t in SyncStatus::ALL {
            assert_eq!(t.as_str().parse::<SyncStatus>().unwrap(), *t);
        }
        assert_eq!(Side::Exchange.other(), Side::Topdesk);
        let err = "outlook".parse::<Side>().unwrap_err();
        assert_eq!(err.to_string(), "unknown side \"outlook\"");
    }
}
