//! # orb-core
//!
//! The domain of ORB, the Outlook Room Booker: newtype identifiers, validated e-mail addresses, the
//! per-booking **ORB record**, and (in later modules) the pure sync planner.
//!
//! ## Invariants
//! - Every value that crosses a boundary is parsed into a type that cannot hold an invalid value:
//!   [`EmailAddress`] is validated and normalised (lower case), ids are typed [`uuid::Uuid`] newtypes so a
//!   room id can never be passed where a booking id is expected.
//! - Instants are UTC ([`chrono::DateTime<Utc>`](chrono::DateTime)) with the source time zone kept alongside
//!   ([`TimeZoneName`]); nothing in this crate reads the wall clock: time comes in through [`Clock`].
//! - The original organizer of a booking is set once, at creation, and never changes
//!   ([`BookingRecord::original_organizer`] has no setter that could overwrite it).
//!
//! ## Must not depend on
//! tokio, sqlx, reqwest, hyper, axum or any other I/O crate. A test of this crate never needs an async
//! runtime.

mod clock;
mod email;
mod error;
mod ids;
mod record;
mod side;
mod tenant;

pub use clock::{Clock, FixedClock, SystemClock};
pub use email::EmailAddress;
pub use error::CoreError;
pub use ids::{BookingId, CorrelationId, RoomId, SeriesId, TenantId};
pub use record::{BookingRecord, ExchangeLink, Fingerprint, NewBooking, TopdeskLink};
pub use side::{AppointmentType, Side, SyncStatus};
pub use tenant::{RoomMailbox, TenantName, TimeZoneName, TopdeskLocationId};
