//! # orb-topdesk
//!
//! ORB's typed TOPdesk REST client ([`TopdeskClient`]) and the TOPdesk wire types ([`wire`], shared with the
//! TOPdesk emulator in `orb-emulators`), plus FIQL ([`fiql`]) and TOPdesk's date-time spellings
//! ([`datetime`]).
//!
//! What the client covers: Basic auth with a login name and an application password
//! ([`TopdeskClient::current_operator`] checks them); reservations — list with FIQL/`$fields`/`$top`,
//! window listing across 206 pages, get, create, idempotent create by external link, PATCH, reschedule,
//! move room, cancel, reject, participants, series of specific dates; reservable rooms and locations;
//! persons by e-mail; cancellation reasons.
//!
//! ## Invariants
//! - The application password is a [`secrecy::SecretString`]; no `Debug` or error text contains it.
//! - Failures are classified by evidence in one place (`classify`): connection errors, timeouts, answers
//!   that break off, 408/425/429/5xx (but 501/505) and HTML error pages are transient and retried (with
//!   exponential back-off, honouring `Retry-After`); 400/409/422 with TOPdesk's reason are `Rejected`;
//!   401/403/404 keep their own variants. A plain create is never retried blindly — [`TopdeskClient::ensure_reservation`] looks for the external
//!   link before every attempt, so a retried create finds the first instead of making a second.
//! - At most [`TopdeskConfig::max_concurrency`] requests are in flight per client (clones share the cap).
//! - Wire bodies written by this crate never contain `null` (the specs declare nothing nullable).
//! - Nothing here reads the wall clock to decide anything: time comes in through [`orb_core::Clock`].
//! - `modificationDate` cannot be filtered on in FIQL; compare it client-side.
//!
//! ## Must not depend on
//! orb-store, orb-web, orb-engine.

pub mod address;
mod classify;
mod client;
pub mod datetime;
mod error;
pub mod fiql;
pub mod tls;
pub mod wire;

pub use address::{AddressPolicy, ProbeError, UrlRefusal};
pub use client::{
    DEFAULT_MAX_RESPONSE_BYTES, Ensured, ExternalLink, MAX_TOP, Occurrences, PERSONS_V2_ACCEPT, Reason,
    ReservationPage, RetryPolicy, TopdeskClient, TopdeskConfig,
};
pub use error::{TopdeskError, parse_error_body};
pub use fiql::Fiql;
pub use wire::{PersonId, ReservationId, ReservationSeriesId, ReservationStatus};
