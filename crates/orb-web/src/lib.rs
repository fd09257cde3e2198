//! # orb-web
//!
//! ORB's HTTP front: the **webhook intake** ([`hooks`]), where Microsoft Graph delivers change and
//! lifecycle notifications, Exchange Server on-premises delivers EWS push notifications and a TOPdesk
//! action sequence pushes "reservation X changed" hints, the public
//! [`health`] check, the **admin portal** and its JSON API ([`portal`]), and the **public listener**
//! ([`listener`]) that serves them with header and request timeouts and a connection limit.
//!
//! ## Routes
//! - `POST /hooks/graph/{tenant}`: Graph change notifications (`changeNotificationCollection`).
//! - `POST /hooks/graph/{tenant}/lifecycle`: Graph lifecycle notifications.
//! - `POST /hooks/topdesk/{tenant}`: TOPdesk push hints, `Authorization: Bearer <per-tenant token>`.
//! - `POST /hooks/ews/{tenant}?k=<per-subscription key>`: EWS push notifications (SOAP `SendNotification`
//!   from Exchange Server on-premises), answered `200` with a SOAP `SendNotificationResult`
//!   ([`hooks::ews`]).
//! - `GET /healthz`: `200 ok`, nothing else (no tenant counts, no database state).
//! - `/login`, `/`, `/t/{tenant}/…`, `/account`, `/api/v1/…`, `/api/openapi.json`, `/static/…`: the portal
//!   ([`portal::routes`] lists every route).
//!
//! ## Invariants
//! - **Intake is never slow** (design §3). The request path does only: handshake echo, size/shape check,
//!   constant-time clientState check, one durable insert + job, `202`. Decryption, `validationTokens` JWT
//!   checks, HMAC checks, fetching and planning all happen later, in the worker that runs the job.
//! - The validation handshake (`?validationToken=`) is answered before anything else and touches no store.
//! - Every accepted item is kept with [`orb_store::Store::accept_inbox`]: the inbox row and its job commit in
//!   one transaction, so an answered `202` (EWS: `200` with `SubscriptionStatus` `OK`) always means
//!   "durably queued".
//! - Secrets are compared in constant time, on their SHA-256 (the store keeps only hashes), and are never
//!   echoed: not in responses, not in the audit log, not in logs. A kept Graph item is stored without its
//!   `clientState`.
//! - The intake cannot be flooded or probed: rate limits per source address and per tenant (`429`, no store
//!   access, [`ratelimit`]); one answer for an unknown tenant and a bad token; refusals are counted in
//!   memory and written as one audit row per tenant and minute with counts by reason (actor `webhook`,
//!   action `webhook.refused`, [`refusals`]); a refused item or request writes nothing else.
//! - Time comes from an injected [`orb_core::Clock`].
//!
//! - Each tenant's webhook allow-list is enforced when the binary hands the intake its policies
//!   ([`HooksState::with_allow_lists`]); a sender outside it gets `403` and counts as a refusal.
//!
//! ## Must not depend on
//! orb-engine (the worker consumes what the intake keeps, through the store only; what the portal needs of
//! the engine comes through [`portal::PortalBackend`], implemented by the binary).

mod error;
pub mod health;
pub mod hooks;
pub mod listener;
pub mod portal;
pub mod ratelimit;
pub mod refusals;

pub use error::{NO_SUCH_HOOK, WebError};
pub use hooks::{FlushReport, HooksState, Limits, router, run_refusal_flusher};
pub use listener::{ListenerLimits, serve_public};
pub use ratelimit::RateLimits;
