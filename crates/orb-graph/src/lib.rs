//! # orb-graph
//!
//! ORB's typed Microsoft Graph client and the Graph wire types (shared with the Graph emulator in
//! `orb-emulators`, so both speak one schema: the subset in `testdata/`).
//!
//! - [`model`]: serde wire types, field for field as in the schema subset.
//! - [`auth`]: app-only tokens by client secret or certificate assertion (PS256, `x5t#S256`), cached.
//! - [`GraphClient`]: events (create with `transactionId` + match property, get, update, cancel, delete,
//!   find by match id), series instances, calendarView and its delta (paging, deltaLink, fresh start on
//!   `410` / `syncStateNotFound`), places, sendMail; per-mailbox concurrency cap and budget, `Retry-After`
//!   honoured, `client-request-id` = ORB's correlation id.
//! - [`batch`]: JSON batching for bulk work ([`GraphClient::batch`], [`GraphClient::get_events_batch`]):
//!   ≤ 20 per batch, results in the caller's order, only throttled items re-sent after their `Retry-After`,
//!   the per-mailbox cap kept across batches and direct calls.
//! - [`subscriptions`]: change-notification subscriptions (create basic or rich, renew, reauthorize,
//!   delete, get, list) and their helpers ([`generate_client_state`], [`subscription_expiry`]).
//! - [`notifications`]: checking what Graph POSTs to ORB's webhooks (handshake echo, clientState in constant
//!   time, validationTokens, decryption of rich content); [`JwksCache`] fetches the signing keys.
//! - [`GraphError`]: ORB's failure modes with [`GraphError::is_retryable`].
//!
//! ## Invariants
//! - Time is read only through an injected [`orb_core::Clock`].
//! - Secrets (client secret, access tokens, private keys) never show in `Debug` output or errors.
//!
//! ## Must not depend on
//! orb-store, orb-web, orb-engine.

pub mod auth;
pub mod batch;
mod classify;
mod client;
mod cloud;
mod error;
mod jwks;
pub mod model;
pub mod notifications;
pub mod subscriptions;

pub use auth::{AppRegistration, CertificateCredential, Credential, TokenProvider};
pub use batch::{BatchCall, BatchItemResult, BatchReply};
pub use client::{
    ClientOptions, DeltaCursor, DeltaRound, EVENT_FIELDS, Endpoints, GraphClient,
    NOT_SELECTABLE_ON_CALENDAR_VIEW, ORB_MATCH_PROPERTY_ID, etag_for_change_key,
};
pub use cloud::{Cloud, CloudEndpoints};
pub use error::GraphError;
pub use jwks::{JwksCache, JwksCacheOptions};
pub use subscriptions::{
    RICH_EVENT_SELECT, RichNotifications, SubscriptionRequest, events_resource, generate_client_state,
    rich_event_select, subscription_expiry,
};
