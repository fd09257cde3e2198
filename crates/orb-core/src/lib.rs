//! # orb-core
//!
//! The domain of ORB, the Outlook Room Booker: newtype identifiers, validated e-mail addresses, the
//! per-booking **ORB record**, and the pure sync planner ([`plan()`]) with its canonical fields and
//! fingerprint ([`canonical`]), policy ([`policy`]), recurrence expansion and the Windows↔IANA zone table
//! ([`zones`]).
//!
//! ## Invariants
//! - Every value that crosses a boundary is parsed into a type that cannot hold an invalid value:
//!   [`EmailAddress`] is validated and normalised (lower case), ids are typed [`uuid::Uuid`] newtypes so a
//!   room id can never be passed where a booking id is expected.
//! - Instants are UTC ([`chrono::DateTime<Utc>`](chrono::DateTime)) with the source time zone kept alongside
//!   ([`TimeZoneName`]); nothing in this crate reads the wall clock: time comes in through [`Clock`].
//! - The original organizer of a booking is set once, at creation, and never changes
//!   ([`BookingRecord::original_organizer`] has no setter that could overwrite it) — except that erasing
//!   the person replaces it with their pseudonym ([`privacy`]).
//! - How long stored data is kept is decided here ([`retention`]: periods → cutoff instants); the store
//!   deletes.
//!
//! ## Must not depend on
//! tokio, sqlx, reqwest, hyper, axum or any other I/O crate. A test of this crate never needs an async
//! runtime.

pub mod canonical;
mod clock;
mod email;
mod error;
mod ids;
pub mod observation;
pub mod plan;
pub mod planner;
pub mod policy;
pub mod privacy;
mod record;
pub mod recurrence;
pub mod retention;
mod side;
mod tenant;
pub mod zones;

pub use clock::{Clock, FixedClock, SystemClock, stored_precision};
pub use email::EmailAddress;
pub use error::CoreError;
pub use ids::{BookingId, CorrelationId, RoomId, SeriesId, TenantId};
pub use record::{BookingRecord, ExchangeLink, Fingerprint, NewBooking, TopdeskLink};
pub use retention::{PurgeCutoffs, Retention};
pub use side::{AppointmentType, Side, SyncStatus};
pub use tenant::{RoomMailbox, TenantName, TimeZoneName, TopdeskLocationId};

pub use canonical::{CanonicalFields, CanonicalRoom};
pub use observation::{
    Lifecycle, Observation, ObservationSource, ObservedRoom, RemoteIds, RoomResponse, SeriesRef,
};
pub use plan::{
    Action, ExchangeCancel, ExchangeChanges, ExchangeTarget, NothingReason, Plan, RecordChange, Requester,
    ReservationChanges, TimelineEntry, TimelineKind, WriteKind,
};
pub use planner::{
    FailedWrite, MAX_RETRIES, NewIds, PlanContext, SweepStats, WriteFailure, plan, plan_write_failure,
    retry_backoff,
};
pub use policy::{
    CancellationPolicy, ConflictPolicy, FallbackPerson, MailTemplate, MassDeletionGuard, Mode,
    PersonDirectory, Policy, RoomMap, RoomMapping, SubjectPolicy, TopdeskRefusal,
};
